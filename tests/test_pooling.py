"""Identical PEs measured as one (profiler.pooling): groups come from the cores' kinds, pooling
replaces each member's figure by the group's mean and keeps the raw figures, and a profile
measured on two identical cores prices them alike."""

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsched.cores import _cpuinfo_blocks, pe_signatures, usable_cores
from hetsched.profile import PE, Transfer
from hetsched.profiler import assemble
from hetsched.profiler.pooling import interchangeable, mean_over, pool, pooled_contention

# two clusters of a Jetson TX2 as /proc/cpuinfo names them: Denver (part 0x003, NVIDIA 0x4e)
# and Cortex-A57 (part 0xd07, Arm 0x41)
TX2 = {0: {"CPU implementer": "0x41", "CPU part": "0xd07"},
       1: {"CPU implementer": "0x4e", "CPU part": "0x003"},
       2: {"CPU implementer": "0x4e", "CPU part": "0x003"},
       3: {"CPU implementer": "0x41", "CPU part": "0xd07"}}


@functools.lru_cache(maxsize=1)
def _graph():
    from hetsched import graph
    from hetsched.models.zoo import build_zoo
    return graph.load(build_zoo("tiny-yolov2", 64))


def _no_sysfs(core, leaf):
    return None


def _pes(cores):
    return [PE(f"cpu{c}" if isinstance(c, int) else c[0], "cpu",
               {"cores": [c] if isinstance(c, int) else c[1]}) for c in cores]


def test_groups_follow_the_kind_of_each_core():
    sig = pe_signatures(_pes([0, 1, 2, 3]), TX2, _no_sysfs)
    assert interchangeable(sig) == [["cpu0", "cpu3"], ["cpu1", "cpu2"]]
    # a PE of two cores is not interchangeable with a PE of one, nor Denver+A57 with A57+A57
    sig = pe_signatures(_pes([("a", [0, 3]), ("b", [1, 2]), ("c", [0, 1]), ("d", [3])]), TX2,
                        _no_sysfs)
    assert interchangeable(sig) == []
    # big.LITTLE cores of one part told apart by the kernel's capacity figure
    capacity = lambda core, leaf: {0: "1024", 1: "446"}[core] if leaf == "cpu_capacity" else None  # noqa: E731
    same = {0: {"CPU part": "0xd05"}, 1: {"CPU part": "0xd05"}}
    assert interchangeable(pe_signatures(_pes([0, 1]), same, capacity)) == []
    assert interchangeable(pe_signatures(_pes([0, 1]), same, _no_sysfs)) == [["cpu0", "cpu1"]]


def test_this_machine_reads_its_cores():
    info = _cpuinfo_blocks()
    assert set(usable_cores()) <= set(info) or not info
    pes = _pes(sorted(usable_cores()))
    assert set(pe_signatures(pes)) == {p.name for p in pes}


def test_mean_over_leaves_a_group_with_a_pe_that_cannot_run_the_layer():
    groups = [["a", "b"]]
    assert mean_over({"a": 1.0, "b": 3.0, "c": 7.0}, groups) == {"a": 2.0, "b": 2.0, "c": 7.0}
    assert mean_over({"a": 1.0, "b": None}, groups) == {"a": 1.0, "b": None}


def test_contention_within_a_group_is_one_figure_and_across_groups_as_measured():
    cont = {"a": {"b": 0.076, "g": 0.2}, "b": {"a": 0.0}, "g": {"a": 0.01}}
    out = pooled_contention(cont, [["a", "b"]])
    assert out["a"]["b"] == out["b"]["a"] == pytest.approx(0.038)
    assert out["a"]["g"] == 0.2 and out["g"] == {"a": 0.01}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 100), st.floats(0.01, 100), st.floats(0.01, 100)),
                min_size=1, max_size=12),
       st.floats(0, 0.3), st.floats(0, 0.3))
def test_pooling_keeps_the_groups_total_and_the_raw_figures(costs, c01, c10):
    g = _graph()
    n = len(g)
    rows = [costs[i % len(costs)] for i in range(n)]
    per_pe = {p: [r[k] for r in rows] for k, p in enumerate(("cpu0", "cpu1", "cpu2"))}
    prof = assemble(g, _pes([0, 1, 2]), per_pe, {"default": Transfer(0.1, 0.5)},
                    source="measured", board={"name": "t"})
    prof.contention = {"cpu0": {"cpu1": c01}, "cpu1": {"cpu0": c10}}
    out = pool(prof, [["cpu0", "cpu1"]], "test")
    for before, after in zip(prof.layers, out.layers):
        a, b = before.cost_ms["cpu0"], before.cost_ms["cpu1"]
        assert after.cost_ms["cpu0"] == after.cost_ms["cpu1"] == pytest.approx((a + b) / 2)
        assert after.cost_ms["cpu2"] == before.cost_ms["cpu2"]
    assert out.contention["cpu0"]["cpu1"] == out.contention["cpu1"]["cpu0"] == \
        pytest.approx((c01 + c10) / 2)
    raw = out.board["pooled"]
    assert raw["groups"] == [["cpu0", "cpu1"]] and raw["raw_contention"] == prof.contention
    assert raw["raw_sum_ms"]["cpu0"] == pytest.approx(sum(per_pe["cpu0"]), abs=1e-3)
    assert prof.layers[0].cost_ms["cpu0"] == per_pe["cpu0"][0]     # the input is not changed
    assert pool(prof, [["cpu0"], ["gpu", "cpu1"]], "none") is prof  # no group of two left


def test_contention_is_taken_until_two_takes_agree():
    from hetsched.profiler.pooling import agreeing
    burst = {"cpu0": {"cpu1": 0.04}, "cpu1": {"cpu0": 0.66}}
    both = {"cpu0": {"cpu1": 0.6}, "cpu1": {"cpu0": 0.62}}
    calm = {"cpu0": {"cpu1": 0.02}, "cpu1": {"cpu0": 0.03}}
    calm2 = {"cpu0": {"cpu1": 0.03}, "cpu1": {"cpu0": 0.01}}
    pair = [["cpu0", "cpu1"]]
    takes = iter([calm, calm2])     # identical cores: one figure, the median of 4 samples
    assert agreeing(lambda: next(takes), pair) == (
        {"cpu0": {"cpu1": 0.025}, "cpu1": {"cpu0": 0.025}}, [calm, calm2])
    # identical cores that disagree within a take, or a burst on both at once: a third take,
    # and the median of the six samples outvotes the burst, even one in two takes of three
    for takes in ([burst, calm, calm2], [both, calm, calm2], [burst, burst, calm]):
        takes = iter(takes)
        got, taken = agreeing(lambda: next(takes), pair)
        assert len(taken) == 3 and got["cpu0"]["cpu1"] == got["cpu1"]["cpu0"] <= 0.04
    # PEs of different kinds may differ within a take; two takes that agree are enough
    takes = iter([burst, burst])
    assert agreeing(lambda: next(takes), []) == (burst, [burst, burst])
