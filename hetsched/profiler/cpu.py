"""Per-layer cost of a model on CPU PEs, measured with onnxruntime's per-node trace.

Method: for each PE, on a thread pinned to its cores, one session with graph optimisation off
(`ORT_DISABLE_ALL`, the only level that keeps node names 1:1 with the model's layers), intra-op
threads = the PE's core count, spinning off, profiling on. After `warmup` runs, the trace of
`runs` runs gives each node's kernel time; a layer's cost is the median over those runs.

Proof: the same thread times an identical session without profiling, its runs interleaved with
the traced ones; the profile records that median beside the sum of the per-layer medians
(`board.whole_model_ms`, `board.sum_layers_ms`), and the tests require them within 15%. What the
sum leaves out is onnxruntime's per-node dispatch, small for convolutional layers. The same
model with graph optimisation on is timed too (`board.optimized_model_ms`): the gap is what
fusion and layout changes buy, which a per-layer split cannot keep whole.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict

from ..graph import Graph
from ..ortsession import random_feeds, session
from ..pinning import run_pinned
from ..profile import PE, Profile
from . import assemble
from .transfer import measure_transfers


def _median_ms(samples) -> float:
    return statistics.median(samples) * 1e3


def _profile_on_pe(data: bytes, graph: Graph, threads: int, runs: int, warmup: int,
                   tick) -> dict:
    # Three sessions run interleaved (traced, plain, optimised, traced, ...) so that the drift
    # of a shared machine falls on all three alike: on the 2-core VM, single yolov3 runs of the
    # same session range from 630 to 870 ms over a minute.
    with tempfile.TemporaryDirectory(prefix="hetsched-trace-") as tmp:
        traced = session(data, threads, "disable", profile_prefix=os.path.join(tmp, "trace"))
        plain = session(data, threads, "disable")
        optimised = session(data, threads, "all")
        feeds = random_feeds(traced)
        whole, fast = [], []
        for i in range(warmup + runs):
            traced.run(None, feeds)
            t0 = time.perf_counter()
            plain.run(None, feeds)
            t1 = time.perf_counter()
            optimised.run(None, feeds)
            t2 = time.perf_counter()
            if i >= warmup:
                whole.append(t1 - t0)
                fast.append(t2 - t1)
            tick(i + 1)
        with open(traced.end_profiling()) as f:
            events = json.load(f)
    per_node = defaultdict(list)
    for ev in events:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            per_node[ev["name"][: -len("_kernel_time")]].append(ev["dur"] / 1e3)
    costs = []
    missing = []
    for layer in graph.layers:
        samples = per_node.get(layer.name, [])[warmup:]
        if not samples:
            missing.append(layer.name)
            costs.append(0.0)
        else:
            costs.append(statistics.median(samples))
    return {"costs": costs, "whole": _median_ms(whole), "optimized": _median_ms(fast),
            "untraced": missing}


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def profile_cpu(graph: Graph, pes: list[PE], *, runs: int = 10, warmup: int = 3,
                progress=None) -> Profile:
    """A measured profile of `graph` on CPU PEs (each `PE.extra["cores"]`), one PE at a time."""
    import onnxruntime as ort

    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    data = graph.model.SerializeToString()
    costs, whole, optimized, summed, untraced = {}, {}, {}, {}, {}
    total = warmup + runs
    for pe in pes:
        def tick(i, pe=pe):
            if progress:
                progress(f"profile {pe.name}", i, total)
        res = run_pinned(pe.extra["cores"], _profile_on_pe, data, graph,
                         len(pe.extra["cores"]), runs, warmup, tick)
        costs[pe.name] = res["costs"]
        whole[pe.name] = round(res["whole"], 4)
        optimized[pe.name] = round(res["optimized"], 4)
        summed[pe.name] = round(sum(res["costs"]), 4)
        if res["untraced"]:
            untraced[pe.name] = res["untraced"]
    if progress:
        progress("transfer", 0, 1)
    transfer, transfer_info = measure_transfers(pes)
    if progress:
        progress("transfer", 1, 1)
    board = {
        "name": platform.node() or "this-machine",
        "cpu": cpu_model_name(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "onnxruntime": ort.__version__,
        "method": (f"onnxruntime per-node trace, ORT_DISABLE_ALL, intra-op threads = cores per "
                   f"PE, pinned thread, median of {runs} runs after {warmup} warm-up"),
        "ort_graph_optimization": "disable",
        "whole_model_ms": whole,
        "sum_layers_ms": summed,
        "optimized_model_ms": optimized,
        "transfer_method": transfer_info,
    }
    if untraced:
        board["untraced_layers"] = untraced
    return assemble(graph, pes, costs, transfer, source="measured", board=board)
