"""The exact optimum: the contract's worked example by hand, and brute-force enumeration on
hundreds of random small instances (skips, nulls, transfers, replication on and off)."""


import pytest

from hetsched import profile
from hetsched.partition.cost import PlanError, Stage, evaluate
from hetsched.partition.optimal import solve

from partition_helpers import brute_force, close, instances, instances_v2


def test_worked_example_by_hand(example):
    a = evaluate(example, [Stage(("cpu0",), 0, 0), Stage(("dla0", "dla1"), 1, 2),
                           Stage(("gpu",), 3, 3), Stage(("cpu0",), 4, 4)])
    assert a.bottleneck_ms == pytest.approx(5.55) and a.latency_ms == pytest.approx(16.9)
    assert a.pe_load_ms["cpu0"] == pytest.approx(4.1) and a.pe_load_ms["dla0"] == pytest.approx(5.55)
    nxt = evaluate(example, [Stage(("cpu0",), 0, 0), Stage(("gpu",), 1, 1),
                             Stage(("dla0", "dla1"), 2, 2), Stage(("gpu",), 3, 3), Stage(("cpu0",), 4, 4)])
    assert nxt.bottleneck_ms == pytest.approx(4.2)
    gpu = evaluate(example, [Stage(("cpu0",), 0, 0), Stage(("gpu",), 1, 3), Stage(("cpu0",), 4, 4)])
    assert gpu.bottleneck_ms == pytest.approx(5.6) and gpu.latency_ms == pytest.approx(9.7)
    best = solve(example)
    assert best.bottleneck_ms == pytest.approx(4.1) and best.latency_ms == pytest.approx(13.3)
    assert [(s.pes, s.first, s.last) for s in best.stages] == [
        (("cpu0",), 0, 0), (("dla0", "dla1"), 1, 1), (("gpu",), 2, 3), (("cpu0",), 4, 4)]


def _stages(*spec):
    return [Stage(tuple(pes.split("+")), a, b) for pes, a, b in spec]


def test_worked_example_v2_by_hand(example_v2):
    """Contract section 6, every figure."""
    a = evaluate(example_v2, _stages(("cpu0", 0, 0), ("dla0+dla1", 1, 2), ("gpu", 3, 3), ("cpu0", 4, 4)))
    c = a.stage_costs
    assert c[0].time_ms("cpu0") == pytest.approx(2.05)
    assert c[1].time_ms("dla0") == pytest.approx(13.52) and c[1].factor["dla0"] == pytest.approx(1.2)
    assert c[2].time_ms("gpu") == pytest.approx(2.14)
    assert c[3].time_ms("cpu0") == pytest.approx(2.15)
    assert a.pe_load_ms["cpu0"] == pytest.approx(4.5) and a.pe_load_ms["dla1"] == pytest.approx(6.76)
    assert a.bottleneck_ms == pytest.approx(6.76) and a.latency_ms == pytest.approx(20.16)
    # version 1's optimum and the GPU-only plan under version 2
    v1 = evaluate(example_v2, _stages(("cpu0", 0, 0), ("dla0+dla1", 1, 1), ("gpu", 2, 3), ("cpu0", 4, 4)))
    assert v1.bottleneck_ms == pytest.approx(4.5) and v1.pe_load_ms["cpu0"] == pytest.approx(4.5)
    gpu = evaluate(example_v2, _stages(("cpu0", 0, 0), ("gpu", 1, 3), ("cpu0", 4, 4)))
    assert gpu.bottleneck_ms == pytest.approx(5.7) and gpu.latency_ms == pytest.approx(10.2)
    # the v2 optimum: per-member sources pair the two groups of two member with member
    o = evaluate(example_v2, _stages(("cpu0+cpu1", 0, 0), ("dla0+dla1", 1, 1), ("gpu", 2, 2),
                                     ("cpu0+cpu1", 3, 4)))
    c = o.stage_costs
    assert (c[0].time_ms("cpu0"), c[0].time_ms("cpu1")) == pytest.approx((2.05, 2.65))
    assert c[1].in_ms["dla0"] == pytest.approx(1.1) and c[1].time_ms("dla1") == pytest.approx(7.52)
    assert c[2].time_ms("gpu") == pytest.approx(3.22)
    assert (c[3].time_ms("cpu0"), c[3].time_ms("cpu1")) == pytest.approx((3.75, 3.8505))
    assert o.pe_load_ms == pytest.approx({"cpu0": 3.2, "cpu1": 3.25025, "gpu": 3.22, "dla0": 3.76,
                                          "dla1": 3.76})
    assert o.bottleneck_ms == pytest.approx(3.76) and o.latency_ms == pytest.approx(16.84)
    best = solve(example_v2)
    assert best.bottleneck_ms == pytest.approx(3.76) and best.latency_ms == pytest.approx(16.84)
    assert best.stages == o.stages
    # "several plans tie at 3.76 ms; the next lowest latency among them is 17.49 ms"
    ties = sorted(p.latency_ms for p in _all_plans(example_v2) if close(p.bottleneck_ms, 3.76))
    assert ties[0] == pytest.approx(16.84) and ties[1] == pytest.approx(17.49)


def _all_plans(prof):
    from itertools import product

    from hetsched.partition.cost import runnable
    from hetsched.partition.groups import stage_groups

    from partition_helpers import compositions
    groups = stage_groups(prof, list(prof.pes), True)
    for spans in compositions(len(prof.layers)):
        options = [[g for g in groups if all(runnable(prof, g, i) for i in range(a, b + 1))]
                   for a, b in spans]
        for seq in product(*options):
            if all(set(seq[k]) != set(seq[k + 1]) for k in range(len(seq) - 1)):
                yield evaluate(prof, [Stage(g, a, b) for g, (a, b) in zip(seq, spans)], check=False)


def test_v1_example_keeps_its_figures_under_v2(example):
    """A version-1 profile read as version 2: section 5's figures hold unchanged."""
    assert solve(example).key() == pytest.approx((4.1, 13.3, 4))


INSTANCES_V2 = instances_v2(220, seed=2027)


@pytest.mark.slow
def test_v2_instances_exercise_every_term():
    """The random set is not degenerate: replication of both kinds is optimal somewhere, and
    the optimum of some instances leaves a contending PE idle."""
    kinds, idle = set(), 0
    for prof, replication, max_stages in INSTANCES_V2[:80]:
        try:
            best = solve(prof, replication=replication, max_stages=max_stages)
        except PlanError:
            continue
        kinds |= {prof.pes[s.pes[0]].kind for s in best.stages if len(s.pes) > 1}
        used = {p for s in best.stages for p in s.pes}
        idle += bool(set(prof.contended()) - used)
    assert kinds == {"cpu", "dla"} and idle > 5


@pytest.mark.parametrize("version,case", [("v1", k) for k in range(260)] +
                         [("v2", k) for k in range(220)])
def test_optimum_equals_brute_force(version, case):
    """v1: random profiles with skips, nulls, pair transfers. v2: over two CPU cores and two DLAs
    (a GPU in some), also same-PE transfers, overheads, host work and contention. Replication on
    and off, random `max_stages`."""
    _same_as_brute_force(version, case)


def _same_as_brute_force(version, case):
    prof, replication, max_stages = (INSTANCES if version == "v1" else INSTANCES_V2)[case]
    want = brute_force(prof, replication=replication, max_stages=max_stages)
    if want is None:
        with pytest.raises(PlanError):
            solve(prof, replication=replication, max_stages=max_stages)
        return
    got = solve(prof, replication=replication, max_stages=max_stages)
    assert got.proven
    assert close(got.bottleneck_ms, want.bottleneck_ms), (got.to_dict(), want.to_dict())
    assert close(got.latency_ms, want.latency_ms), (got.to_dict(), want.to_dict())
    assert len(got.stages) == len(want.stages)
    # and the plan it returns is priced by the contract's evaluator, not by the search
    again = evaluate(prof, got.stages, replication=replication, max_stages=max_stages)
    assert again.bottleneck_ms == got.bottleneck_ms


INSTANCES = instances(260, seed=2026)


def _walk_only(monkeypatch, tracked: int | None):
    """No whole state graph: the search walks, bounded by a relaxed graph tracking at most
    `tracked` skipping tensors per layer (None: by `Rest` alone)."""
    from hetsched.partition import relaxation, stategraph
    build = stategraph.build

    def no_whole(*a, arcs=None, **k):
        if arcs is None or not arcs.free:
            raise stategraph.TooLarge(0, 0)
        return build(*a, arcs=arcs, **k)
    monkeypatch.setattr(stategraph, "build", no_whole)
    if tracked is None:
        monkeypatch.setattr(relaxation, "bound", lambda *a, **k: None)
    else:
        monkeypatch.setattr(relaxation, "MAX_TRACKED", tracked)


@pytest.mark.parametrize("tracked", [None, 1])
@pytest.mark.parametrize("version,case", [("v1", k) for k in range(0, 260, 3)] +
                         [("v2", k) for k in range(0, 220, 3)])
def test_walked_search_equals_brute_force(version, case, tracked, monkeypatch):
    """With no whole state graph (the search walks only the states its plans reach, pruned by
    a relaxed graph's bound or by `Rest`'s), the same optimum, latency and stage count as brute
    force."""
    _walk_only(monkeypatch, tracked)
    _same_as_brute_force(version, case)


def test_replication_counts(example):
    """Both settings are covered, and replication matters in some instances."""
    reps = [r for _, r, _ in INSTANCES]
    assert 60 < sum(reps) < 200


def test_pe_subset_and_max_stages(example):
    only_gpu = solve(example, pes=["cpu0", "gpu"])
    assert {pe for s in only_gpu.stages for pe in s.pes} <= {"cpu0", "gpu"}
    assert only_gpu.bottleneck_ms == pytest.approx(evaluate(
        example, [Stage(("cpu0",), 0, 0), Stage(("gpu",), 1, 3), Stage(("cpu0",), 4, 4)]).bottleneck_ms)
    two = solve(example, max_stages=2)
    assert len(two.stages) <= 2
    assert close(two.bottleneck_ms, brute_force(example, max_stages=2).bottleneck_ms)
    no_rep = solve(example, replication=False)
    assert all(len(s.pes) == 1 for s in no_rep.stages)
    assert close(no_rep.bottleneck_ms, brute_force(example, replication=False).bottleneck_ms)


def test_infeasible_layer_is_named(example):
    with pytest.raises(PlanError, match="layer 0 'pre' .* cannot run on any allowed PE"):
        solve(example, pes=["gpu", "dla0"])


@pytest.mark.slow
def test_time_limit_is_kept_on_a_large_profile():
    """The exact search gives up within 0.5 s of its limit, inside a layer's work too (it once
    ran 80% over on wide frontiers), and says that the plan it returns is not proven."""
    import time

    import numpy as np

    from partition_helpers import random_profile
    prof = random_profile(np.random.default_rng(7), 300, ["cpu0", "gpu", "dla0", "dla1"],
                          null_rate=0.05)
    t0 = time.monotonic()
    plan = solve(prof, time_limit_s=1.0)
    assert time.monotonic() - t0 < 1.5
    assert plan.proven is False and 0 < plan.lower_bound_ms <= plan.bottleneck_ms
    t0 = time.monotonic()
    with pytest.raises(PlanError, match="time limit"):
        solve(prof, time_limit_s=1.0, require_proof=True)
    assert time.monotonic() - t0 < 1.5


@pytest.mark.parametrize("version,case", [("v1", k) for k in range(0, 260, 6)] +
                         [("v2", k) for k in range(0, 220, 45)])
@pytest.mark.slow
def test_lower_bound_at_a_time_out_never_exceeds_the_optimum(version, case, monkeypatch):
    """Stopped at every possible point (a fake clock that moves one second per reading; v2: every
    ninth, over a search per PE set), the bound the search reports is never above the
    brute-force optimum; with contention it combines what each PE set's search proved."""
    from hetsched.partition import optimal
    prof, replication, max_stages = (INSTANCES if version == "v1" else INSTANCES_V2)[case]
    want = brute_force(prof, replication=replication, max_stages=max_stages)
    if want is None:
        return
    for limit in (range(1, 40) if version == "v1" else range(1, 400, 9)):
        ticks = iter(range(10**6))
        monkeypatch.setattr(optimal.time, "perf_counter", lambda: float(next(ticks)))
        try:
            plan = solve(prof, replication=replication, max_stages=max_stages,
                         time_limit_s=limit - 0.5)
        except optimal.OptimumUnproven as e:     # no plan known yet: the bound alone
            assert e.lower_bound_ms <= want.bottleneck_ms * (1 + 1e-9) + 1e-12, (limit, e)
            assert "proven" in str(e)
            continue
        if plan.proven:
            break   # the search finished within `limit` readings: every stop point was tried
        # a failed proof answers with a real plan, no better than the optimum, and a bound
        # no higher than it
        assert plan.bottleneck_ms >= want.bottleneck_ms * (1 - 1e-9) - 1e-12, limit
        assert plan.lower_bound_ms <= want.bottleneck_ms * (1 + 1e-9) + 1e-12, (limit, plan)


def test_an_upper_bound_below_the_optimum_is_named(example):
    with pytest.raises(PlanError, match="no plan has a bottleneck at or below the given upper bound"):
        solve(example, upper_bound=1.0)
    assert close(solve(example, upper_bound=4.1).bottleneck_ms, 4.1)


def test_a_group_lists_its_pes_in_the_profiles_order(example_v2):
    """Member r of a group takes frames r, r+k, ... in the profile's order of its PEs (contract
    section 3), so a plan listing them otherwise is refused rather than priced another way."""
    with pytest.raises(PlanError, match=r"lists its PEs \['cpu1', 'cpu0'\]"):
        evaluate(example_v2, [Stage(("cpu1", "cpu0"), 0, 0), Stage(("dla0", "dla1"), 1, 1),
                              Stage(("gpu",), 2, 2), Stage(("cpu0", "cpu1"), 3, 4)])


def test_version_1_self_transfer_keys_stay_free(example):
    d = example.to_dict()
    d["schema"] = "hetsched.profile/1"
    d["transfer"]["gpu->gpu"] = {"latency_ms": 5.0, "ms_per_mb": 0.0}
    v1 = profile.from_dict(d)
    assert "gpu->gpu" not in v1.transfer and v1.transfer_ms("gpu", "gpu", 10) == 0.0
    d["schema"] = "hetsched.profile/2"
    assert profile.from_dict(d).transfer_ms("gpu", "gpu", 10) == 5.0


@pytest.mark.slow
def test_the_time_limit_is_a_wall_on_skip_heavy_profiles():
    """Skip-heavy random profiles (30% of layers read a random earlier tensor: DenseNet/U-Net
    connectivity), the shape that made the state graph explode: with a 2 s limit every call
    returns within 2.5 s, with a real plan no worse than the heuristic's and a bound that
    means something (at least the per-PE work bound, never above the plan)."""
    import sys
    import time
    from pathlib import Path

    from hetsched.partition import heuristic, optimal
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from partition_bench import skip_heavy
    pes = ["cpu0", "gpu", "dla0", "dla1"]
    # the worst overrun before, one whose graph reaches 30 M arcs in one layer, the largest
    for n, seed in [(60, 1), (100, 3), (120, 4)]:
        prof = skip_heavy(n, pes, seed)
        t0 = time.monotonic()
        plan = solve(prof, max_stages=6, time_limit_s=2.0)
        assert time.monotonic() - t0 < 2.5, (n, seed)
        heur = heuristic.solve(prof, max_stages=6)
        assert plan.bottleneck_ms <= heur.bottleneck_ms * (1 + 1e-9)
        if not plan.proven:
            assert optimal.work_bound(prof, pes) <= plan.lower_bound_ms <= plan.bottleneck_ms
            assert plan.gap < 0.5


def test_a_state_graph_too_large_to_hold_is_walked(monkeypatch):
    """Where a layer would take the graph past its memory limit the graph is not built: the
    search walks the states its plans reach instead and proves the same optimum."""
    import numpy as np

    from partition_helpers import random_profile

    from hetsched.partition import optimal, stategraph
    from hetsched.partition.groups import stage_groups
    prof = random_profile(np.random.default_rng(3), 40, ["cpu0", "gpu", "dla0", "dla1"],
                          null_rate=0.05)
    names = list(prof.pes)
    groups = stage_groups(prof, names, True)
    arcs = sum(len(step.src) for step in stategraph.build(prof, names, groups).steps)
    with pytest.raises(stategraph.TooLarge, match="size limit at layer"):
        stategraph.build(prof, names, groups, max_arcs=arcs // 2)
    stategraph.build(prof, names, groups, max_arcs=arcs)
    whole = solve(prof, time_limit_s=None)
    built = []
    monkeypatch.setattr(optimal, "_max_arcs", lambda *a: arcs // 2)
    monkeypatch.setattr(stategraph, "Walk", lambda *a, _w=stategraph.Walk: built.append(1) or _w(*a))
    walked = solve(prof, time_limit_s=None)
    assert built and walked.proven and whole.proven
    assert walked.key() == pytest.approx(whole.key())
