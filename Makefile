# The two commands of the README: `make demo` (install, then the main job end to end) and
# `make test` (install the test dependencies, then the whole suite). Both make .venv if absent.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RAPIDOCR := rapidocr==3.10.0

.PHONY: install plot dev models demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .

# matplotlib is an optional extra; the demo draws its charts with it
plot: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[plot]'

# The PP-OCR detector lives inside the rapidocr wheel; --no-deps keeps its unrelated
# requirements (opencv-python, Pillow, requests, ...) off the machine.
models: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[models]'
	$(BIN)/python -m pip install -q --no-deps $(RAPIDOCR)

dev: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,models]'
	$(BIN)/python -m pip install -q --no-deps $(RAPIDOCR)

demo: plot
	$(BIN)/hetsched demo

test: dev
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
