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

Detection networks keep 1-4 tensors live, so a layer has tens to hundreds of states; skip-heavy
graphs keep 6-10 and reach 10^5-10^7. A state is therefore a row of small integers and a layer's
arcs are made for all its states at once with numpy, the new states numbered in the order a
walk over the arcs meets them (the same graph, arc for arc, as the loop over states this
replaced, which took 21 s on a 60-layer skip-heavy graph of 3 M arcs and 0.8 s now; 5.7 s ->
0.85 s on a 300 x 5 synthetic one; 2-core VM, 2026-12-02).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..profile import Profile
from .cost import cached_transfers, live_tensors, runnable, sources

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
    # states[i]: before layer i (states[n]: after the last), one int16 row each: the open
    # stage's group (-1 before the first layer), each live tensor's source group (-1: the
    # host), each one's received flag
    states: list[np.ndarray]
    steps: list[Step]


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


class TooLarge(Exception):
    """The graph would pass `max_arcs` at `layer` (its states there would take `arcs` arcs)."""

    def __init__(self, layer: int, arcs: int):
        super().__init__(f"the state graph would pass its size limit at layer {layer} "
                         f"({arcs:,} arcs in that layer)")
        self.layer, self.arcs = layer, arcs


class Arcs:
    """What one more layer does to any state over `names`, priced with the contention factors of
    that set. `build` applies it to every state a layer can be in; `Walk` only to the states a
    search's partial plans reach, where the whole graph is too large (on skip-heavy 60 x 4 a
    sweep bounded by the optimum met about 3,000 states a layer at most where the whole graph
    holds 670,000)."""

    def __init__(self, profile: Profile, names: list[str], groups: list[tuple[str, ...]],
                 free: frozenset = frozenset()):
        """`free`: tensors whose transfers are priced at 0 (a relaxation: `relaxation.py`)."""
        self.profile, self.names, self.groups = profile, list(names), list(groups)
        self.free = free
        self.npe = npe = len(names)
        self.ng = ng = len(groups)
        if ng >= np.iinfo(np.int16).max:
            raise ValueError(f"{ng} stage groups: more than a state row's int16 can number")
        self.idx = idx = {p: k for k, p in enumerate(names)}
        self.outputs = set(profile.graph_outputs)
        self.live = live_tensors(profile)
        self.xfer = cached_transfers(profile)
        self.factor, self.over = pricing(profile, names, groups)
        self.first_factor = [self.factor[idx[g[0]]] for g in groups]
        self.readers: dict[str, list[int]] = {}
        for i, layer in enumerate(profile.layers):
            for t in dict.fromkeys(layer.inputs):
                self.readers.setdefault(t, []).append(i)
        self._in_rows: dict = {}
        self._canon: dict = {}
        self._layer: dict = {}

    def _group_of(self, source: int) -> tuple[str, ...]:
        return (self.profile.host,) if source == HOST else self.groups[source]

    def _in_row(self, source: int, h: int, t: str) -> np.ndarray:
        """What receiving tensor t from group `source` adds when group h runs a layer reading it."""
        key = (source, h, t)
        row = self._in_rows.get(key)
        if row is None:
            src, group, idx, npe = self._group_of(source), self.groups[h], self.idx, self.npe
            k = len(group)
            row = np.zeros(npe + 1)
            if t in self.free:
                self._in_rows[key] = row
                return row
            for m, p in enumerate(group):
                row[idx[p]] = mean_in(self.xfer, src, p, k, m, t) * self.factor[idx[p]] / k
            # the latency column: the first member, with frame 0's producer (a group's first)
            row[npe] = self.xfer(src[0], group[0], t) * self.first_factor[h]
            self._in_rows[key] = row
        return row

    def canonical(self, t: str, source: int) -> int:
        """The first source group that no later reader of t can tell apart from `source`: what a
        source changes is only what receiving t costs the groups that can run t's readers, so
        sources with equal such costs make states with equal futures (exact, and fewer states
        where, e.g., only the GPU can run a tensor's reader)."""
        table = self._canon.get(t)
        if table is None:
            table = self._canon[t] = {}
            seen: dict = {}
            for cand in [HOST, *range(self.ng)]:
                sig = tuple(float(x) for c in self.readers.get(t, [])
                            for h, g in enumerate(self.groups)
                            if runnable(self.profile, g, c) for x in self._in_row(cand, h, t))
                table[cand] = seen.setdefault(sig, cand)
        return table[source]

    def root(self) -> np.ndarray:
        """The one state before the first layer."""
        live = self.live[0]
        return np.array([[-1] + [self.canonical(t, HOST) for t in live] + [0] * len(live)],
                        dtype=np.int16)

    def _prepared(self, i: int):
        """Layer i's tables: the groups that can run it, what it costs each, what receiving
        each input costs, and where each tensor live after it comes from."""
        tables = self._layer.get(i)
        if tables is not None:
            return tables
        profile, live, npe, ng, idx = self.profile, self.live, self.npe, self.ng, self.idx
        layer, host, xfer = profile.layers[i], profile.host, self.xfer
        pos = {t: k for k, t in enumerate(live[i])}
        ins = [pos[t] for t in dict.fromkeys(layer.inputs)]
        outs_here = [t for t in layer.outputs if t in self.outputs]
        carry = [pos.get(t) for t in live[i + 1]]
        hs = [h for h, group in enumerate(self.groups) if runnable(profile, group, i)]
        own = np.zeros((ng, npe + 1))    # a group's compute and graph outputs for this layer
        for h in hs:
            for m, p in enumerate(self.groups[h]):
                c = layer.cost_ms[p] + sum(xfer(p, host, t) for t in outs_here)
                own[h, idx[p]] = c * self.factor[idx[p]] / len(self.groups[h])
                if m == 0:
                    own[h, npe] = c * self.first_factor[h]
        # what receiving each input costs, per (its source group + 1, the group reading it)
        receive = {q: np.array([[self._in_row(s, h, live[i][q]) if h in hs else np.zeros(npe + 1)
                                 for h in range(ng)] for s in range(HOST, ng)]) for q in ins}
        fresh = np.array([[0 if q is not None else self.canonical(t, h) for h in range(ng)]
                          for q, t in zip(carry, live[i + 1])], dtype=np.int64).reshape(-1, ng)
        tables = (len(live[i]), ins, carry, np.array(hs, dtype=np.int64), own, receive, fresh)
        self._layer[i] = tables
        return tables

    def groups_at(self, i: int) -> int:
        """How many arcs leave each state before layer i (the groups that can run it)."""
        return len(self._prepared(i)[3])

    def at(self, i: int, block: np.ndarray, base: int = 0):
        """The arcs over layer i from the states `block` (rows; numbered from `base`): per arc,
        its state, group, whether it opens a stage, what it adds, and the state it reaches (a
        row, not yet numbered). Arcs come by state, then by group."""
        nl, ins, carry, hs_arr, own, receive, fresh = self._prepared(i)
        npe = self.npe
        nh = len(hs_arr)
        u = np.repeat(np.arange(base, base + len(block)), nh)
        h = np.tile(hs_arr, len(block))
        ctx = np.repeat(block, nh, axis=0)
        opens = h != ctx[:, 0]
        got = ctx[:, 1 + nl:] * ~opens[:, None]      # an opening has received nothing yet
        paid = np.zeros((len(u), npe + 1))
        for q in ins:
            paid += receive[q][ctx[:, 1 + q] + 1, h] * (got[:, q] == 0)[:, None]
        inc = own[h] + paid
        inc += self.over[h] * opens[:, None]
        nxt = np.empty((len(u), 1 + 2 * len(carry)), dtype=np.int16)
        nxt[:, 0] = h
        for k, q in enumerate(carry):
            if q is None:                  # made here: from the group that runs the layer
                nxt[:, 1 + k], nxt[:, 1 + len(carry) + k] = fresh[k][h], 1
            else:
                nxt[:, 1 + k] = ctx[:, 1 + q]
                nxt[:, 1 + len(carry) + k] = 1 if q in ins else got[:, q]
        return u, h, opens, inc, nxt


class Whole:
    """A built graph as the searches walk it: `step(i, reached)` is layer i's arcs (all of them;
    `reached`, the states the search holds plans in, is not needed) and `rows(i)` the number of
    states before layer i."""

    def __init__(self, graph: StateGraph):
        self.graph = graph
        self.names, self.groups = graph.names, graph.groups
        self.n = len(graph.steps)

    def start(self) -> None:
        pass

    def rows(self, i: int) -> int:
        return len(self.graph.states[i])

    def step(self, i: int, reached: np.ndarray) -> Step:
        return self.graph.steps[i]


class Walk:
    """The state graph made as a search walks it: layer i's arcs only from the states `reached`
    (those the search still holds partial plans in), its states after numbered afresh on each
    walk. The same arcs, priced the same way, as `build` makes from those states; a walk holds
    what its plans reach instead of every state a layer can be in, so it needs a bound that
    does not index the whole graph (`relaxation.Projected`, `completion.Relaxed`)."""

    def __init__(self, arcs: Arcs):
        self.arcs = arcs
        self.names, self.groups = arcs.names, arcs.groups
        self.n = len(arcs.profile.layers)
        self.states: list[np.ndarray] = []
        self.start()

    def start(self) -> None:
        self.states = [self.arcs.root()]

    def rows(self, i: int) -> int:
        return len(self.states[i])

    def open_group(self, i: int, states: np.ndarray) -> np.ndarray:
        """The group of the stage open in each of `states` before layer i (-1: none yet)."""
        return self.states[i][states, 0]

    def step(self, i: int, reached: np.ndarray) -> Step:
        del self.states[i + 1:]
        u, h, opens, inc, nxt = self.arcs.at(i, self.states[i][reached], 0)
        after, dst = _number(nxt, self.arcs.ng)
        self.states.append(after)
        return Step(reached[u], dst, h, opens.astype(np.int64), inc)


def build(profile: Profile, names: list[str], groups: list[tuple[str, ...]],
          deadline_check=None, max_arcs: int | None = None,
          arcs: Arcs | None = None) -> StateGraph:
    """The state graph of plans over `names`, priced with the contention factors of that set
    (by `arcs`, where given: a relaxed pricing).
    `deadline_check(layer, seconds ahead=0)` is called between pieces of work. Raises `TooLarge`
    before it would hold more than `max_arcs` arcs: the arcs of one layer are made at once, and
    a skip-heavy 100-layer graph reached 30 M in one layer (7 GB, and a minute numbering its
    states, with no point to stop at inside)."""
    arcs = arcs or Arcs(profile, names, groups)
    npe, ng = arcs.npe, arcs.ng
    total = 0
    # seconds per arc that joining a layer's pieces and numbering its states may take (neither
    # can stop half-way): the most seen on this graph, and at least what the 2-core VM took
    # when fresh memory was slow (0.65 us a row to number 1.5 M rows of skip-heavy 100 x 4,
    # 2026-12-06; 0.03-0.1 us at other times); a sort's cost per row grows with the rows, so
    # the guess is doubled
    rate = 7e-7
    states: list[np.ndarray] = [arcs.root()]
    steps: list[Step] = []
    for i in range(len(profile.layers)):
        nh = arcs.groups_at(i)
        cur = states[i]
        if deadline_check is not None:
            # a layer's arcs are known in number before any is made: give up now rather than
            # make millions of arcs that could not be numbered in the time left
            deadline_check(i, 2 * rate * len(cur) * nh)
        total += len(cur) * nh
        if max_arcs is not None and total > max_arcs:
            raise TooLarge(i, len(cur) * nh)
        chunk = max(1, 16384 // max(1, nh))   # states per piece: a deadline check each
        parts = []
        for a in range(0, len(cur), chunk):
            if deadline_check is not None and a:
                deadline_check(i)     # one layer of a skip-heavy graph has millions of arcs
            parts.append(arcs.at(i, cur[a:a + chunk], a))
        if not parts:      # no state reaches this layer (a PE set that cannot run one)
            parts = [arcs.at(i, cur, 0)]
        if deadline_check is not None:
            deadline_check(i, 2 * rate * sum(len(p[0]) for p in parts))
        began = time.perf_counter()
        u, h, opens, inc, nxt = (np.concatenate(x) for x in zip(*parts))
        del parts
        after, dst = _number(nxt, ng)
        if len(nxt) >= 10_000:
            rate = max(rate, (time.perf_counter() - began) / len(nxt))
        states.append(after)
        steps.append(Step(u, dst, h, opens.astype(np.int64), inc))
    return StateGraph(list(names), list(groups), states, steps)


def row_keys(rows: np.ndarray, ng: int) -> np.ndarray:
    """One sortable key per state row, equal only for equal rows."""
    live = rows.shape[1] // 2      # columns: open group, then sources, then flags
    radix = [ng + 1] * (1 + live) + [2] * live
    if np.log2(radix).sum() < 62:
        keys = np.zeros(len(rows), dtype=np.int64)
        for k, col in enumerate(np.ascontiguousarray(rows.T, dtype=np.int64)):
            keys *= radix[k]
            keys += col + (k <= live)          # groups and sources start at -1
        return keys
    # too many live tensors for one integer: compare the bytes
    row_bytes = np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))
    return np.ascontiguousarray(rows).view(row_bytes).ravel()


def _number(rows: np.ndarray, ng: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows in order of first appearance, and each row's index among them (so the
    states after a layer are numbered as a walk over the arcs meets them)."""
    if not len(rows):
        return rows, np.zeros(0, dtype=np.int64)
    keys = row_keys(rows, ng)
    order = np.argsort(keys, kind="stable")   # equal rows keep the order they came in
    ordered = keys[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    firsts = order[new]                       # each distinct row's first appearance
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    by_first = np.argsort(firsts)
    rank = np.empty(len(firsts), dtype=np.int64)
    rank[by_first] = np.arange(len(firsts))
    return rows[firsts[by_first]], rank[inverse]
