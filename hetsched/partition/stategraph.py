"""The contract's cost (section 4) unrolled into a layered graph, for the planners that search.

A plan assigns every layer, in order, to a PE group; what one more layer adds to each PE's load
depends only on the group of the stage that is open, the group it runs on, and, for each live
activation tensor (produced and still to be read), the first PE of the group that produced it and
whether the open stage has already paid to receive it. That triple

    (group of the open stage, ((source PE, received?) per live tensor), stages so far)

is a state; the stage count is left to the searches (an arc either extends the open stage or
opens one), which keeps the graph a ninth of the size at the default limit of 8 stages. `build`
enumerates the states reachable before each layer and the arcs between them, each carrying the
per-PE load it adds (a member of a group of k carries 1/k of its time) and the time of the
group's first PE (what the contract's latency sums). A path from the root to the last layer
with at most `max_stages` openings is a plan, and its summed arcs are exactly
`cost.evaluate`'s loads and latency.

Detection networks keep 1-4 tensors live, so a layer has tens to hundreds of states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..profile import Profile
from .groups import runnable

State = tuple  # (group index or -1 before the first layer, ctx)


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


def build(profile: Profile, names: list[str], groups: list[tuple[str, ...]],
          deadline_check=None) -> StateGraph:
    layers = profile.layers
    npe = len(names)
    idx = {p: k for k, p in enumerate(names)}
    outputs = set(profile.graph_outputs)
    host = profile.host
    live = live_tensors(profile)
    xfer = cached_transfers(profile)

    states: list[list[State]] = [[(-1, tuple((host, False) for _ in live[0]))]]
    steps: list[Step] = []
    for i, layer in enumerate(layers):
        if deadline_check is not None:
            deadline_check(i)
        pos = {t: k for k, t in enumerate(live[i])}
        ins = [pos[t] for t in dict.fromkeys(layer.inputs)]
        outs_here = [t for t in layer.outputs if t in outputs]
        carry = [pos.get(t) for t in live[i + 1]]
        own = {}   # a group's compute and graph outputs for this layer, per member
        for h, group in enumerate(groups):
            if runnable(profile, group, i):
                own[h] = [layer.cost_ms[p] + sum(xfer(p, host, t) for t in outs_here) for p in group]

        def move(ctx, h):
            """(row, next ctx) for running the layer on group h with live-tensor context ctx."""
            group = groups[h]
            row = np.zeros(npe + 1)
            for m, p in enumerate(group):
                c = own[h][m]
                for q in ins:
                    source, have = ctx[q]
                    if not have:
                        c += xfer(source, p, live[i][q])
                row[idx[p]] += c / len(group)
                if m == 0:
                    row[npe] = c
            new_ctx = list(ctx)
            for q in ins:
                new_ctx[q] = (new_ctx[q][0], True)
            return row, tuple(new_ctx[q] if q is not None else (group[0], True) for q in carry)

        opened: dict = {}   # an opening depends on the context only, not on the group left
        index: dict[State, int] = {}
        src, dst, grp, opens, inc = [], [], [], [], []
        for u, (g, ctx) in enumerate(states[i]):
            fresh = None
            for h in own:
                if h == g:
                    row, ctx2 = move(ctx, h)
                else:
                    if fresh is None:
                        fresh = tuple((p, False) for p, _ in ctx)
                    hit = opened.get((fresh, h))
                    if hit is None:
                        hit = opened[(fresh, h)] = move(fresh, h)
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
