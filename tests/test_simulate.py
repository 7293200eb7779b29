"""The discrete-event simulator against hand-computed schedules and the contract's bound."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsched import profile
from hetsched.cli import main
from hetsched.partition.cost import Stage, evaluate
from hetsched.simulate import simulate


def chain_profile(times: list[dict[str, float]], kinds: dict[str, str]):
    """One layer per stage; layer k costs times[k][pe] on each PE; transfers free."""
    layers, tensors = [], {"x": {"bytes": 0}}
    for k, costs in enumerate(times):
        layers.append({"name": f"l{k}", "op": "Conv", "inputs": [f"t{k - 1}" if k else "x"],
                       "outputs": [f"t{k}"], "cost_ms": {pe: costs.get(pe) for pe in kinds}})
        tensors[f"t{k}"] = {"bytes": 0}
    host = next(iter(kinds))
    return profile.from_dict({
        "schema": "hetsched.profile/1", "source": "modeled",
        "model": {"name": "chain", "sha256": None, "inputs": {"x": [1]}}, "board": {"name": "test"},
        "host": host, "pes": {p: {"kind": k} for p, k in kinds.items()}, "layers": layers,
        "tensors": tensors, "graph_outputs": [f"t{len(times) - 1}"],
        "transfer": {"default": {"latency_ms": 0.0, "ms_per_mb": 0.0}}})


def plan_of(prof, groups):
    return evaluate(prof, [Stage(tuple(g), k, k) for k, g in enumerate(groups)], check=False)


def test_two_stage_chain_by_hand():
    # a: 3 ms, b: 5 ms. Frame i leaves a at 3(i+1) but b is the bottleneck: b finishes frame 0
    # at 3 + 5 = 8 and every 5 ms after; buffers of 1 never starve b.
    prof = chain_profile([{"a": 3.0}, {"b": 5.0}], {"a": "cpu", "b": "gpu"})
    r = simulate(prof, plan_of(prof, [["a"], ["b"]]), frames=4, buffers=1)
    assert r.done_ms == [8.0, 13.0, 18.0, 23.0]
    assert r.busy_ms == {"a": 12.0, "b": 20.0}


def test_pe_serving_two_stages_by_hand():
    # a(1) -> b(2) -> a(1), buffers 4. a runs stage 0 for frames 0, 1, 2 at 0-1, 1-2, 2-3; b runs
    # frame 0 at 1-3. At t=3 b hands frame 0 on and stage 0 asks for a first (its run for frame 3
    # ends then): a does stage 0 of frame 3 at 3-4, then stage 2 of frame 0 at 4-5 (first come,
    # first served). b: frame 1 at 3-5, frame 2 at 5-7, frame 3 at 7-9. Stage 2 on a: frame 1 at
    # 5-6, frame 2 at 7-8, frame 3 at 9-10.
    prof = chain_profile([{"a": 1.0}, {"b": 2.0}, {"a": 1.0}], {"a": "cpu", "b": "gpu"})
    r = simulate(prof, plan_of(prof, [["a"], ["b"], ["a"]]), frames=4, buffers=4)
    assert r.done_ms == [5.0, 6.0, 8.0, 10.0]


def test_replicated_stage_round_robin_by_hand():
    # x then a replicated pair (d0: 4 ms, d1: 6 ms): d0 takes even frames, d1 odd ones; the slow
    # member sets the pace of every other frame (the contract: 6 / 2 = 3 ms per frame)
    prof = chain_profile([{"c": 1.0}, {"d0": 4.0, "d1": 6.0}], {"c": "cpu", "d0": "dla", "d1": "dla"})
    plan = plan_of(prof, [["c"], ["d0", "d1"]])
    assert plan.bottleneck_ms == 3.0
    r = simulate(prof, plan, frames=4, buffers=2)
    # d0: f0 1-5, f2 5-9; d1: f1 2-8, f3 8-14; in order: f0 5, f1 8, f2 9, f3 14
    assert r.done_ms == [5.0, 8.0, 9.0, 14.0]
    long = simulate(prof, plan, frames=400, buffers=2)
    assert long.steady_fps == pytest.approx(1000 / 3.0, rel=0.01)


def test_first_frame_latency_is_the_plans_latency():
    prof = chain_profile([{"a": 2.0}, {"b": 7.0}, {"a": 3.0}], {"a": "cpu", "b": "gpu"})
    plan = plan_of(prof, [["a"], ["b"], ["a"]])
    r = simulate(prof, plan, frames=50)
    assert r.done_ms[0] - r.read_ms[0] == pytest.approx(plan.latency_ms)
    assert r.latency_ms(50) > plan.latency_ms   # the source reads ahead: queueing latency


def test_slow_pre_processing_pool_caps_throughput_below_the_bound():
    prof = chain_profile([{"a": 5.0}, {"b": 5.0}], {"a": "cpu", "b": "gpu"})
    plan = plan_of(prof, [["a"], ["b"]])
    one = simulate(prof, plan, frames=300, pre_ms=10.0, pre_threads=1)
    two = simulate(prof, plan, frames=300, pre_ms=10.0, pre_threads=2)
    assert one.steady_fps == pytest.approx(100.0, rel=0.01)        # the pool, not the plan
    assert two.steady_fps == pytest.approx(200.0, rel=0.01)        # the plan's bound


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.5, 20.0), st.floats(0.5, 20.0), st.booleans()),
                min_size=1, max_size=4),
       st.integers(1, 3))
def test_chain_steady_state_matches_the_bound(stages, buffers):
    """Each stage on its own PE (a replicated pair where drawn): steady state within 1%."""
    kinds, times, groups = {}, [], []
    for k, (t0, t1, pair) in enumerate(stages):
        names = [f"p{k}a", f"p{k}b"] if pair else [f"p{k}a"]
        for n in names:
            kinds[n] = "dla"
        times.append({names[0]: t0, **({names[1]: t1} if pair else {})})
        groups.append(names)
    kinds = {"host": "cpu", **kinds}
    times = [{**t, "host": None} for t in times]
    prof = chain_profile(times, kinds)
    plan = plan_of(prof, groups)
    r = simulate(prof, plan, frames=240, buffers=buffers)
    assert r.steady_fps == pytest.approx(plan.throughput_fps, rel=0.01)


def test_cli_simulate(tmp_path, capsys):
    prof = chain_profile([{"a": 3.0}, {"b": 5.0}], {"a": "cpu", "b": "gpu"})
    pp = tmp_path / "p.json"
    profile.save(prof, pp)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stages": [{"pes": ["a"], "first": 0, "last": 0},
                                           {"pes": ["b"], "first": 1, "last": 1}]}))
    png = tmp_path / "gantt.png"
    assert main(["simulate", str(pp), str(plan), "--frames", "100", "--json", "--plot", str(png)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["steady_fps"] == pytest.approx(200.0, rel=0.01) and doc["bound_fps"] == pytest.approx(200.0)
    assert png.stat().st_size > 1000
    plan.write_text(json.dumps({"stages": [{"pes": ["gpu9"], "first": 0, "last": 1}]}))
    assert main(["simulate", str(pp), str(plan)]) == 1
    assert "PE 'gpu9'" in capsys.readouterr().err
