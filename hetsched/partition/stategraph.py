"""The contract's cost (section 4) unrolled into a layered graph, for the planners that search.

A plan assigns every layer, in order, to a PE group; what one more layer adds to each PE's load
depends only on the group of the stage that is open, the group it runs on, and, for each live
activation tensor (produced and still to be read), the group that produced it (a replicated
consumer's members read from the producer members of their own frames, contract section 4's
S(r), so the whole group matters, not its first PE) and whether the open stage has already paid
to receive it. That triple

    (group of the open stage, ((source group, received?) per live tensor), stages so far)

is a state; the stage count is left to the searches (an arc either extends the open stage or
opens one), which keeps the graph a ninth of the size at the default limit of 8 stages. `build`
enumerates the states reachable before each layer and the arcs between them, each carrying the
per-PE load it adds (a member of a group of k carries 1/k of its time) and the time of the
group's first PE with frame 0's sources (what the contract's latency sums).

The contention factor multiplies a PE's work by a figure that depends on the set U of PEs the
whole plan uses, which no arc can know; `build` takes the factors of one PE set and the planners
solve once per set that changes them (`optimal`). The stage overhead is paid on the arcs that
open a stage, and the host's work outside every stage is the planners' starting load. A path
from the root to the last layer with at most `max_stages` openings is then a plan whose PEs lie
in the set, and its summed arcs are exactly `cost.evaluate`'s loads and latency for plans that
use the whole set (and no less than them for plans that use part of it: contention is >= 0).

Detection networks keep 1-4 tensors live, so a layer has tens to hundreds of states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..profile import Profile
from .cost import cached_transfers, live_tensors, runnable, sources

State = tuple  # (group index or -1 before the first layer, ctx)
HOST = -1      # a live tensor's source group: a graph input comes from the host


@dataclass
class Step:
    """The arcs over one layer, sorted by `src`."""
    src: np.ndarray      # (A,) state index before the layer
    dst: np.ndarray      # (A,) state index after it
    group: np.ndarray    # (A,) group the layer runs on
    opens: np.ndarray    # (A,) 1 where the arc opens a stage, else 0
    inc: np.ndarray      # (A, PEs + 1): load added per PE, then the first PE's time


@dataclass
class StateGraph:
    names: list[str]
    groups: list[tuple[str, ...]]
    states: list[list[State]]    # states[i]: before layer i (states[n]: after the last)
    steps: list[Step]

    def plan_groups(self, arcs: list[int]) -> list[int]:
        """The group of each layer along a path given by one arc index per layer."""
        return [int(step.group[a]) for step, a in zip(self.steps, arcs)]


def mean_in(xfer, src: tuple[str, ...], p: str, k: int, r: int, t: str) -> float:
    """Member r (PE p) of a group of k: the mean transfer of tensor t over S(r) of `src`."""
    members = sources(len(src), k, r)
    return sum(xfer(src[m], p, t) for m in members) / len(members)


def pricing(profile: Profile, names: list[str], groups: list[tuple[str, ...]]):
    """Per PE of `names`, the contention factor when the plan uses every PE of `names`, and per
    group, its members' stage overhead spread over the group (each carries 1/k) with the first
    member's whole overhead last (the latency column)."""
    used = set(names)
    factor = np.array([profile.factor(p, used) for p in names])
    idx = {p: k for k, p in enumerate(names)}
    over = np.zeros((len(groups), len(names) + 1))
    for h, group in enumerate(groups):
        for p in group:
            over[h, idx[p]] = profile.overhead_ms(p) / len(group)
        over[h, -1] = profile.overhead_ms(group[0])
    return factor, over


def build(profile: Profile, names: list[str], groups: list[tuple[str, ...]],
          deadline_check=None) -> StateGraph:
    """The state graph of plans over `names`, priced with the contention factors of that set."""
    layers = profile.layers
    npe = len(names)
    idx = {p: k for k, p in enumerate(names)}
    outputs = set(profile.graph_outputs)
    host = profile.host
    live = live_tensors(profile)
    xfer = cached_transfers(profile)
    factor, over = pricing(profile, names, groups)
    first_factor = [factor[idx[g[0]]] for g in groups]

    def group_of(source: int) -> tuple[str, ...]:
        return (host,) if source == HOST else groups[source]

    readers: dict[str, list[int]] = {}
    for i, layer in enumerate(layers):
        for t in dict.fromkeys(layer.inputs):
            readers.setdefault(t, []).append(i)
    in_rows: dict = {}

    def in_row(source: int, h: int, t: str) -> np.ndarray:
        """What receiving tensor t from group `source` adds when group h runs a layer reading it."""
        key = (source, h, t)
        row = in_rows.get(key)
        if row is None:
            src, group = group_of(source), groups[h]
            k = len(group)
            row = np.zeros(npe + 1)
            for m, p in enumerate(group):
                row[idx[p]] = mean_in(xfer, src, p, k, m, t) * factor[idx[p]] / k
            # the latency column: the first member, with frame 0's producer (a group's first)
            row[npe] = xfer(src[0], group[0], t) * first_factor[h]
            in_rows[key] = row
        return row

    canon: dict = {}

    def canonical(t: str, source: int) -> int:
        """The first source group that no later reader of t can tell apart from `source`: what a
        source changes is only what receiving t costs the groups that can run t's readers, so
        sources with equal such costs make states with equal futures (exact, and fewer states
        where, e.g., only the GPU can run a tensor's reader)."""
        table = canon.get(t)
        if table is None:
            table = canon[t] = {}
            seen: dict = {}
            for cand in [HOST, *range(len(groups))]:
                sig = tuple(float(x) for c in readers.get(t, []) for h, g in enumerate(groups)
                            if runnable(profile, g, c) for x in in_row(cand, h, t))
                table[cand] = seen.setdefault(sig, cand)
        return table[source]

    states: list[list[State]] = [[(-1, tuple((canonical(t, HOST), False) for t in live[0]))]]
    steps: list[Step] = []
    for i, layer in enumerate(layers):
        if deadline_check is not None:
            deadline_check(i)
        pos = {t: k for k, t in enumerate(live[i])}
        ins = [pos[t] for t in dict.fromkeys(layer.inputs)]
        outs_here = [t for t in layer.outputs if t in outputs]
        carry = [pos.get(t) for t in live[i + 1]]
        own = {}   # a group's compute and graph outputs for this layer: its row
        for h, group in enumerate(groups):
            if runnable(profile, group, i):
                row = np.zeros(npe + 1)
                for m, p in enumerate(group):
                    c = layer.cost_ms[p] + sum(xfer(p, host, t) for t in outs_here)
                    row[idx[p]] = c * factor[idx[p]] / len(group)
                    if m == 0:
                        row[npe] = c * first_factor[h]
                own[h] = row
        new_sources = {h: [None if q is not None else canonical(t, h)
                           for q, t in zip(carry, live[i + 1])] for h in own}

        ins_t = [(q, live[i][q]) for q in ins]
        read = set(ins)
        # per carried slot: ('keep', q) for a tensor not read here, ('read', q), or a new output
        plan_ctx = [(0, q) if q is not None and q not in read else (1, q) if q is not None
                    else (2, k) for k, q in enumerate(carry)]

        def move(ctx, h, opening):
            """(row, next ctx) for running the layer on group h with live-tensor context ctx."""
            row = own[h]
            paid = [in_row(ctx[q][0], h, t) for q, t in ins_t if not ctx[q][1]]
            if paid or opening:
                row = row + sum(paid) if paid else row.copy()
                if opening:
                    row += over[h]
            fresh = new_sources[h]
            return row, tuple(ctx[q] if kind == 0 else (ctx[q][0], True) if kind == 1 else
                              (fresh[q], True) for kind, q in plan_ctx)

        opened: dict = {}   # an opening depends on the context only, not on the group left
        index: dict[State, int] = {}
        src, dst, grp, opens, inc = [], [], [], [], []
        for u, (g, ctx) in enumerate(states[i]):
            if deadline_check is not None and u % 512 == 511:
                deadline_check(i)     # one layer of a skip-heavy graph can take seconds
            fresh = None
            for h in own:
                if h == g:
                    row, ctx2 = move(ctx, h, False)
                else:
                    if fresh is None:
                        fresh = tuple((p, False) for p, _ in ctx)
                    hit = opened.get((fresh, h))
                    if hit is None:
                        hit = opened[(fresh, h)] = move(fresh, h, True)
                    row, ctx2 = hit
                v = index.setdefault((h, ctx2), len(index))
                src.append(u)
                dst.append(v)
                grp.append(h)
                opens.append(h != g)
                inc.append(row)
        states.append(list(index))
        steps.append(Step(np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64),
                          np.array(grp, dtype=np.int64), np.array(opens, dtype=np.int64),
                          np.array(inc).reshape(len(src), npe + 1)))
    return StateGraph(list(names), list(groups), states, steps)
