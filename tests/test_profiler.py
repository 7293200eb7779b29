"""The CPU profiler: contract-valid output, the sum of per-layer costs within 15% of the whole
model's measured time at the same engine configuration on the same PE, for every zoo model at
416, and the mapping of an optimised trace back to layers."""

import numpy as np
import pytest

from hetsched import graph, profile
from hetsched.errors import HetschedError
from hetsched.models.zoo import ZOO, build_zoo
from hetsched.profiler.cpu import profile_cpu
from hetsched.profiler.pes import parse_pes, usable_cores
from hetsched.profiler.transfer import fit


def _pes():
    return parse_pes(",".join(f"cpu{c}" for c in sorted(usable_cores())[:2]))


def test_profile_is_contract_valid(tmp_path):
    g = graph.load(build_zoo("tiny-yolov3", 128))
    seen = []
    prof = profile_cpu(g, _pes(), runs=2, warmup=1, progress=lambda *a: seen.append(a))
    profile.save(prof, tmp_path / "p.json")
    back = profile.load(tmp_path / "p.json")
    profile.check_model(back, g)
    assert back.source == "measured"
    assert len(back.layers) == len(g)
    for layer in back.layers:
        assert all(v is not None and v >= 0 for v in layer.cost_ms.values())
    convs = [l for l in back.layers if l.op == "Conv"]
    assert all(l.cost_ms[pe] > 0 for l in convs for pe in back.pes)
    assert "default" in back.transfer
    if len(back.pes) > 1:
        assert "cpu0->cpu1" in back.transfer and "cpu1->cpu0" in back.transfer
    assert seen and seen[-1][0] == "transfer"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_sum_of_layers_matches_whole_model(name):
    g = graph.load(build_zoo(name, 416))
    prof = profile_cpu(g, _pes()[:1], runs=7, warmup=2)
    for pe in prof.pes:
        # the costs predict the optimised session the runtime runs (prof.engine)
        whole = prof.board["optimized_model_ms"][pe]
        summed = sum(l.cost_ms[pe] for l in prof.layers)
        assert abs(summed - whole) / whole <= 0.15, f"{name} on {pe}: sum {summed:.1f} vs whole {whole:.1f} ms"
        plain = prof.board["sum_unoptimised_layers_ms"][pe]
        assert abs(plain - prof.board["whole_model_ms"][pe]) / prof.board["whole_model_ms"][pe] <= 0.15


def test_pe_names():
    assert parse_pes("cpu0")[0].extra["cores"] == [0]
    with pytest.raises(HetschedError, match="not a CPU PE name"):
        parse_pes("gpu")
    with pytest.raises(HetschedError, match="needs core"):
        parse_pes("cpu4096")
    with pytest.raises(HetschedError, match="twice"):
        parse_pes("cpu0,cpu0")
    if len(usable_cores()) > 1:
        with pytest.raises(HetschedError, match="share core 0"):
            parse_pes("cpu0-1,cpu0")


def test_transfer_fit_recovers_a_line():
    pts = [(int(mb * 1e6), (0.02 + 0.1 * mb) / 1e3) for mb in (0.1, 1, 4, 16)]
    t = fit(pts)
    assert t.latency_ms == pytest.approx(0.02, abs=1e-5)
    assert t.ms_per_mb == pytest.approx(0.1, abs=1e-5)
    assert fit([(1000, 1e-6), (2_000_000, 1e-7)]).ms_per_mb == 0.0  # noise never gives negatives
    assert np.isfinite(t.cost_ms(10**6))


def test_attribution_maps_fused_and_layout_nodes_back_by_hand():
    """A conv+leaky pair fused into one NCHWc node named after the activation, a layout
    conversion node named after nothing, an addition fused into the conv before it, and a layer
    that runs alone: each node's time lands on its layers, split by their unoptimised costs."""
    from types import SimpleNamespace as L

    from hetsched.profiler.attribution import OptNode, attribute
    layers = [L(name="c0", op="Conv", inputs=["x"], outputs=["a"]),
              L(name="act0", op="LeakyRelu", inputs=["a"], outputs=["b"]),
              L(name="c1", op="Conv", inputs=["b"], outputs=["c"]),
              L(name="add", op="Add", inputs=["c", "b"], outputs=["d"]),
              L(name="pool", op="MaxPool", inputs=["d"], outputs=["y"])]
    nodes = [OptNode("ReorderInput", ["x"], ["x_nchwc"]),
             OptNode("act0_nchwc", ["x_nchwc"], ["t1"]),
             OptNode("c1_nchwc", ["t1"], ["t2"]),
             OptNode("ReorderOutput_token_3", ["t2"], ["d"]),
             OptNode("pool", ["d"], ["y"])]
    times = {"ReorderInput": 0.5, "act0_nchwc": 10.0, "c1_nchwc": 6.0, "ReorderOutput_token_3": 0.4,
             "pool": 1.0}
    plain = [9.0, 1.0, 4.0, 1.0, 1.2]
    costs, fused = attribute(layers, nodes, times, plain)
    # ReorderInput reads graph input x: its first reader c0 (fused into act0's node) carries it;
    # act0's node (10) + that 0.5 split 9:1 over c0 and act0
    assert costs[0] == pytest.approx(10.5 * 0.9) and costs[1] == pytest.approx(10.5 * 0.1)
    # ReorderOutput makes d, the fused-away add's tensor: add joins c1 (its producer), 6.4 split 4:1
    assert costs[2] == pytest.approx(6.4 * 0.8) and costs[3] == pytest.approx(6.4 * 0.2)
    assert costs[4] == pytest.approx(1.0)
    assert sum(costs) == pytest.approx(sum(times.values()))
    assert fused == {"act0": ["c0", "act0"], "c1": ["c1", "add"]}


def test_profile_records_the_engine_it_predicts():
    g = graph.load(build_zoo("tiny-yolov3", 96))
    prof = profile_cpu(g, _pes()[:1], runs=2, warmup=1)
    pe = next(iter(prof.pes))
    assert prof.engine["backend"] == "onnxruntime-cpu" and prof.engine["optimization"] == "all"
    assert prof.engine["intra_op_threads"] == {pe: 1}
    assert prof.board["fused_layers"]           # the leaky activations fuse into their convs
    plain = profile_cpu(g, _pes()[:1], runs=2, warmup=1, optimization="disable")
    assert plain.engine["optimization"] == "disable" and "fused_layers" not in plain.board
