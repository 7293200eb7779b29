"""onnxruntime on a CPU PE: one session per stage, created on the (already pinned) worker thread
with explicit intra-op threads and spinning off, so an idle stage does not burn the core its
neighbour needs."""

from __future__ import annotations

import numpy as np
import onnx

from ..errors import first_line
from ..ortsession import session
from . import EngineError, EngineOptions


class OrtCpuEngine:
    def __init__(self, model: onnx.ModelProto, pe: str, opts: EngineOptions):
        self.pe = pe
        try:
            self._sess = session(model, opts.threads, opts.optimization)
        except Exception as e:
            raise EngineError(f"onnxruntime could not load the stage for {pe}: "
                              f"{first_line(e) or e!r}") from None
        self.input_names = [i.name for i in self._sess.get_inputs()]
        self.output_names = [o.name for o in self._sess.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self._sess.run(self.output_names, {n: feeds[n] for n in self.input_names})
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        self._sess = None


def open_engine(model, pe, opts: EngineOptions) -> OrtCpuEngine:
    return OrtCpuEngine(model, pe, opts)
