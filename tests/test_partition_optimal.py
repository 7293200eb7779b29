"""The exact optimum: the contract's worked example by hand, and brute-force enumeration on
hundreds of random small instances (skips, nulls, transfers, replication on and off)."""

import json

import pytest

from hetsched import profile
from hetsched.partition.cost import PlanError, Stage, evaluate
from hetsched.partition.optimal import solve

from partition_helpers import brute_force, close, instances


@pytest.fixture
def example(shared_dir):
    return profile.from_dict(json.loads((shared_dir / "design" / "example-profile.json").read_text()))


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


@pytest.mark.parametrize("case", range(260))
def test_optimum_equals_brute_force(case):
    prof, replication, max_stages = INSTANCES[case]
    want = brute_force(prof, replication=replication, max_stages=max_stages)
    if want is None:
        with pytest.raises(PlanError):
            solve(prof, replication=replication, max_stages=max_stages)
        return
    got = solve(prof, replication=replication, max_stages=max_stages)
    assert close(got.bottleneck_ms, want.bottleneck_ms), (got.to_dict(), want.to_dict())
    assert close(got.latency_ms, want.latency_ms), (got.to_dict(), want.to_dict())
    assert len(got.stages) == len(want.stages)
    # and the plan it returns is priced by the contract's evaluator, not by the search
    again = evaluate(prof, got.stages, replication=replication, max_stages=max_stages)
    assert again.bottleneck_ms == got.bottleneck_ms


INSTANCES = instances(260, seed=2026)


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


def test_time_limit_is_kept_on_a_large_profile():
    """The exact search gives up near its limit, inside a layer's work too (it once ran 80%
    over on wide frontiers), and never returns an unproven plan."""
    import time

    import numpy as np

    from partition_helpers import random_profile
    prof = random_profile(np.random.default_rng(7), 300, ["cpu0", "gpu", "dla0", "dla1"],
                          null_rate=0.05)
    t0 = time.monotonic()
    with pytest.raises(PlanError, match="time limit"):
        solve(prof, time_limit_s=1.0)
    assert time.monotonic() - t0 < 4.0


@pytest.mark.parametrize("case", range(0, 260, 4))
def test_lower_bound_at_a_time_out_never_exceeds_the_optimum(case, monkeypatch):
    """Stopped at every possible point (a fake clock that moves one second per reading), the
    bound the search reports is never above the brute-force optimum."""
    from hetsched.partition import optimal
    prof, replication, max_stages = INSTANCES[case]
    want = brute_force(prof, replication=replication, max_stages=max_stages)
    if want is None:
        return
    for limit in range(1, 40):
        ticks = iter(range(10**6))
        monkeypatch.setattr(optimal.time, "perf_counter", lambda: float(next(ticks)))
        try:
            solve(prof, replication=replication, max_stages=max_stages, time_limit_s=limit - 0.5)
        except optimal.OptimumUnproven as e:
            assert e.lower_bound_ms <= want.bottleneck_ms * (1 + 1e-9) + 1e-12, (limit, e)
            assert "proven" in str(e)
        else:
            break   # the search finished within `limit` readings: every stop point was tried


def test_an_upper_bound_below_the_optimum_is_named(example):
    with pytest.raises(PlanError, match="no plan has a bottleneck at or below the given upper bound"):
        solve(example, upper_bound=1.0)
    assert close(solve(example, upper_bound=4.1).bottleneck_ms, 4.1)
