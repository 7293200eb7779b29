"""Lower bounds on what the rest of a plan must still cost, for the exact planner's pruning.

For weights w >= 0 summing to 1 and any plan, max_p load(p) >= sum_p w_p load(p). The weighted
sum is additive over layers, so its least value over every way to place layers i.. is a shortest
path over (group of layer i-1, stages so far): exact about contiguity, the stage limit and the
layers a PE cannot run, and a lower bound on transfers (a stage's input that skips from an older
stage is counted as free; its source is not part of this small state). A partial plan with loads
L whose last layer ran on group g after s stages can therefore end no lower than
max over w of (w . L + V_w[g, s]): the Lagrangian bound of the per-PE capacity constraints.
Which weights matter depends on the partial plan (one that overloads the GPU is refuted by weight
on the GPU), so the batch mixes a grid over the simplex with weights tuned at the root.

`Rest` prices that small state, cheap enough to tune the weights over hundreds of candidates.
The search then uses `to_go` over the full state graph (`stategraph`), which also knows where
every skipping tensor came from, with the few weights that matter: the best at the root, a coarse
grid, and each single PE (the plain "largest load" bound plus what that PE must still do).
"""

from __future__ import annotations

import numpy as np

from ..profile import Profile
from .cost import sources
from .stategraph import StateGraph, Walk, pricing

_ARCS = 1024     # arcs per chunk of the backward recursions (a chunk's rows stay in cache)


def simplex_grid(d: int, m: int) -> np.ndarray:
    """Every weight vector with entries in {0, 1/m, ..., 1} summing to 1."""
    pts: list[list[int]] = []

    def rec(prefix: list[int], left: int, k: int) -> None:
        if k == 1:
            pts.append(prefix + [left])
            return
        for a in range(left + 1):
            rec(prefix + [a], left - a, k - 1)

    rec([], m, d)
    return np.array(pts, dtype=float) / m


class Rest:
    """Per layer, what running it on each group adds (loads per PE, then the first PE's time):
    `extend[i]` (groups x PEs+1) within the open stage, `open[i]` (groups+1 x groups x PEs+1)
    from a stage on group g (row `len(groups)`: before the first layer) into a new one. Priced
    with the contention factors of the whole set `names` and the stage overhead on openings,
    as `stategraph.build`; `start` is the load every plan starts from (the host's work)."""

    def __init__(self, profile: Profile, names: list[str], groups: list[tuple[str, ...]]):
        layers = profile.layers
        n, npe, ng = len(layers), len(names), len(groups)
        idx = {p: k for k, p in enumerate(names)}
        outputs = set(profile.graph_outputs)
        producer = {t: i for i, layer in enumerate(layers) for t in layer.outputs}
        host = profile.host
        self.groups = groups
        self.start, self.floor = start_load(profile, names)
        factor, over = pricing(profile, names, groups)
        # per layer and PE: compute plus the graph outputs sent to the host (nan: cannot run),
        # what graph inputs cost to receive from the host, and the pair matrix of what the
        # previous layer's outputs cost to send (src PE x dst PE); every group is a mix of these
        ends = names + ([host] if host not in idx else [])
        lat, per_mb = _link_table(profile, ends)
        h = ends.index(host)
        own_pe = np.full((n, npe), np.nan)
        host_in = np.zeros((n, npe))
        prev = np.zeros((n, npe, npe))
        for i, layer in enumerate(layers):
            sent = np.zeros(npe)
            for t in layer.outputs:
                if t in outputs:
                    sent += lat[:npe, h] + per_mb[:npe, h] * profile.tensors[t] / 1e6
            for p in names:
                c = layer.cost_ms.get(p)
                if c is not None:
                    own_pe[i, idx[p]] = c + sent[idx[p]]
            for t in dict.fromkeys(layer.inputs):
                j = producer.get(t)
                if j is None:
                    host_in[i] += lat[h, :npe] + per_mb[h, :npe] * profile.tensors[t] / 1e6
                elif j == i - 1:
                    prev[i] += lat[:npe, :npe] + per_mb[:npe, :npe] * profile.tensors[t] / 1e6
        # member weights (1/k on the group's PEs, factor applied), the first member, and for a
        # stage on group g handing over to h the mean over S(r) as weights on (src, dst) pairs
        member = np.zeros((ng, npe))
        first = np.zeros((ng, npe))
        pair = np.zeros((ng, ng, npe, npe))
        for h, group in enumerate(groups):
            k = len(group)
            for m, p in enumerate(group):
                member[h, idx[p]] = factor[idx[p]] / k
                for g, src in enumerate(groups):
                    members = sources(len(src), k, m)
                    for q in members:
                        pair[g, h, idx[src[q]], idx[p]] += 1.0 / len(members)
            first[h, idx[group[0]]] = factor[idx[group[0]]]
        ok = ~np.isnan(own_pe)
        run = ~(~ok[:, None, :] & (member > 0)[None]).any(axis=2)                  # n x ng
        own = np.nan_to_num(own_pe)
        ext = np.concatenate([member[None] * own[:, None, :],
                              (own @ first.T)[:, :, None]], axis=2)               # n x ng x npe+1
        # the transfer a stage on h pays for its inputs: from the host (any g) and from the
        # previous layer's group g (rows g < ng; row ng, before the first layer, pays nothing)
        recv = np.zeros((n, ng + 1, ng, npe + 1))
        recv[:, :, :, :npe] += (member[None] * host_in[:, None, :])[:, None]
        recv[:, :, :, npe] += (host_in @ first.T)[:, None, :]
        moved = np.einsum("ghab,iab->ighb", pair, prev)                           # n x g x h x dst
        recv[:, :ng, :, :npe] += moved * member[None, None]
        firsts = [idx[g[0]] for g in groups]
        recv[:, :ng, :, npe] += prev[:, firsts][:, :, firsts] * factor[firsts][None, None]
        opn = ext[:, None] + over[None, None] + recv
        for g in range(ng):
            opn[:, g, g] = np.inf
        ext[~run] = np.inf
        opn[~np.broadcast_to(run[:, None, :], opn.shape[:3])] = np.inf
        self.extend, self.open = ext, opn

    def to_go(self, costs, max_stages: int) -> np.ndarray:
        """V[i, k, g, s] for i = 0..n: the least total of `costs(vectors)` (vectors: ... x PEs+1
        -> ... x k) over the ways to place layers i.. after layer i-1 ran on group g (index
        len(groups): nothing placed yet) with s stages so far; inf where none keeps within
        `max_stages`."""
        n, ng = len(self.extend), len(self.groups)
        if not n:
            return np.zeros((1, 1, ng + 1, max_stages + 2))
        ext, opn = np.array(self.extend), np.array(self.open)
        # price every layer at once; a group that cannot run a layer stays at inf
        e = costs(np.where(np.isfinite(ext), ext, 0.0))                    # n x ng x k
        e[~np.isfinite(ext).all(axis=2)] = np.inf
        o = costs(np.where(np.isfinite(opn), opn, 0.0))                    # n x ng+1 x ng x k
        o[~np.isfinite(opn).all(axis=3)] = np.inf
        # layer x target group h x weight x source group g (x 1): opening h from g is one
        # broadcast add over (h, g, s) and a reduction over the leading h axis, which numpy
        # does slab by slab (min is exact, so the order of the minimum does not matter)
        e = e.transpose(0, 2, 1)                                           # n x k x ng
        o = np.ascontiguousarray(o.transpose(0, 2, 3, 1))[..., None]        # n x h x k x g x 1
        k = e.shape[1]
        V = np.full((n + 1, k, ng + 1, max_stages + 2), np.inf)
        V[n, :, :, :max_stages + 1] = 0.0
        tmp = np.empty((ng, k, ng + 1, max_stages + 1))
        for i in range(n - 1, -1, -1):
            nxt = V[i + 1]                                             # k x (ng+1) x (S+2)
            cur = V[i]
            cur[:, :ng, :] = e[i][:, :, None] + nxt[:, :ng, :]
            np.add(o[i], nxt[:, :ng, 1:].transpose(1, 0, 2)[:, :, None, :], out=tmp)
            head = cur[:, :, :max_stages + 1]
            np.minimum(head, np.minimum.reduce(tmp, axis=0), out=head)
            cur[:, :, max_stages + 1] = np.inf
        return V

    def weighted(self, weights: np.ndarray, max_stages: int) -> np.ndarray:
        npe = weights.shape[1]
        return self.to_go(lambda v: v[..., :npe] @ weights.T, max_stages)

    def root(self, V: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """The bound at the start, per weight vector (with `weights`: the starting load too)."""
        r = V[0, :, len(self.groups), 0]
        if weights is not None:
            r = r + weights @ self.start[:-1]
        return r


def _link_table(profile: Profile, ends: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(latency_ms, ms_per_mb) per (src, dst) pair of `ends`: a transfer of b bytes costs
    latency + ms_per_mb * b / 1e6, the same float operations as `Profile.transfer_ms` (a PE to
    itself is 0 + 0 unless its `"p->p"` key prices it), so the tables vectorise over pairs."""
    k = len(ends)
    lat, per_mb = np.zeros((k, k)), np.zeros((k, k))
    for a, src in enumerate(ends):
        for b, dst in enumerate(ends):
            link = profile.transfer.get(f"{src}->{dst}")
            if link is None and src != dst:
                link = profile.transfer["default"]
            if link is not None:
                lat[a, b], per_mb[a, b] = link.latency_ms, link.ms_per_mb
    return lat, per_mb


def start_load(profile: Profile, names: list[str]) -> tuple[np.ndarray, float]:
    """The label every plan over `names` starts from (the host's work outside the stages, on
    the host's load column and on latency) and the floor under every bottleneck (that work
    again, where the host is not one of `names`: its load still counts)."""
    start = np.zeros(len(names) + 1)
    start[-1] = profile.host_ms
    if profile.host in names:
        start[names.index(profile.host)] = profile.host_ms
        return start, 0.0
    return start, profile.host_ms


def tuned_weights(rest: Rest, npe: int, max_stages: int, rounds: int = 6, batch: int = 64,
                  seed: int = 0, deadline_check=None) -> np.ndarray:
    """A grid over the simplex plus weights that maximise the bound at the root, by local search
    around the best so far (one pass prices a whole batch)."""
    m = {1: 1, 2: 24, 3: 10, 4: 6, 5: 4}.get(npe, 3)
    grid = simplex_grid(npe, m)
    rng = np.random.default_rng(seed)
    cand = np.vstack([grid, rng.dirichlet(np.ones(npe), batch)])
    best_w, best_v = cand[0], -np.inf
    spread = 20.0
    pool = [grid]
    for r in range(rounds):
        if deadline_check is not None:
            deadline_check(r)
        root = rest.root(rest.weighted(cand, max_stages), cand)
        k = int(np.argmax(root))
        if root[k] > best_v:
            best_v, best_w = float(root[k]), cand[k]
        cand = rng.dirichlet(best_w * spread + 0.01, batch)
        spread *= 2.5
        pool.append(best_w[None, :])
    return np.unique(np.vstack(pool + [cand[: batch // 2]]), axis=0)


def search_weights(rest: Rest, npe: int, max_stages: int, keep: int = 24,
                   deadline_check=None) -> np.ndarray:
    """The weights the search prices on the full graph: the `keep` best at the root of the small
    graph, a coarse grid, and the unit vectors."""
    pool = tuned_weights(rest, npe, max_stages, deadline_check=deadline_check)
    root = rest.root(rest.weighted(pool, max_stages), pool)
    best = pool[np.argsort(-root, kind="stable")[:keep]]
    coarse = simplex_grid(npe, {1: 1, 2: 8, 3: 4, 4: 3}.get(npe, 2))
    return np.unique(np.vstack([best, coarse, np.eye(npe)]), axis=0)


def _backward(graph: StateGraph, arc_cost, width: int, max_stages: int,
              deadline_check=None, dtype=np.float64) -> list[np.ndarray]:
    """out[i] (states before layer i x stages so far 0..max_stages x width): the least total of
    `arc_cost(step, arcs)` (the arcs of that slice x width) over the completions that keep
    within `max_stages`.

    A state's arcs are contiguous and at most one per group, so a chunk of states becomes a
    states x groups grid of arc indices: one gather, one add and one minimum over the grid's
    group axis give the chunk's rows. Each table is held with one more stage (inf) and one
    more state (inf) than it shows, so that a strided view of it reads a state's row one stage
    on (what an opening arc needs) and a missing arc reads inf, with no copy. On the 2-core VM
    the copies and fills of fresh memory this avoids took most of the time; the width is the
    last axis so the add runs over it in one loop (with `to_go`'s float32 tables: skip-heavy
    60 x 4, 3 M arcs, 9-10 s -> 4.4 s; synthetic 300 x 5, 1 M arcs, 3.3 s -> 0.4-0.6 s).
    Chunks of whole states of about `_ARCS` arcs, each followed by a deadline check."""
    n = len(graph.steps)
    s1 = max_stages + 1

    def table(states: int) -> np.ndarray:
        # its pad stage is filled chunk by chunk with the rows: the first touch of fresh memory
        # costs ~3 s/GB on this VM, too long to go without a deadline check on a large layer
        buf = np.empty((states + 1, s1 + 1, width), dtype=dtype)
        buf[states] = np.inf
        return buf

    def shifted(buf: np.ndarray) -> np.ndarray:
        """buf as (state, 0: as is / 1: one stage on, stage, width)."""
        st = buf.strides
        return np.lib.stride_tricks.as_strided(buf, (buf.shape[0], 2, s1, width),
                                               (st[0], st[1], st[1], st[2]), writeable=False)

    out = [np.zeros((0, s1, width), dtype=dtype)] * (n + 1)
    nxt = table(len(graph.states[n]))
    nxt[:-1, :s1] = 0.0
    nxt[:-1, s1] = np.inf
    out[n] = nxt[:-1, :s1]
    for i in range(n - 1, -1, -1):
        if deadline_check is not None:
            deadline_check(i)
        step = graph.steps[i]
        states = len(graph.states[i])
        v = table(states)
        arcs = len(step.src)
        first = np.searchsorted(step.src, np.arange(states + 1))
        slot = np.arange(arcs) - first[step.src]
        k = int(slot.max()) + 1 if arcs else 1
        grid = np.full((states, k), len(nxt) - 1)       # a missing arc: the inf state
        grid[step.src, slot] = step.dst
        opens = np.zeros((states, k), dtype=np.int64)
        opens[step.src, slot] = step.opens
        arc_at = np.full((states, k), -1)
        arc_at[step.src, slot] = np.arange(arcs)
        view = shifted(nxt)
        per = max(1, _ARCS // k)
        for a in range(0, states, per):
            if deadline_check is not None and a:
                deadline_check(i)
            b = min(states, a + per)
            lo, hi = first[a], first[b]
            cost = np.zeros((b - a, k, width), dtype=dtype)
            if hi > lo:
                at = arc_at[a:b]
                has = at >= 0
                cost[has] = arc_cost(step, slice(lo, hi))[at[has] - lo]
            total = view[grid[a:b], opens[a:b]]
            total += cost[:, :, None, :]
            np.minimum.reduce(total, axis=1, out=v[a:b, :s1])
            v[a:b, s1] = np.inf
        out[i] = v[:-1, :s1]
        nxt = v
    return out


def float32_margin(tables: int, i: int) -> float:
    """What undoes the rounding of float32 bound tables at layer i of `tables` (see `ToGo`)."""
    return 1.0 - (2 * (tables - 1 - i) + 2) * 2.0 ** -24


class ToGo:
    """Per layer i, state u and stages so far s, the least weighted load a completion adds
    (per weight vector), over the full state graph; inf where none keeps within `max_stages`.

    The tables are float32: they are the exact planner's largest arrays (a 60-layer skip-heavy
    graph has 670,000 states x 7 stage counts x 44 weights), and on the 2-core VM their first
    touch of fresh memory, not the arithmetic, took most of their time. Every entry is a sum of
    at most 2 (n - i) roundings to nearest of non-negative terms (each arc's cost cast, each
    add), so it exceeds the exact value by a factor of at most (1 + 2^-24)^(2 (n - i)); `at`
    multiplies by the margin that undoes that, so what it returns is never above the exact
    value: still a lower bound, weaker by a relative 3.6 10^-5 at most at 300 layers. (The
    argument needs no subnormal float32: arc costs below float32's smallest normal number are
    taken as 0, which only lowers the bound; the search's weights reach 4e-46.)"""

    def __init__(self, tables: list[np.ndarray]):
        self.tables = tables

    def margin(self, i: int) -> float:
        return float32_margin(len(self.tables), i)

    def at(self, i: int, states, stages) -> np.ndarray:
        """The bound (float64, ... x weights) of states `states` with `stages` stages so far."""
        return self.tables[i][states, stages] * np.float64(self.margin(i))   # float64 out


def to_go(graph: StateGraph, weights: np.ndarray, max_stages: int,
          deadline_check=None) -> ToGo:
    npe = weights.shape[1]
    tiny = np.finfo(np.float32).tiny

    def arc_cost(step, arcs):
        cost = step.inc[arcs, :npe] @ weights.T
        cost[cost < tiny] = 0.0
        return cost
    return ToGo(_backward(graph, arc_cost, len(weights), max_stages, deadline_check, np.float32))


class Relaxed:
    """`Rest`'s bound looked up by the states of a `Walk` (which has no whole graph to run the
    backward recursions over): a state's open group is the group that ran the layer before, all
    that `Rest`'s small state holds. It counts a skipping tensor as free where `to_go` knows
    its source, so it is weaker (by ~2% at the root on skip-heavy 40 x 4), never wrong."""

    def __init__(self, walk: Walk, table: np.ndarray):
        self.walk, self.table = walk, table     # (layers+1, groups+1, stages+2[, weights])
        self.none = len(walk.groups)            # the table's column for "nothing placed yet"

    @classmethod
    def load(cls, walk: Walk, rest: Rest, weights: np.ndarray, max_stages: int) -> "Relaxed":
        return cls(walk, rest.weighted(weights, max_stages).transpose(0, 2, 3, 1))

    def at(self, i: int, states, stages) -> np.ndarray:
        g = np.asarray(self.walk.open_group(i, states), dtype=np.int64)
        return self.table[i][np.where(g < 0, self.none, g), stages]
