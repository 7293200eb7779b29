"""Identical PEs measured as one: the layer costs (Preprocess and Postprocess included) and the
contention within a group of interchangeable PEs (CPU PEs whose cores are the same in number and
kind) are replaced by the group's mean, the raw figures kept in the board. Transfers, stage
overhead and contention against PEs outside the group are left as measured (they differ by
hundredths of a millisecond on the VM).

Why: on the 2-core VM two identical cores, measured interleaved round by round, still came out
apart by noise: a Postprocess at 11.0 and 14.4 ms, a loop contention of 7.6% one way and 0.01%
the other. The planners read such noise as real and built multi-stage plans that put the work
where it happened to measure cheaper; those plans, priced up to 5% better than replicating
the whole loop on both cores, ran 4-11% slower than it (`scripts/loop_table.py`, README,
Performance). Each PE's measurement is a sample of the same quantity, so the mean over the group
is the better estimate for every member, with half the noise; the spread before pooling stays in
the board (`pe_cost_spread`, `pooled.raw_*`) so a real difference (a core shared with another
tenant) still shows.
"""

from __future__ import annotations

import copy
import statistics

from ..profile import Profile


def interchangeable(signatures: dict[str, tuple]) -> list[list[str]]:
    """Groups (two PEs or more, in the given order) of the PEs whose signatures are equal."""
    groups: dict[tuple, list[str]] = {}
    for pe, sig in signatures.items():
        groups.setdefault(sig, []).append(pe)
    return [g for g in groups.values() if len(g) > 1]


def mean_over(values: dict[str, float | None], groups: list[list[str]]) -> dict[str, float | None]:
    """`values` with each group's members set to the group's mean (a group with a missing or
    null member is left as it is: a PE that cannot run the layer is not a noisy one)."""
    out = dict(values)
    for g in groups:
        got = [values.get(p) for p in g]
        if any(v is None for v in got):
            continue
        m = sum(got) / len(got)
        for p in g:
            out[p] = m
    return out


def pooled_contention(cont: dict[str, dict[str, float]], groups: list[list[str]]) -> dict:
    """Within a group every ordered pair (p slowed by q) is one quantity: each gets the mean
    over the group's measured pairs. Pairs across groups are left as measured."""
    out = {p: dict(row) for p, row in cont.items()}
    for g in groups:
        got = [cont[p][q] for p, q in _measured_pairs(cont, g)]
        if not got:
            continue
        m = sum(got) / len(got)
        for p, q in ((p, q) for p in g for q in g if p != q):
            out.setdefault(p, {})[q] = m
    return out


def _measured_pairs(cont: dict, group: list[str]) -> list[tuple[str, str]]:
    """The ordered pairs (p slowed by q) within `group` that `cont` holds."""
    return [(p, q) for p in group for q in group if p != q and q in cont.get(p, {})]


def agreeing(measure, groups: list[list[str]], tries: int = 3,
             spread: float = 0.05) -> tuple[dict, list[dict]]:
    """A contention table that two takes of `measure()` agree on: taken twice, and if any pair
    differs by more than `spread` between them, or the pairs within a group of identical PEs do
    (within each take), again, up to `tries`; then each pair's median over the takes, and
    within a group one figure for every pair, the median over all its pairs' samples. Returns
    (table, the takes as measured: kept in the board, so a real asymmetry still shows).
    Why: on the 2-core EPYC VM, in the ten bench profiles of one sitting, three loop-contention
    takes came out far off: 0.66 one way and 0.04 the other on two identical
    cores, and twice ~0.6 both ways together, where repeats of the same take gave 0-4% (8 of 8)
    and the replicated loops those profiles priced at 0.65-0.80 of what they ran; one take
    alone cannot tell such a burst from the machine."""
    taken: list[dict] = []
    while len(taken) < tries:
        taken.append(measure())
        if len(taken) < 2:
            continue
        calm = all(_spread(t, g) <= spread for t in taken[-2:] for g in groups)
        if calm and _distance(taken[-2], taken[-1]) <= spread:
            break
    out = {p: {q: statistics.median(t[p][q] for t in taken) for q in row}
           for p, row in taken[0].items()}
    for g in groups:
        # within identical PEs every pair is one quantity: the median over all its samples
        # (pairs x takes) outvotes a burst that hit one direction in two takes of three
        pairs = _measured_pairs(taken[0], g)
        if pairs:
            m = statistics.median(t[p][q] for t in taken for p, q in pairs)
            for p, q in pairs:
                out[p][q] = m
    return out, taken


def _distance(a: dict, b: dict) -> float:
    return max((abs(a[p][q] - b[p][q]) for p, row in a.items() for q in row), default=0.0)


def _spread(cont: dict, group: list[str]) -> float:
    got = [cont[p][q] for p, q in _measured_pairs(cont, group)]
    return max(got) - min(got) if got else 0.0


def pool(prof: Profile, groups: list[list[str]], why: str) -> Profile:
    """A copy of `prof` with every layer cost and the contention pooled over `groups`; the
    board's `pooled` says over which groups and why, and keeps the raw figures pooling changed:
    each PE's sum of layer costs and the contention."""
    groups = [g for g in ([p for p in g if p in prof.pes] for g in groups) if len(g) > 1]
    if not groups:
        return prof
    out = copy.deepcopy(prof)
    for layer in out.layers:
        layer.cost_ms = mean_over(layer.cost_ms, groups)
    out.contention = pooled_contention(prof.contention, groups)
    out.board = {**prof.board, "pooled": {
        "groups": groups, "why": why,
        "raw_sum_ms": {p: round(sum(l.cost_ms.get(p) or 0.0 for l in prof.layers), 4)
                       for p in prof.pes},
        "raw_contention": prof.contention}}
    return out
