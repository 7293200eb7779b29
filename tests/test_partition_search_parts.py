"""The exact planner's parts against independent references: a path through the state graph costs
what `cost.evaluate` says, the completion bounds never exceed the brute-force optimum, and the
beam's proposals are plans the contract allows."""

import numpy as np
import pytest

from hetsched.partition import beam, completion, stategraph
from hetsched.partition.cost import evaluate, validate
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
            stages = stages_from_path(groups, graph.plan_groups(arcs))
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
    full = completion.to_go(graph, weights, max_stages)[0][:, 0, 0] + weights @ start[:-1]
    small = rest.root(rest.weighted(weights, max_stages), weights)
    if best is None:
        if brute_force(prof, replication=replication, max_stages=max_stages) is None:
            assert not np.isfinite(full).any()   # the bound knows when no plan exists
        return
    tol = best.bottleneck_ms * 1e-9 + 1e-12
    assert full.max() <= best.bottleneck_ms + tol
    assert small.max() <= full.max() + tol     # the small state only forgets, never adds
    lat = completion.latency_to_go(graph, max_stages)[0][0, 0] + start[-1]
    assert lat <= best.latency_ms + tol


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
