"""The exactly optimal plan under the contract (section 4): minimum bottleneck, ties to the lower
latency, then to fewer stages.

Why not the textbook dynamic program over (boundary, set of PEs used): the contract lets a PE
serve several non-adjacent stages (JEDI's GPU, DLA0, DLA1, GPU) and charges a tensor that skips
stages by the PE of the stage that produced it, so a stage's cost depends on more than its own
boundaries and PE. This is a dynamic program over layers, one layer at a time, whose state is

    (group of the open stage, for each live tensor: the first PE of its producer's group and
     whether the open stage already has it, number of stages so far)

and whose value is the Pareto frontier of the per-PE load vectors of all partial plans reaching
that state (numpy arrays, with back-pointers). Appending a layer either extends the open stage or
opens one on another group. Since the bottleneck is the maximum load, a partial plan whose loads
are all no lower than another's in the same state can never finish ahead of it, so dropping it
keeps the search exact; so does dropping any whose lower bound (its own largest load, or the work
still to place spread evenly over all PEs) exceeds the heuristic's bottleneck.

Phase 1 finds the minimum bottleneck B*. Phase 2 runs the same search with the bound B* and
latency as one more label coordinate, bounded by the latency of phase 1's plan, and picks by the
contract's order (`cost.better`).

Complexity: O(n * S * G * F * D) per phase for n layers, S states per layer (G groups times the
sources of the live tensors, which detection networks keep at 1-4, times the stage counts), D
PEs and F the frontier size. F is exponential in the worst case: once a PE may serve several
stages, balancing is a partition problem (NP-complete when the PE order may vary, Pinar et al.,
JPDC 2008), and every split of the work that the bound cannot yet refute stays on the frontier.
The search therefore stops at `time_limit_s` with a PlanError rather than run on;
scripts/partition_bench.py reports where it finishes.
"""

from __future__ import annotations

import time

import numpy as np

from ..profile import Profile
from . import pareto
from .cost import DEFAULT_MAX_STAGES, Plan, PlanError, Stage, better, evaluate
from .groups import allowed_pes, check_feasible, runnable, stage_groups

_TIE = 1e-9
DEFAULT_TIME_LIMIT_S = 10.0


class OptimumUnproven(PlanError):
    """The exact search stopped at its time limit; `lower_bound_ms` is what it did prove (no plan
    has a smaller bottleneck), so a heuristic plan's distance from the optimum is bounded."""

    def __init__(self, message: str, lower_bound_ms: float):
        super().__init__(message)
        self.lower_bound_ms = lower_bound_ms


def solve(profile: Profile, *, pes: list[str] | None = None, replication: bool = True,
          max_stages: int = DEFAULT_MAX_STAGES, upper_bound: float | None = None,
          time_limit_s: float | None = DEFAULT_TIME_LIMIT_S, dla_fallback: bool = False) -> Plan:
    """The optimal plan. `upper_bound` (ms) prunes the search and must be the bottleneck of a
    feasible plan or more; by default the heuristic's plan provides it. Past `time_limit_s` the
    search gives up with a PlanError (it never returns a plan it has not proven optimal)."""
    if dla_fallback:
        raise PlanError("the optimal planner prices the contract's strict plans only; "
                        "--dla-fallback plans come from the heuristic and the baselines")
    t0 = time.perf_counter()
    names = allowed_pes(profile, pes)
    check_feasible(profile, names)
    groups = stage_groups(profile, names, replication)
    if upper_bound is None:
        from .heuristic import solve as heuristic
        try:
            upper_bound = heuristic(profile, pes=names, replication=replication,
                                    max_stages=max_stages).bottleneck_ms
        except PlanError:
            upper_bound = None
    deadline = None if time_limit_s is None else t0 + time_limit_s
    search = _Search(profile, names, groups, max_stages, deadline)
    bound = np.inf if upper_bound is None else upper_bound * (1 + 2 * _TIE) + 1e-12
    search.upper_bound = np.inf if upper_bound is None else upper_bound
    found = search.run(bound, with_latency=False)
    if found is None:
        raise PlanError(f"no plan with at most {max_stages} stages can run every layer on "
                        f"{', '.join(names)}")
    # phase 1's plan is feasible at B*, so its latency bounds phase 2 from above
    first = evaluate(profile, found.stages, "optimal", check=False)
    try:
        stages = search.run(found.bottleneck_ms * (1 + 2 * _TIE) + 1e-12, with_latency=True,
                            latency_bound=first.latency_ms * (1 + 2 * _TIE) + 1e-12).stages
    except OptimumUnproven:
        raise OptimumUnproven(
            f"the minimum bottleneck is proven ({first.bottleneck_ms:.4f} ms) but the latency "
            f"tie-break did not finish within the time limit", first.bottleneck_ms) from None
    plan = evaluate(profile, stages, "optimal", pes=names, max_stages=max_stages,
                    replication=replication)
    plan.solve_ms = (time.perf_counter() - t0) * 1e3
    return plan


class _Search:
    def __init__(self, profile: Profile, names, groups, max_stages, deadline):
        self.profile = profile
        self.names = names
        self.groups = groups
        self.max_stages = max_stages
        self.deadline = deadline
        layers = profile.layers
        n = len(layers)
        last_use: dict[str, int] = {}
        for i, layer in enumerate(layers):
            for t in layer.inputs:
                last_use[t] = i
        # live[i]: tensors available before layer i and still needed at or after it
        self.live = []
        current = list(profile.graph_inputs())
        for i in range(n):
            self.live.append(tuple(current))
            current = [t for t in current if last_use.get(t, -1) > i]
            current += [t for t in layers[i].outputs if last_use.get(t, -1) > i]
        self.live.append(tuple(current))
        self.pos = [{t: k for k, t in enumerate(lv)} for lv in self.live]
        self.weights, self.suffix = _dual_bound(profile, names)
        # every remaining layer adds at least its cheapest cost to the latency
        self.min_rest = [0.0] * (n + 1)
        for i in range(n - 1, -1, -1):
            self.min_rest[i] = self.min_rest[i + 1] + min(
                layers[i].cost_ms[p] for p in names if layers[i].cost_ms.get(p) is not None)
        self.xfer_cache: dict = {}
        self.upper_bound = np.inf

    def xfer(self, src, dst, t):
        key = (src, dst, t)
        v = self.xfer_cache.get(key)
        if v is None:
            v = self.xfer_cache[key] = self.profile.transfer_ms(src, dst, self.profile.tensors[t])
        return v

    def run(self, bound: float, with_latency: bool, latency_bound: float = np.inf):
        profile, names, groups = self.profile, self.names, self.groups
        layers = profile.layers
        n, npe = len(layers), len(names)
        idx = {p: k for k, p in enumerate(names)}
        outputs = set(profile.graph_outputs)
        host = profile.host
        width = npe + (1 if with_latency else 0)
        ctx0 = tuple((host, False) for _ in self.live[0])
        keys = [(-1, ctx0, 0)]
        labels = [np.zeros((1, width))]
        history = []  # per layer: (keys, parent key index arrays, parent row arrays)
        for i in range(n):
            self._check_time(i, n, labels)
            layer = layers[i]
            ins = [self.pos[i][t] for t in dict.fromkeys(layer.inputs)]
            outs_here = [t for t in layer.outputs if t in outputs]
            carry = [self.pos[i].get(t) for t in self.live[i + 1]]
            ok = [runnable(profile, g, i) for g in groups]
            cand: dict = {}
            for ki, ((g, ctx, s), lab) in enumerate(zip(keys, labels)):
                if ki % 64 == 63:  # one layer can take seconds on a wide frontier
                    self._check_time(i, n, labels)
                for h, group in enumerate(groups):
                    if not ok[h]:
                        continue
                    opened = h != g
                    s2 = s + 1 if opened else s
                    if s2 > self.max_stages:
                        continue
                    base = ctx if not opened else tuple((src, False) for src, _ in ctx)
                    inc = np.zeros(width)
                    for p in group:
                        c = layer.cost_ms[p]
                        for q in ins:
                            src, have = base[q]
                            if not have:
                                c += self.xfer(src, p, self.live[i][q])
                        for t in outs_here:
                            c += self.xfer(p, host, t)
                        inc[idx[p]] += c / len(group)
                        if with_latency and p == group[0]:
                            inc[npe] = c
                    new_ctx = list(base)
                    for q in ins:
                        new_ctx[q] = (new_ctx[q][0], True)
                    ctx2 = tuple(new_ctx[q] if q is not None else (group[0], True) for q in carry)
                    nxt = lab + inc
                    loads = nxt[:, :npe]
                    keep = loads.max(axis=1) <= bound
                    keep &= (loads @ self.weights.T + self.suffix[i + 1]).max(axis=1) <= bound
                    if with_latency:
                        keep &= nxt[:, npe] + self.min_rest[i + 1] <= latency_bound
                    if not keep.any():
                        continue
                    rows = np.flatnonzero(keep)
                    cand.setdefault((h, ctx2, s2), []).append((nxt[rows], ki, rows))
            frontier = labels
            keys, labels, parents = [], [], []
            for kc, (key, parts) in enumerate(cand.items()):
                if kc % 64 == 63:
                    self._check_time(i, n, frontier)
                lab = np.vstack([p[0] for p in parts])
                pk = np.concatenate([np.full(len(p[2]), p[1]) for p in parts])
                pr = np.concatenate([p[2] for p in parts])
                try:
                    sel = pareto.minimal(lab, self.deadline)
                except pareto.TimeUp:
                    self._check_time(i, n, frontier)
                    raise
                keys.append(key)
                labels.append(lab[sel])
                parents.append((pk[sel], pr[sel]))
            if not keys:
                return None
            history.append((keys, parents))
        best, where = None, None
        for ki, (key, lab) in enumerate(zip(keys, labels)):
            tops = lab[:, :npe].max(axis=1)
            for r in np.argsort(tops, kind="stable")[: (len(tops) if with_latency else 1)]:
                cand_plan = Plan("optimal", [], float(tops[r]), 0.0,
                                 float(lab[r, npe]) if with_latency else 0.0, {}, [])
                cand_plan.stages = [None] * key[2]  # only the count matters to `better`
                if better(cand_plan, best):
                    best, where = cand_plan, (ki, int(r))
        best.stages = self._stages(history, *where)
        return best

    def _check_time(self, i: int, n: int, labels) -> None:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            lb = self.lower_bound(i, labels)
            raise OptimumUnproven(
                f"the exact search reached its time limit at layer {i} of {n} "
                f"({sum(len(x) for x in labels)} partial plans on the frontier); this profile is "
                f"too large for the exact planner; proven: optimum >= {lb:.4f} ms", lb)

    def lower_bound(self, i: int, labels) -> float:
        """A bound no plan beats, from the frontier before layer i: every plan descends from one
        of its labels or was pruned at a bound above the heuristic's bottleneck (which is itself
        a plan), and a label can end no lower than its largest load or its Lagrangian bound."""
        npe = len(self.names)
        best = np.inf
        for lab in labels:
            loads = lab[:, :npe]
            b = np.maximum(loads.max(axis=1), (loads @ self.weights.T + self.suffix[i]).max(axis=1))
            best = min(best, float(b.min()))
        return min(best, self.upper_bound)

    def _stages(self, history, ki: int, row: int) -> list[Stage]:
        n = len(history)
        group_at = [0] * n
        for i in range(n - 1, -1, -1):
            keys, parents = history[i]
            group_at[i] = keys[ki][0]
            pk, pr = parents[ki]
            ki, row = int(pk[row]), int(pr[row])
        stages = []
        start = 0
        for i in range(1, n + 1):
            if i == n or group_at[i] != group_at[start]:
                stages.append(Stage(tuple(self.groups[group_at[start]]), start, i - 1))
                start = i
        return stages


def _dual_bound(profile: Profile, names, iterations: int = 200):
    """Weights for the Lagrangian lower bound on the bottleneck.

    For weights w >= 0 summing to 1, and any plan, max_p load(p) >= sum_p w_p load(p) >=
    sum_p w_p L_p + sum over the layers still to place of min_p w_p c(l, p), where L_p is the load
    so far (transfers only add). The best w is the dual of the fractional assignment LP; uniform
    weights give the plain 'work spread evenly' bound, which is weak when one PE is 20 times
    faster than another. Returns W (k x PEs) and suffix sums S (n+1 x k) of the per-layer term,
    for the uniform weights and the ones that maximise the bound over suffixes starting at a few
    layers (found by exponentiated-gradient ascent, which keeps w on the simplex)."""
    layers = profile.layers
    n, d = len(layers), len(names)
    cost = np.array([[l.cost_ms[p] if l.cost_ms.get(p) is not None else np.inf for p in names]
                     for l in layers])
    vectors = [np.full(d, 1.0 / d)]
    for start in sorted({0, n // 4, n // 2, (3 * n) // 4}):
        part = cost[start:]
        w = np.full(d, 1.0 / d)
        best_w, best_v = w, -np.inf
        scale = float(np.where(np.isinf(part), 0.0, part).sum(axis=0).max()) or 1.0
        for k in range(iterations):
            term = w * part
            arg = np.argmin(term, axis=1)
            value = term[np.arange(len(part)), arg].sum()
            if value > best_v:
                best_v, best_w = value, w.copy()
            grad = np.bincount(arg, weights=part[np.arange(len(part)), arg], minlength=d) - value
            w = w * np.exp(2.0 * grad / scale / np.sqrt(k + 1))
            w /= w.sum()
        vectors.append(best_w)
    weights = np.array(vectors)
    with np.errstate(invalid="ignore"):
        per_layer = np.min(weights[None, :, :] * cost[:, None, :], axis=2)  # (n, k); 0*inf -> nan
    per_layer = np.where(np.isnan(per_layer), 0.0, per_layer)
    suffix = np.zeros((n + 1, len(weights)))
    suffix[:n] = np.cumsum(per_layer[::-1], axis=0)[::-1]
    return weights, suffix
