"""The pipeline-balancing heuristic of *Low-Power Computer Vision* Ch. 9 (Ha et al., JEDI), as
far as the book's summary describes it: try candidate PE orders, balance the cut points so that
stage times match, then refine.

1. Candidate orders: every sequence of disjoint stage groups (each PE used at most once; a group
   is one PE or, with replication, several PEs of one kind), at most `max_stages` long.
2. Balancing: for one order, the smallest bottleneck B for which a greedy fill works (each stage
   takes layers while every member's time / group size stays <= B; the last takes the rest),
   found by bisection over B on per-PE prefix sums. A member's time here is the contract's
   without transfers: compute times the contention factor of the order's PE set, plus the stage
   overhead, with the host's work outside the stages on the host's budget. For these terms and
   a fixed order of distinct groups the greedy fill is optimal (a stage that stops earlier never
   helps the ones after it); a sandwich order's head takes only the layers the next group cannot
   run, so there it is optimal given that head.
3. The balanced plans are priced exactly (`cost.evaluate`: transfers, replication, outputs), and
   the best few are refined by moving single cut points while the contract's order improves.
4. Beyond the book: orders that use a PE once cannot express JEDI's GPU, DLA0, DLA1, GPU or the
   plans that thread the GPU around the layers a DLA cannot run, which the exact planner found
   up to 1.6x faster on modeled Xavier profiles. `beam.interleaved` proposes such plans (a
   beam search over layers, ranked by the Lagrangian bound of the rest); they are priced and
   refined the same way and compete with the balanced ones. The beam is wider on small
   networks (`_beam_width`), and the plans of a width-4 beam form a second pool refined on its
   own, because a wider beam is not better everywhere.

Complexity: O(R * I * S * log n) for balancing (R orders, I bisection steps to a relative 1e-4,
S stages; an order that cannot beat the plans already kept for refinement costs one fill) plus
O(M * C * D * n) for refinement (M plans refined, C cuts, D step sizes) plus the beam's
(see `beam`); scripts/partition_bench.py reports the solve times and the ratio to the optimum.
"""

from __future__ import annotations

import time
from bisect import insort
from itertools import permutations

import numpy as np

from ..profile import Profile
from .beam import interleaved
from .completion import Rest
from .cost import (DEFAULT_MAX_STAGES, CostIndex, Plan, PlanError, Stage, better, evaluate,
                   fallback_gpu, runnable, subgraph_excess)
from .groups import allowed_pes, check_feasible, pe_sets, stage_groups, stages_from_path

BISECTION_TOLERANCE = 1e-4
REFINE_TOP = 3
BEAM_BUDGET, BEAM_MAX = 300_000, 128
STEPS = (1, 2, 4, 8, 16)


class _Prefix:
    """Per-PE prefix sums of compute, and where each PE's next unrunnable layer is."""

    def __init__(self, profile: Profile, names: list[str]):
        n = len(profile.layers)
        self.n = n
        self.sum = {}
        self.next_null = {}
        for p in names:
            costs = np.array([l.cost_ms.get(p) if l.cost_ms.get(p) is not None else np.nan
                              for l in profile.layers], dtype=float)
            null = np.isnan(costs)
            self.sum[p] = np.concatenate([[0.0], np.cumsum(np.where(null, 0.0, costs))])
            nxt = np.full(n + 1, n, dtype=int)
            for i in range(n - 1, -1, -1):
                nxt[i] = i if null[i] else nxt[i + 1]
            self.next_null[p] = nxt
    def max_end(self, group, a: int, caps) -> int:
        """Last layer e >= a-1 such that a..e fits each member's compute cap (a-1: none fits)."""
        end = self.n - 1
        for p, cap in zip(group, caps):
            if cap < 0:
                return a - 1
            s = self.sum[p]
            e = int(np.searchsorted(s, s[a] + cap, side="right")) - 2
            end = min(end, e, int(self.next_null[p][a]) - 1)
        return end

    def first_runnable(self, group) -> int:
        """First layer every member can run (n if none)."""
        i = 0
        while i < self.n and any(self.next_null[p][i] == i for p in group):
            i += 1
        return i

    def fits(self, group, a: int, e: int, caps) -> bool:
        return all(self.next_null[p][a] > e and self.sum[p][e + 1] - self.sum[p][a] <= cap
                   for p, cap in zip(group, caps))


class _Terms:
    """Contract section 4's terms that do not depend on the cut points, for one order: the
    contention factor of each PE over the order's PE set, stage overheads and the host's work.
    `caps` turns a bottleneck into each member's compute budget."""

    def __init__(self, profile: Profile, order):
        used = {p for g in order for p in g}
        self.factor = {p: profile.factor(p, used) for p in used}
        self.overhead = {p: profile.overhead_ms(p) for p in used}
        self.host, self.host_ms = profile.host, profile.host_ms

    def caps(self, group, bottleneck: float, stages: int = 1) -> list[float]:
        """Compute each member may take so that its load stays <= bottleneck, over `stages`
        stages of this group."""
        k = len(group)
        return [((bottleneck - (self.host_ms if p == self.host else 0.0)) * k
                 - stages * self.overhead[p]) / self.factor[p] for p in group]


def _orders(groups, max_len, max_stages):
    """Sequences of disjoint groups, shortest first; each also as a sandwich, its first group
    again at the end (pre/post-processing on the host, JEDI's GPU ... GPU)."""
    for k in range(1, max_len + 1):
        for seq in permutations(groups, k):
            used = [p for g in seq for p in g]
            if len(used) == len(set(used)):
                yield seq
                if 2 <= k < max_stages:
                    yield seq + (seq[0],)


def _greedy(prefix: _Prefix, order, bottleneck: float, terms: _Terms):
    if len(order) > 2 and order[0] == order[-1]:
        return _greedy_sandwich(prefix, order, bottleneck, terms)
    n = prefix.n
    a = 0
    cuts = []
    for s, group in enumerate(order):
        caps = terms.caps(group, bottleneck)
        if s == len(order) - 1:
            if not prefix.fits(group, a, n - 1, caps):
                return None
            cuts.append((a, n - 1))
            return cuts
        e = min(prefix.max_end(group, a, caps), n - 1 - (len(order) - 1 - s))
        if e < a:
            return None
        cuts.append((a, e))
        a = e + 1
    return None


def _greedy_sandwich(prefix: _Prefix, order, bottleneck: float, terms: _Terms):
    """The ends share one group's budget: the head takes only what the next group cannot run,
    the middle fills greedily, the tail takes the rest, and head + tail must fit the budget."""
    n = prefix.n
    outer = order[0]
    caps = terms.caps(outer, bottleneck, stages=2)
    head = max(0, prefix.first_runnable(order[1]) - 1)
    if not prefix.fits(outer, 0, head, caps):
        return None
    cuts = [(0, head)]
    a = head + 1
    for s, group in enumerate(order[1:-1]):
        remaining = len(order) - 2 - s  # stages after this one, the tail included
        e = min(prefix.max_end(group, a, terms.caps(group, bottleneck)), n - 1 - remaining)
        if e < a:
            return None
        cuts.append((a, e))
        a = e + 1
    if a > n - 1:
        return None
    left = [cap - (prefix.sum[p][head + 1] - prefix.sum[p][0]) for p, cap in zip(outer, caps)]
    if not prefix.fits(outer, a, n - 1, left):
        return None
    cuts.append((a, n - 1))
    return cuts


def _balance(prefix: _Prefix, order, hi: float, profile: Profile):
    """Smallest bottleneck (to BISECTION_TOLERANCE, relative) at which the greedy fill covers
    all layers, or None if it does not at `hi`."""
    if len(order) > prefix.n:
        return None
    terms = _Terms(profile, order)
    best = _greedy(prefix, order, hi, terms)
    if best is None:
        return None
    lo = 0.0
    while hi - lo > BISECTION_TOLERANCE * hi:
        mid = (lo + hi) / 2
        cuts = _greedy(prefix, order, mid, terms)
        if cuts is None:
            lo = mid
        else:
            hi, best = mid, cuts
    return best


def _price(profile, order, spans, index, limits) -> Plan:
    stages = [Stage(tuple(g), a, e) for g, (a, e) in zip(order, spans)]
    return evaluate(profile, stages, "heuristic", check=False, index=index, **limits)


def _fallback_view(profile: Profile, names) -> Profile:
    """For balancing only: a DLA's null cost becomes the GPU's cost of that layer (the exact
    pricing adds the transfers around each fallback island and charges the GPU)."""
    import copy
    gpu = fallback_gpu(profile, names)
    view = copy.copy(profile)
    view.layers = []
    for layer in profile.layers:
        costs = dict(layer.cost_ms)
        for p in names:
            if profile.pes[p].kind == "dla" and costs.get(p) is None:
                costs[p] = layer.cost_ms.get(gpu)
        view.layers.append(copy.copy(layer))
        view.layers[-1].cost_ms = costs
    return view


def _compute_floor(profile: Profile, stages, prefix: _Prefix, factor, overhead) -> float:
    """The largest PE load of `stages` without transfers (which only add): a trial whose floor
    passes the plan's bottleneck cannot be better, and costs no `evaluate`."""
    load = dict.fromkeys(factor, 0.0)
    load[profile.host] = load.get(profile.host, 0.0) + profile.host_ms
    for s in stages:
        k = len(s.pes)
        for p in s.pes:
            load[p] += ((prefix.sum[p][s.last + 1] - prefix.sum[p][s.first]) * factor[p]
                        + overhead[p]) / k
    return max(load.values())


def _refine(profile: Profile, plan: Plan, index: CostIndex, limits, prefix: _Prefix) -> Plan:
    # the fallback view's prefix sums charge a DLA the GPU's cost of its islands, more than the
    # exact price does, so they bound nothing there
    floor = not limits.get("dla_fallback")
    used = {p for s in plan.stages for p in s.pes}
    factor = {p: profile.factor(p, used) for p in used}
    overhead = {p: profile.overhead_ms(p) for p in used}
    improved = True
    while improved:
        improved = False
        stages = plan.stages
        for c in range(len(stages) - 1):
            for step in STEPS:
                for delta in (-step, step):
                    cut = stages[c].last + delta
                    if not stages[c].first <= cut < stages[c + 1].last:
                        continue
                    trial = list(stages)
                    trial[c] = Stage(stages[c].pes, stages[c].first, cut)
                    trial[c + 1] = Stage(stages[c + 1].pes, cut + 1, stages[c + 1].last)
                    if not all(_runnable(profile, s, limits, prefix) for s in (trial[c], trial[c + 1])):
                        continue
                    if floor and _compute_floor(profile, trial, prefix, factor, overhead) > \
                            plan.bottleneck_ms * (1 + 1e-9):
                        continue
                    cand = evaluate(profile, trial, "heuristic", check=False, index=index, **limits)
                    if better(cand, plan):
                        plan, improved = cand, True
                        stages = plan.stages
    return plan


def _runnable(profile: Profile, s: Stage, limits, prefix: _Prefix) -> bool:
    if limits.get("dla_fallback") and all(profile.pes[p].kind == "dla" for p in s.pes):
        gpu = fallback_gpu(profile, limits["pes"])
        return all(runnable(profile, s.pes, i, gpu) for i in range(s.first, s.last + 1))
    # the fallback view differs from the profile only in DLA nulls, handled above
    return all(prefix.next_null[p][s.first] > s.last for p in s.pes)


class _Pool:
    """Priced plans that may be refined (those within the DLA subgraph limit), and the bar: the
    REFINE_TOP-th best bottleneck among them."""

    def __init__(self, profile: Profile, dla_fallback: bool):
        self.profile, self.dla_fallback = profile, dla_fallback
        self.plans: list[Plan] = []
        self.top: list[float] = []
        self.rejected = 0           # priced plans over the limit

    def add(self, plan: Plan) -> None:
        if not _eligible(self.profile, plan, self.dla_fallback):
            self.rejected += 1
            return
        self.plans.append(plan)
        insort(self.top, plan.bottleneck_ms)

    def bar(self) -> float:
        return self.top[REFINE_TOP - 1] * (1 + 1e-9) if len(self.top) >= REFINE_TOP else np.inf

    def copy(self) -> "_Pool":
        out = _Pool(self.profile, self.dla_fallback)
        out.plans, out.top, out.rejected = list(self.plans), list(self.top), self.rejected
        return out


def _beam_width(n: int) -> int:
    """Partial plans the beam keeps per slot. A 300-layer network gets 4; smaller ones get more
    (width ~ 1/n^2, so the beam's n * width work falls as n grows), because there contention
    makes the optimum thread one replicated group through the network several times, with cut
    points that only a wide beam finds together (modeled unet-yolo: 0.89 of the optimum at
    width 24, 0.98 at 96)."""
    return int(min(BEAM_MAX, max(4, BEAM_BUDGET // max(n, 1) ** 2)))


def _eligible(profile: Profile, plan: Plan, dla_fallback: bool) -> bool:
    """Fallback islands can split a DLA stage past what one engine holds."""
    return not (dla_fallback and subgraph_excess(profile, plan.stages, True))


def solve(profile: Profile, *, pes: list[str] | None = None, replication: bool = True,
          max_stages: int = DEFAULT_MAX_STAGES, dla_fallback: bool = False) -> Plan:
    """`dla_fallback`: a DLA stage may hold layers the DLA cannot run; the GPU runs them
    (`cost.evaluate` charges the GPU and the transfers around each fallback island)."""
    t0 = time.perf_counter()
    names = allowed_pes(profile, pes)
    check_feasible(profile, names)
    groups = stage_groups(profile, names, replication)
    limits = {"pes": names, "max_stages": max_stages, "replication": replication,
              "dla_fallback": dla_fallback}
    prefix = _Prefix(_fallback_view(profile, names) if dla_fallback else profile, names)
    index = CostIndex(profile)
    # any order's greedy fill succeeds at the sum of the slowest costs (slowed by every PE
    # contending, two overheads per PE and the host's work), so that bounds the search
    slow = max(profile.factor(p, set(names)) for p in names)
    hi = (max(float(prefix.sum[p][-1]) for p in names) * slow
          + 2 * max(profile.overhead_ms(p) for p in names) + profile.host_ms) \
        * max(len(g) for g in groups) + 1.0
    # Only the best REFINE_TOP priced plans of a pool are refined. The plan balancing gives an
    # order prices at least the least bottleneck at which its greedy fill succeeds (transfers
    # only add), so an order whose fill fails at the REFINE_TOP-th best bottleneck so far cannot
    # enter the refined set and is not balanced further; the beam drops partial plans whose
    # bound passes that bar for the same reason.
    balanced = _Pool(profile, dla_fallback)
    for order in _orders(groups, min(max_stages, len(names)), max_stages):
        spans = _balance(prefix, order, min(hi, balanced.bar()), profile)
        if spans is not None:
            balanced.add(_price(profile, order, spans, index, limits))
    # One pool per beam width, each with the balanced plans: a wider beam is not better on
    # every profile (it ranks by `Rest`'s optimistic prices and may crowd the refined set with
    # plans that refine worse), so the narrow beam's pool always competes too.
    wide = _beam_width(len(profile.layers))
    pools = [balanced.copy() for _ in sorted({4, wide})]
    # the beam prices with one PE set's contention factors; without contention that is one
    # pass, with it one per set (`pe_sets`), since the best plan may leave a contending PE idle
    for subset in pe_sets(profile, names):
        sub_groups = [g for g in groups if set(g) <= set(subset)]
        rest = Rest(profile, subset, sub_groups)
        # Rest prices every PE with the whole set's contention; a plan that leaves some of the
        # set idle costs less, by at most the largest factor, so the bar is widened by that
        slack = max(profile.factor(p, set(subset)) for p in subset)
        for pool, width in zip(pools, sorted({4, wide})):
            for path in interleaved(rest, len(subset), max_stages, width=width,
                                    bar=pool.bar() * slack):
                pool.add(evaluate(profile, stages_from_path(sub_groups, path), "heuristic",
                                  check=False, index=index, **limits))
    if not any(pool.plans or pool.rejected for pool in pools):
        raise PlanError(f"the heuristic found no plan over {', '.join(names)} "
                        f"(a layer no order can place; the optimal planner may still find one)")
    best, refined = None, {}
    for pool in pools:
        for plan in sorted(pool.plans, key=lambda p: p.key())[:REFINE_TOP]:
            key = tuple(plan.stages)
            if key not in refined:
                r = _refine(profile, plan, index, limits, prefix)
                refined[key] = plan if dla_fallback and subgraph_excess(profile, r.stages, True) else r
            if better(refined[key], best):
                best = refined[key]
    if dla_fallback:
        # fallback only widens what is allowed: the strict plan is a candidate too (balancing on
        # the fallback view can miss it)
        try:
            strict = solve(profile, pes=names, replication=replication, max_stages=max_stages)
            if better(strict, best):
                best = strict
        except PlanError:
            pass
    if best is None:
        raise PlanError(f"every plan the heuristic found over {', '.join(names)} holds more DLA "
                        f"subgraphs in one engine than TensorRT builds")
    best = evaluate(profile, best.stages, "heuristic", index=index, **limits)
    best.solve_ms = (time.perf_counter() - t0) * 1e3
    return best
