"""Pipeline specs (`pipelines/*.yaml`): everything `hetsched run` needs, checked key by key.

```yaml
model: {zoo: tiny-yolov3, size: 416}    # or {darknet: x.cfg, weights: x.weights} or {onnx: m.onnx}
pes: [cpu0, cpu1]                       # default: one PE per usable core
profile: null                           # a profile file; default: measured here and cached
plan: {method: auto}                    # auto: the best-priced plan of the whole loop (the
                                        # optimum when proven, else the heuristic's); or any
                                        # `hetsched plan` method, or
                                        # {stages: [{pes: [cpu0], first: 0, last: 9}, ...]}, or {file: plan.json}
source: synthetic                       # synthetic[:WxH][:text] | camera:N | folder | video file
frames: 200                             # null: until the source ends
buffers: 2
threads: {pre: 1, post: 1, intra_op: 1}
mode: lossless                          # or latest (drop the oldest waiting frame)
engine: {optimization: all, emulate: false}   # emulate: false | timing | compute
detect: {kind: auto, conf: 0.25, iou: 0.45, class_agnostic: false}
sink: {jsonl: out/detections.jsonl, video: null, dump: null}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import HetschedError
from .task import DetectOptions


class SpecError(HetschedError):
    pass


@dataclass
class RunSpec:
    model: dict
    pes: list[str] | None = None
    profile: str | None = None
    plan: dict = field(default_factory=lambda: {"method": "auto"})
    source: str = "synthetic"
    frames: int | None = 200
    buffers: int = 2
    pre_threads: int = 1
    post_threads: int = 1
    intra_op_threads: int = 1
    mode: str = "lossless"
    optimization: str = "all"
    emulate: str | None = None
    detect: DetectOptions = field(default_factory=DetectOptions)
    sink: dict = field(default_factory=dict)
    workdir: str = "out"
    where: str = "spec"


_TOP = {"model", "pes", "profile", "plan", "source", "frames", "buffers", "threads", "mode",
        "engine", "detect", "sink", "workdir"}


def _check_keys(d, allowed, where):
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(d).__name__}")
    unknown = set(d) - set(allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _int(v, where, lo=1, none_ok=False):
    if v is None and none_ok:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise SpecError(f"{where} must be a whole number >= {lo}, got {v!r}")
    return v


def from_dict(d: dict, where: str = "spec", base: Path | None = None) -> RunSpec:
    """A checked spec; relative paths in it are taken from the current folder, as on the
    command line (or from `base` when given)."""
    _check_keys(d, _TOP, where)
    if "model" not in d:
        raise SpecError(f"{where}: missing key 'model'")
    rel = (lambda p: None if p is None else str((base / p) if base and not Path(p).is_absolute() else p))
    model = dict(d["model"]) if isinstance(d["model"], dict) else None
    if model is None:
        raise SpecError(f"{where}: model must be a mapping like {{zoo: tiny-yolov3, size: 416}}")
    _check_keys(model, {"zoo", "darknet", "weights", "onnx", "size", "activation", "input_shape"},
                f"{where}: model")
    kinds = [k for k in ("zoo", "darknet", "onnx") if k in model]
    if len(kinds) != 1:
        raise SpecError(f"{where}: model needs exactly one of zoo, darknet, onnx (got {kinds or 'none'})")
    for k in ("darknet", "weights", "onnx"):
        if k in model:
            model[k] = rel(model[k])
    plan = d.get("plan", {"method": "auto"})
    _check_keys(plan, {"method", "stages", "file", "max_stages", "replication", "dla_fallback"},
                f"{where}: plan")
    if sum(k in plan for k in ("method", "stages", "file")) > 1:
        raise SpecError(f"{where}: plan takes one of method, stages, file")
    if "file" in plan:
        plan = {**plan, "file": rel(plan["file"])}
    threads = d.get("threads", {}) or {}
    _check_keys(threads, {"pre", "post", "intra_op"}, f"{where}: threads")
    engine = d.get("engine", {}) or {}
    _check_keys(engine, {"optimization", "emulate"}, f"{where}: engine")
    emulate = engine.get("emulate", False)
    if emulate not in (False, None, "timing", "compute", True):
        raise SpecError(f"{where}: engine.emulate must be false, timing or compute, got {emulate!r}")
    det = d.get("detect", {}) or {}
    _check_keys(det, {"kind", "letterbox", "conf", "iou", "class_agnostic", "db"}, f"{where}: detect")
    sink = d.get("sink", {}) or {}
    if sink == "none":
        sink = {}
    _check_keys(sink, {"jsonl", "video", "dump"}, f"{where}: sink")
    pes = d.get("pes")
    if pes is not None and (not isinstance(pes, list) or not all(isinstance(p, str) for p in pes)):
        raise SpecError(f"{where}: pes must be a list of PE names, e.g. [cpu0, cpu1]")
    return RunSpec(
        model=model, pes=pes, profile=rel(d.get("profile")), plan=plan,
        source=str(d.get("source", "synthetic")),
        frames=_int(d.get("frames", 200), f"{where}: frames", none_ok=True),
        buffers=_int(d.get("buffers", 2), f"{where}: buffers"),
        pre_threads=_int(threads.get("pre", 1), f"{where}: threads.pre"),
        post_threads=_int(threads.get("post", 1), f"{where}: threads.post"),
        intra_op_threads=_int(threads.get("intra_op", 1), f"{where}: threads.intra_op", lo=0),
        mode=str(d.get("mode", "lossless")),
        optimization=str(engine.get("optimization", "all")),
        emulate={True: "timing", False: None}.get(emulate, emulate),
        detect=DetectOptions(kind=det.get("kind", "auto"), letterbox=det.get("letterbox"),
                             conf=float(det.get("conf", 0.25)), iou=float(det.get("iou", 0.45)),
                             class_agnostic=bool(det.get("class_agnostic", False)),
                             extra=dict(det.get("db", {}) or {})),
        sink={k: rel(v) for k, v in sink.items() if v},
        workdir=rel(d.get("workdir", "out")), where=where)


def load(path) -> RunSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such pipeline spec") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read ({type(e).__name__})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise SpecError(f"{path}: not valid YAML{at}") from None
    return from_dict(data if data is not None else {}, str(path))
