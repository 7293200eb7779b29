"""The exactly optimal plan under the contract (section 4): minimum bottleneck, ties to the lower
latency, then to fewer stages.

Why not the textbook dynamic program over (boundary, set of PEs used): the contract lets a PE
serve several non-adjacent stages (JEDI's GPU, DLA0, DLA1, GPU) and charges a tensor that skips
stages by the PE of the stage that produced it, so the cost of a stage depends on more than its
own boundaries and PE. This is instead a dynamic program over layers, one layer at a time, whose
state is

    (group of the open stage, for each live tensor: the first PE of its producer's group and
     whether the open stage already has it)

and whose value is the Pareto frontier of (load of every PE, latency, number of stages) over all
partial plans reaching that state, each partial plan kept with a back-pointer. Appending a layer
either extends the open stage or opens a stage on another group. Because the objective is the
maximum load, a partial plan that is no better than another in every coordinate can never finish
ahead of it, so dropping dominated entries keeps the search exact; so does dropping entries whose
lower bound (their own maximum load, or the work still to place spread evenly over all PEs)
exceeds a known plan's bottleneck (the heuristic's, by default).

A PE leaving a stage may also *retire* (serve no later stage): its load then folds into one
running maximum and leaves the state, and the lower bound uses only the PEs still available, so a
state that retired a PE some later layer needs dies at once.

Complexity: O(n * G * S * F^2) for n layers, G stage groups, S distinct states per layer (G times
the sources of the live tensors, which detection networks keep at 1-4, times the retired sets)
and F the frontier size. F is exponential in the worst case, and in practice too: with PE reuse
the problem is a partition problem (NP-complete once the PE order may vary, Pinar et al., JPDC
2008), and every split of the work that the bound cannot yet refute stays on the frontier.
Measured on the 2-core VM: the 260 random instances of up to 5 layers in the tests take
milliseconds each; the 23-layer tiny-yolov2 profile over cpu0 and cpu1 takes about 55 s (frontiers
of ~1000 entries per state by layer 17). The search therefore stops at `time_limit_s` with a
PlanError rather than run on.
"""

from __future__ import annotations

import time

from ..profile import Profile
from .cost import DEFAULT_MAX_STAGES, Plan, PlanError, Stage, better, evaluate
from .groups import allowed_pes, check_feasible, runnable, stage_groups

_TIE = 1e-9


class _Entry:
    __slots__ = ("loads", "retired_max", "latency", "stages", "parent", "group", "opened")

    def __init__(self, loads, retired_max, latency, stages, parent, group, opened):
        self.loads = loads              # tuple, one per allowed PE (0 for retired PEs)
        self.retired_max = retired_max  # the largest load of a PE that will not be used again
        self.latency = latency
        self.stages = stages
        self.parent = parent            # _Entry before this layer, or None
        self.group = group              # index into groups
        self.opened = opened            # True when this layer starts a new stage


def _dominated(e: _Entry, f: _Entry) -> bool:
    """Is e no better than f in every coordinate?"""
    if f.latency > e.latency or f.stages > e.stages or f.retired_max > e.retired_max:
        return False
    return all(b <= a for a, b in zip(e.loads, f.loads))


def _insert(frontier: list[_Entry], e: _Entry) -> None:
    for f in frontier:
        if _dominated(e, f):
            return
    frontier[:] = [f for f in frontier if not _dominated(f, e)]
    frontier.append(e)


DEFAULT_TIME_LIMIT_S = 10.0


def solve(profile: Profile, *, pes: list[str] | None = None, replication: bool = True,
          max_stages: int = DEFAULT_MAX_STAGES, upper_bound: float | None = None,
          time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> Plan:
    """The optimal plan. `upper_bound` (ms) prunes the search and must be the bottleneck of a
    feasible plan or more; by default the heuristic's plan provides it. Past `time_limit_s` the
    search gives up with a PlanError (it never returns a plan it has not proven optimal)."""
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
    stages = _search(profile, names, groups, max_stages, upper_bound, deadline)
    if stages is None and upper_bound is not None:
        stages = _search(profile, names, groups, max_stages, None, deadline)
    if stages is None:
        raise PlanError(f"no plan with at most {max_stages} stages can run every layer on "
                        f"{', '.join(names)}")
    plan = evaluate(profile, stages, "optimal", pes=names, max_stages=max_stages,
                    replication=replication)
    plan.solve_ms = (time.perf_counter() - t0) * 1e3
    return plan


def _search(profile: Profile, names, groups, max_stages, upper_bound, deadline=None):
    layers = profile.layers
    n = len(layers)
    idx = {p: k for k, p in enumerate(names)}
    npe = len(names)
    host = profile.host
    outputs = set(profile.graph_outputs)
    last_use: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for t in layer.inputs:
            last_use[t] = i
    # live[i]: tensors available before layer i and still needed at or after it
    live = []
    current = list(profile.graph_inputs())
    for i in range(n):
        live.append(tuple(current))
        current = [t for t in current if last_use.get(t, -1) > i]
        current += [t for t in layers[i].outputs if last_use.get(t, -1) > i]
    live.append(tuple(current))
    pos = [{t: k for k, t in enumerate(lv)} for lv in live]
    rem = _remaining_work(profile, names)
    xfer_cache: dict = {}

    def xfer(src, dst, t):
        key = (src, dst, t)
        v = xfer_cache.get(key)
        if v is None:
            v = xfer_cache[key] = profile.transfer_ms(src, dst, profile.tensors[t])
        return v

    bound = float("inf") if upper_bound is None else upper_bound * (1 + 2 * _TIE) + 1e-12
    ctx0 = tuple((host, False) for _ in live[0])
    no_retired = frozenset()
    # frontier: (group, ctx, retired PEs) -> entries; the start state has group -1, no stage
    frontier: dict = {(-1, ctx0, no_retired): [_Entry(tuple([0.0] * npe), 0.0, 0.0, 0, None, -1, False)]}
    for i in range(n):
        layer = layers[i]
        ins = [pos[i][t] for t in dict.fromkeys(layer.inputs)]
        outs_here = [t for t in layer.outputs if t in outputs]
        carry = [pos[i].get(t) for t in live[i + 1]]
        ok = [runnable(profile, g, i) for g in groups]
        nxt: dict = {}
        for (g, ctx, retired), entries in frontier.items():
            if deadline is not None and time.perf_counter() > deadline:
                size = sum(len(v) for v in frontier.values())
                raise PlanError(f"the exact search reached its time limit at layer {i} of {n} "
                                f"({size} partial plans on the frontier); this profile is too "
                                f"large for the exact planner")
            for h, group in enumerate(groups):
                if not ok[h] or retired.intersection(group):
                    continue
                opened = h != g
                if opened and entries[0].stages >= max_stages and all(e.stages >= max_stages for e in entries):
                    continue
                base = ctx if not opened else tuple((src, False) for src, _ in ctx)
                inc = []
                for p in group:
                    c = layer.cost_ms[p]
                    for q in ins:
                        src, have = base[q]
                        if not have:
                            c += xfer(src, p, live[i][q])
                    for t in outs_here:
                        c += xfer(p, host, t)
                    inc.append(c / len(group))
                new_ctx = list(base)
                for q in ins:
                    new_ctx[q] = (new_ctx[q][0], True)
                ctx2 = tuple(new_ctx[q] if q is not None else (group[0], True) for q in carry)
                lat_inc = inc[0] * len(group)
                # PEs leaving with this stage change may retire (never serve again)
                leaving = [p for p in (groups[g] if g >= 0 and opened else ()) if p not in group]
                for r in range(len(leaving) + 1) if leaving else (0,):
                    for gone in _subsets(leaving, r):
                        retired2 = retired.union(gone) if gone else retired
                        key = (h, ctx2, retired2)
                        avail = [k for k, p in enumerate(names) if p not in retired2]
                        rem_here = rem[frozenset(names[k] for k in avail)][i + 1]
                        slot = None
                        for e in entries:
                            stages = e.stages + (1 if opened else 0)
                            if stages > max_stages:
                                continue
                            loads = list(e.loads)
                            for p, c in zip(group, inc):
                                loads[idx[p]] += c
                            rmax = e.retired_max
                            for p in gone:
                                rmax = max(rmax, loads[idx[p]])
                                loads[idx[p]] = 0.0
                            top = max(max(loads), rmax)
                            if top > bound:
                                continue
                            if (sum(loads[k] for k in avail) + rem_here) / len(avail) > bound:
                                continue
                            if slot is None:
                                slot = nxt.setdefault(key, [])
                            _insert(slot, _Entry(tuple(loads), rmax, e.latency + lat_inc, stages,
                                                 e, h, opened))
        frontier = {k: v for k, v in nxt.items() if v}
        if not frontier:
            return None
    best_plan = None
    for entries in frontier.values():
        for e in entries:
            cand = Plan("optimal", _stages(e, groups, n), max(max(e.loads), e.retired_max), 0.0,
                        e.latency, {}, [])
            if better(cand, best_plan):
                best_plan = cand
    return best_plan.stages if best_plan is not None else None


def _subsets(items, r):
    from itertools import combinations
    return combinations(items, r)


def _remaining_work(profile: Profile, names) -> dict:
    """For every set of PEs: suffix sums of each layer's cheapest cost on that set (inf where a
    layer cannot run on any of them, which prunes every state that retired too early)."""
    from itertools import combinations
    layers = profile.layers
    n = len(layers)
    out = {}
    for k in range(1, len(names) + 1):
        for subset in combinations(names, k):
            suffix = [0.0] * (n + 1)
            for i in range(n - 1, -1, -1):
                costs = [layers[i].cost_ms[p] for p in subset if layers[i].cost_ms.get(p) is not None]
                suffix[i] = suffix[i + 1] + (min(costs) if costs else float("inf"))
            out[frozenset(subset)] = suffix
    return out


def _stages(e: _Entry, groups, n: int) -> list[Stage]:
    opened_at = []
    i = n - 1
    while e is not None and e.group >= 0:
        if e.opened:
            opened_at.append((i, groups[e.group]))
        e = e.parent
        i -= 1
    opened_at.reverse()
    stages = []
    for k, (start, group) in enumerate(opened_at):
        end = opened_at[k + 1][0] - 1 if k + 1 < len(opened_at) else n - 1
        stages.append(Stage(tuple(group), start, end))
    return stages


__all__ = ["solve", "better"]
