"""Board files (`profiles/boards/*.json`, schema `hetsched.board/2`): the published figures a
modeled profile is computed from. Every figure is `{"value": v, "source": "...", "assumed": true?}`
so that where a number came from travels with it; `same_as` copies another PE's or link's spec,
and `calibration.efficiency_from` borrows another board's fitted efficiencies.

Version 2 adds what the contract's version 2 prices and what the published measurements say a
board model without them gets wrong (facts.md, "Found later"): `stage_overhead_ms` per PE kind,
`contention` between PE kinds (`contention.gpu.dla` is the GPU's slowdown per DLA that also
runs; `contention.dla.dla` a DLA's slowdown from the other DLA), and `dla`: the NVDLA convolution
core's shape (Atomic-C/K, Winograd, image-input mode) that makes a DLA's rate depend on the
layer's shape, and the per-core subgraph limit. A version-1 file reads with all of them absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HetschedError
from ..profile import Transfer

BOARDS_DIR = Path(__file__).resolve().parents[2] / "profiles" / "boards"
SCHEMA = "hetsched.board/2"
SCHEMAS = ("hetsched.board/1", SCHEMA)


class BoardError(HetschedError):
    pass


@dataclass
class BoardPE:
    name: str
    kind: str
    peak_gflops: dict[str, float]
    overhead_ms: float
    generation: str | None = None


@dataclass
class DLASpec:
    """The NVDLA convolution core as the board file gives it (NVDLA hwarch, direct convolution):
    MACs are issued Atomic-C input channels x Atomic-K output channels at a time, so a layer whose
    channels do not fill them wastes the rest; Winograd cuts a 3x3 stride-1 convolution's MACs by
    `winograd_speedup`; image-input mode runs a first layer of <= 4 channels at
    `image_input_utilisation` instead of C / Atomic-C."""
    atomic_c: int
    atomic_k: dict[str, int]          # precision -> Atomic-K
    winograd_speedup: float
    image_input_utilisation: float
    max_subgraphs_per_core: int | None


@dataclass
class Board:
    name: str
    host: str
    pes: dict[str, BoardPE]
    bandwidth_gbps: float
    bandwidth_efficiency: float
    efficiency: dict[str, dict[str, float]]       # kind -> op (or "other") -> fraction of peak
    fused_ops: set[str]
    fused_kinds: set[str]
    dla_unsupported: set[str]
    transfer: dict[str, Transfer]
    raw: dict = field(repr=False, default_factory=dict)
    path: Path | None = None
    stage_overhead_ms: dict[str, float] = field(default_factory=dict)      # PE kind -> ms
    contention: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> other kind -> slowdown
    dla: DLASpec | None = None

    def overhead_of(self, pe: str) -> float:
        return self.stage_overhead_ms.get(self.pes[pe].kind, 0.0)

    def contention_of(self, pe: str) -> dict[str, float]:
        """contention[pe][q] of the contract for every other PE q of this board."""
        row = self.contention.get(self.pes[pe].kind, {})
        return {q: row[spec.kind] for q, spec in self.pes.items()
                if q != pe and row.get(spec.kind)}

    def efficiency_of(self, kind: str, op: str) -> float:
        table = self.efficiency.get(kind)
        if not table:
            raise BoardError(f"board {self.name}: no efficiency figures for PE kind '{kind}'")
        return table.get(op, table["other"])


def value(fig, where: str) -> float:
    if isinstance(fig, dict) and "value" in fig:
        fig = fig["value"]
    if isinstance(fig, bool) or not isinstance(fig, (int, float)) or fig < 0:
        raise BoardError(f"{where}: expected a non-negative number (or {{value, source}}), got {fig!r}")
    return float(fig)


def path_of(name: str) -> Path:
    p = Path(name)
    if p.suffix == ".json" or p.exists():
        return p
    return BOARDS_DIR / f"{name}.json"


def list_boards() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.json"))


def read_raw(name: str) -> tuple[dict, Path]:
    path = path_of(name)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise BoardError(f"no board '{name}' (known: {', '.join(list_boards())}, or a board JSON path)") from None
    except json.JSONDecodeError as e:
        raise BoardError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if raw.get("schema") not in SCHEMAS:
        raise BoardError(f"{path}: schema is {raw.get('schema')!r}, expected one of "
                         f"{', '.join(map(repr, SCHEMAS))}")
    return raw, path


def _resolve(table: dict, where: str) -> dict:
    out = {}
    for key, spec in table.items():
        if isinstance(spec, dict) and "same_as" in spec:
            other = table.get(spec["same_as"])
            if other is None or "same_as" in other:
                raise BoardError(f"{where}.{key}: same_as '{spec['same_as']}' names nothing usable")
            spec = {**other, **{k: v for k, v in spec.items() if k != "same_as"}}
        out[key] = spec
    return out


def load_board(name: str) -> Board:
    raw, path = read_raw(name)
    where = str(path)
    eff_raw = raw.get("efficiency", {})
    donor = raw.get("calibration", {}).get("efficiency_from")
    if donor:
        eff_raw = {**eff_raw, **{k: v for k, v in read_raw(donor)[0].get("efficiency", {}).items()
                                 if k in eff_raw}}
    pes = {}
    for pe, spec in _resolve(raw.get("pes", {}), f"{where}: pes").items():
        kind = spec.get("kind")
        if kind not in ("cpu", "gpu", "dla"):
            raise BoardError(f"{where}: pes.{pe}.kind is {kind!r}")
        peaks = {p: value(v, f"{where}: pes.{pe}.peak_gflops.{p}")
                 for p, v in spec.get("peak_gflops", {}).items()}
        if not peaks:
            raise BoardError(f"{where}: pes.{pe} has no peak_gflops")
        pes[pe] = BoardPE(pe, kind, peaks, value(spec.get("overhead_ms", 0.0), f"{where}: pes.{pe}.overhead_ms"),
                          spec.get("generation"))
    host = raw.get("host")
    if host not in pes:
        raise BoardError(f"{where}: host {host!r} is not one of the pes {sorted(pes)}")
    mem = raw.get("memory", {})
    efficiency = {kind: {op: value(v, f"{where}: efficiency.{kind}.{op}") for op, v in ops.items()}
                  for kind, ops in eff_raw.items()}
    for kind in {p.kind for p in pes.values()}:
        if "other" not in efficiency.get(kind, {}):
            raise BoardError(f"{where}: efficiency.{kind} needs an 'other' entry")
    fused = raw.get("fused_into_previous", {})
    transfer = {}
    for key, spec in _resolve(raw.get("transfer", {}), f"{where}: transfer").items():
        transfer[key] = Transfer(value(spec["latency_ms"], f"{where}: transfer.{key}.latency_ms"),
                                 value(spec["ms_per_mb"], f"{where}: transfer.{key}.ms_per_mb"))
    if "default" not in transfer:
        raise BoardError(f"{where}: transfer has no 'default'")
    kinds = {p.kind for p in pes.values()}
    overhead = {}
    for kind, fig in raw.get("stage_overhead_ms", {}).items():
        if kind not in kinds:
            raise BoardError(f"{where}: stage_overhead_ms.{kind}: the board has no PE of kind '{kind}'")
        overhead[kind] = value(fig, f"{where}: stage_overhead_ms.{kind}")
    contention: dict[str, dict[str, float]] = {}
    for kind, row in raw.get("contention", {}).items():
        for other, fig in row.items():
            if kind not in kinds or other not in kinds:
                raise BoardError(f"{where}: contention.{kind}.{other}: the board has no PE of "
                                 f"kind '{kind if kind not in kinds else other}'")
            contention.setdefault(kind, {})[other] = value(fig, f"{where}: contention.{kind}.{other}")
    return Board(raw["name"], host, pes, value(mem.get("bandwidth_gbps"), f"{where}: memory.bandwidth_gbps"),
                 value(mem.get("bandwidth_efficiency", 1.0), f"{where}: memory.bandwidth_efficiency"),
                 efficiency, set(fused.get("ops", [])), set(fused.get("pes", [])),
                 set(raw.get("dla_unsupported_ops", {}).get("ops", [])), transfer, raw, path,
                 overhead, contention, _dla_spec(raw.get("dla"), where, pes))


def _dla_spec(spec: dict | None, where: str, pes: dict[str, BoardPE]) -> DLASpec | None:
    if spec is None:
        return None
    dla_precisions = {p for pe in pes.values() if pe.kind == "dla" for p in pe.peak_gflops}
    if not dla_precisions:
        raise BoardError(f"{where}: has a 'dla' section but no DLA PE")
    missing = dla_precisions - set(spec.get("atomic_k", {}))
    if missing:
        raise BoardError(f"{where}: dla.atomic_k has no figure for {', '.join(sorted(missing))}, "
                         f"a precision the DLA has a peak for")
    def positive(key, fig=None):
        v = value(spec[key] if fig is None else fig, f"{where}: dla.{key}")
        if v <= 0:
            raise BoardError(f"{where}: dla.{key} must be above 0, got {v}")
        return v
    try:
        limit = spec.get("max_subgraphs_per_core")
        atomic_k = {p: int(positive(f"atomic_k.{p}", f)) for p, f in spec["atomic_k"].items()}
        return DLASpec(int(positive("atomic_c")), atomic_k, positive("winograd_speedup"),
                       positive("image_input_utilisation"),
                       None if limit is None else int(positive("max_subgraphs_per_core")))
    except KeyError as e:
        raise BoardError(f"{where}: dla section lacks {e.args[0]!r}") from None
