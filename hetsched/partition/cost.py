"""What a plan costs: contract section 4 (version 2), implemented once. Planners, the simulator and
reports all call `evaluate` (or `StageCost.frame_ms`, its per-frame form); nothing else computes a
stage time.

U is the set of PEs the plan's stages use. For stage j with PE group G_j and member p = G_j[r]:
    in_j(p)   = per external input tensor, the mean of transfer(s -> p) over S(r): the members
                of the producing group that made the frames p serves (`sources`)
    factor(p) = 1 + sum over q in U, q != p, of contention[p][q]
    T_j(p)    = (compute_j(p) + in_j(p) + out_j(p)) * factor(p) + stage_overhead_ms[p]
    load(p)   = sum over stages j containing p of T_j(p) / |G_j|  (+ host_ms on the host)
    bottleneck = max load, throughput = 1000 / bottleneck,
    latency   = host_ms + sum_j T_j(G_j[0]) with frame 0's sources (each producer's first member)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from math import gcd

from ..errors import HetschedError
from ..profile import Profile

SCHEMA = "hetsched.plan/1"
DEFAULT_MAX_STAGES = 8


class PlanError(HetschedError):
    """A plan that breaks the contract's rules for this profile."""


@dataclass(frozen=True)
class Stage:
    pes: tuple[str, ...]
    first: int
    last: int  # inclusive


def sources(m: int, k: int, r: int) -> range:
    """S(r) as member indices: the members of a producing group of size m that made the frames
    member r of a consuming group of size k serves. Frame f goes to f mod k and came from f mod m,
    so over f = r, r + k, ... below lcm(m, k) these are the members s = r (mod gcd(m, k)), each
    once."""
    g = gcd(m, k)
    return range(r % g, m, g)


@dataclass(frozen=True)
class StageCost:
    """One stage's terms per member; `time_ms` is the contract's T_j(p)."""
    compute_ms: dict[str, float]
    in_ms: dict[str, float]
    out_ms: dict[str, float]
    fallback_ms: dict[str, float] = field(default_factory=dict)   # --dla-fallback islands
    factor: dict[str, float] = field(default_factory=dict)        # contention, missing: 1
    overhead_ms: dict[str, float] = field(default_factory=dict)   # missing: 0
    first_in_ms: float = 0.0            # the first member's inputs from frame 0's producers
    pes: tuple[str, ...] = ()
    inputs: tuple[tuple[int, tuple[str, ...]], ...] = ()          # (bytes, producing group)

    def work_ms(self, pe: str) -> float:
        """What contention slows: compute, transfers and fallback islands."""
        return self.compute_ms[pe] + self.in_ms[pe] + self.out_ms[pe] + self.fallback_ms.get(pe, 0.0)

    def time_ms(self, pe: str) -> float:
        return self.work_ms(pe) * self.factor.get(pe, 1.0) + self.overhead_ms.get(pe, 0.0)

    def first_ms(self) -> float:
        """T_j(G_j[0]) for frame 0 of an empty pipeline (what the contract's latency sums)."""
        p = self.pes[0]
        return (self.work_ms(p) - self.in_ms[p] + self.first_in_ms) * self.factor.get(p, 1.0) \
            + self.overhead_ms.get(p, 0.0)

    def frame_ms(self, profile: Profile, frame: int) -> float:
        """The stage's time for one frame: on member frame mod k, with each input from the
        producer member that made that frame. Averaged over a member's frames it is `time_ms`."""
        p = self.pes[frame % len(self.pes)]
        tin = sum(profile.transfer_ms(g[frame % len(g)], p, nbytes) for nbytes, g in self.inputs)
        return (self.work_ms(p) - self.in_ms[p] + tin) * self.factor.get(p, 1.0) \
            + self.overhead_ms.get(p, 0.0)


@dataclass
class Plan:
    method: str
    stages: list[Stage]
    bottleneck_ms: float
    throughput_fps: float
    latency_ms: float
    pe_load_ms: dict[str, float]
    stage_costs: list[StageCost] = field(default_factory=list, repr=False)
    solve_ms: float | None = None
    dla_fallback: bool = False
    # the exact search's verdict: True proven optimal, False the best plan it knew when its time
    # ran out, with the lower bound it proved (None: a method that proves nothing)
    proven: bool | None = None
    lower_bound_ms: float | None = None

    @property
    def gap(self) -> float | None:
        """How far above the optimum this plan may be, at most (bottleneck / lower bound - 1)."""
        if self.proven is None:
            return None
        if self.proven or not self.lower_bound_ms:
            return 0.0 if self.proven else None
        return max(0.0, self.bottleneck_ms / self.lower_bound_ms - 1.0)

    def key(self) -> tuple[float, float, int]:
        """The contract's order: bottleneck, then latency, then fewer stages."""
        return (self.bottleneck_ms, self.latency_ms, len(self.stages))

    def to_dict(self) -> dict:
        d = {"schema": SCHEMA, "method": self.method,
             "stages": [{"pes": list(s.pes), "first": s.first, "last": s.last} for s in self.stages],
             "bottleneck_ms": self.bottleneck_ms, "throughput_fps": self.throughput_fps,
             "latency_ms": self.latency_ms, "pe_load_ms": self.pe_load_ms}
        if self.solve_ms is not None:
            d["solve_ms"] = self.solve_ms
        if self.dla_fallback:
            d["dla_fallback"] = True   # priced beyond the contract's strict default
        if self.proven is not None:
            d["proven"] = self.proven
            if not self.proven:
                d["lower_bound_ms"] = self.lower_bound_ms
                d["gap"] = self.gap
        return d


def better(a: Plan, b: Plan | None) -> bool:
    """Is `a` preferred to `b` under the contract (ties: relative difference below 1e-9)?"""
    if b is None:
        return True
    for x, y in zip(a.key()[:2], b.key()[:2]):
        if abs(x - y) > 1e-9 * max(abs(x), abs(y), 1e-300):
            return x < y
    return a.key()[2] < b.key()[2]


def mixes_kinds(profile: Profile, plan: Plan) -> bool:
    """Whether a stage of `plan` replicates over PEs of different kinds, which the contract
    forbids (only the replicate baseline builds such a stage, for comparison)."""
    return any(len({profile.pes[p].kind for p in s.pes}) > 1 for s in plan.stages)


def runnable(profile: Profile, group, layer: int, gpu: str | None = None) -> bool:
    """Whether every PE of `group` can hold `layer` in a stage: it runs the layer, or (`gpu`
    given: `--dla-fallback`) it is a DLA and that GPU runs the layer for it. The one place
    every planner asks."""
    costs = profile.layers[layer].cost_ms
    return all(costs.get(p) is not None or (gpu is not None and profile.pes[p].kind == "dla"
                                            and costs.get(gpu) is not None) for p in group)


def fallback_gpu(profile: Profile, allowed=None) -> str:
    """The GPU that runs what a DLA cannot under `--dla-fallback` (TensorRT's GPU_FALLBACK)."""
    gpus = [p for p, pe in profile.pes.items() if pe.kind == "gpu" and (allowed is None or p in allowed)]
    if not gpus:
        raise PlanError("--dla-fallback needs a GPU PE among the allowed PEs to fall back to")
    return gpus[0]


def validate(profile: Profile, stages: list[Stage], *, max_stages: int | None = DEFAULT_MAX_STAGES,
             pes: list[str] | None = None, replication: bool = True, dla_fallback: bool = False) -> None:
    n = len(profile.layers)
    if not stages:
        raise PlanError("plan has no stages")
    allowed = set(pes) if pes is not None else set(profile.pes)
    if max_stages is not None and len(stages) > max_stages:
        raise PlanError(f"plan has {len(stages)} stages, more than max_stages={max_stages}")
    expect = 0
    for j, s in enumerate(stages):
        if s.first != expect:
            raise PlanError(f"stage {j} starts at layer {s.first}, expected {expect} "
                            f"(stages must cover 0..{n - 1} in order, no gap or overlap)")
        if s.last < s.first:
            raise PlanError(f"stage {j} ends (layer {s.last}) before it starts (layer {s.first})")
        if s.last >= n:
            raise PlanError(f"stage {j} ends at layer {s.last}; the profile has {n} layers")
        expect = s.last + 1
        if not s.pes:
            raise PlanError(f"stage {j} has no PE")
        if len(set(s.pes)) != len(s.pes):
            raise PlanError(f"stage {j} names a PE twice: {list(s.pes)}")
        for pe in s.pes:
            if pe not in profile.pes:
                raise PlanError(f"stage {j} uses PE '{pe}', which the profile does not have "
                                f"(it has {', '.join(profile.pes)})")
            if pe not in allowed:
                raise PlanError(f"stage {j} uses PE '{pe}', outside the allowed {sorted(allowed)}")
        order = [p for p in profile.pes if p in s.pes]
        if list(s.pes) != order:
            raise PlanError(f"stage {j} lists its PEs {list(s.pes)}; a group lists them in the "
                            f"profile's order ({order}): member r takes frames r, r+k, ...")
        kinds = {profile.pes[pe].kind for pe in s.pes}
        if len(kinds) > 1:
            raise PlanError(f"stage {j} replicates over PEs of different kinds {list(s.pes)}")
        if len(s.pes) > 1 and not replication:
            raise PlanError(f"stage {j} is replicated over {list(s.pes)} but replication is off")
        if j and set(stages[j - 1].pes) == set(s.pes):
            raise PlanError(f"stages {j - 1} and {j} have the same PE group {list(s.pes)}; "
                            f"they would be one stage")
        gpu = fallback_gpu(profile, allowed) if dla_fallback else None
        for i in range(s.first, s.last + 1):
            for pe in s.pes:
                if not runnable(profile, (pe,), i, gpu):
                    raise PlanError(f"layer {i} '{profile.layers[i].name}' cannot run on {pe} "
                                    f"(stage {j})" + ("" if dla_fallback or profile.pes[pe].kind != "dla"
                                                      else "; --dla-fallback would run it on the GPU"))
    if expect != n:
        raise PlanError(f"stages end at layer {expect - 1}; the profile has layers up to {n - 1}")
    excess = subgraph_excess(profile, stages, dla_fallback)
    if excess:
        raise PlanError(excess)


def dla_subgraphs(profile: Profile, stages: list[Stage], dla_fallback: bool = False) -> dict[str, list[int]]:
    """Per DLA PE, the DLA subgraphs each of its stages' engines holds (one TensorRT engine per
    stage): one, and under `--dla-fallback` one per maximal run of the stage's layers the DLA
    itself runs, since each fallback island splits the DLA's part of the engine. Runs are taken
    in layer order, an approximation: TensorRT splits by graph connectivity."""
    out: dict[str, list[int]] = {}
    for s in stages:
        for pe in s.pes:
            if profile.pes[pe].kind != "dla":
                continue
            runs = 1
            if dla_fallback:
                runs, inside = 0, False
                for i in range(s.first, s.last + 1):
                    here = profile.layers[i].cost_ms.get(pe) is not None
                    runs += here and not inside
                    inside = here
            out.setdefault(pe, []).append(runs)
    return out


def subgraph_limit(profile: Profile) -> int | None:
    """The DLA subgraphs one engine may hold on a DLA core, where the profile's board says."""
    return profile.board.get("dla_max_subgraphs_per_core") if isinstance(profile.board, dict) else None


def subgraph_excess(profile: Profile, stages: list[Stage], dla_fallback: bool = False) -> str | None:
    """Why a stage's engine breaks the DLA subgraph limit a board profile carries
    (`board.dla_max_subgraphs_per_core`: TensorRT's build-time "DLA supports only 8 subgraphs
    per DLA core"), or None. Only fallback islands can: a strict DLA stage is one subgraph."""
    limit = subgraph_limit(profile)
    if not limit or not dla_fallback:
        return None
    for j, s in enumerate(stages):
        for pe, counts in dla_subgraphs(profile, [s], True).items():
            if counts[0] > limit:
                return (f"stage {j} needs {counts[0]} DLA subgraphs on {pe} (its fallback islands "
                        f"split it); TensorRT builds at most {limit} per DLA core in one engine")
    return None


def cached_transfers(profile: Profile):
    """transfer(src, dst, tensor name) in ms, memoised: the planners ask for the same few
    thousand triples millions of times."""
    cache: dict = {}

    def xfer(src, dst, t):
        v = cache.get((src, dst, t))
        if v is None:
            v = cache[(src, dst, t)] = profile.transfer_ms(src, dst, profile.tensors[t])
        return v
    return xfer


def live_tensors(profile: Profile) -> list[tuple[str, ...]]:
    """live[i]: tensors available before layer i and read at or after it (graph inputs count)."""
    layers = profile.layers
    last_use: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for t in layer.inputs:
            last_use[t] = i
    live = []
    current = list(profile.graph_inputs())
    for i, layer in enumerate(layers):
        live.append(tuple(current))
        current = [t for t in current if last_use.get(t, -1) > i]
        current += [t for t in layer.outputs if last_use.get(t, -1) > i]
    live.append(tuple(current))
    return live


class CostIndex:
    """What pricing a plan needs from a profile, computed once: per-PE prefix sums of compute
    (null costs as 0: `validate` keeps nulls out of stages), each layer's inputs with the index
    of their producer (-1 for graph inputs), the graph outputs each layer produces, and per
    layer the tensors made before it that it or a later layer reads, so that a stage finds its
    external inputs among the few live tensors at its first layer instead of reading every
    layer it holds (the heuristic prices thousands of plans)."""

    def __init__(self, profile: Profile):
        layers = profile.layers
        producer = {t: i for i, layer in enumerate(layers) for t in layer.outputs}
        outputs = set(profile.graph_outputs)
        self.prefix: dict[str, list[float]] = {}
        for pe in profile.pes:
            acc, run = [0.0], 0.0
            for layer in layers:
                run += layer.cost_ms.get(pe) or 0.0
                acc.append(run)
            self.prefix[pe] = acc
        self.inputs = [[(t, producer.get(t, -1)) for t in dict.fromkeys(layer.inputs)]
                       for layer in layers]
        self.outputs = [[t for t in layer.outputs if t in outputs] for layer in layers]
        self.output_layers = [i for i, made in enumerate(self.outputs) if made]
        # reads[t]: (layer, position among its inputs) of every read, in layer order
        self.reads: dict[str, list[tuple[int, int]]] = {}
        for i, ins in enumerate(self.inputs):
            for pos, (t, _) in enumerate(ins):
                self.reads.setdefault(t, []).append((i, pos))
        self.producer = {t: producer.get(t, -1) for t in self.reads}
        self.live = live_tensors(profile)
        self.transfer = cached_transfers(profile)    # (src, dst, tensor name) -> ms
        self.stage_costs: dict = {}   # `evaluate`'s memo of stage terms

    def external(self, first: int, last: int) -> list[tuple[str, int]]:
        """The tensors made before layer `first` that layers first..last read, with their
        producer, in the order those layers first read them."""
        found = []
        for t in self.live[first]:
            r = self.reads[t]
            read = r[bisect_left(r, (first, -1))]
            if read[0] <= last:
                found.append((read, t))
        found.sort()
        return [(t, self.producer[t]) for _, t in found]


def used_pes(stages: list[Stage]) -> frozenset[str]:
    """U of contract section 4: the PEs the stages use."""
    return frozenset(p for s in stages for p in s.pes)


def evaluate(profile: Profile, stages: list[Stage], method: str = "manual", *,
             check: bool = True, index: CostIndex | None = None, **limits) -> Plan:
    """The contract's cost of `stages` (validated first unless `check` is False). Planners that
    price many plans pass one `CostIndex` of the profile."""
    if check:
        validate(profile, stages, **limits)
    index = index or CostIndex(profile)
    fallback = bool(limits.get("dla_fallback"))
    gpu = fallback_gpu(profile, limits.get("pes")) if fallback else None
    host = profile.host
    used = used_pes(stages)
    if fallback and any(profile.layers[i].cost_ms.get(p) is None for s in stages for p in s.pes
                        if profile.pes[p].kind == "dla" for i in range(s.first, s.last + 1)):
        used = used | {gpu}        # islands run on the GPU, so it contends like any stage
    factor = {p: profile.factor(p, used) for p in used}
    load = {pe: 0.0 for pe in profile.pes}
    load[host] += profile.host_ms
    latency = profile.host_ms
    costs = []
    used_key = (used, gpu)
    for j, s in enumerate(stages):
        external = {t: (host,) if src_layer < 0 else stages[_stage_of(stages, src_layer, j)].pes
                    for t, src_layer in index.external(s.first, s.last)}
        # a stage's terms depend only on it, where its inputs come from and U: refining prices
        # hundreds of plans that differ in one cut, so the other stages are looked up
        key = (s, used_key, tuple(external.values()))
        hit = index.stage_costs.get(key)
        if hit is None:
            if len(index.stage_costs) > 200_000:
                index.stage_costs.clear()
            hit = index.stage_costs[key] = _stage_cost(profile, index, s, external, factor, gpu)
        sc, gpu_ms = hit
        if gpu_ms:
            load[gpu] += gpu_ms
        costs.append(sc)
        k = len(s.pes)
        for pe in s.pes:
            load[pe] += sc.time_ms(pe) / k
        latency += sc.first_ms()
    bottleneck = max(load.values())
    fps = 1000.0 / bottleneck if bottleneck > 0 else float("inf")
    return Plan(method, list(stages), bottleneck, fps, latency, load, costs, dla_fallback=fallback)


def _stage_cost(profile: Profile, index: CostIndex, s: Stage, external: dict, factor: dict,
                gpu: str | None) -> tuple[StageCost, float]:
    """Stage s's terms, and what its fallback islands add to the GPU's load (`gpu` given:
    `--dla-fallback`)."""
    host, xfer = profile.host, index.transfer
    produced_outputs = [t for i in index.output_layers[bisect_left(index.output_layers, s.first):
                                                       bisect_right(index.output_layers, s.last)]
                        for t in index.outputs[i]]
    k = len(s.pes)
    comp, tin, tout = {}, {}, {}
    for r, pe in enumerate(s.pes):
        pre = index.prefix[pe]
        comp[pe] = pre[s.last + 1] - pre[s.first]
        tin[pe] = sum(sum(xfer(src[m], pe, t) for m in sources(len(src), k, r))
                      / len(sources(len(src), k, r)) for t, src in external.items())
        tout[pe] = sum(xfer(pe, host, t) for t in produced_outputs)
    first_in = sum(xfer(src[0], s.pes[0], t) for t, src in external.items())
    extra, gpu_load = {}, 0.0
    for pe in s.pes:
        if gpu is not None and profile.pes[pe].kind == "dla":
            extra[pe], gpu_ms = _islands(profile, index, s, pe, gpu)
            gpu_load += gpu_ms * factor.get(gpu, 1.0) / k
    sc = StageCost(comp, tin, tout, extra, {p: factor[p] for p in s.pes},
                   {p: profile.overhead_ms(p) for p in s.pes}, first_in, tuple(s.pes),
                   tuple((profile.tensors[t], src) for t, src in external.items()))
    return sc, gpu_load


def _islands(profile: Profile, index: CostIndex, s: Stage, pe: str, gpu: str) -> tuple[float, float]:
    """What a DLA stage's fallback islands (maximal runs of layers `pe` cannot run) cost: (time the
    DLA's stage waits: GPU compute plus a transfer out to the GPU of each tensor an island reads
    and back of each tensor it hands on, GPU compute alone)."""
    layers = profile.layers
    wait = gpu_ms = 0.0
    i = s.first
    while i <= s.last:
        if layers[i].cost_ms.get(pe) is not None:
            i += 1
            continue
        a = i
        while i <= s.last and layers[i].cost_ms.get(pe) is None:
            i += 1
        island = range(a, i)
        made = {t for k in island for t in layers[k].outputs}
        reads = {t for k in island for t, _ in index.inputs[k] if t not in made}
        later = {t for k in range(i, len(layers)) for t, _ in index.inputs[k]} | set(profile.graph_outputs)
        ms = sum(layers[k].cost_ms[gpu] for k in island)
        gpu_ms += ms
        wait += ms + sum(profile.transfer_ms(pe, gpu, profile.tensors[t]) for t in reads) \
            + sum(profile.transfer_ms(gpu, pe, profile.tensors[t]) for t in made & later)
    return wait, gpu_ms


def _stage_of(stages: list[Stage], layer: int, before: int) -> int:
    """Index of the stage (among the first `before`) that holds `layer`: stages are sorted."""
    lo, hi = 0, before - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if stages[mid].last < layer:
            lo = mid + 1
        else:
            hi = mid
    return lo


def read_plan_file(path) -> dict:
    """A plan JSON file (contract section 3) as a dict with at least its 'stages'; one-line
    errors for a missing, unparsable or stage-less file."""
    import json
    from pathlib import Path
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PlanError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"{path}: cannot read ({type(e).__name__})") from None
    except json.JSONDecodeError as e:
        raise PlanError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(doc, dict) or doc.get("stages") is None:
        raise PlanError(f"{path}: not a plan (no 'stages')")
    return doc


def layers_digest(profile: Profile) -> str:
    """A checksum of the profile's layers (names and ops): a plan's stages are layer numbers,
    which fit any model of as many layers, so a plan file records this of the model it was
    made for (`made_for`) and a reader checks it (`check_made_for`)."""
    import hashlib
    text = "\n".join(f"{layer.name}\t{layer.op}" for layer in profile.layers)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def made_for(profile: Profile) -> dict:
    """The plan file's record of its model (beyond contract section 3, which it leaves as is)."""
    return {"name": profile.model.name, "layers": len(profile.layers),
            "layers_sha256": layers_digest(profile)}


def check_made_for(doc: dict, profile: Profile, where: str) -> None:
    """Refuse a plan file made for another model than `profile`'s (files without the record,
    written before it existed or by hand, are taken as they are)."""
    rec = doc.get("model")
    if not isinstance(rec, dict) or not rec.get("layers_sha256"):
        return
    if rec["layers_sha256"] != layers_digest(profile):
        raise PlanError(f"{where}: a plan for model '{rec.get('name')}' ({rec.get('layers')} "
                        f"layers), not for the profile's '{profile.model.name}' "
                        f"({len(profile.layers)} layers): their layers differ")


def stages_from_dicts(raw: list[dict]) -> list[Stage]:
    try:
        return [Stage(tuple(s["pes"]), int(s["first"]), int(s["last"])) for s in raw]
    except (KeyError, TypeError, ValueError) as e:
        raise PlanError(f"malformed stage list ({e.__class__.__name__}: {e})") from None
