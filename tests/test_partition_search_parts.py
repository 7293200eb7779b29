"""The exact planner's parts against independent references: a path through the state graph costs
what `cost.evaluate` says, the completion bounds never exceed the brute-force optimum, and the
beam's proposals are plans the contract allows."""

import numpy as np
import pytest

from hetsched.partition import beam, completion, stategraph
from hetsched.partition.cost import CostIndex, PlanError, Stage, evaluate, validate
from hetsched.partition.groups import stage_groups, stages_from_path

from partition_helpers import brute_force, close, instances, instances_v2

# v1 cases first, then v2 ones (overheads, host work, contention, same-PE transfers)
CASES = instances(80, seed=31) + instances_v2(40, seed=32)
ALL = range(len(CASES))


def _setup(case):
    prof, replication, max_stages = CASES[case]
    names = list(prof.pes)
    groups = stage_groups(prof, names, replication)
    return prof, replication, max_stages, names, groups


@pytest.mark.parametrize("case", ALL[::2])
def test_a_random_path_costs_what_evaluate_says(case):
    """Exactly, where the path uses every PE of the set the graph was priced for; no less, where
    it leaves some idle (their contention then does not apply)."""
    prof, replication, _, names, groups = _setup(case)
    graph = stategraph.build(prof, names, groups)
    start, _ = completion.start_load(prof, names)
    rng = np.random.default_rng(case)
    for _ in range(20):
        u, total, arcs = 0, start.copy(), []
        for step in graph.steps:
            out = np.flatnonzero(step.src == u)
            if not len(out):
                break
            a = int(rng.choice(out))
            arcs.append(a)
            total += step.inc[a]
            u = int(step.dst[a])
        else:
            stages = stages_from_path(groups, [int(step.group[a])
                                               for step, a in zip(graph.steps, arcs)])
            plan = evaluate(prof, stages, check=False)
            whole = {p for s in stages for p in s.pes} == set(names)
            for k, p in enumerate(names):
                want = plan.pe_load_ms.get(p, 0.0)
                assert close(total[k], want, 1e-9) if whole else total[k] >= want * (1 - 1e-9) - 1e-12
            assert close(total[-1], plan.latency_ms, 1e-9) if whole else \
                total[-1] >= plan.latency_ms * (1 - 1e-9) - 1e-12
            assert sum(int(graph.steps[i].opens[a]) for i, a in enumerate(arcs)) == len(stages)


@pytest.mark.parametrize("case", ALL)
def test_bounds_never_exceed_the_optimum(case):
    """Priced with the whole set's contention, the bounds hold for the best plan that uses the
    whole set (the brute-force optimum over plans using exactly `names`)."""
    prof, replication, max_stages, names, groups = _setup(case)
    best = brute_force(prof, replication=replication, max_stages=max_stages, exact_set=True)
    graph = stategraph.build(prof, names, groups)
    rest = completion.Rest(prof, names, groups)
    weights = completion.search_weights(rest, len(names), max_stages)
    start, floor = completion.start_load(prof, names)
    bound = completion.to_go(graph, weights, max_stages)
    full = bound.at(0, 0, 0) + weights @ start[:-1]
    small = rest.root(rest.weighted(weights, max_stages), weights)
    if best is None:
        if brute_force(prof, replication=replication, max_stages=max_stages) is None:
            assert not np.isfinite(full).any()   # the bound knows when no plan exists
        return
    tol = best.bottleneck_ms * 1e-9 + 1e-12
    assert full.max() <= best.bottleneck_ms + tol
    # the small state only forgets, never adds (up to the float32 tables' rounding margin)
    assert small.max() * bound.margin(0) ** 2 <= full.max() + tol


@pytest.mark.parametrize("case", ALL[::2])
def test_beam_proposes_valid_plans(case):
    """Where a plan exists the beam proposes at least one, and every proposal is allowed."""
    prof, replication, max_stages, names, groups = _setup(case)
    rest = completion.Rest(prof, names, groups)
    paths = beam.interleaved(rest, len(names), max_stages)
    if brute_force(prof, replication=replication, max_stages=max_stages) is not None:
        assert paths, "the beam proposed nothing though a plan exists"
    for path in paths:
        validate(prof, stages_from_path(groups, path), replication=replication, max_stages=max_stages)


def _external(prof, first, last):
    """Reference: the tensors layers first..last read that an earlier layer (or the host) made,
    in the order they are first read, with the producing layer (-1: a graph input)."""
    made = {t: i for i, layer in enumerate(prof.layers) for t in layer.outputs}
    out = {}
    for i in range(first, last + 1):
        for t in prof.layers[i].inputs:
            j = made.get(t, -1)
            if j < first and t not in out:
                out[t] = j
    return list(out.items())


@pytest.mark.parametrize("case", ALL[::2])
def test_cost_index_finds_a_stages_external_inputs(case):
    prof = CASES[case][0]
    index = CostIndex(prof)
    n = len(prof.layers)
    for a in range(n):
        for b in range(a, n):
            assert index.external(a, b) == _external(prof, a, b)


@pytest.mark.parametrize("case", ALL[::4])
def test_a_shared_index_prices_as_a_fresh_one(case):
    """`evaluate`'s memo of stage terms in the index never changes a price, with fallback on
    and off and different allowed PEs mixed on one index."""
    prof, replication, max_stages, names, groups = _setup(case)
    shared = CostIndex(prof)
    rng = np.random.default_rng(200 + case)
    n = len(prof.layers)
    gpus = [p for p in names if prof.pes[p].kind == "gpu"]
    priced = 0
    for _ in range(300):
        k = int(rng.integers(1, min(n, 5) + 1))
        lasts = sorted(rng.choice(np.arange(n - 1), k - 1, replace=False).tolist()) + [n - 1]
        firsts = [0] + [e + 1 for e in lasts[:-1]]
        stages = [Stage(groups[int(rng.integers(len(groups)))], a, e) for a, e in zip(firsts, lasts)]
        limits = {"dla_fallback": bool(gpus) and rng.random() < 0.5, "pes": names}
        try:
            validate(prof, stages, max_stages=None, **limits)
        except PlanError:
            continue
        a = evaluate(prof, stages, check=False, index=shared, **limits)
        b = evaluate(prof, stages, check=False, **limits)
        assert a.key() == b.key() and a.pe_load_ms == b.pe_load_ms
        priced += 1
    assert priced


def _rest_path_load(rest, path, npe):
    """What `Rest`'s tables add along a path (one group index per layer), per PE then latency."""
    total, last = rest.start.copy(), len(rest.groups)
    for i, g in enumerate(path):
        total = total + (rest.extend[i][g] if g == last else rest.open[i][last, g])
        last = g
    return total


@pytest.mark.parametrize("case", ALL[::3])
def test_rest_prices_a_path_as_evaluate_does_but_for_skipping_tensors(case):
    """Rest forgets only where a tensor skipping from an older stage came from: on a random path
    it never prices above `cost.evaluate` (with the whole set used), and exactly where every
    stage reads its inputs at its first layer, from the layer before or the host."""
    prof, replication, _, names, groups = _setup(case)
    rest = completion.Rest(prof, names, groups)
    rng = np.random.default_rng(100 + case)
    for _ in range(40):
        path, last = [], len(groups)
        for i in range(len(prof.layers)):
            ok = [g for g in range(len(groups)) if np.isfinite(
                rest.extend[i][g] if g == last else rest.open[i][last, g]).all()]
            if not ok:
                break
            last = int(rng.choice(ok)) if rng.random() < 0.5 or last not in ok else last
            path.append(last)
        else:
            stages = stages_from_path(groups, path)
            if {p for s in stages for p in s.pes} != set(names):
                continue
            plan = evaluate(prof, stages, check=False)
            total = _rest_path_load(rest, path, len(names))
            for k, p in enumerate(names):
                assert total[k] <= plan.pe_load_ms[p] * (1 + 1e-9) + 1e-12
            # Rest charges the inputs of a stage's first layer from the layer before it or the host
            chained = all((src == s.first - 1 or src < 0) and t in prof.layers[s.first].inputs
                          for s in stages for t, src in _external(prof, s.first, s.last))
            if chained:
                for k, p in enumerate(names):
                    assert close(total[k], plan.pe_load_ms[p], 1e-9)
                assert close(total[-1], plan.latency_ms, 1e-9)


@pytest.mark.parametrize("case", ALL[::4])
def test_beam_bar_keeps_what_the_unpruned_beam_keeps_below_it(case):
    """Pruning at `bar` drops only proposals priced above it: the pruned beam returns the
    unpruned beam's proposals whose (Rest-priced) largest load is at most `bar`, in order."""
    prof, replication, max_stages, names, groups = _setup(case)
    rest = completion.Rest(prof, names, groups)
    free = beam.interleaved(rest, len(names), max_stages, keep=50)
    if len(free) < 2:
        return
    loads = [float(_rest_path_load(rest, p, len(names))[:-1].max()) for p in free]
    levels = sorted(set(loads))
    if len(levels) < 2:
        return
    k = len(levels) // 2
    bar = (levels[k - 1] + levels[k]) / 2     # between two proposals, so no rounding decides
    want = [p for p, v in zip(free, loads) if v <= bar][:4]
    assert beam.interleaved(rest, len(names), max_stages, bar=bar) == want
    # below the root's bound nothing can come in under the bar, and the sweep is skipped
    weights = np.eye(len(names))
    assert beam.interleaved(rest, len(names), max_stages,
                            bar=float(rest.root(rest.weighted(weights, max_stages), weights).max()) * 0.999) == []


def test_beam_bar_test_cases_are_not_vacuous():
    """The bar test above compares proposals on most of its cases, contention ones included."""
    compared = 0
    for case in ALL[::4]:
        prof, replication, max_stages, names, groups = _setup(case)
        rest = completion.Rest(prof, names, groups)
        free = beam.interleaved(rest, len(names), max_stages, keep=50)
        loads = {float(_rest_path_load(rest, p, len(names))[:-1].max()) for p in free}
        compared += len(loads) >= 2 and bool(prof.contention)
    assert compared >= 3


def _skip_heavy_cases():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from partition_bench import skip_heavy
    return [skip_heavy(n, ["cpu0", "gpu", "dla0", "dla1"], seed) for n, seed in
            [(24, 0), (28, 1), (32, 2)]]


@pytest.mark.parametrize("case", list(ALL[::4]) + ["sh0", "sh1", "sh2"])
@pytest.mark.parametrize("k", [1, 2])
def test_a_relaxed_graphs_bound_lies_between_rests_and_the_whole_graphs(case, k):
    """At every state of the whole graph (as a walk would meet it): the bound of a relaxed graph
    that tracks k skipping tensors a layer is no higher than the whole graph's bound (it prices
    transfers no higher) and no lower than `Rest`'s; on skip-heavy profiles it is higher than
    `Rest`'s somewhere (the tracked sources count)."""
    from hetsched.partition import relaxation
    if isinstance(case, str):
        prof, max_stages = _skip_heavy_cases()[int(case[2:])], 6
        names = list(prof.pes)
        groups = stage_groups(prof, names, True)
    else:
        prof, _, max_stages, names, groups = _setup(case)
    graph = stategraph.build(prof, names, groups)
    rest = completion.Rest(prof, names, groups)
    weights = completion.search_weights(rest, len(names), max_stages)
    whole = completion.to_go(graph, weights, max_stages)
    walk = stategraph.Walk(stategraph.Arcs(prof, names, groups))
    saved = relaxation.MAX_TRACKED
    relaxation.MAX_TRACKED = k
    try:
        proj = relaxation.bound(prof, walk, rest, weights, max_stages, 10**7, None)
    finally:
        relaxation.MAX_TRACKED = saved
    if proj is None:     # nothing to relax: k tracks every skipping tensor
        assert relaxation.tracked(prof, k) == set(relaxation.skipping(prof))
        assert not isinstance(case, str)
        return
    small = completion.Relaxed.load(walk, rest, weights, max_stages)
    above = 0
    for i in range(len(prof.layers) + 1):
        walk.states[i:] = [graph.states[i]]
        u = np.arange(len(graph.states[i]))
        for s in range(max_stages + 1):
            got, want, low = proj.at(i, u, s), whole.at(i, u, s), small.at(i, u, s)
            fin = np.isfinite(want)
            assert (got[fin] <= want[fin] / whole.margin(i) ** 2 + 1e-9).all(), (i, s)
            assert (got >= low * proj.margin(i) * (1 - 2.0 ** -23) - 1e-12).all()
            above += int((got[np.isfinite(got)] > low[np.isfinite(got)] * (1 + 1e-6) + 1e-9).sum())
    if isinstance(case, str):
        assert above > 0


class _Ladder:
    """A stand-in sweep for the climb: finds a plan iff its bound reaches `opt`, taking
    `cost(b)` seconds of a virtual clock for a bound b, and records the bounds it was given."""

    def __init__(self, opt, cost, now):
        self.opt, self.cost, self.now, self.bounds = opt, cost, now, []

    def run(self, bound, beam=None):
        assert beam is None
        self.bounds.append(bound)
        self.now[0] += self.cost(bound)
        return ["plan"] if bound >= self.opt else None


@pytest.mark.parametrize("opt,cost,limit", [
    (100.0, lambda b: 0.0, None),                       # cheap sweeps, no time limit
    (103.7, lambda b: 0.0, None),
    (109.99, lambda b: 0.06 * 1.6 ** (b - 100), None),  # growing cost, no time limit
    (110.0, lambda b: 0.06 * 1.3 ** (b - 100), 10.0),   # the known plan's sweep (0.8 s) fits
    # growing 3x a unit: the climb fits a 1 s limit, the known plan's sweep (59 s) would not
    (105.0, lambda b: 0.001 * 3.0 ** (b - 100), 1.0),
])
def test_the_search_climbs_to_the_optimum_and_proves_every_bound_it_passes(monkeypatch, opt, cost,
                                                                          limit):
    """The climb's bounds rise, every bound a sweep refuted lies below the optimum and is what
    the clock says was proven, and the first sweep that finds a plan is the last one; with no
    time limit it ends (at the known plan's bound at the latest); with one, it does not try a sweep
    that its growth says would not fit."""
    from hetsched.partition import optimal
    now = [1000.0]
    monkeypatch.setattr(optimal.time, "perf_counter", lambda: now[0])
    clock = optimal._Clock(None if limit is None else now[0] + limit, 10)
    clock.proven, clock.upper_bound = 100.0, 110.0
    sweep = _Ladder(opt, cost, now)
    assert optimal._search(sweep, clock, 100.0, 110.0) == ["plan"]
    bounds = sweep.bounds
    assert bounds == sorted(bounds) and bounds[-1] >= opt and all(b < opt for b in bounds[:-1])
    assert bounds[-1] <= 110.0 * (1 + 3e-9) + 1e-12
    if len(bounds) > 1:
        assert clock.proven == pytest.approx(bounds[-2], rel=3e-9)
    if limit == 1.0:
        assert bounds[-1] < 110.0 and len(bounds) >= 3
    if limit == 10.0:
        assert bounds[-1] >= 110.0 and len(bounds) >= 3
