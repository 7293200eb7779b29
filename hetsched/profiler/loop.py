"""Pipeline profiles: the detection loop's CPU work as planned layers (contract section 2).

`measure_loop` times, on each CPU PE's pinned thread and interleaved round by round, the
spec's pre-processing (`Preprocess`: resize or letterbox, colour, scaling, layout, on frames of
the spec's source at its own size) and post-processing (`Postprocess`: the spec's decoder and NMS
at its thresholds, on what the model really outputs for those frames: with the zoo's random
weights about 2,000 boxes pass a 0.25 threshold), and, on the host, the work outside every stage
(`host_ms`: reading and decoding a frame from the source, and what the spec's sinks do with
each result: JSON lines, an annotated video, dump files; a run without sinks pays only the read). `with_loop` adds them to a network profile as its first and last layers, with
null costs on every PE that is not a CPU, so the planners place them like any layer.
"""

from __future__ import annotations

import copy
import json
import statistics
import time

import numpy as np

from ..errors import HetschedError
from ..pinning import PinnedThread
from ..profile import Profile, ProfileLayer

PRE_NAME, POST_NAME = "preprocess", "postprocess"
FRAME, DETECTIONS = "hetsched.frame", "hetsched.detections"
# part of a cached pipeline profile's key: bumped when the loop's code changes what it costs
# (2: NMS in OpenCV, ~4x faster than the numpy loop before it; 3: host_ms charges the spec's
# sinks, not always a JSON encoding; identical PEs pooled, profiler.pooling; 4: OpenCV single-
# threaded, `runtime.task.make_task`; 5: contention taken until two takes agree,
# `pooling.agreeing`, each sample runs in a row; 6: pre-processing in OpenCV calls, ~2.4x
# faster, and YOLO decoding activating every class only of the cells that pass, 1.3-6x faster on
# zero outputs), so old caches are measured again
LOOP_CODE_VERSION = 6


def with_loop(net: Profile, pre_ms: dict[str, float], post_ms: dict[str, float], *,
              frame_bytes: int, result_bytes: int, host_ms: float, loop: dict,
              contention: dict | None = None) -> Profile:
    """A pipeline profile: `net`'s layers between a Preprocess and a Postprocess layer; the
    whole loop's `contention` replaces the network's where given (kept in `board.loop`)."""
    if net.is_pipeline():
        raise ValueError("the profile already holds the detection loop")
    inputs = [t for t in net.graph_inputs()]
    prof = copy.deepcopy(net)
    pre = ProfileLayer(PRE_NAME, "Preprocess", (FRAME,), tuple(inputs),
                       {p: pre_ms.get(p) for p in net.pes})
    post = ProfileLayer(POST_NAME, "Postprocess", tuple(net.graph_outputs), (DETECTIONS,),
                        {p: post_ms.get(p) for p in net.pes})
    prof.layers = [pre, *prof.layers, post]
    prof.tensors = {FRAME: int(frame_bytes), **prof.tensors, DETECTIONS: int(result_bytes)}
    prof.graph_outputs = [DETECTIONS]
    prof.host_ms = float(host_ms)
    prof.board = {**prof.board, "loop": loop}
    if contention:
        prof.board["loop"] = {**loop, "network_contention": net.contention,
                              "contention_method": "the loop body (Preprocess, network, "
                              "Postprocess) alone and beside the other PE doing the same"}
        prof.contention = {p: dict(row) for p, row in contention.items()}
    return prof


def _median_ms(samples) -> float:
    return statistics.median(samples) * 1e3


def _sink_ms(kind: str, frames, outputs: list[str]) -> float:
    """Median ms per frame that the runtime's sink of `kind` takes to write `frames`, into a
    temporary folder it leaves behind empty."""
    import tempfile
    from pathlib import Path

    from ..runtime.sinks import DumpSink, JsonlSink, VideoSink
    with tempfile.TemporaryDirectory(prefix="hetsched-sink-") as tmp:
        where = Path(tmp)
        sink = {"jsonl": lambda: JsonlSink(where / "r.jsonl"),
                "video": lambda: VideoSink(where / "r.mp4"),
                "dump": lambda: DumpSink(where / "dump", outputs)}[kind]()
        times = []
        try:
            for f in frames:
                t0 = time.perf_counter()
                sink.write(f)
                times.append(time.perf_counter() - t0)
        finally:
            sink.close(False)
    # the first write opens the video encoder: a one-off, not a per-frame cost
    return _median_ms(times[1:] or times)


def measure_loop(graph, task, source_factory, pes, *, host: str, rounds: int = 9,
                 warmup: int = 2, optimization: str = "all", sinks=()) -> dict:
    """Per CPU PE the median Preprocess and Postprocess times (ms), the host's per-frame work
    outside the stages, and the sizes of a frame and of a result. `source_factory()` opens the
    spec's source; `pes`: `profile.PE`s with their cores; `sinks`: the kinds of sink the spec
    writes (`jsonl`, `video`, `dump`), each timed on the measured results."""
    from ..ortsession import session
    from ..runtime.frame import Frame
    src = source_factory()
    try:
        images, read = [], []
        for _ in range(warmup + rounds):
            t0 = time.perf_counter()
            img = src.read()
            read.append(time.perf_counter() - t0)
            if img is None:
                break
            images.append(img)
    finally:
        src.close()
    if not images:
        raise HetschedError("the source gave no frames to measure pre-processing on")
    sess = session(graph.model, 1, optimization)
    names = [o.name for o in sess.get_outputs()]
    frames = []
    for k, img in enumerate(images[:3]):
        f = Frame(k, img, 0.0)
        task.pre(f)
        f.tensors.update(zip(names, sess.run(names, f.tensors)))
        frames.append(f)
    outputs = [dict(f.tensors) for f in frames]

    def pre_once(k):
        f = Frame(k, images[k % len(images)], 0.0)
        t0 = time.perf_counter()
        task.pre(f)
        return time.perf_counter() - t0

    def post_once(k):
        base = frames[k % len(frames)]
        f = Frame(k, None, 0.0, tensors=dict(outputs[k % len(frames)]), meta=base.meta)
        t0 = time.perf_counter()
        task.post(f)
        return time.perf_counter() - t0, f

    workers = {pe.name: PinnedThread(pe.extra["cores"], f"loop-{pe.name}") for pe in pes}
    pre, post = {p: [] for p in workers}, {p: [] for p in workers}
    results = []
    try:
        for r in range(warmup + rounds):
            for p, w in workers.items():
                t_pre = w.call(lambda r=r: pre_once(r))
                t_post, result = w.call(lambda r=r: post_once(r))
                if r >= warmup:
                    pre[p].append(t_pre)
                    post[p].append(t_post)
                    results.append(result)
    finally:
        for w in workers.values():
            w.close()
    from ..runtime.sinks import result_record
    encoded = [json.dumps(result_record(f)) + "\n" for f in results[:20]]
    for k, f in enumerate(results):
        f.image = images[k % len(images)]
        f.inputs = {n: frames[k % len(frames)].tensors[n] for n in graph.inputs}
    sink_ms = {kind: _sink_ms(kind, results[:20], list(names)) for kind in sorted(set(sinks))}
    contention = {}
    if len(pes) > 1:
        from .runtime_terms import contention_of

        def loop_body(pe):
            mine = session(graph.model, 1, optimization)
            k = [0]

            def run():
                f = Frame(k[0], images[k[0] % len(images)], 0.0)
                k[0] += 1
                task.pre(f)
                f.tensors.update(zip(names, mine.run(names, f.tensors)))
                task.post(f)
            return run
    from ..cores import pe_signatures
    from .pooling import agreeing, interchangeable, mean_over, pooled_contention
    groups = interchangeable(pe_signatures(pes))
    takes: list = []
    if len(pes) > 1:
        contention, takes = agreeing(
            lambda: contention_of(loop_body, {pe.name: pe.extra["cores"] for pe in pes}), groups)
    boxes = [len(f.result.to_list()) if hasattr(f.result, "to_list") else 0 for f in results[:20]]
    raw = {"pre_ms": {p: _median_ms(v) for p, v in pre.items()},
           "post_ms": {p: _median_ms(v) for p, v in post.items()}, "contention": contention,
           "contention_takes": takes}
    return {"pre_ms": mean_over(raw["pre_ms"], groups), "post_ms": mean_over(raw["post_ms"], groups),
            "pooled": {"groups": groups, "raw": raw} if groups else None,
            "read_ms": _median_ms(read[warmup:] or read), "sink_ms": sink_ms,
            "host_ms": _median_ms(read[warmup:] or read) + sum(sink_ms.values()),
            "frame_bytes": int(images[0].nbytes),
            "result_bytes": int(np.median([len(e) for e in encoded])) if encoded else 0,
            "boxes_per_frame": float(np.median(boxes)) if boxes else 0.0,
            "contention": pooled_contention(contention, groups), "host": host}
