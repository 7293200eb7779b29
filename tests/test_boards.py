"""Board files, modeled profiles, the Xavier calibration, and DLA fallback."""

import json

import pytest

from hetsched import graph, profile
from hetsched.cli import main
from hetsched.models.zoo import ZOO, build_zoo
from hetsched.partition import make_plan
from hetsched.partition.cost import PlanError, Stage, evaluate, validate
from hetsched.profiler.board import BOARDS_DIR, load_board, list_boards
from hetsched.calibrate import JEDI_YOLOV2, calibrate_xavier, predictions
from hetsched.profiler.roofline import model_profile

JETSONS = ["jetson-tx2", "jetson-agx-xavier", "jetson-agx-orin"]


def _figures(node, path=""):
    if isinstance(node, dict):
        if "value" in node:
            yield path, node
        else:
            for k, v in node.items():
                yield from _figures(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _figures(v, f"{path}[{i}]")


def test_every_board_figure_carries_its_source():
    assert set(JETSONS) | {"vm-2core"} <= set(list_boards())
    for name in list_boards():
        raw = json.loads((BOARDS_DIR / f"{name}.json").read_text())
        figs = list(_figures(raw))
        assert figs, name
        for path, fig in figs:
            assert isinstance(fig.get("source"), str) and len(fig["source"]) > 8, f"{name}{path}"
        load_board(name)


@pytest.fixture(scope="module")
def zoo_graphs():
    return {n: graph.from_model(build_zoo(n, 416), name=n) for n in ZOO}


@pytest.mark.slow
@pytest.mark.parametrize("board", JETSONS)
def test_modeled_profiles_of_every_zoo_network_are_contract_valid(board, zoo_graphs):
    b = load_board(board)
    for name, g in zoo_graphs.items():
        prof = model_profile(g, b, "fp16")
        again = profile.from_dict(json.loads(json.dumps(prof.to_dict())))
        assert again.source == "modeled" and len(again.layers) == len(g)
        for pe, spec in b.pes.items():
            costs = [l.cost_ms[pe] for l in again.layers]
            if spec.kind == "dla":
                # leaky YOLOs: Xavier's DLA cannot run LeakyRelu (JEDI), so those layers are null
                leaky = [c for c, l in zip(costs, again.layers) if l.op == "LeakyRelu"]
                if "LeakyRelu" in b.dla_unsupported:
                    assert leaky and all(c is None for c in leaky)
            else:
                assert all(c is not None and c >= 0 for c in costs)


def test_roofline_by_hand():
    """One Conv on Xavier's GPU in fp16, computed from the board file's figures."""
    b = load_board("jetson-agx-xavier")
    g = graph.from_model(build_zoo("tiny-yolov2", 416, "relu"), name="t2")
    prof = model_profile(g, b, "fp16")
    conv = g.layers[0]
    peak = b.pes["gpu"].peak_gflops["fp16"] * b.efficiency["gpu"]["Conv"] * 1e6
    bw = b.bandwidth_gbps * b.bandwidth_efficiency * 1e6
    want = max(conv.flops / peak, conv.bytes_moved * 0.5 / bw) + b.pes["gpu"].overhead_ms
    assert prof.layers[0].cost_ms["gpu"] == pytest.approx(want)
    assert g.layers[1].op == "Relu" and prof.layers[1].cost_ms["gpu"] == 0.0   # fused into the conv
    assert prof.layers[1].cost_ms["cpu"] > 0                                      # not on the CPU
    assert prof.tensors[conv.outputs[0]] == g.tensors[conv.outputs[0]].bytes // 2


@pytest.mark.slow
def test_stored_xavier_calibration_reproduces_its_targets():
    """The board file's fitted efficiencies give JEDI's two FP16 figures back within 5% (the fit
    is stored, so this fails if the model or the board file changes without re-fitting), no
    fitted rate is above its published peak, and fitting again gives the stored figures."""
    g = graph.from_model(build_zoo("yolov2", 416, "relu"), name="yolov2-relu-416")
    b = load_board("jetson-agx-xavier")
    assert b.raw["calibration"]["status"].startswith("calibrated")
    got = predictions(g, b, "fp16")
    assert got["gpu_only_fps"] == pytest.approx(JEDI_YOLOV2["gpu_only_fps"], rel=0.005)
    assert got["pipeline_fps"] == pytest.approx(JEDI_YOLOV2["pipeline_fps"], rel=0.05)
    stored_fit = b.raw["calibration"]["fp16_predicted"]
    assert got["pipeline_fps"] == pytest.approx(stored_fit["pipeline_fps"], rel=0.005)
    stored = {k: b.efficiency[k]["Conv"] for k in ("gpu", "dla")}
    assert all(0 < e <= 1.0 for e in stored.values())
    fit = calibrate_xavier(g, load_board("jetson-agx-xavier"))
    assert fit["gpu_conv_efficiency"] == pytest.approx(stored["gpu"], abs=1e-4)
    assert fit["dla_conv_efficiency"] == pytest.approx(stored["dla"], abs=1e-4)


def test_cli_profile_board(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["profile", "tiny-yolov3", "--board", "jetson-agx-orin", "--precision", "int8",
                 "-o", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["source"] == "modeled" and d["board"]["precision"] == "int8"
    assert d["schema"] == "hetsched.profile/2"             # the board's version-2 terms, per PE
    assert d["stage_overhead_ms"]["dla1"] > 0 and d["contention"]["gpu"]["dla0"] > 0
    assert main(["profile", "tiny-yolov3", "--board", "jetson-nano", "-o", str(out)]) == 1
    assert "no board 'jetson-nano'" in capsys.readouterr().err


def fallback_profile(pairs=6):
    """conv + leaky pairs; the DLAs run convs fast but not leaky."""
    layers, tensors, prev = [], {"x": {"bytes": 1000}}, "x"
    for k in range(pairs):
        for op, g, d in (("Conv", 4.0, 3.0), ("LeakyRelu", 0.2, None)):
            name = f"{op.lower()}{k}"
            layers.append({"name": name, "op": op, "inputs": [prev], "outputs": [name],
                           "cost_ms": {"cpu": 40.0, "gpu": g, "dla0": d, "dla1": d}})
            tensors[name] = {"bytes": 1000}
            prev = name
    return profile.from_dict({
        "schema": "hetsched.profile/1", "source": "modeled",
        "model": {"name": "fb", "sha256": None, "inputs": {"x": [1]}}, "board": {"name": "t"},
        "host": "cpu", "pes": {"cpu": {"kind": "cpu"}, "gpu": {"kind": "gpu"},
                                "dla0": {"kind": "dla"}, "dla1": {"kind": "dla"}},
        "layers": layers, "tensors": tensors, "graph_outputs": [prev],
        "transfer": {"default": {"latency_ms": 0.05, "ms_per_mb": 0.0}}})


def test_fallback_pricing_by_hand():
    prof = fallback_profile()
    whole = [Stage(("dla0",), 0, 11)]
    with pytest.raises(PlanError, match="--dla-fallback would run it on the GPU"):
        validate(prof, whole)
    plan = evaluate(prof, whole, dla_fallback=True)
    # 6 convs x 3 + 6 islands x (0.2 on the GPU + 0.05 out + 0.05 back) + input 0.05 + output 0.05
    assert plan.stage_costs[0].time_ms("dla0") == pytest.approx(18 + 6 * 0.3 + 0.1)
    assert plan.pe_load_ms["gpu"] == pytest.approx(1.2)
    assert plan.to_dict()["dla_fallback"] is True


def test_fallback_changes_the_plan_when_it_should():
    prof = fallback_profile()
    strict = make_plan(prof, "heuristic")
    loose = make_plan(prof, "heuristic", dla_fallback=True)
    assert loose.bottleneck_ms < 0.9 * strict.bottleneck_ms
    leaky_on_dla = [s for s in loose.stages if s.pes[0].startswith("dla")
                    and any(prof.layers[i].op == "LeakyRelu" for i in range(s.first, s.last + 1))]
    assert leaky_on_dla
    assert make_plan(prof, "replicate", dla_fallback=True).bottleneck_ms < \
        make_plan(prof, "replicate").bottleneck_ms
    with pytest.raises(PlanError, match="optimal planner prices the contract's strict plans"):
        make_plan(prof, "optimal", dla_fallback=True)


def test_fallback_does_not_change_a_plan_that_needs_none():
    prof = fallback_profile()
    for layer in prof.layers:   # now the DLAs can run everything
        for d in ("dla0", "dla1"):
            layer.cost_ms[d] = layer.cost_ms[d] if layer.cost_ms[d] is not None else 0.15
    assert make_plan(prof, "heuristic", dla_fallback=True).stages == make_plan(prof, "heuristic").stages
