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
from .partition.cost import Plan, check_made_for, evaluate, read_plan_file, stages_from_dicts
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
                   refresh=False, progress=None, say=print, spec: RunSpec | None = None,
                   optimization: str = "all") -> tuple[profmod.Profile, Path]:
    """This machine's profile of `g` on `pe_names`, measured once at the runtime's engine
    configuration and cached in `workdir`. With a `spec`, the pipeline profile of its whole
    detection loop: the spec's Preprocess and Postprocess as first and last layers, and the
    host's work for its source and sink (cached beside, keyed by source and detect options)."""
    from .profiler.cpu import PROFILER_VERSION, profile_cpu
    from .cores import parse_pes
    pes = parse_pes(",".join(pe_names))
    if spec is not None:
        optimization = spec.optimization
    path = Path(workdir) / f"{g.name}.{'_'.join(pe_names)}.{optimization}.profile.json"
    prof = None
    if path.exists() and not refresh:
        try:
            prof = profmod.load(path)
            profmod.check_model(prof, g, str(path))
            if prof.board.get("profiler_version") != PROFILER_VERSION:
                raise HetschedError(f"measured by profiler version "
                                    f"{prof.board.get('profiler_version', 1)}, this is {PROFILER_VERSION}")
            say(f"using cached profile {path} (--refresh to measure again)")
        except HetschedError as e:
            say(f"cached profile unusable ({e}); measuring again")
            prof = None
    if prof is None:
        say(f"profiling {len(g)} layers on {','.join(pe_names)} ({runs} runs each, "
            f"onnxruntime optimisation '{optimization}')")
        prof = profile_cpu(g, pes, runs=runs, warmup=warmup, progress=progress,
                           optimization=optimization)
        profmod.save(prof, path)
    if spec is None:
        return prof, path
    return _loop_profile(g, prof, pes, spec, Path(workdir), refresh, say)


def _loop_profile(g, net: profmod.Profile, pes, spec: RunSpec, workdir: Path, refresh, say):
    import hashlib
    import json as _json

    from .profiler.loop import LOOP_CODE_VERSION, measure_loop, with_loop
    sinks = sorted(k for k, v in spec.sink.items() if v)
    key = _json.dumps({"source": spec.source, "detect": vars(spec.detect), "net": net.board.get(
        "whole_model_ms"), "code": LOOP_CODE_VERSION, "sinks": sinks}, sort_keys=True, default=str)
    tag = hashlib.sha256(key.encode()).hexdigest()[:10]
    path = workdir / f"{g.name}.{'_'.join(p.name for p in pes)}.loop-{tag}.profile.json"
    if path.exists() and not refresh:
        try:
            prof = profmod.load(path)
            profmod.check_model(prof, g, str(path))
            say(f"using cached pipeline profile {path}")
            return prof, path
        except HetschedError as e:
            say(f"cached pipeline profile unusable ({e}); measuring again")
    say(f"profiling the detection loop (pre-processing, decoding + NMS, source and sink) on "
        f"{','.join(p.name for p in pes)}")
    task = make_task(g, spec.detect)
    m = measure_loop(g, task, lambda: open_source(spec.source, 12), pes, host=net.host,
                     optimization=spec.optimization, sinks=sinks)
    prof = with_loop(net, m["pre_ms"], m["post_ms"], frame_bytes=m["frame_bytes"],
                     result_bytes=m["result_bytes"], host_ms=m["host_ms"],
                     loop={"source": spec.source, "boxes_per_frame": m["boxes_per_frame"],
                           "detect": vars(spec.detect), "read_ms": m["read_ms"],
                           "sink_ms": m["sink_ms"], **({"pooled": m["pooled"]} if m["pooled"] else {}),
                           "host_ms_method":
                           "median source read + the median write of each of the spec's sinks "
                           "(sink_ms; none: the read alone), on the host"},
                     contention=m["contention"])
    profmod.save(prof, path)
    return prof, path


def default_pes() -> list[str]:
    from .cores import usable_cores
    return [f"cpu{c}" for c in sorted(usable_cores())]


# `auto`, the runtime's default: the best-priced of these (the optimum where it is proven in
# time; the heuristic's plan otherwise)
AUTO_METHODS = ("heuristic", "optimal")
AUTO_TIME_LIMIT_S = 10.0


def plan_to_run(prof: profmod.Profile, methods=None, **opts):
    """(the best-priced plan under the contract's order, every method's `Attempts`)."""
    from .partition import METHODS, plan_every
    attempts = plan_every(prof, methods or METHODS,
                          time_limit_s=opts.pop("time_limit_s", AUTO_TIME_LIMIT_S), **opts)
    return attempts.best(), attempts


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
            if prof is not None:
                check_made_for(doc, prof, plan["file"])
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
                   source, record: int = 0, say=None) -> Pipeline:
    """The pipeline of `plan` over `g`; `record` keeps that many engine runs for a timeline.
    With a pipeline profile, pre- and post-processing run in the stages the plan names (and
    where it replicates them, replicated); otherwise in the spec's thread pools."""
    if prof is not None:
        profmod.check_model(prof, g)
        _say_engine_mismatch(prof, spec, say)
    task = make_task(g, spec.detect)
    task.keep_inputs = bool(spec.sink.get("dump"))
    placement = place(plan.stages, prof, emulate=bool(spec.emulate))
    _say_emulation(placement, say)
    opts = EngineOptions(threads=spec.intra_op_threads, optimization=spec.optimization,
                         emulate=spec.emulate or "timing")
    needs_image = bool(spec.sink.get("video"))     # VideoSink.needs_image
    loop = prof is not None and prof.is_pipeline()
    host_cores = None
    if loop:
        def stage_pre(frame):
            task.pre(frame)
            if not needs_image:
                frame.image = None
        stages = build_stages(g, plan.stages, placement, opts, prof, plan.dla_fallback,
                              pre=stage_pre, post=task.post)
        pre = post = _pass
        host_cores = placement.cores.get(prof.host) or _host_cores(prof.host)
    else:
        stages = build_stages(g, plan.stages, placement, opts, prof, plan.dla_fallback)
        pre, post = task.pre, task.post
    # the sinks last: their temp files exist from here on, and the pipeline owns them
    sinks = []
    try:
        if spec.sink.get("jsonl"):
            sinks.append(JsonlSink(spec.sink["jsonl"]))
        if spec.sink.get("video"):
            sinks.append(VideoSink(spec.sink["video"], getattr(source, "fps", 25.0)))
        if spec.sink.get("dump"):
            sinks.append(DumpSink(spec.sink["dump"], list(g.outputs)))
        return Pipeline(source, stages, pre=pre, post=post, sinks=sinks,
                        buffers=spec.buffers, pre_threads=spec.pre_threads,
                        post_threads=spec.post_threads, mode=spec.mode, max_frames=spec.frames,
                        keep_image=needs_image or loop, record=record, host_cores=host_cores,
                        emulated=placement.emulated)
    except BaseException:
        for sink in sinks:
            sink.close(False)
        raise


class TensorSource:
    """Ready-made network inputs as a source, cycling over a few distinct ones: what the
    network-only runs (`bench --network-only`, scripts/closing_loop.py) stream."""
    name = "tensors"

    def __init__(self, feeds: list[dict], frames: int):
        self.feeds, self.frames, self.i = feeds, frames, 0

    def read(self):
        if self.i >= self.frames:
            return None
        self.i += 1
        return self.feeds[(self.i - 1) % len(self.feeds)]

    def close(self):
        pass


def _feed(frame) -> None:
    frame.tensors = dict(frame.image)


def network_pipeline(g: graphmod.Graph, prof: profmod.Profile, plan: Plan, spec: RunSpec,
                     feeds: list[dict], frames: int) -> Pipeline:
    """The network alone through `plan` (a network profile's): `feeds` cycle as its inputs, no
    decoding, pre- or post-processing."""
    opts = EngineOptions(threads=spec.intra_op_threads, optimization=spec.optimization,
                         emulate=spec.emulate or "timing")
    placement = place(plan.stages, prof, emulate=bool(spec.emulate))
    stages = build_stages(g, plan.stages, placement, opts, prof, plan.dla_fallback)
    return Pipeline(TensorSource(feeds, frames), stages, pre=_feed, post=_pass,
                    buffers=spec.buffers, emulated=placement.emulated)


def intra_op_pipeline(g: graphmod.Graph, spec: RunSpec, source) -> Pipeline:
    """The best simple alternative a user writes: one session over the whole model whose
    intra-op threads use every core, with reading, pre- and post-processing in the runtime's
    threads around it (the spec's pools)."""
    from .engines import backend
    from .runtime.pipeline import Stage, Worker
    task = make_task(g, spec.detect)
    opts = EngineOptions(threads=0, optimization=spec.optimization)
    worker = Worker("all-cores", lambda: backend("onnxruntime-cpu")(g.model, "all-cores", opts))
    return Pipeline(source, [Stage([worker])], pre=task.pre, post=task.post,
                    buffers=spec.buffers, pre_threads=spec.pre_threads,
                    post_threads=spec.post_threads, max_frames=spec.frames)


def _pass(frame) -> None:
    """The pipeline's own pre/post hop where the plan's stages do that work."""


def _host_cores(host: str) -> list[int] | None:
    from .cores import cpu_pe
    try:
        return cpu_pe(host).extra["cores"]
    except HetschedError:
        return None


def _say_emulation(placement, say) -> None:
    import logging
    note = placement.emulation_note()
    if note is None:
        return
    if say is not None:
        say(f"warning: {note}")
    else:
        logging.getLogger("hetsched").warning(note)


def _say_engine_mismatch(prof: profmod.Profile, spec: RunSpec, say) -> None:
    """The runtime says so when it runs another engine configuration than the profile's costs
    predict (contract section 2, `engine`)."""
    import logging
    engine = prof.engine or {}
    if engine.get("backend") != "onnxruntime-cpu":
        return
    wrong = []
    if engine.get("optimization") not in (None, spec.optimization):
        wrong.append(f"onnxruntime optimisation '{spec.optimization}' (profile: "
                     f"'{engine['optimization']}')")
    threads = set((engine.get("intra_op_threads") or {}).values())
    if threads and threads != {spec.intra_op_threads}:
        wrong.append(f"{spec.intra_op_threads} intra-op thread(s) per stage (profile: "
                     f"{sorted(threads)})")
    if wrong:
        text = ("the runtime runs " + " and ".join(wrong) + ": the predicted figures are for "
                "the profile's configuration")
        logging.getLogger("hetsched").warning(text)
        if say is not None:
            say(f"warning: {text}")


def run_sequential(g: graphmod.Graph, spec: RunSpec, frames: int, threads: int = 0,
                   seed: int = 0) -> Report:
    """The whole detection loop one frame at a time in this thread: read, pre-process, one
    onnxruntime session over the unsplit model (`threads` intra-op threads, 0 = onnxruntime's
    default of every core), decode + NMS. The baseline the pipeline is measured against."""
    task = make_task(g, spec.detect)
    sess = session(g.model, threads, spec.optimization)
    source = open_source(spec.source, frames, seed)
    from .runtime.frame import Frame
    lat, done = [], []
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
            now = time.perf_counter()
            lat.append((now - f.t_read) * 1e3)
            done.append(now - t0)
            n += 1
    finally:
        source.close()
    return Report(n, time.perf_counter() - t0, lat, done_s=done)
