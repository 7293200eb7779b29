"""The exact planner's parts against independent references: a path through the state graph costs
what `cost.evaluate` says, the completion bounds never exceed the brute-force optimum, and the
beam's proposals are plans the contract allows."""

import numpy as np
import pytest

from hetsched.partition import beam, completion, stategraph
from hetsched.partition.cost import evaluate, validate
from hetsched.partition.groups import stage_groups, stages_from_path

from partition_helpers import brute_force, close, instances

CASES = instances(80, seed=31)


def _setup(case):
    prof, replication, max_stages = CASES[case]
    names = list(prof.pes)
    groups = stage_groups(prof, names, replication)
    return prof, replication, max_stages, names, groups


@pytest.mark.parametrize("case", range(0, 80, 2))
def test_a_random_path_costs_what_evaluate_says(case):
    prof, replication, _, names, groups = _setup(case)
    graph = stategraph.build(prof, names, groups)
    rng = np.random.default_rng(case)
    for _ in range(20):
        u, total, arcs = 0, np.zeros(len(names) + 1), []
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
            for k, p in enumerate(names):
                assert close(total[k], plan.pe_load_ms.get(p, 0.0), 1e-9), (stages, p)
            assert close(total[-1], plan.latency_ms, 1e-9)
            assert sum(int(graph.steps[i].opens[a]) for i, a in enumerate(arcs)) == len(stages)


@pytest.mark.parametrize("case", range(80))
def test_bounds_never_exceed_the_optimum(case):
    prof, replication, max_stages, names, groups = _setup(case)
    best = brute_force(prof, replication=replication, max_stages=max_stages)
    graph = stategraph.build(prof, names, groups)
    rest = completion.Rest(prof, names, groups)
    weights = completion.search_weights(rest, len(names), max_stages)
    full = completion.to_go(graph, weights, max_stages)[0][:, 0, 0]
    small = rest.root(rest.weighted(weights, max_stages))
    if best is None:
        assert not np.isfinite(full).any()   # the bound knows when no plan exists
        return
    tol = best.bottleneck_ms * 1e-9 + 1e-12
    assert full.max() <= best.bottleneck_ms + tol
    assert small.max() <= full.max() + tol     # the small state only forgets, never adds
    lat = completion.latency_to_go(graph, max_stages)[0][0, 0]
    assert lat <= best.latency_ms + tol


@pytest.mark.parametrize("case", range(0, 80, 2))
def test_beam_proposes_valid_plans(case):
    prof, replication, max_stages, names, groups = _setup(case)
    rest = completion.Rest(prof, names, groups)
    for path in beam.interleaved(rest, len(names), max_stages):
        validate(prof, stages_from_path(groups, path), replication=replication, max_stages=max_stages)
