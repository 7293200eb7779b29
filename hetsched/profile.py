"""The contract's profile (`hetsched.profile/2`): dataclasses, validation, load and save.

See shared/design/contract.md section 2. Every check here ends in one `ProfileError` line that
names the file and the offending field; nothing is repaired silently. A `hetsched.profile/1` file
is read as version 2 with every new term at its default (no stage overhead, no host work, no
contention, an empty `engine`); `save` always writes version 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_text
from .errors import ProfileError

SCHEMA = "hetsched.profile/2"
SCHEMAS = ("hetsched.profile/1", SCHEMA)   # version 1 is read with the new terms at defaults
SOURCES = ("measured", "modeled")
PE_KINDS = ("cpu", "gpu", "dla")


@dataclass(frozen=True)
class PE:
    name: str
    kind: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Transfer:
    latency_ms: float
    ms_per_mb: float

    def cost_ms(self, nbytes: int) -> float:
        return self.latency_ms + self.ms_per_mb * nbytes / 1e6  # MB = 10^6 bytes


@dataclass
class ProfileLayer:
    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    cost_ms: dict[str, float | None]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelInfo:
    name: str
    sha256: str | None
    inputs: dict[str, list[int]]


@dataclass
class Profile:
    source: str
    model: ModelInfo
    board: dict[str, Any]
    host: str
    pes: dict[str, PE]
    layers: list[ProfileLayer]
    tensors: dict[str, int]            # name -> bytes
    graph_outputs: list[str]
    transfer: dict[str, Transfer]
    extra: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    stage_overhead_ms: dict[str, float] = field(default_factory=dict)   # missing PE: 0
    host_ms: float = 0.0
    contention: dict[str, dict[str, float]] = field(default_factory=dict)

    def cost(self, layer: int, pe: str) -> float | None:
        return self.layers[layer].cost_ms.get(pe)

    def transfer_ms(self, src: str, dst: str, nbytes: int) -> float:
        """A pair's own key, else the default; a PE to itself is free unless `"p->p"` says not."""
        link = self.transfer.get(f"{src}->{dst}")
        if link is None:
            if src == dst:
                return 0.0
            link = self.transfer["default"]
        return link.cost_ms(nbytes)

    def is_pipeline(self) -> bool:
        """A pipeline profile: the detection loop's Preprocess first and Postprocess last."""
        return bool(self.layers) and self.layers[0].op == "Preprocess" \
            and self.layers[-1].op == "Postprocess"

    def network_layers(self) -> list[ProfileLayer]:
        return self.layers[1:-1] if self.is_pipeline() else self.layers

    def overhead_ms(self, pe: str) -> float:
        return self.stage_overhead_ms.get(pe, 0.0)

    def factor(self, pe: str, used) -> float:
        """Contract section 4: 1 + the slowdown of `pe` from every other PE in the set `used`."""
        row = self.contention.get(pe)
        if not row:
            return 1.0
        return 1.0 + sum(v for q, v in row.items() if q != pe and q in used)

    def contended(self) -> list[str]:
        """The PEs whose factor depends on the plan's PE set (each appears in `contention` with a
        non-zero entry, as the one slowed or the one slowing)."""
        out = {p for p, row in self.contention.items() for q, v in row.items() if v}
        out |= {q for row in self.contention.values() for q, v in row.items() if v}
        return [p for p in self.pes if p in out]

    def graph_inputs(self) -> list[str]:
        produced = {t for layer in self.layers for t in layer.outputs}
        seen: dict[str, None] = {}
        for layer in self.layers:
            for t in layer.inputs:
                if t not in produced:
                    seen.setdefault(t)
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema": SCHEMA,
            "source": self.source,
            "model": {"name": self.model.name, "sha256": self.model.sha256,
                      "inputs": self.model.inputs},
            "board": self.board,
            "host": self.host,
            "pes": {p.name: {"kind": p.kind, **p.extra} for p in self.pes.values()},
            "layers": [{"name": l.name, "op": l.op, "inputs": list(l.inputs),
                        "outputs": list(l.outputs),
                        "cost_ms": {pe: l.cost_ms.get(pe) for pe in self.pes}, **l.extra}
                       for l in self.layers],
            "tensors": {t: {"bytes": b} for t, b in self.tensors.items()},
            "graph_outputs": list(self.graph_outputs),
            "transfer": {k: {"latency_ms": v.latency_ms, "ms_per_mb": v.ms_per_mb}
                         for k, v in self.transfer.items()},
            "engine": self.engine,
            "stage_overhead_ms": {p: self.stage_overhead_ms[p] for p in self.pes
                                  if p in self.stage_overhead_ms},
            "host_ms": self.host_ms,
            "contention": {p: dict(row) for p, row in self.contention.items()},
        }
        d.update(self.extra)
        return d


def _fail(where: str, msg: str):
    raise ProfileError(f"{where}: {msg}")


def _req(d: dict, key: str, kind, where: str):
    if not isinstance(d, dict) or key not in d:
        _fail(where, f"missing field '{key}'")
    value = d[key]
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        _fail(where, f"field '{key}' must be {names}, got {type(value).__name__}")
    return value


MAX_NUMBER = 1e12   # ms, bytes, ms per MB or a slowdown: far above any real one


def _number(value, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        _fail(where, f"{what} must be a number, got {value!r}")
    if value > MAX_NUMBER:        # JSON's Infinity or 1e308: no sum of them stays finite
        _fail(where, f"{what} is {value:g}, beyond any time, size or rate a profile holds "
                     f"(at most {MAX_NUMBER:g}" + ("; a layer a PE cannot run has a null cost)"
                                                  if "cost_ms" in what else ")"))
    if value < 0:
        _fail(where, f"{what} is negative ({value})")
    return float(value)


def _object(d: dict, key: str, where: str) -> dict:
    """An optional object field (default empty)."""
    value = d.get(key, {})
    if not isinstance(value, dict):
        _fail(where, f"field '{key}' must be an object, got {type(value).__name__}")
    return value


def _per_pe(d: dict, key: str, pes, where: str) -> dict:
    """An optional object field keyed by PE names of the profile."""
    value = _object(d, key, where)
    for pe in value:
        if pe not in pes:
            _fail(where, f"{key} names '{pe}', which is not one of the pes")
    return value


def from_dict(d: Any, where: str = "profile") -> Profile:
    """Validate a parsed profile; the first problem found is raised as one line."""
    if not isinstance(d, dict):
        _fail(where, "a profile is a JSON object")
    schema = d.get("schema")
    if schema not in SCHEMAS:
        _fail(where, f"schema is {schema!r}, expected {SCHEMA!r} (or {SCHEMAS[0]!r})")
    source = _req(d, "source", str, where)
    if source not in SOURCES:
        _fail(where, f"source is {source!r}, expected one of {SOURCES}")
    m = _req(d, "model", dict, where)
    sha = m.get("sha256")
    if sha is not None and not isinstance(sha, str):
        _fail(where, "model.sha256 must be a string or null")
    model = ModelInfo(_req(m, "name", str, f"{where}: model"), sha,
                      {k: list(v) for k, v in _req(m, "inputs", dict, f"{where}: model").items()})
    board = _req(d, "board", dict, where)
    host = _req(d, "host", str, where)
    pes = {}
    for name, spec in _req(d, "pes", dict, where).items():
        kind = _req(spec, "kind", str, f"{where}: pes.{name}")
        if kind not in PE_KINDS:
            _fail(where, f"pes.{name}.kind is {kind!r}, expected one of {PE_KINDS}")
        pes[name] = PE(name, kind, {k: v for k, v in spec.items() if k != "kind"})
    if not pes:
        _fail(where, "pes is empty")
    if host not in pes:
        _fail(where, f"host '{host}' is not one of the pes {sorted(pes)}")
    tensors = {}
    for name, spec in _req(d, "tensors", dict, where).items():
        tensors[name] = int(_number(_req(spec, "bytes", int, f"{where}: tensors.{name}"),
                                    where, f"tensors.{name}.bytes"))
    layers = _layers(_req(d, "layers", list, where), pes, tensors, where)
    outs = _req(d, "graph_outputs", list, where)
    produced = {t for layer in layers for t in layer.outputs}
    for t in outs:
        if t not in produced:
            _fail(where, f"graph output '{t}' is produced by no layer")
    transfer = {}
    for key, spec in _req(d, "transfer", dict, where).items():
        if key != "default":
            a, sep, b = key.partition("->")
            if not sep or a not in pes or b not in pes:
                _fail(where, f"transfer key '{key}' is not 'default' or 'A->B' with A, B in pes")
        transfer[key] = Transfer(
            _number(_req(spec, "latency_ms", (int, float), f"{where}: transfer.{key}"), where,
                    f"transfer.{key}.latency_ms"),
            _number(_req(spec, "ms_per_mb", (int, float), f"{where}: transfer.{key}"), where,
                    f"transfer.{key}.ms_per_mb"))
    if "default" not in transfer:
        _fail(where, "transfer has no 'default' entry")
    if schema == SCHEMAS[0]:
        # version 1 priced a PE to itself as free whatever its keys said; "p->p" is version 2's
        transfer = {k: v for k, v in transfer.items()
                    if k == "default" or k.split("->")[0] != k.split("->")[1]}
    engine = _object(d, "engine", where)
    overhead = {}
    for pe, value in _per_pe(d, "stage_overhead_ms", pes, where).items():
        overhead[pe] = _number(value, where, f"stage_overhead_ms.{pe}")
    host_ms = _number(d.get("host_ms", 0.0), where, "host_ms")
    contention: dict[str, dict[str, float]] = {}
    raw = _per_pe(d, "contention", pes, where)
    for pe, row in raw.items():
        if not isinstance(row, dict):
            _fail(where, f"contention.{pe} must be an object of other PEs, got {type(row).__name__}")
        for other, value in row.items():
            if other not in pes:
                _fail(where, f"contention.{pe} names '{other}', which is not one of the pes")
            if other == pe:
                _fail(where, f"contention.{pe}.{pe}: a PE does not contend with itself")
            # negative slowdowns are refused: the planners rely on a PE never running faster
            # beside another (so pricing a plan over a superset of its PEs never undercuts it)
            row_value = _number(value, where, f"contention.{pe}.{other}")
            contention.setdefault(pe, {})[other] = row_value
    known = {"schema", "source", "model", "board", "host", "pes", "layers", "tensors",
             "graph_outputs", "transfer", "engine", "stage_overhead_ms", "host_ms", "contention"}
    extra = {k: v for k, v in d.items() if k not in known}
    return Profile(source, model, board, host, pes, layers, tensors, list(outs), transfer, extra,
                   dict(engine), overhead, host_ms, contention)


def _layers(raw: list, pes: dict[str, PE], tensors: dict[str, int], where: str) -> list[ProfileLayer]:
    if not raw:
        _fail(where, "layers is empty")
    layers = []
    names: set[str] = set()
    producer: dict[str, int] = {}
    for i, spec in enumerate(raw):
        at = f"{where}: layers[{i}]"
        name = _req(spec, "name", str, at)
        if name in names:
            _fail(where, f"layers[{i}] repeats the layer name '{name}'")
        names.add(name)
        op = _req(spec, "op", str, at)
        ins = tuple(_req(spec, "inputs", list, at))
        outs = tuple(_req(spec, "outputs", list, at))
        for t in ins + outs:
            if t not in tensors:
                _fail(where, f"layer '{name}' names tensor '{t}', which is not in tensors")
        for t in outs:
            if t in producer:
                _fail(where, f"tensor '{t}' is produced by layers[{producer[t]}] and layers[{i}]")
            producer[t] = i
        costs = {}
        for pe, value in _req(spec, "cost_ms", dict, at).items():
            if pe not in pes:
                _fail(where, f"layer '{name}' has a cost for '{pe}', which is not one of the pes")
            costs[pe] = None if value is None else _number(value, where, f"layer '{name}' cost_ms.{pe}")
        extra = {k: v for k, v in spec.items() if k not in ("name", "op", "inputs", "outputs", "cost_ms")}
        layers.append(ProfileLayer(name, op, ins, outs, costs, extra))
    for i, layer in enumerate(layers):
        for t in layer.inputs:
            if producer.get(t, -1) >= i:
                _fail(where, f"layers are not in topological order: '{layer.name}' (index {i}) "
                             f"reads '{t}', produced by layers[{producer[t]}]")
    for pe in pes:
        if not any(pe in layer.cost_ms for layer in layers):
            _fail(where, f"PE '{pe}' has no cost column (no layer has a cost_ms entry for it)")
    return layers


def load(path) -> Profile:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file") from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise ProfileError(f"{path}: cannot read profile ({e.__class__.__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    return from_dict(data, str(path))


def save(profile: Profile, path) -> None:
    from_dict(profile.to_dict(), str(path))  # never write what we could not read back
    write_text(path, json.dumps(profile.to_dict(), indent=1) + "\n")


def check_model(profile: Profile, graph, where: str = "profile") -> None:
    """Refuse a profile measured or modeled for another model than `graph`."""
    if profile.model.sha256 and graph.sha256 and profile.model.sha256 != graph.sha256:
        _fail(where, f"made for model '{profile.model.name}' (sha256 {profile.model.sha256[:12]}…), "
                     f"not for '{graph.name}' (sha256 {graph.sha256[:12]}…)")
    shapes = graph.input_shapes
    if {k: list(v) for k, v in profile.model.inputs.items()} != shapes:
        _fail(where, f"made for inputs {profile.model.inputs}, the model has {shapes}")
    names = [layer.name for layer in graph.layers]
    own = [layer.name for layer in profile.network_layers()]
    if own != names:
        short = min(len(own), len(names))
        k = next((i for i in range(short) if own[i] != names[i]), short)
        which = (f"first differing at layer {k}: '{own[k]}' here, '{names[k]}' in the model"
                 if k < short else f"the first {short} alike")
        _fail(where, f"is not of the model '{graph.name}': {len(own)} network layers against "
                     f"its {len(names)}, {which}")
