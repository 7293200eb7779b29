"""The real pretrained detector that ships inside a PyPI wheel: PP-OCRv6's DB text detector in
`rapidocr` (Apache-2.0). It is located through the wheel's metadata, without importing the
package (whose own requirements are not installed: `make models` installs it with --no-deps)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from ..errors import HetschedError

PPOCR_DET = "rapidocr/models/PP-OCRv6_det_small.onnx"
PPOCR_INPUT = "x"
# The detector's pre-processing as rapidocr 3.10 configures it (config.yaml, Det): pixels / 255,
# then (x - 0.5) / 0.5 per channel, BGR as OpenCV reads it, NCHW.
PPOCR_MEAN = (0.5, 0.5, 0.5)
PPOCR_STD = (0.5, 0.5, 0.5)
INSTALL_HINT = "run `make models` (pip install --no-deps rapidocr==3.10.0)"


def ppocr_det_path() -> Path:
    try:
        dist = importlib.metadata.distribution("rapidocr")
    except importlib.metadata.PackageNotFoundError:
        raise HetschedError(f"the PP-OCR detector needs the rapidocr wheel: {INSTALL_HINT}") from None
    path = Path(dist.locate_file(PPOCR_DET))
    if not path.is_file():
        raise HetschedError(f"rapidocr {dist.version} has no {PPOCR_DET}: {INSTALL_HINT}")
    return path
