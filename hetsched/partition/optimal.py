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

Complexity: O(n * G * S * F) for n layers, G stage groups, S distinct states per boundary (G times
(PEs + 1) to the power of the live tensors, which detection networks keep at 1-4) and F the
frontier size, exponential in the worst case; in practice the bound keeps F small, and 300 layers
over 4-5 PEs solve in seconds (see scripts/partition_bench.py).
"""

from __future__ import annotations

import time

from ..profile import Profile
from .cost import DEFAULT_MAX_STAGES, Plan, Stage, better, evaluate
from .groups import allowed_pes, check_feasible, runnable, stage_groups

_TIE = 1e-9


class _Entry:
    __slots__ = ("loads", "latency", "stages", "parent", "group", "opened")

    def __init__(self, loads, latency, stages, parent, group, opened):
        self.loads = loads          # tuple, one per allowed PE
        self.latency = latency
        self.stages = stages
        self.parent = parent        # _Entry before this layer, or None
        self.group = group          # index into groups
        self.opened = opened        # True when this layer starts a new stage


def _dominated(e: _Entry, f: _Entry) -> bool:
    """Is e no better than f in every coordinate?"""
    if f.latency > e.latency or f.stages > e.stages:
        return False
    return all(b <= a for a, b in zip(e.loads, f.loads))


def _insert(frontier: list[_Entry], e: _Entry) -> None:
    for f in frontier:
        if _dominated(e, f):
            return
    frontier[:] = [f for f in frontier if not _dominated(f, e)]
    frontier.append(e)


def solve(profile: Profile, *, pes: list[str] | None = None, replication: bool = True,
          max_stages: int = DEFAULT_MAX_STAGES, upper_bound: float | None = None) -> Plan:
    """The optimal plan. `upper_bound` (ms) prunes the search; it must be the bottleneck of a
    feasible plan (or larger), else the search may find nothing and it is retried without."""
    t0 = time.perf_counter()
    names = allowed_pes(profile, pes)
    check_feasible(profile, names)
    groups = stage_groups(profile, names, replication)
    plan = _search(profile, names, groups, max_stages, upper_bound)
    if plan is None and upper_bound is not None:
        plan = _search(profile, names, groups, max_stages, None)
    if plan is None:
        from .cost import PlanError
        raise PlanError(f"no plan with at most {max_stages} stages can run every layer on "
                        f"{', '.join(names)}")
    plan = evaluate(profile, plan, "optimal", pes=names, max_stages=max_stages, replication=replication)
    plan.solve_ms = (time.perf_counter() - t0) * 1e3
    return plan


def _search(profile: Profile, names, groups, max_stages, upper_bound):
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
    current = [t for t in profile.graph_inputs()]
    for i in range(n):
        live.append(tuple(current))
        current = [t for t in current if last_use.get(t, -1) > i]
        current += [t for t in layers[i].outputs if last_use.get(t, -1) > i]
    live.append(tuple(current))
    pos = [{t: k for k, t in enumerate(lv)} for lv in live]
    # work still to place, at best
    rem = [0.0] * (n + 1)
    for i in range(n - 1, -1, -1):
        rem[i] = rem[i + 1] + min(layers[i].cost_ms[p] for p in names if layers[i].cost_ms.get(p) is not None)
    xfer_cache: dict = {}

    def xfer(src, dst, t):
        key = (src, dst, t)
        v = xfer_cache.get(key)
        if v is None:
            v = xfer_cache[key] = profile.transfer_ms(src, dst, profile.tensors[t])
        return v

    bound = float("inf") if upper_bound is None else upper_bound * (1 + 2 * _TIE) + 1e-12
    ctx0 = tuple((host, False) for _ in live[0])
    # frontier: (group, ctx) -> entries; the virtual start state has group -1 and no stage
    frontier: dict = {(-1, ctx0): [_Entry(tuple([0.0] * npe), 0.0, 0, None, -1, False)]}
    for i in range(n):
        layer = layers[i]
        ins = [pos[i][t] for t in dict.fromkeys(layer.inputs)]
        outs_here = [t for t in layer.outputs if t in outputs]
        nxt_live = live[i + 1]
        carry = [(pos[i].get(t), t) for t in nxt_live]
        ok = [runnable(profile, g, i) for g in groups]
        nxt: dict = {}
        for (g, ctx), entries in frontier.items():
            for h, group in enumerate(groups):
                if not ok[h]:
                    continue
                opened = h != g
                base = ctx if not opened else tuple((src, False) for src, _ in ctx)
                k = len(group)
                inc = []
                for p in group:
                    c = layer.cost_ms[p]
                    for q in ins:
                        src, have = base[q]
                        if not have:
                            c += xfer(src, p, live[i][q])
                    for t in outs_here:
                        c += xfer(p, host, t)
                    inc.append(c)
                new_ctx = list(base)
                for q in ins:
                    new_ctx[q] = (new_ctx[q][0], True)
                first = group[0]
                ctx2 = tuple(new_ctx[q] if q is not None else (first, True) for q, _t in carry)
                key = (h, ctx2)
                slot = nxt.get(key)
                if slot is None:
                    slot = nxt[key] = []
                lat_inc = inc[0]
                for e in entries:
                    stages = e.stages + (1 if opened else 0)
                    if stages > max_stages:
                        continue
                    loads = list(e.loads)
                    for p, c in zip(group, inc):
                        loads[idx[p]] += c / k
                    top = max(loads)
                    if top > bound or (sum(loads) + rem[i + 1]) / npe > bound:
                        continue
                    _insert(slot, _Entry(tuple(loads), e.latency + lat_inc, stages, e, h, opened))
        frontier = {k: v for k, v in nxt.items() if v}
        if not frontier:
            return None
    best = None
    best_plan = None
    for (g, _ctx), entries in frontier.items():
        for e in entries:
            stages = _stages(e, groups, n)
            cand = Plan("optimal", stages, max(e.loads), 0.0, e.latency, {}, [])
            if better(cand, best_plan):
                best, best_plan = e, cand
    return best_plan.stages if best is not None else None


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
