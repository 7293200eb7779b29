"""A PE this machine lacks (a Jetson GPU or DLA), stood in for by time.

Each frame is held until the stage time the profile predicts for that PE has passed since the
frame entered the engine. In `timing` mode the outputs are zero tensors of the sub-model's
output shapes (the values are not what is being emulated); in `compute` mode the sub-model really
runs on this machine's CPU, and every frame whose real work took longer than the time it
stands for is counted and warned about once, since the emulation is then too slow to be true.

`time.sleep` wakes late (on the 2-core VM by 60-100 us, which is 15% of a 0.6 ms stage), so each
hold aims early by an estimate of that lateness, corrected after every frame (integral feedback):
the mean hold then matches the stage time without spinning on a core the host needs.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import onnx
from onnx import helper

from . import EngineError, EngineOptions

log = logging.getLogger(__name__)


def _shape(vi: onnx.ValueInfoProto) -> tuple[int, ...]:
    return tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)


class EmulatedEngine:
    def __init__(self, model: onnx.ModelProto, pe: str, opts: EngineOptions, hold_ms: float):
        if hold_ms is None or hold_ms < 0:
            raise EngineError(f"emulated {pe} needs the stage time to emulate, got {hold_ms}")
        self.pe = pe
        self.hold_s = hold_ms / 1e3
        self.mode = opts.emulate
        self.input_names = [i.name for i in model.graph.input]
        self.output_names = [o.name for o in model.graph.output]
        self.overruns = 0
        self._early = 0.0     # seconds to wake before the deadline, learnt from past lateness
        self._inner = None
        if self.mode == "compute":
            from .ort_cpu import OrtCpuEngine
            self._inner = OrtCpuEngine(model, pe, opts)
        elif self.mode == "timing":
            self._zeros = {o.name: np.zeros(_shape(o), helper.tensor_dtype_to_np_dtype(
                o.type.tensor_type.elem_type)) for o in model.graph.output}
            for z in self._zeros.values():
                z.flags.writeable = False  # shared by every frame
        else:
            raise EngineError(f"emulation mode '{self.mode}' is not 'timing' or 'compute'")

    def run(self, feeds):
        t0 = time.perf_counter()
        out = self._inner.run(feeds) if self._inner else dict(self._zeros)
        deadline = t0 + self.hold_s
        left = deadline - time.perf_counter()
        if left > 0:
            if left > self._early:
                time.sleep(left - self._early)
            late = time.perf_counter() - deadline
            self._early = min(max(self._early + 0.2 * late, 0.0), self.hold_s)
        elif self._inner is not None and self.hold_s > 0:
            self.overruns += 1
            if self.overruns == 1:
                log.warning("emulated %s: the real CPU work (%.1f ms) is slower than the %.1f ms "
                            "stage time it stands for; measured throughput will be too low",
                            self.pe, (self.hold_s - left) * 1e3, self.hold_s * 1e3)
        return out

    def close(self):
        if self._inner:
            self._inner.close()


def open_engine(model, pe, opts: EngineOptions, hold_ms: float | None = None) -> EmulatedEngine:
    return EmulatedEngine(model, pe, opts, hold_ms)
