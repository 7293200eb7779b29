"""Calibrating a board model on one published figure pair, as the Xavier board is calibrated:

JEDI's README (facts.md) gives, for YOLOv2-relu at 416 in FP16 on an AGX Xavier, tuned GPU-only
187 fps and a GPU, DLA0, DLA1, GPU pipeline 295 fps with cut points 2, 23, 34, 54. Two figures
cannot pin down the board model's many unknowns, so everything a source gives (or the board file
assumes, saying so) stays fixed: stage overheads, reformat costs, contention, the DLA's MAC
geometry. Two rates are fitted, one per figure, and neither may exceed its published peak:

- the GPU's convolution efficiency, so that the `single` GPU plan predicts 187 fps (the GPU runs
  alone there, so no contention term enters);
- the DLA's convolution efficiency, so that JEDI's busier DLA stage takes exactly the measured
  frame interval (1000 / 295 ms). With the contention a GPU suffers beside two DLAs, the model's
  GPU stages may already take about that long, and then 295 fps cannot tell how fast the DLAs
  are, only that they were not slower than that; the fit takes the slowest DLA the measurement
  allows rather than an optimistic one.

JEDI's INT8 figures for the same network (401 fps GPU-only, 502 pipelined) are held back and only
predicted, as a check; no other published figure is used.

JEDI's cut points are tkDNN layer indices: tkDNN counts an input layer, a convolution and its
activation as two layers, a route with one input as a layer, and the reorg as one layer, where
our ONNX graph has no input node, no node for a one-input route, and three for the reorg. Cut
points 2, 23, 34 (last layer of a stage) are, in our indices, 1 (L0.relu), 22 (L13.conv) and 33
(L19.conv); 54 is the end.
"""

from __future__ import annotations

from .errors import HetschedError
from .partition.cost import Stage, evaluate, used_pes
from .profile import Profile
from .profiler.board import Board
from .profiler.roofline import model_profile


class CalibrationError(HetschedError):
    pass


JEDI_YOLOV2 = {"gpu_only_fps": 187.0, "pipeline_fps": 295.0, "int8_gpu_only_fps": 401.0,
               "int8_pipeline_fps": 502.0, "cuts_tkdnn": [2, 23, 34, 54], "cuts_ours": [1, 22, 33]}


def jedi_stages(n_layers: int) -> list[Stage]:
    a, b, c = JEDI_YOLOV2["cuts_ours"]
    return [Stage(("gpu",), 0, a), Stage(("dla0",), a + 1, b), Stage(("dla1",), b + 1, c),
            Stage(("gpu",), c + 1, n_layers - 1)]


def _bisect(fn, target: float, lo: float = 0.01, hi: float = 3.0, steps: int = 60) -> float:
    """x in [lo, hi] with fn(x) = target, fn increasing in x."""
    if not fn(lo) <= target <= fn(hi):
        raise CalibrationError(f"no efficiency in [{lo}, {hi}] of the peak gives {target:.1f} fps "
                               f"(the model gives {fn(lo):.1f}-{fn(hi):.1f}): the board model lacks something")
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fn(mid) < target else (lo, mid)
    return (lo + hi) / 2


def predictions(graph, board: Board, precision: str) -> dict:
    prof = model_profile(graph, board, precision)
    single = evaluate(prof, [Stage(("gpu",), 0, len(prof.layers) - 1)], "single")
    jedi = evaluate(prof, jedi_stages(len(prof.layers)), "jedi")
    return {"gpu_only_fps": single.throughput_fps, "pipeline_fps": jedi.throughput_fps,
            "pipeline_pe_load_ms": jedi.pe_load_ms,
            "pipeline_factor": {p: prof.factor(p, used_pes(jedi.stages)) for p in used_pes(jedi.stages)}}


def calibrate_xavier(graph, board: Board) -> dict:
    """Fit efficiency.gpu.Conv and efficiency.dla.Conv in place; return the record to store.
    Raises CalibrationError if a fitted rate would exceed its published peak (efficiency > 1)."""
    def gpu_fps(e):
        board.efficiency["gpu"]["Conv"] = e
        return predictions(graph, board, "fp16")["gpu_only_fps"]
    e_gpu = _bisect(gpu_fps, JEDI_YOLOV2["gpu_only_fps"])
    board.efficiency["gpu"]["Conv"] = e_gpu

    def dla_speed(e):   # increasing in e: the frame rate the busier DLA stage alone would allow
        board.efficiency["dla"]["Conv"] = e
        loads = predictions(graph, board, "fp16")["pipeline_pe_load_ms"]
        return 1000.0 / max(loads["dla0"], loads["dla1"])
    e_dla = _bisect(dla_speed, JEDI_YOLOV2["pipeline_fps"])
    board.efficiency["dla"]["Conv"] = e_dla
    for name, e in (("GPU", e_gpu), ("DLA", e_dla)):
        if e > 1.0:
            raise CalibrationError(f"the {name} would need {e:.3f} of its published peak to give "
                                   f"JEDI's figure: the board model lacks something")
    fp16 = predictions(graph, board, "fp16")
    int8 = predictions(graph, board, "int8")
    return {"gpu_conv_efficiency": e_gpu, "dla_conv_efficiency": e_dla, "fp16": fp16, "int8": int8}


def profile_for(graph, board: Board, precision: str) -> Profile:
    return model_profile(graph, board, precision)
