"""`hetsched <verb>`: argparse verbs that call the library and print. No logic of its own."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from . import __version__, stopping
from .detect import KINDS as DETECT_KINDS
from .errors import HetschedError, UsageError, describe

log = logging.getLogger("hetsched")

# final files this invocation wrote, for the line that says what a stop kept
_kept: list[str] = []


def _pe_names(text: str) -> list[str]:
    """A comma list of PE names; an empty one or an empty name is a usage error, not 'all'."""
    names = [n.strip() for n in text.split(",")]
    if not text.strip() or not all(names):
        raise argparse.ArgumentTypeError(f"expected PE names separated by commas, got {text!r}")
    return names


def wrote(what: str, path, json_out: bool = False) -> None:
    """Record a finished output file and say so (on stderr where stdout carries JSON)."""
    _kept.append(str(path))
    print(f"wrote {what}: {path}", file=sys.stderr if json_out else sys.stdout)


class Progress:
    """Progress of long work on stderr: one rewritten line on a terminal, a few lines elsewhere."""

    def __init__(self, stream=sys.stderr, quiet=False):
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.last: dict[str, int] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        # a stop whose Interrupted was swallowed (raised inside a __del__ or a C extension's
        # callback: a SIGINT during start-up was lost that way once, 2026-12-01) still ends the
        # work at its next step: long work reports progress, so every verb polls here
        stopping.check()
        if self.quiet:
            return
        pct = int(100 * done / max(total, 1))
        if self.tty:
            end = "\n" if done >= total else ""
            self.stream.write(f"\r{what}: {done}/{total} ({pct}%)\033[K{end}")
        elif done >= total or pct // 25 > self.last.get(what, -1):
            self.stream.write(f"{what}: {done}/{total} ({pct}%)\n")
            self.last[what] = pct // 25
        self.stream.flush()


def _input_shapes(items) -> dict[str, list[int]]:
    shapes = {}
    for item in items or []:
        name, sep, dims = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            raise UsageError(f"--input-shape '{item}' is not NAME=D0,D1,... (e.g. x=1,3,640,640)") from None
    return shapes


def _save_model(model, path) -> None:
    from .atomic import write_bytes
    write_bytes(path, model.SerializeToString())


def cmd_zoo(args) -> int:
    if args.name == "ppocr-det":
        from . import graph
        from .models.pretrained import PPOCR_INPUT, ppocr_det_path
        if args.size % 32:
            raise HetschedError(f"input size {args.size} is not a multiple of 32")
        g = graph.load(ppocr_det_path(), {PPOCR_INPUT: [1, 3, args.size, args.size]})
        model = g.model
    else:
        from .models.zoo import build_zoo
        model = build_zoo(args.name, args.size, args.activation, args.seed)
    _save_model(model, args.output)
    _kept.append(args.output)
    print(f"wrote {args.output}: {args.name} at {args.size}, outputs "
          + ", ".join(f"{o.name}{[d.dim_value for d in o.type.tensor_type.shape.dim]}"
                      for o in model.graph.output))
    return 0


def cmd_import_darknet(args) -> int:
    from .models.darknet import import_darknet
    model = import_darknet(args.cfg, args.weights, size=args.size, seed=args.seed,
                           activation=None if args.activation == "leaky" else args.activation)
    _save_model(model, args.output)
    _kept.append(args.output)
    print(f"wrote {args.output}: {len(model.graph.node)} nodes, outputs "
          + ", ".join(o.name for o in model.graph.output))
    return 0


def _model_arg(name: str, size: int, shapes):
    """A zoo name (built at `size`) or an ONNX file, as a graph."""
    from . import graph
    from .models.zoo import NAMES, build_zoo
    if name in NAMES:
        return graph.from_model(build_zoo(name, size), name=f"{name}-{size}")
    return graph.load(name, _input_shapes(shapes))


def cmd_profile(args) -> int:
    from . import profile
    from .summary import format_summary
    if bool(args.pe) == bool(args.board):
        raise UsageError("give --pe (measure on this machine's CPUs) or --board (model a board)")
    from .profiler.board import load_board
    from .profiler.cpu import profile_cpu
    from .cores import parse_pes
    from .profiler.roofline import model_profile
    target = load_board(args.board) if args.board else parse_pes(args.pe)  # bad names fail first
    g = _model_arg(args.model, args.size, args.input_shape)
    t0 = time.perf_counter()
    if args.board:
        prof = model_profile(g, target, args.precision)
    else:
        prof = profile_cpu(g, target, runs=args.runs, warmup=args.warmup,
                           progress=Progress(quiet=args.quiet))
    profile.save(prof, args.output)
    _kept.append(args.output)
    if not args.quiet:
        print(format_summary(prof))
        print(f"\nwrote {args.output} ({prof.source}) in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_summary(args) -> int:
    from . import profile
    from .plots import layer_costs
    from .summary import format_summary, summary_dict
    prof = profile.load(args.profile)
    if args.json:
        print(json.dumps(summary_dict(prof, args.top), indent=1))
    else:
        print(format_summary(prof, args.top))
    if args.plot:
        layer_costs(prof, args.plot)
        wrote("chart", args.plot, args.json)
    return 0


def cmd_plan(args) -> int:
    from . import plots, profile
    from .atomic import write_text
    from .partition import METHODS, make_plan, plan_every
    from .partition.cost import PlanError, mixes_kinds
    from .partition.report import format_comparison, format_plan
    if args.require_proof and args.method not in ("optimal", "all"):
        raise UsageError(f"--require-proof asks the exact planner for a proof; --method "
                         f"{args.method} proves nothing (use --method optimal or all)")
    prof = profile.load(args.profile)
    opts = {"pes": args.pes, "max_stages": args.max_stages,
            "replication": not args.no_replication, "dla_fallback": args.dla_fallback}
    if args.method == "all":
        tried = plan_every(prof, METHODS, time_limit_s=args.time_limit,
                           require_proof=args.require_proof, **opts)
        shown = tried.best()
        doc = {m: _plan_doc(prof, p) for m, p in tried.plans.items()}
        doc.update({m: {"error": e} for m, e in tried.errors.items()})
        if tried.lower_bound_ms is not None:
            doc["optimal"]["lower_bound_ms"] = tried.lower_bound_ms
        text = (format_comparison(tried) + "\n\nbest: " + shown.method + "\n"
                + format_plan(prof, shown, opts["pes"]))
        doc = {"best": shown.method, "methods": {m: doc[m] for m in METHODS if m in doc}}
    else:
        extra = {"time_limit_s": args.time_limit, "require_proof": args.require_proof} \
            if args.method == "optimal" else {}
        shown = make_plan(prof, args.method, **opts, **extra)
        doc = _plan_doc(prof, shown)
        text = format_plan(prof, shown, opts["pes"])
    if args.output and mixes_kinds(prof, shown):
        raise PlanError(f"{args.output}: not written: the {shown.method} baseline replicates over "
                        f"PEs of different kinds ({'+'.join(shown.stages[0].pes)}), which a plan "
                        f"file may not (contract section 2; run and simulate refuse it); it is a "
                        f"comparison only: plan with another --method, or --pes of one kind")
    # files first, so that a reader that closes stdout early (| head) does not lose them
    made = []
    if args.output:
        # a plan file is one plan, the one `run` and `simulate` should take: with --method all,
        # the best (the comparison of all methods is what --json prints)
        write_text(args.output, json.dumps(_plan_doc(prof, shown), indent=1) + "\n")
        _kept.append(str(args.output))
        made.append((f"plan ({shown.method})", args.output))
    if args.plot:
        plots.plan(prof, shown, args.plot)
        _kept.append(str(args.plot))
        made.append(("chart", args.plot))
    print(json.dumps(doc, indent=1) if args.json else text)
    for what, path in made:
        wrote(what, path, args.json)
    return 0


def cmd_simulate(args) -> int:
    from . import profile
    from .partition.cost import check_made_for, evaluate, read_plan_file, stages_from_dicts
    from .simulate import simulate
    prof = profile.load(args.profile)
    raw = read_plan_file(args.plan)
    check_made_for(raw, prof, args.plan)
    plan = evaluate(prof, stages_from_dicts(raw["stages"]), raw.get("method", "manual"),
                    max_stages=None, dla_fallback=bool(raw.get("dla_fallback")))
    res = simulate(prof, plan, frames=args.frames, buffers=args.buffers, pre_ms=args.pre_ms,
                   post_ms=args.post_ms, pre_threads=args.pre_threads, post_threads=args.post_threads)
    if args.plot:
        from .plots import timeline
        timeline(res.events, args.plot, f"{prof.model.name}: simulated {plan.method} plan "
                                        f"({res.steady_fps:.1f} fps steady)")
        wrote("chart", args.plot, args.json)
    if args.json:
        doc = res.to_dict()
        doc["plan"] = plan.to_dict()
        doc["terms"] = plan_terms(prof, plan)
        print(json.dumps(doc, indent=1))
    else:
        from .partition.report import format_plan
        print(format_plan(prof, plan) + "\n\n" + res.format())
    return 0


def _plan_doc(prof, plan) -> dict:
    """A plan as written: the contract's fields, the model it was made for, its non-zero terms."""
    from .partition.cost import made_for
    terms = plan_terms(prof, plan)
    return {**plan.to_dict(), "model": made_for(prof), **({"terms": terms} if terms else {})}


def plan_terms(prof, plan) -> dict:
    """The version-2 terms that are non-zero for this plan: host work, stage overhead per PE, and
    the contention factor of each PE the plan uses."""
    used = {p for s in plan.stages for p in s.pes}
    out = {}
    if prof.host_ms:
        out["host_ms"] = {prof.host: prof.host_ms}
    over = {p: prof.overhead_ms(p) for p in prof.pes if p in used and prof.overhead_ms(p)}
    if over:
        out["stage_overhead_ms"] = over
    factor = {p: prof.factor(p, used) for p in prof.pes if p in used and prof.factor(p, used) != 1.0}
    if factor:
        out["factor"] = factor
    return out


def cmd_devices(args) -> int:
    from .devices import discover, format_table
    info = discover()
    print(json.dumps(info, indent=1) if args.json else format_table(info))
    return 0


def _run_spec(args):
    from .runtime import spec as specmod
    if args.spec:
        if args.model or args.plan:
            raise UsageError("give either a SPEC.yaml or --model with --plan, not both")
        spec = specmod.load(args.spec)
    else:
        if not (args.model and args.plan):
            raise UsageError("give a pipeline SPEC.yaml, or --model M.onnx with --plan PLAN.json")
        spec = specmod.from_dict({"model": {"onnx": args.model}, "plan": {"file": args.plan},
                                  "profile": args.profile, "frames": None}, "command line")
    if args.source:
        spec.source = args.source
    if args.frames is not None:
        spec.frames = args.frames
    for key in ("jsonl", "video", "dump"):
        if getattr(args, key):
            spec.sink[key] = getattr(args, key)
    if args.emulate:
        spec.emulate = args.emulate
    if args.buffers:
        spec.buffers = args.buffers
    if args.mode:
        spec.mode = args.mode
    if args.profile:
        spec.profile = args.profile
    if args.detect:
        spec.detect.kind = args.detect
    return spec


def cmd_run(args) -> int:
    from . import job, profile
    from .partition.report import format_plan
    from .runtime.pipeline import PipelineError, Stopped
    from .runtime.sources import open_source
    spec = _run_spec(args)
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    source = open_source(spec.source, spec.frames)   # a bad source fails before any profiling
    g, _ = job.load_model(spec.model, spec.workdir)
    from .runtime.task import make_task
    make_task(g, spec.detect)                         # and so does a detect kind the outputs do not fit
    prof = None
    if spec.profile:
        prof = profile.load(spec.profile)
        profile.check_model(prof, g, spec.profile)
    elif "method" in spec.plan:
        # the whole detection loop is planned: pre- and post-processing are stages of the plan
        prof, path = job.cached_profile(g, spec.pes or job.default_pes(), spec.workdir,
                                        refresh=args.refresh, progress=Progress(), say=say,
                                        spec=spec)
        _kept.append(str(path))
    plan = job.plan_for(prof, spec.plan, spec.pes, len(prof.layers) if prof else len(g))
    if prof is not None and not args.json:
        print(format_plan(prof, plan, spec.pes) + "\n")
    pipe = job.build_pipeline(g, prof, plan, spec, source, record=1500 if args.timeline else 0,
                              say=say)
    say(f"running {spec.source} through {len(plan.stages)} stage(s) "
        f"({spec.frames if spec.frames is not None else 'all'} frames, Ctrl-C stops)")
    if args.timeline:
        from .plots import _pyplot
        _pyplot()   # imported now, so that a chart after Ctrl-C is drawn within the second
    stop = None
    try:
        report = pipe.run()
    except (PipelineError, Stopped) as e:
        stop, report = e, e.report
    finally:
        pipe.abandon()    # a no-op once the run has closed its sinks
    predicted = None if plan.throughput_fps != plan.throughput_fps else plan.throughput_fps
    if report is not None:
        doc = {"plan": plan.to_dict(), "predicted_fps": predicted, "report": report.to_dict()}
        print(json.dumps(doc, indent=1) if args.json else report.format())
        if predicted and not args.json and stop is None:
            what = "emulated" if report.emulated else "measured"
            print(f"predicted {predicted:.2f} fps (contract bound from the profile), "
                  f"{what} {report.fps:.2f} fps")
    if report is not None and report.frames:
        # what the sinks kept is complete up to the last delivered frame, even after a stop
        kept = isinstance(stop, Stopped) or getattr(stop, "kept", False) or stop is None
        if kept:
            for key, path in spec.sink.items():
                wrote(key, path, args.json)
        if args.timeline:
            from .plots import timeline
            what = "emulated" if report.emulated else "measured"
            timeline(pipe.events, args.timeline,
                     f"{g.name}: {what} stage runs ({report.fps:.1f} fps"
                     + (f", {report.frames} frames before {stop})" if stop else ")"))
            wrote("timeline", args.timeline, args.json)
    if stop is not None:
        raise stop
    return 0


def cmd_bench(args) -> int:
    from . import bench, job
    from .atomic import write_text
    from .models.zoo import NAMES
    from .power import detect
    from .runtime import spec as specmod
    if bool(args.spec) == bool(args.model):
        raise UsageError("give a pipeline SPEC.yaml or --model (a zoo name or an ONNX file)")
    if args.spec:
        spec = specmod.load(args.spec)
    else:
        model = {"zoo": args.model, "size": args.size} if args.model in NAMES else {"onnx": args.model}
        spec = specmod.from_dict({"model": model, "source": args.source}, "command line")
    default = bench.NET_METHODS if args.network_only else bench.LOOP_METHODS
    if args.pes:
        spec.pes = args.pes
    methods = args.methods.split(",") if args.methods else list(default)
    known = bench.NET_METHODS if args.network_only else bench.LOOP_METHODS + ("loop-pipelined",)
    unknown = set(methods) - set(known)
    if unknown:
        raise UsageError(f"unknown bench method(s) {sorted(unknown)} (known"
                         f"{' with --network-only' if args.network_only else ''}: "
                         f"{', '.join(known)})")
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    g, _ = job.load_model(spec.model, spec.workdir)
    if spec.profile:
        from . import profile
        prof = profile.load(spec.profile)
        profile.check_model(prof, g, spec.profile)
    else:
        prof, path = job.cached_profile(g, spec.pes or job.default_pes(), spec.workdir,
                                        refresh=args.refresh, progress=Progress(), say=say,
                                        spec=None if args.network_only else spec)
        _kept.append(str(path))
    meter, reasons = detect()
    say("energy: " + (f"{meter.name} ({meter.what})" if meter else "unavailable: " + "; ".join(reasons)))
    doc = bench.run_bench(g, prof, spec, methods, frames=args.frames, repeat=args.repeat,
                          meter=meter, progress=Progress(), time_limit=args.time_limit)
    if args.output:
        out = Path(args.output)
        write_text(out / "bench.json", json.dumps(doc, indent=1) + "\n")
        wrote("results", out / "bench.json", True)
        write_text(out / "report.md", bench.markdown(doc, "hetsched " + " ".join(sys.argv[1:])))
        wrote("report", out / "report.md", True)
        try:
            bench.chart(doc, out / "bench.png")
            wrote("chart", out / "bench.png", True)
        except HetschedError as e:
            say(f"(no chart: {e})")
    print(json.dumps(doc, indent=1) if args.json else bench.format_table(doc))
    return 0


def cmd_demo(args) -> int:
    """The main job end to end on the embedded default: build a zoo detector, profile its whole
    detection loop on this machine's CPU PEs (cached), plan it with every method, run the
    best-priced plan (`job.plan_to_run`) on the synthetic video, and measure it against one
    onnxruntime session over the whole model, interleaved."""
    from . import job, plots
    from .partition.report import format_comparison, format_plan
    from .plots import layer_costs
    from .runtime.sources import open_source
    from .runtime.spec import from_dict
    from .summary import format_summary
    work = Path(args.workdir)
    pes = args.pe or job.default_pes()
    spec = from_dict({"model": {"zoo": args.model, "size": args.size}, "pes": pes,
                      "frames": args.frames, "workdir": str(work)}, "demo")
    print(f"[1/5] zoo model {args.model} at {args.size}")
    g, model_path = job.load_model(spec.model, work)
    _kept.append(str(model_path))      # built here (or cached): a stop from now on keeps it
    print(f"      {model_path}: {len(g)} layers")
    print("[2/5] profile on " + ",".join(pes))
    prof, prof_path = job.cached_profile(g, pes, work, runs=args.runs, warmup=args.warmup,
                                         refresh=args.refresh, progress=Progress(),
                                         say=lambda m: print("      " + m), spec=spec)
    _kept.append(str(prof_path))
    print(format_summary(prof))
    print("\n[3/5] plans of the whole detection loop (Preprocess and Postprocess are its first and "
          "last layers), predicted by the contract's cost model from the profile\n")
    best, plans = job.plan_to_run(prof)
    print(format_comparison(plans))
    print(f"\nrunning: {best.method} (the best-priced plan)\n{format_plan(prof, best)}")
    print(f"\n[4/5] running {args.frames} synthetic frames through the plan and through one "
          f"onnxruntime session (all cores), interleaved x{args.rounds}")
    piped, seq = [], []
    for r in range(args.rounds):
        seq.append(job.run_sequential(g, spec, args.frames))
        piped.append(job.build_pipeline(g, prof, best, spec,
                                        open_source(spec.source, spec.frames)).run())
        print(f"      round {r + 1}: pipeline {piped[-1].fps:.2f} fps, one session "
              f"{seq[-1].fps:.2f} fps")
    mid = sorted(piped, key=lambda r: r.fps)[(len(piped) - 1) // 2]   # the median (lower) round
    fps, base = mid.fps, sorted(s.fps for s in seq)[(len(seq) - 1) // 2]
    print("\n[5/5] result (median of rounds; whole detection loop: decode, pre-processing, "
          "network, decoding + NMS)")
    print(mid.format())
    print(f"predicted {best.throughput_fps:.2f} fps from the pipeline profile, measured "
          f"{fps:.2f} fps: measured / predicted {fps / best.throughput_fps:.2f}")
    print(f"measured  {fps:.2f} fps pipelined vs {base:.2f} fps one session: "
          f"ratio {fps / base:.2f}")
    print(f"\nprofile: {prof_path}")
    try:
        for name, draw in (("layers", lambda f: layer_costs(prof, f)),
                           ("plan", lambda f: plots.plan(prof, best, f))):
            draw(work / f"{args.model}-{args.size}.{name}.png")
            wrote("chart", work / f"{args.model}-{args.size}.{name}.png")
    except HetschedError as e:
        print(f"(no charts: {e})")
    return 0


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown where there is one worth showing (not None / False)."""

    def _get_help_string(self, action):
        if any(action.default is v for v in (None, False, argparse.SUPPRESS)) \
                or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        return v
    parse.__name__ = "int"
    return parse


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return v


_positive_float.__name__ = "float"
POSITIVE, NATURAL = _at_least(1), _at_least(0)


def build_parser() -> argparse.ArgumentParser:
    from .models.zoo import ACTIVATIONS, NAMES
    # -v before or after the verb; SUPPRESS keeps a verb's parser from resetting the other's
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show warnings, debug output and the traceback behind an error")
    p = argparse.ArgumentParser(
        prog="hetsched", parents=[common], formatter_class=_Help,
        description="Profile an ONNX detection network on every processing element, partition it "
                    "into pipeline stages, and stream frames through them.",
        epilog="exit status: 0 done, 1 error, 2 usage error, 130 / 143 stopped by SIGINT / "
               "SIGTERM")
    p.add_argument("--version", action="version", version=f"hetsched {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name, **kw):
        s = sub.add_parser(name, parents=[common], formatter_class=_Help, **kw)
        s.set_defaults(usage_error=s.error)     # a `UsageError` is reported as argparse's own
        return s

    s = verb("zoo", help="build a zoo detector as ONNX")
    s.add_argument("name", choices=[*NAMES, "ppocr-det"],
                   help="network (ppocr-det: the pretrained PP-OCRv6 text detector from rapidocr; "
                        "densenet-yolo, unet-yolo: unpublished skip-heavy detectors for the "
                        "planners)")
    s.add_argument("-o", "--output", required=True, help="ONNX file to write")
    s.add_argument("--size", type=POSITIVE, default=416, help="input size, a multiple of 32")
    s.add_argument("--activation", choices=ACTIVATIONS, default="leaky",
                   help="leaky as published, or relu (JEDI's DLA-friendly variant)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    s.set_defaults(fn=cmd_zoo)

    s = verb("import-darknet", help="convert a darknet .cfg (+ .weights) to ONNX")
    s.add_argument("cfg", help="darknet network .cfg file")
    s.add_argument("--weights", help="darknet .weights file (default: seeded random weights)")
    s.add_argument("--size", type=POSITIVE, help="input size (default: the cfg's width/height)")
    s.add_argument("--activation", choices=ACTIVATIONS, default="leaky",
                   help="relu replaces every leaky activation")
    s.add_argument("--seed", type=int, default=0, help="seed of the random weights (no --weights)")
    s.add_argument("-o", "--output", required=True, help="ONNX file to write")
    s.set_defaults(fn=cmd_import_darknet)

    s = verb("profile", help="measure every layer's cost on CPU PEs, or model it on a board")
    s.add_argument("model", help="ONNX file, or a zoo name (built at --size)")
    s.add_argument("--size", type=POSITIVE, default=416, help="input size of a zoo model")
    s.add_argument("--pe", help="measure on these PEs, e.g. cpu0,cpu1 (cpuA-B groups cores)")
    s.add_argument("--board", help="model on a board instead: jetson-tx2, jetson-agx-xavier, "
                                    "jetson-agx-orin, vm-2core, or a board JSON")
    s.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16",
                   help="precision of a modeled profile")
    s.add_argument("--runs", type=POSITIVE, default=10, help="measured runs per PE (median)")
    s.add_argument("--warmup", type=NATURAL, default=3, help="warm-up runs per PE")
    s.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                   help="concrete shape for a dynamic input (repeatable)")
    s.add_argument("-o", "--output", required=True, help="profile JSON to write")
    s.add_argument("-q", "--quiet", action="store_true",
                   help="no progress and no summary, only errors")
    s.set_defaults(fn=cmd_profile)

    s = verb("summary", help="summarise a profile (and plot per-layer costs)")
    s.add_argument("profile", help="profile JSON (hetsched profile -o)")
    s.add_argument("--top", type=POSITIVE, default=5, help="how many of the costliest layers to list")
    s.add_argument("--plot", metavar="FILE.png", help="draw per-layer cost bars (.png, .svg or .pdf)")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.set_defaults(fn=cmd_summary)

    s = verb("plan", help="partition a profiled network into pipeline stages")
    s.add_argument("profile", help="profile JSON (hetsched.profile/1 or /2)")
    s.add_argument("--method", default="heuristic",
                   choices=["heuristic", "optimal", "single", "replicate", "even", "all"],
                   help="heuristic: the balancing heuristic; optimal: the exact search; single, "
                        "replicate, even: baselines; all: every method side by side (-o writes "
                        "the best)")
    s.add_argument("--pes", type=_pe_names,
                   help="only these PEs, e.g. cpu0,gpu (default: all in the profile)")
    s.add_argument("--max-stages", type=POSITIVE, default=8, help="most pipeline stages")
    s.add_argument("--no-replication", action="store_true", help="no stage over several PEs")
    s.add_argument("--dla-fallback", action="store_true",
                   help="let a DLA stage hold layers the DLA cannot run; the GPU runs them "
                        "(charged to its load, plus transfers around each fallback island)")
    s.add_argument("--time-limit", type=_positive_float, default=10.0,
                   help="seconds the exact search may take; then it answers with the best plan "
                        "it knows, the lower bound it proved and the gap")
    s.add_argument("--require-proof", action="store_true",
                   help="an optimum not proven within --time-limit is an error")
    s.add_argument("--json", action="store_true", help="print the plan object (contract section 3)")
    s.add_argument("-o", "--output", help="write the plan JSON here")
    s.add_argument("--plot", metavar="FILE.png",
                   help="draw per-PE load and the stage timeline (.png, .svg or .pdf)")
    s.set_defaults(fn=cmd_plan)

    s = verb("simulate", help="replay a plan as the runtime would run it (discrete events)")
    s.add_argument("profile", help="profile JSON")
    s.add_argument("plan", help="plan JSON (hetsched plan -o)")
    s.add_argument("--frames", type=POSITIVE, default=200, help="frames to replay")
    s.add_argument("--buffers", type=POSITIVE, default=2, help="queue capacity between hops")
    s.add_argument("--pre-ms", type=float, default=0.0,
                   help="pre-processing time per frame (network profiles; a pipeline profile "
                        "plans it as a layer)")
    s.add_argument("--post-ms", type=float, default=0.0, help="post-processing time per frame")
    s.add_argument("--pre-threads", type=POSITIVE, default=1, help="pre-processing threads")
    s.add_argument("--post-threads", type=POSITIVE, default=1, help="post-processing threads")
    s.add_argument("--json", action="store_true", help="print the simulation as JSON")
    s.add_argument("--plot", metavar="FILE.png", help="draw the simulated stage runs (Gantt)")
    s.set_defaults(fn=cmd_simulate)

    s = verb("devices", help="list this machine's processing elements")
    s.add_argument("--json", action="store_true", help="print the device list as JSON")
    s.set_defaults(fn=cmd_devices)

    s = verb("demo", help="the main job end to end on the embedded default")
    s.add_argument("--model", choices=list(NAMES), default="tiny-yolov3", help="zoo network")
    s.add_argument("--size", type=POSITIVE, default=416, help="input size, a multiple of 32")
    s.add_argument("--pe", type=_pe_names, help="PEs (default: one per usable core)")
    s.add_argument("--runs", type=POSITIVE, default=10, help="measured profiling runs per PE")
    s.add_argument("--warmup", type=NATURAL, default=3, help="warm-up profiling runs per PE")
    s.add_argument("--workdir", default="out",
                   help="model, cached profiles and charts (the cache `run` and `bench` use too)")
    s.add_argument("--refresh", action="store_true", help="measure even if a cached profile exists")
    s.add_argument("--frames", type=POSITIVE, default=100, help="synthetic frames per measured round")
    s.add_argument("--rounds", type=POSITIVE, default=3, help="interleaved rounds of each way to run")
    s.set_defaults(fn=cmd_demo)

    s = verb("bench", help="measure the ways to run a model side by side, interleaved",
             description="hetsched bench SPEC.yaml, or hetsched bench --model M")
    s.add_argument("spec", nargs="?", help="pipeline spec: adds the whole detection loop methods")
    s.add_argument("--model", help="a zoo name (built at --size) or an ONNX file")
    s.add_argument("--size", type=POSITIVE, default=416, help="input size of a zoo model")
    s.add_argument("--methods", help="comma list of the whole loop's loop-sequential,loop-intra-op,"
                                     "replicate,heuristic,optimal,loop-pipelined (default: all but "
                                     "loop-pipelined), or with --network-only of sequential,"
                                     "intra-op,replicate,heuristic,optimal")
    s.add_argument("--source", default="synthetic:640x480",
                   help="with --model: the frames of the whole loop (synthetic[:WxH], a video, "
                        "a folder, camera:N)")
    s.add_argument("--network-only", action="store_true",
                   help="time the network alone on ready-made tensors (no decode, pre/post)")
    s.add_argument("--pes", type=_pe_names,
                   help="PEs to plan over (default: the spec's, or one per core)")
    s.add_argument("--frames", type=POSITIVE, default=50, help="frames per method per repeat")
    s.add_argument("--repeat", type=POSITIVE, default=3, help="interleaved repeats")
    s.add_argument("--time-limit", type=_positive_float, default=10.0,
                   help="exact planner's limit (s)")
    s.add_argument("--refresh", action="store_true", help="measure even if a cached profile exists")
    s.add_argument("-o", "--output", metavar="DIR", help="write bench.json, report.md, bench.png here")
    s.add_argument("--json", action="store_true", help="print the results as JSON")
    s.set_defaults(fn=cmd_bench)

    s = verb("run", help="stream frames through a planned pipeline",
             description="hetsched run SPEC.yaml, or hetsched run --model M.onnx --plan "
                         "PLAN.json --source S")
    s.add_argument("spec", nargs="?", help="pipeline spec (pipelines/*.yaml)")
    s.add_argument("--model", help="ONNX model (with --plan instead of a spec)")
    s.add_argument("--plan", help="plan JSON (hetsched plan -o)")
    s.add_argument("--profile", help="profile the plan was made from (needed to emulate PEs)")
    s.add_argument("--source", help="synthetic[:WxH][:text], camera:N, a folder or a video file")
    s.add_argument("--frames", type=POSITIVE, help="stop after N frames (default: the spec's, "
                                                  "or the whole source)")
    s.add_argument("--buffers", type=POSITIVE, help="queue capacity between hops (default: the "
                                                   "spec's, 2)")
    s.add_argument("--mode", choices=["lossless", "latest"],
                   help="latest drops the oldest waiting frame (default: the spec's, lossless)")
    s.add_argument("--jsonl", help="write detections per frame as JSON lines")
    s.add_argument("--video", help="write the annotated video")
    s.add_argument("--dump", metavar="DIR", help="write DIR/NNNNNN.npz of network inputs and outputs")
    s.add_argument("--detect", choices=DETECT_KINDS, help="how to decode the outputs (default: the spec's "
                                                       "detect.kind, auto: by the model's metadata and "
                                                       "output shapes)")
    s.add_argument("--emulate", nargs="?", const="timing", choices=["timing", "compute"],
                   help="emulate every PE from the profile's stage times (no value: timing)")
    s.add_argument("--refresh", action="store_true",
                   help="measure the profile even if a cached one exists")
    s.add_argument("--timeline", metavar="FILE.png", help="draw the measured stage runs as a Gantt chart")
    s.add_argument("--json", action="store_true", help="print the plan and report as JSON")
    s.set_defaults(fn=cmd_run)
    return p


def main(argv=None) -> int:
    """Every verb. Exit 0 done, 1 an error (one line; `-v` adds the traceback), 2 a usage error
    (argparse's convention), 130 / 143 stopped by SIGINT / SIGTERM (the shell's convention)."""
    with stopping.signals():
        _kept.clear()
        args = None
        try:
            args = build_parser().parse_args(argv)
            for chart in (getattr(args, "plot", None), getattr(args, "timeline", None)):
                if chart:      # a chart name the plotter would refuse, refused before the work
                    from .plots import chart_format
                    chart_format(chart)
            if not getattr(args, "verbose", False):
                # OpenCV's and FFmpeg's own lines ("moov atom not found") would come before, and
                # say less than, hetsched's one line about the same file; -v lets them through
                os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
                os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
            logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False)
                                else logging.WARNING,
                                format="hetsched: %(levelname)s: %(message)s", force=True)
            code = args.fn(args)
            if stopping.requested():     # requested, but its Interrupted never reached us
                return _stopped(stopping.Interrupted(stopping.requested()))
            return code
        except stopping.Interrupted as e:
            return _stopped(e)
        except BrokenPipeError as e:
            # the reader of stdout left (| head): say so once, and keep the interpreter's final
            # flush from raising again into a closed pipe
            log.debug("the cause", exc_info=e)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            print(f"hetsched: stdout closed before the output was printed; {_kept_text()}",
                  file=sys.stderr)
            return 1
        except UsageError as e:
            log.debug("the cause", exc_info=e)
            # the verb's usage, its error line, exit 2
            getattr(args, "usage_error", build_parser().error)(str(e))
        except (HetschedError, OSError) as e:
            log.debug("the cause", exc_info=e)
            print(f"hetsched: error: {e}", file=sys.stderr)
            return 1
        except SystemExit:
            raise
        except Exception as e:
            if stopping.requested():
                # the stop landed inside a C extension (onnxruntime's import reports it as
                # "ImportError: initialization failed"): it is the stop, not a bug
                log.debug("the cause", exc_info=e)
                return _stopped(stopping.Interrupted(stopping.requested()))
            log.debug("the cause", exc_info=e)
            print(f"hetsched: internal error: {describe(e)} (a bug in hetsched, "
                  f"not your input; -v shows the traceback)", file=sys.stderr)
            return 1


def _kept_text() -> str:
    return ("kept " + ", ".join(dict.fromkeys(_kept))) if _kept else "nothing written"


def _stopped(e: "stopping.Interrupted") -> int:
    log.debug("stopped here", exc_info=e)
    print(f"hetsched: stopped by {e.signame}; {_kept_text()}", file=sys.stderr)
    return e.exit_code


def console() -> None:
    """The `hetsched` command: `main`, then an exit that cannot abort. A thread still inside
    onnxruntime when the interpreter finalises aborts the process ("terminate called without an
    active exception"), so threads get a moment to finish their current run, and if one is
    still busy, or the command was stopped, the process leaves without finalising (every file
    was closed or discarded; a stopped run's sink is waited for while it closes its own)."""
    code = main()
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):    # a second Ctrl-C must not finalise mid-run
        signal.signal(sig, signal.SIG_IGN)
    # after a stop, sessions that a stopped thread made may outlive it, their pools' native
    # threads still joinable when the interpreter finalises: that aborted a stop during
    # `profile`'s contention step ("terminate called without an active exception", exit 134)
    # with every Python thread already gone. So a stopped command leaves at once (what it
    # wrote was closed by the verb itself; waiting for its threads only delayed the exit)
    deadline = time.monotonic() + 0.5
    for t in threading.enumerate():
        # a stopped run's sink may still be closing (renaming) its files: it never enters
        # onnxruntime, and what it closes was announced as kept, so it is always waited for
        sink = t.name.startswith("hetsched-sink")
        if t is not threading.main_thread() and (sink or not stopping.requested()):
            t.join(max(0.0, deadline - time.monotonic()) + (5.0 if sink else 0.0))
    if stopping.requested() or any(t.is_alive() for t in threading.enumerate()
                                   if t is not threading.main_thread()):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:     # a reader that left (| head) must not turn an exit into a trace
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console()
