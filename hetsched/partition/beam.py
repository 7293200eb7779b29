"""Interleaved plans for the heuristic: a beam search over layers that may put a PE in several
stages (GPU, DLA0, GPU, DLA1, GPU where the DLAs cannot run every layer), which the balanced
orders of `heuristic` cannot express.

The sweep places one layer at a time. A partial plan is its per-PE loads, the group of its last
layer and its stage count; it may extend the open stage or open one on another group. Of the
partial plans that end on the same group with the same stage count, only the `width` best by the
Lagrangian bound of `completion.Rest` survive (the bound prices the rest of the network, so a
plan that has been frugal so far but painted itself into a corner ranks low). Loads here use
`Rest`'s prices, which treat a tensor skipping from an older stage as free; the plans it returns
are priced exactly by the caller.

Complexity: O(n * G * K * width * G * W) for n layers, G groups, K stages and W bound weights;
with the default width of 4 about 35 ms for 300 layers over 4 PEs and 60 ms over 5 on the 2-core
VM (AMD EPYC host), a third of it the two passes of `Rest.weighted` that rank the weights.
"""

from __future__ import annotations

import numpy as np

from .completion import Rest, simplex_grid


def interleaved(rest: Rest, npe: int, max_stages: int, width: int = 4, keep: int = 4,
                bar: float = np.inf) -> list[list[int]]:
    """Up to `keep` plans, each as the group index of every layer, best bound first. A partial
    plan whose bound exceeds `bar` is dropped: the bound never falls along a path and a beam
    slot keeps its best, so what survives below `bar` is what the unpruned beam keeps there."""
    n, ng = len(rest.extend), len(rest.groups)
    if n == 0:
        return []
    # one pass prices a pool of weights; the beam ranks by the best few at the root and the
    # single PEs (whose bound is the largest load plus what that PE must still do)
    rng = np.random.default_rng(0)
    pool = np.vstack([simplex_grid(npe, 1), np.full((1, npe), 1.0 / npe),
                      rng.dirichlet(np.ones(npe), 16)])
    V = rest.weighted(pool, max_stages)
    root = rest.root(V, pool)
    if root.max() > bar:
        return []      # no plan over the whole set can come in under the bar
    near = rng.dirichlet(pool[npe + int(np.argmax(root[npe:]))] * 40 + 0.01, 12)
    pool, V = np.vstack([pool, near]), np.concatenate([V, rest.weighted(near, max_stages)], axis=1)
    pick = np.r_[np.arange(npe), npe + np.argsort(-rest.root(V, pool)[npe:], kind="stable")[:6]]
    weights, V = pool[pick], V[:, pick]
    # one table per layer of what a label ending on group g adds by running the layer on h:
    # the extension on the diagonal, an opening elsewhere (row ng: before the first layer)
    move = np.array(rest.open)[..., :npe]
    move[:, np.arange(ng), np.arange(ng)] = np.array(rest.extend)[..., :npe]
    move_ok = np.isfinite(move).all(axis=-1)
    Vt = V.transpose(0, 2, 3, 1)            # layer x group x stages x weight: one gather per step
    groups = np.arange(ng)
    loads = rest.start[None, :npe].copy()
    last = np.array([ng])
    stages = np.array([0])
    history = []
    slot_type = np.int16 if (ng + 1) * (max_stages + 2) < 2 ** 15 else np.int64
    for i in range(n):
        s2 = stages[:, None] + (last[:, None] != groups[None, :])
        lab, grp = np.nonzero(move_ok[i][last] & (s2 <= max_stages))
        if not len(lab):
            return []
        cand = loads[lab] + move[i][last[lab], grp]
        s2 = s2[lab, grp]
        # the unit weights are among `weights` and V >= 0, so this is at least the largest load
        score = (cand @ weights.T + Vt[i + 1][grp, s2]).max(axis=1)
        if bar < np.inf:
            keep_ = score <= bar
            if not keep_.all():
                if not keep_.any():
                    return []
                lab, grp, cand, s2, score = lab[keep_], grp[keep_], cand[keep_], s2[keep_], score[keep_]
        slot = (grp * (max_stages + 1) + s2).astype(slot_type)
        # by slot, then score, then row: a stable sort by score and a stable (radix) sort of
        # the small slot numbers, which is np.lexsort((score, slot)) at a third of its cost
        order = np.argsort(score, kind="stable")
        order = order[np.argsort(slot[order], kind="stable")]
        ranked = slot[order]
        rank = np.arange(len(order)) - np.searchsorted(ranked, ranked)   # place within its slot
        sel = order[rank < width]
        loads, last, stages = cand[sel], grp[sel], s2[sel]
        history.append((lab[sel], grp[sel]))
    plans = []
    for r in np.argsort(loads.max(axis=1), kind="stable")[:keep]:
        path, at = [], int(r)
        for parents, chosen in reversed(history):
            path.append(int(chosen[at]))
            at = int(parents[at])
        plans.append(path[::-1])
    return plans
