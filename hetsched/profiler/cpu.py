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

from ..cores import cpu_model_name, pe_signatures
from ..errors import HetschedError
from ..graph import Graph
from ..ortsession import random_feeds, session
from ..pinning import PinnedThread
from ..profile import PE, Profile, Transfer
from . import assemble, pooling
from .transfer import measure_transfers


def _median_ms(samples) -> float:
    return statistics.median(samples) * 1e3


def _node_medians(events, warmup: int) -> dict[str, float]:
    per_node = defaultdict(list)
    for ev in events:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            per_node[ev["name"][: -len("_kernel_time")]].append(ev["dur"] / 1e3)
    return {k: statistics.median(v[warmup:] or v) for k, v in per_node.items()}


class _PeTrace:
    """One PE's sessions, created and run on that PE's pinned thread: traced unoptimised (the
    split weights), plain unoptimised and optimised (the whole-model checks), traced at the
    runtime's level (the costs). `round` runs each once, in that order, so the drift of a
    shared machine falls on all alike; the profiler alternates rounds over the PEs too (on the
    2-core VM, single yolov3 runs of one session range from 630 to 870 ms over a minute)."""

    def __init__(self, data: bytes, threads: int, optimization: str, tmp: str, tag: str):
        self.traced = session(data, threads, "disable", profile_prefix=os.path.join(tmp, f"{tag}-plain"))
        self.plain = session(data, threads, "disable")
        self.optimised = session(data, threads, "all")
        self.opt_path = os.path.join(tmp, f"{tag}-optimised.onnx")
        self.level = None if optimization == "disable" else session(
            data, threads, optimization, profile_prefix=os.path.join(tmp, f"{tag}-level"),
            optimized_path=self.opt_path)
        self.level_untraced = session(data, threads, optimization)
        self.feeds = random_feeds(self.traced)
        self.whole, self.fast, self.at_level = [], [], []

    def round(self, keep: bool) -> None:
        self.traced.run(None, self.feeds)
        for sess, into in ((self.plain, self.whole), (self.optimised, self.fast),
                           (self.level_untraced, self.at_level)):
            t0 = time.perf_counter()
            sess.run(None, self.feeds)
            if keep:
                into.append(time.perf_counter() - t0)
        if self.level is not None:
            self.level.run(None, self.feeds)

    def finish(self, graph: Graph, warmup: int) -> dict:
        import onnx

        from .attribution import OptNode, attribute
        with open(self.traced.end_profiling()) as f:
            plain_nodes = _node_medians(json.load(f), warmup)
        plain_costs, missing = [], []
        for layer in graph.layers:
            if layer.name not in plain_nodes:
                missing.append(layer.name)
            plain_costs.append(plain_nodes.get(layer.name, 0.0))
        out = {"costs": plain_costs, "plain_costs": plain_costs, "whole": _median_ms(self.whole),
               "optimized": _median_ms(self.fast), "at_level": _median_ms(self.at_level),
               "untraced": missing, "fused": {}}
        if self.level is not None:
            with open(self.level.end_profiling()) as f:
                opt_nodes = _node_medians(json.load(f), warmup)
            opt_graph = onnx.load(self.opt_path, load_external_data=False).graph
            nodes = [OptNode(n.name, list(n.input), list(n.output)) for n in opt_graph.node]
            out["costs"], out["fused"] = attribute(graph.layers, nodes, opt_nodes, plain_costs)
        return out


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
        raise HetschedError("runs must be >= 1 and warmup >= 0")
    from . import runtime_terms
    data = graph.model.SerializeToString()
    costs, whole, optimized, summed, untraced, plain_sum = {}, {}, {}, {}, {}, {}
    scale, launch, hop = {}, {}, {}
    fused = {}
    total = warmup + runs
    threads = {pe.name: len(pe.extra["cores"]) for pe in pes}
    workers = {pe.name: PinnedThread(pe.extra["cores"], f"profile-{pe.name}") for pe in pes}
    try:
        with tempfile.TemporaryDirectory(prefix="hetsched-trace-") as tmp:
            # optimising a large model into each PE's session takes a while (yolov3 416: ~20 s
            # on the VM, silent until the first round without this line)
            what = f"building the sessions on {','.join(workers)} (optimisation '{optimization}')"
            traces = {}
            for k, (p, w) in enumerate(workers.items()):
                if progress:
                    progress(what, k, len(workers))
                traces[p] = w.call(lambda p=p: _PeTrace(data, threads[p], optimization, tmp, p))
            if progress:
                progress(what, len(workers), len(workers))
            for i in range(total):
                for p, w in workers.items():     # PEs interleaved, round by round
                    w.call(lambda t=traces[p], keep=i >= warmup: t.round(keep))
                if progress:
                    progress(f"whole-model rounds on {','.join(workers)} ({warmup} warm-up + {runs})",
                             i + 1, total)
            results = {p: workers[p].call(lambda t=traces[p]: t.finish(graph, warmup))
                       for p in workers}
            del traces
    finally:
        for w in workers.values():
            w.close()
    for pe in pes:
        res = results[pe.name]
        launch[pe.name] = round(runtime_terms.launch_ms(pe.extra["cores"], threads[pe.name],
                                                        optimization), 4)
        hop[pe.name] = round(runtime_terms.hop_ms(pe.name, pe.extra["cores"]), 4)
        traced_sum = sum(res["costs"])
        # kernel times leave out onnxruntime's dispatch between nodes (4-5% on the VM): the
        # costs are scaled so that a whole-model stage costs what its untraced run measured
        scale[pe.name] = round((res["at_level"] - launch[pe.name]) / traced_sum, 4) \
            if traced_sum > 0 else 1.0
        costs[pe.name] = [c * scale[pe.name] for c in res["costs"]]
        whole[pe.name] = round(res["whole"], 4)
        optimized[pe.name] = round(res["optimized"], 4)
        summed[pe.name] = round(traced_sum, 4)
        plain_sum[pe.name] = round(sum(res["plain_costs"]), 4)
        fused = fused or res["fused"]
        if res["untraced"]:
            untraced[pe.name] = res["untraced"]
    cont, takes = {}, []
    if len(pes) > 1:
        if progress:
            progress("contention", 0, 1)
        cont, takes = pooling.agreeing(
            lambda: runtime_terms.contention(data, {pe.name: pe.extra["cores"] for pe in pes},
                                             threads, optimization),
            pooling.interchangeable(pe_signatures(pes)))
        if progress:
            progress("contention", 1, 1)
    if progress:
        progress("transfer", 0, 1)
    transfer, transfer_info = measure_transfers(pes)
    cut = runtime_terms.cut_cost(graph, {pe.name: pe.extra["cores"] for pe in pes}, threads,
                                 optimization, launch)
    transfer = _with_cut_cost(transfer, cut)
    if progress:
        progress("transfer", 1, 1)
    board = {
        "name": platform.node() or "this-machine",
        "cpu": cpu_model_name(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "onnxruntime": ort.__version__,
        "profiler_version": PROFILER_VERSION,
        "method": (f"onnxruntime per-node trace at optimisation '{optimization}' mapped back to "
                   f"layers (hetsched.profiler.attribution), intra-op threads = cores per PE, "
                   f"pinned thread, median of {runs} runs after {warmup} warm-up"),
        "ort_graph_optimization": optimization,
        "whole_model_ms": whole,
        "sum_layers_ms": summed,
        "sum_unoptimised_layers_ms": plain_sum,
        "optimized_model_ms": optimized,
        "trace_scale": scale,
        "launch_ms": launch,
        "hop_ms": hop,
        "overhead_method": "stage_overhead_ms = hop_ms (runtime hand-off, a pipeline of 4 empty "
                           "stages on the PE, 400 frames) + launch_ms (one run of a one-node "
                           "session, median of 300)",
        "transfer_method": transfer_info + "; plus, on the consumer, the measured cost of a cut "
                           "(board.cut_cost; alone as the same-PE 'p->p' entry)",
        "cut_cost": cut,
    }
    if takes:
        board["contention_takes"] = takes    # as measured, until two agreed (pooling.agreeing)
    spread = _core_spread({p: sum(c) for p, c in costs.items()})
    if spread is not None:
        board["pe_cost_spread"] = spread
    if fused:
        board["fused_layers"] = fused
    if untraced:
        board["untraced_layers"] = untraced
    prof = assemble(graph, pes, costs, transfer, source="measured", board=board)
    prof.engine = engine_config(pes, optimization)
    prof.stage_overhead_ms = {p: round(launch[p] + hop[p], 4) for p in launch}
    prof.contention = cont
    return pooling.pool(prof, pooling.interchangeable(pe_signatures(pes)), POOL_WHY)


# recorded in the board; a cached profile of another version is measured again (2: identical
# PEs pooled; 3: contention taken until two takes agree, pooling.agreeing, each sample runs
# in a row)
PROFILER_VERSION = 3

POOL_WHY = ("PEs whose cores are the same in number and kind (hetsched.cores.pe_signatures): "
            "every layer cost and contention is the mean over the group, whose members the "
            "runtime runs alike; the raw per-PE figures differed by measurement noise")


def _with_cut_cost(transfer: dict[str, Transfer], cut: dict[str, dict]) -> dict[str, Transfer]:
    """A tensor passed between two stages costs its consumer the cut (layout conversion, lost
    fusion) on top of the hand-off: the `"q->q"` entry alone, added to every `"p->q"`."""
    out = {}
    for key, t in transfer.items():
        if key == "default":
            continue
        q = key.split("->")[1]
        c = cut.get(q, {})
        out[key] = Transfer(round(t.latency_ms + c.get("latency_ms", 0.0), 5),
                            round(t.ms_per_mb + c.get("ms_per_mb", 0.0), 5))
    for p, c in cut.items():
        out[f"{p}->{p}"] = Transfer(c["latency_ms"], c["ms_per_mb"])
    cross = [t for k, t in out.items() if k.split("->")[0] != k.split("->")[1]]
    base = cross or list(out.values())
    out["default"] = Transfer(round(statistics.mean(t.latency_ms for t in base), 5),
                              round(statistics.mean(t.ms_per_mb for t in base), 5)) \
        if base else transfer["default"]
    return out


def _core_spread(summed: dict[str, float]) -> dict | None:
    """How far the PEs' whole-network costs lie apart (PEs of one CPU model should agree within a
    few percent; where they do not, the figure says by how much, measured interleaved)."""
    if len(summed) < 2:
        return None
    lo, hi = min(summed.values()), max(summed.values())
    return {"relative": round((hi - lo) / lo, 4) if lo > 0 else None,
            "note": "whole-network cost per PE (the sum of its layer costs), PEs measured "
                    "interleaved round by round"}
