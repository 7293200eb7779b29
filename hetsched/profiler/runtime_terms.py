"""The contract's version-2 terms for CPU PEs, measured on the real runtime (contract section 2):

- `stage_overhead_ms[p]`: what a stage costs PE p per frame whatever its layers, in two parts
  recorded separately in the profile's board: `hop_ms`, the runtime's own hand-off (take the frame
  from the input channel, the PE lock, hand it on), from a pipeline of empty stages all on p; and
  `launch_ms`, one onnxruntime `run` of a one-node model at the engine's configuration (what a
  session costs before its first kernel).
- `contention[p][q]`: p's slowdown while q is busy: the same work on p timed alone and beside a
  thread on q doing the same without pause, alternating alone / beside round by round, medians.
  The work is the network's session for a network profile, and the whole loop body (Preprocess,
  the network, Postprocess) for a pipeline profile: Python's GIL serialises much of pre- and
  post-processing, so two cores running the loop slow each other far more (~10% on the VM) than
  two sessions do (1-3%). Recorded as measured, including values near 0; a negative figure
  (noise: p ran faster beside q) is recorded as 0, since the planners take contention as >= 0.

Everything here runs real threads, so it lives beside the profiler, not in the planning maths.
"""

from __future__ import annotations

import math
import statistics
import threading
import time

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..ortsession import random_feeds, session
from ..pinning import pin_current_thread, run_pinned


class _NoOp:
    pe = "noop"
    input_names: list = []
    output_names: list = []

    def run(self, feeds):
        return {}

    def close(self):
        pass


class _Frames:
    name = "overhead-probe"

    def __init__(self, n: int):
        self.left = n
        self.image = np.zeros((4, 4, 3), dtype=np.uint8)

    def read(self):
        if self.left == 0:
            return None
        self.left -= 1
        return self.image

    def close(self):
        pass


def _probe_wall_ms(stages, frames: int) -> float:
    """Wall ms a frame of `frames` frames through `stages` with nothing around them."""
    from ..runtime.pipeline import Pipeline
    pipe = Pipeline(_Frames(frames), stages, pre=lambda f: None, post=lambda f: None, buffers=2)
    return pipe.run(handle_signals=False).wall_s * 1e3 / frames


def hop_ms(pe: str, cores, frames: int = 400, stages: int = 4) -> float:
    """Per frame and stage, the runtime's cost of a stage that does nothing, on PE `pe`."""
    from ..runtime.pipeline import Stage, Worker
    return _probe_wall_ms([Stage([Worker(pe, _NoOp, list(cores))]) for _ in range(stages)],
                          frames) / stages


def handover_ms(hold_ms: float = 0.3, frames: int = 1000, rounds: int = 3) -> float:
    """How long an unpinned PE lies idle each time one of its stages passes it to another that
    waited for it (that thread's wake-up, and its wait for the interpreter lock), on this host:
    four emulated stages held `hold_ms` each, alternating over two PEs, so each PE holds
    2 x `hold_ms` a frame and changes hands twice. Median over `rounds` runs (the VM drifts)."""
    from ..engines import EngineOptions
    from ..engines.emulated import EmulatedEngine
    from ..runtime.pipeline import Stage, Worker
    model, opts = _tiny_model(), EngineOptions(emulate="timing")

    def once() -> float:
        stages = [Stage([Worker(pe, lambda: EmulatedEngine(model, "probe", opts, hold_ms))])
                  for pe in ("probe-a", "probe-b", "probe-a", "probe-b")]
        return (_probe_wall_ms(stages, frames) - 2 * hold_ms) / 2
    return max(0.0, statistics.median(once() for _ in range(rounds)))


def _tiny_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "tiny", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def launch_ms(cores, threads: int, optimization: str, runs: int = 300) -> float:
    """One `run` of a one-node session on the PE: the engine's fixed cost per stage and frame."""
    def body():
        sess = session(_tiny_model(), threads, optimization)
        feeds = random_feeds(sess)
        for _ in range(20):
            sess.run(None, feeds)
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples) * 1e3
    return run_pinned(cores, body)


def contention(model: bytes, cores: dict[str, list[int]], threads: dict[str, int],
               optimization: str, rounds: int = 5) -> dict[str, dict[str, float]]:
    """contention[p][q] for every ordered pair of the PEs in `cores` (see the module docstring),
    with the network's session as the work on both."""
    def work(n):
        sess = session(model, n, optimization)
        feeds = random_feeds(sess)
        return lambda: sess.run(None, feeds)
    return contention_of(lambda pe: work(threads[pe]), cores, rounds)


def contention_of(make_work, cores: dict[str, list[int]], rounds: int = 5) -> dict[str, dict[str, float]]:
    """contention[p][q]: `make_work(pe)()` (built and run on pe's pinned thread) timed on p alone
    and while q runs its own without pause, alternating, medians; >= 0."""
    out: dict[str, dict[str, float]] = {}
    names = list(cores)
    for p in names:
        for q in names:
            if p == q:
                continue
            alone, beside = _pair(make_work, p, q, cores[p], cores[q], rounds)
            out.setdefault(p, {})[q] = round(max(0.0, beside / alone - 1.0), 4)
    return out


SAMPLE_S = 0.1


def _pair(make_work, p, q, cores_p, cores_q, rounds):
    """(median time of p's work alone, median while q runs its work without pause)."""
    stop = threading.Event()
    busy = threading.Event()
    ready = threading.Event()
    failure: list = []

    def load():
        try:
            pin_current_thread(cores_q)
            run = make_work(q)
            ready.set()
            while not stop.is_set():
                if busy.wait(0.01):
                    run()
        except BaseException as e:   # carried back as a value
            failure.append(e)
            ready.set()

    def measure():
        run = make_work(p)
        t0 = time.perf_counter()
        run()
        # each sample is runs in a row for at least SAMPLE_S, the way a stage runs frames: a
        # single run just after a pause read a steady ~0.65 beside q in 4 of 11 takes of
        # tiny-yolov2 320's loop (runs in a row: 1 of 17), which the runtime never met
        reps = max(1, math.ceil(SAMPLE_S / max(time.perf_counter() - t0, 1e-6)))
        alone, beside = [], []
        for _ in range(rounds):
            for flag, into in ((False, alone), (True, beside)):
                if flag:
                    busy.set()
                else:
                    busy.clear()
                time.sleep(0.02)       # let q start (or finish) its current run
                t0 = time.perf_counter()
                for _ in range(reps):
                    run()
                into.append((time.perf_counter() - t0) / reps)
        busy.clear()
        return statistics.median(alone), statistics.median(beside)

    worker = threading.Thread(target=load, name="contention-load", daemon=True)
    worker.start()
    try:
        ready.wait(60)
        if failure:
            raise failure[0]
        return run_pinned(cores_p, measure)
    finally:
        from .. import stopping
        stop.set()
        busy.set()
        worker.join(0.3 if stopping.requested() else 5.0)


def cut_cost(graph, cores: dict[str, list[int]], threads: dict[str, int], optimization: str,
             launch: dict[str, float], *, cuts: int = 8, window: int = 3, seed: int = 0,
             runs: int = 7) -> dict[str, dict[str, float]]:
    """What cutting a model costs a PE beyond the extra launch: a window of layers a..c timed
    whole and as a..b and b+1..c (onnxruntime then converts the tensors crossing b out of and
    back into its blocked layout, and cannot fuse across b), fitted per PE to
    `latency_ms + ms_per_mb * MB crossing b` (both >= 0). The contract charges it where a tensor
    passes between two stages: as the `"p->p"` transfer on one PE, and on top of the hand-off
    between two PEs."""
    from .segments import time_segments
    from .transfer import fit
    n = len(graph)
    rng = np.random.default_rng(seed)
    points = sorted({int(b) for b in rng.integers(1, n, cuts * 3)})[:cuts * 2]
    points = [points[k] for k in np.linspace(0, len(points) - 1, min(cuts, len(points))).astype(int)] \
        if points else []
    segments, where = [], []
    for b in points:
        a, c = max(0, b - window), min(n - 1, b + window - 1)
        where.append((b, len(segments)))
        segments += [(a, c), (a, b - 1), (b, c)]
    times = time_segments(graph, segments, cores, threads, optimization, runs=runs)
    out = {}
    for p in cores:
        pts = []
        for b, k in where:
            extra = times[(p, k + 1)] + times[(p, k + 2)] - times[(p, k)] - launch.get(p, 0.0)
            nbytes = sum(graph.tensors[t].bytes for t in graph.crossing(b))
            pts.append((nbytes, max(extra, 0.0) / 1e3))
        t = fit(pts) if len(pts) >= 2 else None
        out[p] = {"latency_ms": round(t.latency_ms, 5) if t else 0.0,
                  "ms_per_mb": round(t.ms_per_mb, 5) if t else 0.0, "cuts": points}
    return out
