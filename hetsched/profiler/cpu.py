"""Per-layer cost of a model on CPU PEs, measured with onnxruntime's per-node trace, under the
configuration the runtime's engines use (recorded in the profile's `engine`).

Method: for each PE, on a thread pinned to its cores, a traced session at the runtime's
optimisation level (`all` by default) with intra-op threads = the PE's core count, spinning off.
Its nodes are fused and layout-converted layers; `attribution` maps each node's median kernel
time back to the layers it replaces, split in proportion to a second trace with optimisation off
(where every layer runs alone). `optimization="disable"` measures the unoptimised layers
directly (the method before profiles predicted the runtime).

Proof: the same thread times identical untraced sessions, runs interleaved with the traced ones;
the profile records their medians beside the sum of the per-layer costs (`board.whole_model_ms`
unoptimised, `board.optimized_model_ms`, `board.sum_layers_ms`), and the tests require the sum
within 15% of the whole model run at the profiled level. `scripts/segment_check.py` checks random
contiguous segments run as runtime stages against the profile's prediction.
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


def _node_medians(events, warmup: int) -> dict[str, float]:
    per_node = defaultdict(list)
    for ev in events:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            per_node[ev["name"][: -len("_kernel_time")]].append(ev["dur"] / 1e3)
    return {k: statistics.median(v[warmup:] or v) for k, v in per_node.items()}


def _profile_on_pe(data: bytes, graph: Graph, threads: int, runs: int, warmup: int,
                   tick, optimization: str = "all") -> dict:
    # The sessions run interleaved (traced, plain, optimised, traced optimised, ...) so that the
    # drift of a shared machine falls on all alike: on the 2-core VM, single yolov3 runs of the
    # same session range from 630 to 870 ms over a minute.
    import onnx

    from .attribution import OptNode, attribute
    with tempfile.TemporaryDirectory(prefix="hetsched-trace-") as tmp:
        traced = session(data, threads, "disable", profile_prefix=os.path.join(tmp, "trace"))
        plain = session(data, threads, "disable")
        optimised = session(data, threads, "all")
        level_traced = None
        if optimization != "disable":
            opt_path = os.path.join(tmp, "optimised.onnx")
            level_traced = session(data, threads, optimization,
                                   profile_prefix=os.path.join(tmp, "trace-opt"),
                                   optimized_path=opt_path)
        feeds = random_feeds(traced)
        whole, fast = [], []
        for i in range(warmup + runs):
            traced.run(None, feeds)
            t0 = time.perf_counter()
            plain.run(None, feeds)
            t1 = time.perf_counter()
            optimised.run(None, feeds)
            t2 = time.perf_counter()
            if level_traced is not None:
                level_traced.run(None, feeds)
            if i >= warmup:
                whole.append(t1 - t0)
                fast.append(t2 - t1)
            tick(i + 1)
        with open(traced.end_profiling()) as f:
            plain_nodes = _node_medians(json.load(f), warmup)
        if level_traced is not None:
            with open(level_traced.end_profiling()) as f:
                opt_nodes = _node_medians(json.load(f), warmup)
            opt_graph = onnx.load(opt_path, load_external_data=False).graph
            nodes = [OptNode(n.name, list(n.input), list(n.output)) for n in opt_graph.node]
    plain_costs, missing = [], []
    for layer in graph.layers:
        if layer.name not in plain_nodes:
            missing.append(layer.name)
        plain_costs.append(plain_nodes.get(layer.name, 0.0))
    out = {"costs": plain_costs, "plain_costs": plain_costs, "whole": _median_ms(whole),
           "optimized": _median_ms(fast), "untraced": missing, "fused": {}}
    if level_traced is not None:
        out["costs"], out["fused"] = attribute(graph.layers, nodes, opt_nodes, plain_costs)
    return out


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def engine_config(pes: list[PE], optimization: str = "all") -> dict:
    """What a CPU profile's costs predict: the runtime's onnxruntime engine at this optimisation
    level with one intra-op thread per core of each PE (contract section 2, `engine`)."""
    import onnxruntime as ort
    return {"backend": "onnxruntime-cpu", "optimization": optimization,
            "intra_op_threads": {pe.name: len(pe.extra["cores"]) for pe in pes},
            "onnxruntime": ort.__version__}


def profile_cpu(graph: Graph, pes: list[PE], *, runs: int = 10, warmup: int = 3,
                progress=None, optimization: str = "all") -> Profile:
    """A measured profile of `graph` on CPU PEs (each `PE.extra["cores"]`), one PE at a time,
    under the runtime's engine configuration at `optimization`."""
    import onnxruntime as ort

    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    data = graph.model.SerializeToString()
    costs, whole, optimized, summed, untraced, plain_sum = {}, {}, {}, {}, {}, {}
    fused = {}
    total = warmup + runs
    for pe in pes:
        def tick(i, pe=pe):
            if progress:
                progress(f"profile {pe.name}", i, total)
        res = run_pinned(pe.extra["cores"], _profile_on_pe, data, graph,
                         len(pe.extra["cores"]), runs, warmup, tick, optimization)
        costs[pe.name] = res["costs"]
        whole[pe.name] = round(res["whole"], 4)
        optimized[pe.name] = round(res["optimized"], 4)
        summed[pe.name] = round(sum(res["costs"]), 4)
        plain_sum[pe.name] = round(sum(res["plain_costs"]), 4)
        fused = fused or res["fused"]
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
        "method": (f"onnxruntime per-node trace at optimisation '{optimization}' mapped back to "
                   f"layers (hetsched.profiler.attribution), intra-op threads = cores per PE, "
                   f"pinned thread, median of {runs} runs after {warmup} warm-up"),
        "ort_graph_optimization": optimization,
        "whole_model_ms": whole,
        "sum_layers_ms": summed,
        "sum_unoptimised_layers_ms": plain_sum,
        "optimized_model_ms": optimized,
        "transfer_method": transfer_info,
    }
    if fused:
        board["fused_layers"] = fused
    if untraced:
        board["untraced_layers"] = untraced
    prof = assemble(graph, pes, costs, transfer, source="measured", board=board)
    prof.engine = engine_config(pes, optimization)
    return prof
