"""A bound for the exact search where the whole state graph is too large: the state graph of a
relaxed problem in which only a few skipping tensors keep their transfer costs.

A state of `stategraph` holds the producing group of every live tensor; with 6-10 tensors live
(DenseNet, U-Net, CSP connectivity) nearly every assignment is reachable and the graph reaches
10^7 arcs a layer. The search itself then walks only the states its plans reach
(`stategraph.Walk`), but its pruning needs a bound on what the rest of a plan must cost from any
state it meets. `Rest` (completion.py) gives one that counts every skipping tensor as free, and
on skip-heavy profiles it is weak enough that the sweeps keep far more partial plans.

Here the transfers of all but the `k` largest skipping tensors live at any layer are priced at 0
(`Arcs(free=...)`). A free tensor's source changes no cost, so `stategraph`'s canonical sources
merge them all, and the relaxed graph keeps only the tracked tensors' sources: a state-space
relaxation in the sense of Christofides, Mingozzi and Toth (Networks 1981), and the bound tables
over it (`completion.to_go`) are exact for it. Every plan's arcs cost no more in the relaxed
graph than in the true one, so those tables bound the true completions from below. A walked
state maps to its relaxed state by mapping each source to its relaxed canonical source (the
received flags and the open group are the same in both: they do not depend on costs).

`k` grows from 1 while the relaxed graph stays under `max_arcs` and its share of the time; each
graph built is O(n * S_k * G * D) as in `stategraph`, with S_k states for k tracked tensors.
"""

from __future__ import annotations

import time

import numpy as np

from ..profile import Profile
from . import completion, stategraph
from .cost import live_tensors

MAX_TRACKED = 6


def skipping(profile: Profile) -> list[str]:
    """Tensors live before more than one layer, largest first (ties by name)."""
    spans: dict[str, int] = {}
    for live in live_tensors(profile):
        for t in live:
            spans[t] = spans.get(t, 0) + 1
    return sorted((t for t, c in spans.items() if c > 1),
                  key=lambda t: (-profile.tensors[t], t))


def tracked(profile: Profile, k: int) -> set[str]:
    """The largest skipping tensors, greedily, such that at most `k` are live before any layer."""
    live = live_tensors(profile)
    where: dict[str, list[int]] = {}
    for i, ts in enumerate(live):
        for t in ts:
            where.setdefault(t, []).append(i)
    count = np.zeros(len(live), dtype=np.int64)
    keep: set[str] = set()
    for t in skipping(profile):
        at = where[t]
        if (count[at] < k).all():
            count[at] += 1
            keep.add(t)
    return keep


class Projected:
    """Bound tables of a relaxed graph looked up by the states of a walk (`at(i, states,
    stages)`, as `completion.ToGo`)."""

    def __init__(self, walk: stategraph.Walk, relaxed: stategraph.StateGraph,
                 arcs: stategraph.Arcs, tables: list[np.ndarray]):
        self.walk, self.relaxed, self.arcs = walk, relaxed, arcs
        self.tables = tables        # per layer: (relaxed states, stages[, weights]) float32
        self.ng = len(relaxed.groups)
        self._layer: dict = {}
        self._seen: dict = {}

    def raise_to(self, small: np.ndarray, deadline_check=None) -> None:
        """Raise each entry to `Rest`'s bound (`small`: layers+1 x groups+1 x stages+2[ x
        weights]) where that is higher: `Rest` prices the transfer of the previous layer's
        outputs into a new stage, which a free tensor here skips. It depends only on the open
        group and the stage count, which a relaxed state keeps, so it is taken once per relaxed
        state, in place. Rounded to float32 a value rises by at most 2^-24 of itself, which the
        margin undoes, except a subnormal one: those are taken as 0 (as `completion.to_go`'s
        arc costs), which only lowers them. A layer left unraised is still a bound."""
        tiny = np.finfo(np.float32).tiny
        for i, table in enumerate(self.tables):
            if deadline_check is not None:
                deadline_check(i)
            g = self.relaxed.states[i][:, 0].astype(np.int64)
            rest = small[i][np.where(g < 0, self.ng, g)][:, :table.shape[1]].astype(np.float32)
            rest[rest < tiny] = 0.0
            np.maximum(table, rest, out=table)

    def _lookup(self, i: int):
        """Layer i's relaxed state keys sorted, their order, and per live tensor the relaxed
        canonical source of each true one (index: source + 1)."""
        got = self._layer.get(i)
        if got is None:
            keys = stategraph.row_keys(self.relaxed.states[i], self.ng)
            order = np.argsort(keys, kind="stable")
            canon = [np.array([self.arcs.canonical(t, s) for s in range(-1, self.ng)],
                              dtype=np.int16) for t in self.arcs.live[i]]
            got = self._layer[i] = (keys[order], order, canon)
        return got

    def index(self, i: int, states) -> np.ndarray:
        """The relaxed state of each of the walk's `states` before layer i."""
        mine = self.walk.states[i]
        seen = self._seen.get(i)
        if seen is None or seen[0] is not mine:
            # once per layer of a walk: the relaxed state of every state it made there
            keys, order, canon = self._lookup(i)
            rows = np.array(mine)
            for k, table in enumerate(canon):
                rows[:, 1 + k] = table[rows[:, 1 + k].astype(np.int64) + 1]
            want = stategraph.row_keys(rows, self.ng)
            pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
            if not (keys[pos] == want).all():
                raise AssertionError(f"a walked state before layer {i} has no relaxed state")
            seen = self._seen[i] = (mine, order[pos])
        return seen[1][states]

    def margin(self, i: int) -> float:
        return completion.float32_margin(len(self.tables), i)

    def at(self, i: int, states, stages) -> np.ndarray:
        """float64, with the float32 tables' margin (as `completion.ToGo.at`)."""
        return self.tables[i][self.index(i, states), stages] * np.float64(self.margin(i))


def bound(profile: Profile, walk: stategraph.Walk, rest: completion.Rest, weights: np.ndarray,
          max_stages: int, max_arcs: int, until: float | None,
          deadline_check=None) -> Projected | None:
    """The tightest relaxed bound that is built by `until` (perf_counter seconds) within
    `max_arcs`, tracking the most tensors that fit; None if not even one does."""
    names, groups = walk.names, walk.groups
    best, last = None, None

    def check(i: int, ahead: float = 0.0) -> None:
        if until is not None and time.perf_counter() + ahead > until:
            raise stategraph.TooLarge(i, 0)
        if deadline_check is not None:
            deadline_check(i)

    for k in range(1, MAX_TRACKED + 1):
        keep = tracked(profile, k)
        free = frozenset(skipping(profile)) - keep
        if keep == last or not free:     # nothing new, or the whole graph (already too large)
            break
        last = keep
        began = time.perf_counter()
        arcs = stategraph.Arcs(profile, names, groups, free)
        try:
            graph = stategraph.build(profile, names, groups, check, max_arcs=max_arcs, arcs=arcs)
            tables = completion.to_go(graph, weights, max_stages, check)
        except stategraph.TooLarge:
            break
        best = Projected(walk, graph, arcs, tables.tables)
        took = time.perf_counter() - began
        # the next k's graph is several times larger: stop if it could not be done in time
        if until is not None and time.perf_counter() + 4 * took > until:
            break
    if best is not None:
        try:
            best.raise_to(completion.Relaxed.load(walk, rest, weights, max_stages).table, check)
        except stategraph.TooLarge:
            pass
    return best
