"""Engines: one backend per module behind one small interface.

An engine is opened for one sub-model on one PE, inside the thread that will run it (CPU
engines pin that thread first: onnxruntime's pool threads inherit its affinity), then `run`
maps input tensors to output tensors, frame after frame, and `close` frees it. The runtime
never looks past this interface, so a new backend is one new module here and one line in
`BACKENDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import HetschedError


class EngineError(HetschedError):
    """An engine that cannot be built or loaded on its PE."""


class Engine(Protocol):
    pe: str
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


@dataclass
class EngineOptions:
    """What every backend may read; each takes what applies to it."""
    threads: int = 1                    # intra-op threads (CPU)
    optimization: str = "all"           # onnxruntime graph optimisation level
    precision: str = "fp16"             # TensorRT builder precision
    cache_dir: str | None = None        # TensorRT engine cache
    emulate: str = "timing"             # emulated PEs: "timing" (zeros) or "compute" (run on CPU)
    extra: dict = field(default_factory=dict)


# backend name -> "module:function"; imported only when a PE asks for it
BACKENDS = {
    "onnxruntime-cpu": "ort_cpu:open_engine",
    "onnxruntime-cuda": "ort_gpu:open_cuda",
    "onnxruntime-tensorrt": "ort_gpu:open_tensorrt",
    "tensorrt": "tensorrt:open_engine",
    "emulated": "emulated:open_engine",
}
# the backend a PE kind gets unless the pipeline names another
DEFAULT_BACKEND = {"cpu": "onnxruntime-cpu", "gpu": "tensorrt", "dla": "tensorrt"}


# which device a GPU or DLA PE name means, for every backend that opens one
def gpu_index(pe: str) -> int:
    """`gpu` is device 0, `gpuN` is device N."""
    tail = pe[3:] if pe.startswith("gpu") else ""
    if tail and not tail.isdigit():
        raise EngineError(f"'{pe}' is not a GPU PE name (gpu or gpuN)")
    return int(tail or 0)


def dla_core(pe: str) -> int | None:
    if pe.startswith("dla"):
        tail = pe[3:]
        if not tail.isdigit():
            raise EngineError(f"'{pe}' is not a DLA PE name (dla0, dla1, ...)")
        return int(tail)
    return None


def backend(name: str):
    """The open function of backend `name` (importing its module now)."""
    import importlib
    if name not in BACKENDS:
        raise EngineError(f"unknown engine backend '{name}' (known: {', '.join(BACKENDS)})")
    module, fn = BACKENDS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), fn)
