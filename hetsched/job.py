"""The main job, step by step, for the `run` and `demo` verbs: a model, its profile on this
machine's PEs (measured once, cached by model hash and PE list), a plan, and a pipeline that runs
it; plus the baseline a user compares against (one onnxruntime session, one frame at a time)."""

from __future__ import annotations

import time
from pathlib import Path

from . import graph as graphmod
from . import profile as profmod
from .atomic import write_bytes
from .engines import EngineOptions
from .errors import HetschedError
from .ortsession import session
from .partition import make_plan
from .partition.cost import Plan, evaluate, read_plan_file, stages_from_dicts
from .runtime.build import build_stages, place
from .runtime.pipeline import Pipeline
from .runtime.report import Report
from .runtime.sinks import DumpSink, JsonlSink, VideoSink
from .runtime.sources import open_source
from .runtime.spec import RunSpec
from .runtime.task import make_task


def load_model(model: dict, workdir) -> tuple[graphmod.Graph, Path]:
    """The spec's model as a normalised graph, and the ONNX file it lives in."""
    work = Path(workdir)
    shapes = {k: [int(d) for d in v] for k, v in (model.get("input_shape") or {}).items()}
    if model.get("zoo") == "ppocr-det":   # the pretrained text detector: a file, not a build
        from .models.pretrained import PPOCR_INPUT, ppocr_det_path
        size = int(model.get("size", 640))
        path = ppocr_det_path()
        g = graphmod.load(path, shapes or {PPOCR_INPUT: [1, 3, size, size]})
        g.name = f"ppocr-det-{size}"
        return g, path
    if "zoo" in model:
        from .models.zoo import build_zoo
        size, act = int(model.get("size", 416)), model.get("activation", "leaky")
        path = work / f"{model['zoo']}{'' if act == 'leaky' else '-' + act}-{size}.onnx"
        if not path.exists():
            write_bytes(path, build_zoo(model["zoo"], size, act).SerializeToString())
    elif "darknet" in model:
        from .models.darknet import import_darknet
        path = work / f"{Path(model['darknet']).stem}-{model.get('size', 'cfg')}.onnx"
        write_bytes(path, import_darknet(model["darknet"], model.get("weights"), size=model.get("size"),
                                         activation=model.get("activation")).SerializeToString())
    else:
        path = Path(model["onnx"])
    return graphmod.load(path, shapes), path


def cached_profile(g: graphmod.Graph, pe_names: list[str], workdir, *, runs=10, warmup=3,
                   refresh=False, progress=None, say=print) -> tuple[profmod.Profile, Path]:
    """This machine's profile of `g` on `pe_names`, measured once and cached in `workdir`."""
    from .profiler.cpu import profile_cpu
    from .profiler.pes import parse_pes
    pes = parse_pes(",".join(pe_names))
    path = Path(workdir) / f"{g.name}.{'_'.join(pe_names)}.profile.json"
    if path.exists() and not refresh:
        try:
            prof = profmod.load(path)
            profmod.check_model(prof, g, str(path))
            say(f"using cached profile {path} (--refresh to measure again)")
            return prof, path
        except HetschedError as e:
            say(f"cached profile unusable ({e}); measuring again")
    say(f"profiling {len(g)} layers on {','.join(pe_names)} ({runs} runs each)")
    prof = profile_cpu(g, pes, runs=runs, warmup=warmup, progress=progress)
    profmod.save(prof, path)
    return prof, path


def default_pes() -> list[str]:
    from .profiler.pes import usable_cores
    return [f"cpu{c}" for c in sorted(usable_cores())]


# every stage hop costs the runtime a hand-off that the contract does not charge (README,
# Closing the loop): on two equal cores the best-priced tiny-yolov3 plan zig-zags over 7 stages
# and measured 1.12x one session, where the 1-stage replicate plan, priced 2.3% lower,
# measured 1.21x
RUN_MARGIN = 0.03


# `auto`, the runtime's default: the cheap planners, then `plan_to_run`'s rule
AUTO_METHODS = ("heuristic", "replicate", "single")


def plan_to_run(prof: profmod.Profile, methods=None, **opts) -> tuple[Plan, Plan, dict]:
    """(the plan to run, the best-priced plan, every method's plan or error): the plan to run has
    the fewest stages among those priced within RUN_MARGIN of the best."""
    from .partition import METHODS
    plans: dict = {}
    for method in methods or METHODS:
        try:
            plans[method] = make_plan(prof, method, **opts)
        except HetschedError as e:
            plans[method] = str(e)
    ok = [p for p in plans.values() if not isinstance(p, str)]
    if not ok:
        raise HetschedError("no planning method found a plan: " + "; ".join(plans.values()))
    top = min(ok, key=lambda p: p.key())
    run = min((p for p in ok if p.bottleneck_ms <= top.bottleneck_ms * (1 + RUN_MARGIN)),
              key=lambda p: (len(p.stages), p.key()))
    return run, top, plans


def plan_for(prof: profmod.Profile | None, plan: dict, pes: list[str] | None, n_layers: int) -> Plan:
    """A plan from the spec's `plan`: a method, explicit stages, or a plan file. Without a
    profile only given stages can be used, and they are checked for coverage alone."""
    opts = {"max_stages": int(plan.get("max_stages", 8)),
            "replication": bool(plan.get("replication", True)),
            "dla_fallback": bool(plan.get("dla_fallback", False))}
    if "stages" in plan or "file" in plan:
        raw = plan.get("stages")
        if "file" in plan:
            doc = read_plan_file(plan["file"])
            raw = doc["stages"]
            opts["dla_fallback"] = opts["dla_fallback"] or bool(doc.get("dla_fallback"))
        stages = stages_from_dicts(raw)
        if prof is None:
            return unpriced(stages, n_layers)
        return evaluate(prof, stages, "manual", pes=pes, **opts)
    if prof is None:
        raise HetschedError("planning by method needs a profile")
    method = plan.get("method", "auto")
    if method == "auto":
        return plan_to_run(prof, AUTO_METHODS, pes=pes, **opts)[0]
    return make_plan(prof, method, pes=pes, **opts)


def unpriced(stages, n_layers: int) -> Plan:
    """Given stages without a profile to price them: coverage is checked, costs are unknown."""
    expect = 0
    for j, s in enumerate(stages):
        if s.first != expect or s.last < s.first or not s.pes:
            raise HetschedError(f"plan stage {j} ({s.first}..{s.last}) does not continue at layer "
                                f"{expect}; stages must cover the layers in order")
        expect = s.last + 1
    if expect != n_layers:
        raise HetschedError(f"the plan covers layers 0..{expect - 1}, the model has 0..{n_layers - 1}")
    nan = float("nan")
    return Plan("given", list(stages), nan, nan, nan, {})


def build_pipeline(g: graphmod.Graph, prof: profmod.Profile | None, plan: Plan, spec: RunSpec,
                   source, record: int = 0) -> Pipeline:
    """The pipeline of `plan` over `g`; `record` keeps that many engine runs for a timeline."""
    if prof is not None:
        profmod.check_model(prof, g)
    task = make_task(g, spec.detect)
    sinks = []
    if spec.sink.get("jsonl"):
        sinks.append(JsonlSink(spec.sink["jsonl"]))
    if spec.sink.get("video"):
        sinks.append(VideoSink(spec.sink["video"], getattr(source, "fps", 25.0)))
    if spec.sink.get("dump"):
        sinks.append(DumpSink(spec.sink["dump"], list(g.outputs)))
        task.keep_inputs = True
    placement = place(plan.stages, prof, emulate=bool(spec.emulate))
    opts = EngineOptions(threads=spec.intra_op_threads, optimization=spec.optimization,
                         emulate=spec.emulate or "timing")
    stages = build_stages(g, plan.stages, placement, opts, prof, plan.dla_fallback)
    return Pipeline(source, stages, pre=task.pre, post=task.post, sinks=sinks,
                    buffers=spec.buffers, pre_threads=spec.pre_threads,
                    post_threads=spec.post_threads, mode=spec.mode, max_frames=spec.frames,
                    keep_image=any(getattr(s, "needs_image", False) for s in sinks), record=record)


def run_sequential(g: graphmod.Graph, spec: RunSpec, frames: int, threads: int = 0,
                   seed: int = 0) -> Report:
    """The whole detection loop one frame at a time in this thread: read, pre-process, one
    onnxruntime session over the unsplit model (`threads` intra-op threads, 0 = onnxruntime's
    default of every core), decode + NMS. The baseline the pipeline is measured against."""
    task = make_task(g, spec.detect)
    sess = session(g.model, threads, spec.optimization)
    source = open_source(spec.source, frames, seed)
    from .runtime.frame import Frame
    lat = []
    n = 0
    t0 = time.perf_counter()
    try:
        while True:
            img = source.read()
            if img is None:
                break
            f = Frame(n, img, time.perf_counter())
            task.pre(f)
            outs = sess.run(None, f.tensors)
            f.tensors.update(zip([o.name for o in sess.get_outputs()], outs))
            task.post(f)
            lat.append((time.perf_counter() - f.t_read) * 1e3)
            n += 1
    finally:
        source.close()
    return Report(n, time.perf_counter() - t0, lat)


def predicted_optimised(prof: profmod.Profile, plan: Plan) -> float | None:
    """The plan's predicted fps scaled by how much faster optimised whole-model sessions ran
    than unoptimised ones on each PE when profiled (the profile's per-layer costs are
    unoptimised); None where the profile has no such figures."""
    whole = prof.board.get("whole_model_ms") or {}
    fast = prof.board.get("optimized_model_ms") or {}
    if not whole or not all(p in whole and p in fast for p in plan.pe_load_ms):
        return None
    loads = [load * fast[p] / whole[p] for p, load in plan.pe_load_ms.items() if load > 0]
    return 1000.0 / max(loads) if loads else None

