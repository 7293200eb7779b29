"""`hetsched bench`: the ways a user could run one model, measured side by side in one process.

Whole-loop methods (the default: read, pre-process, network, decode + NMS, sink, which is what
users run): `loop-sequential` (one thread, one frame at a time: the baseline), `loop-intra-op`
(one session whose intra-op threads use every core, with reading, pre- and post-processing in
the runtime's threads around it: the best simple alternative a user writes), and `replicate`,
`heuristic` and `optimal` (when proven), each a plan of the *pipeline profile* (Preprocess and
Postprocess planned like layers) run by the runtime; `loop-pipelined` is the spec's own plan.
Each planned method reports `predicted_fps`, its plan's throughput under the profile, and the
document names `chosen`: the method `hetsched run` would use on the same inputs.

Network-only methods (`--network-only`, on ready-made input tensors so that only inference is
compared): `sequential`, `intra-op`, and the `replicate`, `heuristic`, `optimal` plans of the
network profile.

Repeats are interleaved (A B C A B C ...) so that the drift of a shared machine falls on every
method alike; each method reports the median, min and max fps over its repeats: frames over
the whole run, fill and drain included. `steady_fps` beside it (`Report.steady_fps`: deliveries
between the first quarter of the run and the source's last read) is what the contract's
`throughput_fps` describes, but on 50 frames of a deep pipeline only ~20 deliveries fall in
that window and one repeat's figure moved by 25% where the whole-run rate moved by 5%. Planned
methods that chose the same stages are measured once and share the figures (`same_plan_as`). Energy comes from
the first power backend found (`hetsched.power`); none found means `joules_per_frame` is null.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from . import job
from .errors import HetschedError
from .graph import Graph
from .ortsession import random_feeds, session
from .partition import make_plan
from .profile import Profile
from .runtime.report import Report
from .runtime.sources import open_source
from .runtime.spec import RunSpec

NET_METHODS = ("sequential", "intra-op", "replicate", "heuristic", "optimal")
LOOP_METHODS = ("loop-sequential", "loop-intra-op", "replicate", "heuristic", "optimal")
PLANNED = ("replicate", "heuristic", "optimal")


def _loop(sess, feeds, frames) -> Report:
    names = [o.name for o in sess.get_outputs()]
    lat, done = [], []
    t0 = time.perf_counter()
    for i in range(frames):
        a = time.perf_counter()
        sess.run(names, feeds[i % len(feeds)])
        b = time.perf_counter()
        lat.append((b - a) * 1e3)
        done.append(b - t0)
    return Report(frames, time.perf_counter() - t0, lat, done_s=done)


@dataclass
class Method:
    name: str
    run: object                      # () -> Report
    plan: dict | None = None
    predicted: float | None = None      # the plan's throughput under the profile (fps)
    fps: list[float] = field(default_factory=list)
    steady_fps: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    joules: list[float] = field(default_factory=list)
    error: str | None = None


def _methods(g: Graph, prof: Profile, spec: RunSpec, names, frames: int, time_limit: float):
    loop = prof.is_pipeline()
    probe = session(g.model, 1, spec.optimization)
    feeds = [random_feeds(probe, seed) for seed in range(4)]
    out = []
    for name in names:
        m = Method(name, None)
        if name in PLANNED:
            extra = {"time_limit_s": time_limit} if name == "optimal" else {}
            try:
                plan = make_plan(prof, name, pes=spec.pes, **extra)
            except HetschedError as e:
                m.error = str(e)
                out.append(m)
                continue
            m.plan, m.predicted = plan.to_dict(), plan.throughput_fps
            if loop:     # a pipeline profile's plan: the whole loop
                m.run = lambda plan=plan: job.build_pipeline(
                    g, prof, plan, spec, open_source(spec.source, frames)).run()
            else:
                m.run = lambda plan=plan: job.network_pipeline(g, prof, plan, spec, feeds,
                                                               frames).run()
        elif name == "loop-intra-op":
            m.run = lambda: job.intra_op_pipeline(g, spec, open_source(spec.source, frames)).run()
        elif name == "sequential":
            m.run = lambda s=session(g.model, 1, spec.optimization): _loop(s, feeds, frames)
        elif name == "intra-op":
            m.run = lambda s=session(g.model, 0, spec.optimization): _loop(s, feeds, frames)
        elif name == "loop-sequential":
            m.run = lambda: job.run_sequential(g, spec, frames, threads=1)
        elif name == "loop-pipelined":
            plan = job.plan_for(prof, spec.plan, spec.pes, len(g))
            m.plan = plan.to_dict()
            m.predicted = plan.throughput_fps if plan.throughput_fps == plan.throughput_fps else None
            m.run = lambda plan=plan: job.build_pipeline(
                g, prof, plan, spec, open_source(spec.source, frames)).run()
        else:
            raise HetschedError(f"unknown bench method '{name}' (known: "
                                f"{', '.join(NET_METHODS + LOOP_METHODS)})")
        out.append(m)
    return out


def run_bench(g: Graph, prof: Profile, spec: RunSpec, methods, *, frames: int = 50,
              repeat: int = 3, meter=None, progress=None, time_limit: float = 10.0) -> dict:
    ms = _methods(g, prof, spec, methods, frames, time_limit)
    runnable = [m for m in ms if m.error is None]
    # methods that planned the same stages run the same pipeline: measure it once, so that
    # noise cannot rank one plan against itself
    first: dict[str, Method] = {}
    twin: dict[str, Method] = {}
    for m in runnable:
        if m.plan is not None and m.name in PLANNED:
            same = first.setdefault(repr(m.plan["stages"]), m)
            if same is not m:
                twin[m.name] = same
    runnable = [m for m in runnable if m.name not in twin]
    total = repeat * len(runnable)
    done = 0
    for r in range(repeat):
        for m in runnable:
            if meter is not None:
                meter.start()
            report = m.run()
            if meter is not None:
                m.joules.append(meter.stop() / max(report.frames, 1))
            m.fps.append(report.fps)
            m.steady_fps.append(report.steady_fps)
            m.latencies.extend(report.latencies_ms)
            done += 1
            if progress:
                progress("bench", done, total)
    for m in ms:
        if m.name in twin:
            t = twin[m.name]
            m.fps, m.steady_fps, m.latencies, m.joules = t.fps, t.steady_fps, t.latencies, t.joules
    base = next((m for m in ms if m.name == "sequential" and m.fps), None) or \
        next((m for m in ms if m.name == "loop-sequential" and m.fps), None)
    doc = {"methods": {}, "baseline": base.name if base else None,
           "frames": frames, "repeat": repeat, "model": g.name, "machine": machine(),
           "energy": meter.describe() if meter is not None else None}
    for m in ms:
        if m.error:
            doc["methods"][m.name] = {"error": m.error}
            continue
        fps = statistics.median(m.fps)
        doc["methods"][m.name] = {
            "fps": round(fps, 3), "fps_min": round(min(m.fps), 3), "fps_max": round(max(m.fps), 3),
            "steady_fps": round(statistics.median(m.steady_fps), 3),
            "ratio_vs_baseline": round(fps / statistics.median(base.fps), 3) if base else None,
            "latency_ms_p50": round(float(np.percentile(m.latencies, 50)), 3),
            "latency_ms_p99": round(float(np.percentile(m.latencies, 99)), 3),
            "joules_per_frame": round(statistics.median(m.joules), 4) if m.joules else None,
            "predicted_fps": None if m.predicted is None else round(m.predicted, 3),
            "measured_over_predicted": None if not m.predicted else round(fps / m.predicted, 3),
            "plan": m.plan}
        if m.name in twin:
            doc["methods"][m.name]["same_plan_as"] = twin[m.name].name
    doc["chosen"] = _chosen(prof, spec, ms, time_limit)
    loop = doc["methods"]
    if "loop-pipelined" in loop and "loop-sequential" in loop and "fps" in loop["loop-sequential"]:
        doc["loop_ratio"] = round(loop["loop-pipelined"]["fps"] / loop["loop-sequential"]["fps"], 3)
    return doc


def _chosen(prof: Profile, spec: RunSpec, ms, time_limit: float) -> str | None:
    """The method whose plan `hetsched run` would use on the same inputs (`method: auto`)."""
    try:
        run, _ = job.plan_to_run(prof, job.AUTO_METHODS, pes=spec.pes, time_limit_s=time_limit)
    except HetschedError:
        return None
    named = {m.name: m for m in ms if m.plan is not None and m.name in PLANNED}
    if run.method in named:
        return run.method
    for m in named.values():       # the same plan measured under another method's name
        if m.plan["stages"] == run.to_dict()["stages"]:
            return m.name
    return run.method


def machine() -> dict:
    import onnxruntime as ort
    from .cores import cpu_model_name, usable_cores
    return {"host": platform.node(), "cpu": cpu_model_name(), "cores": len(usable_cores()),
            "python": platform.python_version(), "onnxruntime": ort.__version__}


def format_table(doc: dict) -> str:
    rows = [f"{'method':<17}{'fps':>9}{'min':>9}{'max':>9}{'steady':>9}{'predicted':>10}{'meas/pred':>10}"
            f"{'x base':>8}{'p50 ms':>9}{'p99 ms':>9}{'J/frame':>9}"]
    for name, m in doc["methods"].items():
        if "error" in m:
            rows.append(f"{name:<17}  failed: {m['error']}")
            continue
        j = "n/a" if m["joules_per_frame"] is None else f"{m['joules_per_frame']:.3f}"
        ratio = "-" if m["ratio_vs_baseline"] is None else f"{m['ratio_vs_baseline']:.2f}"
        pred = "-" if m.get("predicted_fps") is None else f"{m['predicted_fps']:.2f}"
        mp = "-" if m.get("measured_over_predicted") is None else f"{m['measured_over_predicted']:.3f}"
        mark = " <- chosen" if name == doc.get("chosen") else ""
        if m.get("same_plan_as"):
            mark += f" (= {m['same_plan_as']}'s plan, measured once)"
        rows.append(f"{name:<17}{m['fps']:>9.2f}{m['fps_min']:>9.2f}{m['fps_max']:>9.2f}"
                    f"{m['steady_fps']:>9.2f}{pred:>10}"
                    f"{mp:>10}{ratio:>8}{m['latency_ms_p50']:>9.1f}{m['latency_ms_p99']:>9.1f}{j:>9}"
                    + mark)
    mc = doc["machine"]
    rows.append(f"baseline: {doc['baseline']}; {doc['repeat']} interleaved repeats of {doc['frames']} "
                f"frames; {mc['cpu']} ({mc['cores']} cores), host {mc['host']}; fps: the whole run, "
                f"steady: after the first quarter and before the last read (noisy on short runs)")
    rows.append("energy: " + (f"{doc['energy']['backend']} ({doc['energy']['covers']})"
                              if doc["energy"] else "unavailable (no power backend here)"))
    if "loop_ratio" in doc:
        rows.append(f"whole detection loop: pipelined / one frame at a time in one thread = "
                    f"{doc['loop_ratio']:.2f}")
    return "\n".join(rows)


HEADER = ("| method | fps (median) | min | max | steady fps | predicted | x baseline | "
          "latency p50 ms | p99 ms | J/frame |",
          "|---|---|---|---|---|---|---|---|---|---|")


def markdown_rows(doc: dict, lead: str = "") -> list[str]:
    """One table row per method (`lead` cells, e.g. "| run ", go first)."""
    rows = []
    for name, m in doc["methods"].items():
        if "error" in m:
            rows.append(f"{lead}| {name} | failed: {m['error']} | | | | | | | | |")
            continue
        j = "unavailable" if m["joules_per_frame"] is None else f"{m['joules_per_frame']:.4f}"
        pred = "-" if m.get("predicted_fps") is None else f"{m['predicted_fps']:.2f}"
        rows.append(f"{lead}| {name} | {m['fps']:.2f} | {m['fps_min']:.2f} | {m['fps_max']:.2f} | "
                    f"{m['steady_fps']:.2f} | {pred} | {m['ratio_vs_baseline']} | "
                    f"{m['latency_ms_p50']:.1f} | {m['latency_ms_p99']:.1f} | {j} |")
    return rows


def markdown(doc: dict, command: str) -> str:
    lines = [f"# hetsched bench: {doc['model']}", "", f"Command: `{command}`", "", *HEADER,
             *markdown_rows(doc)]
    mc = doc["machine"]
    lines += ["", f"Machine: {mc['cpu']}, {mc['cores']} cores, host `{mc['host']}`, Python "
              f"{mc['python']}, onnxruntime {mc['onnxruntime']}. Baseline: `{doc['baseline']}`. "
              f"{doc['repeat']} interleaved repeats of {doc['frames']} frames.",
              "", "Energy: " + (f"{doc['energy']['backend']} ({doc['energy']['covers']})"
                                if doc["energy"] else "unavailable: no power backend on this machine.")]
    if "loop_ratio" in doc:
        lines += ["", f"Whole detection loop, pipelined vs one frame at a time in one thread: "
                  f"{doc['loop_ratio']:.2f}x."]
    return "\n".join(lines) + "\n"


def chart(doc: dict, path) -> None:
    from .plots import _pyplot, _save
    plt = _pyplot()
    names = [n for n, m in doc["methods"].items() if "fps" in m]
    fps = [doc["methods"][n]["fps"] for n in names]
    lo = [f - doc["methods"][n]["fps_min"] for n, f in zip(names, fps)]
    hi = [doc["methods"][n]["fps_max"] - f for n, f in zip(names, fps)]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(names)), 4))
    ax.bar(names, fps, yerr=[lo, hi], capsize=4,
           color=["tab:gray" if n == doc["baseline"] else "tab:blue" for n in names])
    for k, f in enumerate(fps):
        ax.text(k, f, f"{f:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("frames / s (median, bars: min-max)")
    ax.set_title(f"{doc['model']} on {doc['machine']['cpu']} ({doc['machine']['cores']} cores)")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    _save(fig, path)
