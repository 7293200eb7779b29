"""Board model version 2: stage overheads, GPU<->DLA reformats, contention, the DLA's MAC
geometry and its subgraph limit, each checked on a hand-computed two-stage GPU + DLA plan; what a
board would settle; the probe models."""

import json

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from hetsched import graph
from hetsched.cli import main
from hetsched.partition import make_plan
from hetsched.partition.cost import PlanError, Stage, dla_subgraphs, evaluate, validate
from hetsched.profiler.board import BoardError, load_board, read_raw
from hetsched.profiler.roofline import model_profile
from hetsched.profiler.settle import PROBES, assumed_figures, measurement_for, probe_model, settle_report

from test_boards import JETSONS, fallback_profile

TOY = {
    "schema": "hetsched.board/2", "name": "toy", "host": "cpu",
    "memory": {"bandwidth_gbps": {"value": 100.0, "source": "test figure"}},
    "pes": {"cpu": {"kind": "cpu", "peak_gflops": {"fp32": {"value": 100.0, "source": "test figure"}}},
            "gpu": {"kind": "gpu", "peak_gflops": {"fp16": {"value": 1000.0, "source": "test figure"}}},
            "dla0": {"kind": "dla", "peak_gflops": {"fp16": {"value": 500.0, "source": "test figure"}}},
            "dla1": {"kind": "dla", "same_as": "dla0"}},
    "stage_overhead_ms": {"cpu": {"value": 0.05, "source": "test figure"},
                          "gpu": {"value": 0.03, "source": "test figure"},
                          "dla": {"value": 0.2, "source": "test figure"}},
    "contention": {"gpu": {"dla": {"value": 0.1, "source": "test figure"}},
                   "dla": {"gpu": {"value": 0.2, "source": "test figure"},
                           "dla": {"value": 0.05, "source": "test figure"}}},
    "dla": {"atomic_c": {"value": 64, "source": "test figure"},
            "atomic_k": {"fp16": {"value": 16, "source": "test figure"}},
            "winograd_speedup": {"value": 2.25, "source": "test figure"},
            "image_input_utilisation": {"value": 0.5, "source": "test figure"},
            "max_subgraphs_per_core": {"value": 8, "source": "test figure"}},
    "efficiency": {"gpu": {"Conv": {"value": 0.5, "source": "t"}, "other": {"value": 0.25, "source": "t"}},
                   "dla": {"Conv": {"value": 0.8, "source": "t"}, "other": {"value": 0.25, "source": "t"}},
                   "cpu": {"other": {"value": 0.1, "source": "t"}}},
    "transfer": {"default": {"latency_ms": {"value": 0.01, "source": "t"}, "ms_per_mb": {"value": 0.001, "source": "t"}},
                 "gpu->dla0": {"latency_ms": {"value": 0.04, "source": "reformat"},
                               "ms_per_mb": {"value": 0.02, "source": "reformat"}},
                 "gpu->dla1": {"same_as": "gpu->dla0"}},
}


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(TOY))
    return load_board(str(path))


def two_convs():
    """x (1,3,32,32) -> conv a 3x3 3->16 -> conv b 3x3 16->20 -> y."""
    rng = np.random.default_rng(0)
    wa = numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "wa")
    wb = numpy_helper.from_array(rng.standard_normal((20, 16, 3, 3)).astype(np.float32), "wb")
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="a", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Conv", ["a", "wb"], ["y"], name="b", kernel_shape=[3, 3], pads=[1] * 4)]
    g = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 20, 32, 32])], [wa, wb])
    return graph.from_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), name="two")


def test_two_stage_gpu_dla_plan_by_hand(toy):
    """gpu [a] | dla0 [b], every version-2 term of the board computed by hand from TOY."""
    prof = model_profile(two_convs(), toy, "fp16")
    # a on the GPU: roofline, compute-bound: 2*16*3*9*1024 FLOPs at 1000 GFLOPS x 0.5
    a_gpu = 2 * 16 * 3 * 9 * 1024 / (1000 * 0.5 * 1e6)
    assert prof.layers[0].cost_ms["gpu"] == pytest.approx(a_gpu)
    # b on the DLA: 16 input channels fill one Atomic-C block of 64, 20 outputs two Atomic-K
    # blocks of 16 (32), 3x3 stride 1 -> Winograd / 2.25; at 500 GFLOPS x 0.8
    b_macs = 9 * 64 * 32 * 1024 / 2.25
    b_dla = 2 * b_macs / (500 * 0.8 * 1e6)
    assert prof.layers[1].cost_ms["dla0"] == pytest.approx(b_dla)
    # a on the DLA is the first layer (3 channels): image-input mode at 50%, no Winograd
    assert prof.layers[0].cost_ms["dla0"] == pytest.approx(2 * 9 * 16 * (3 / 0.5) * 1024 / (500 * 0.8 * 1e6))
    assert prof.stage_overhead_ms == {"cpu": 0.05, "gpu": 0.03, "dla0": 0.2, "dla1": 0.2}
    assert prof.contention["gpu"] == {"dla0": 0.1, "dla1": 0.1}
    assert prof.contention["dla0"] == {"gpu": 0.2, "dla1": 0.05}
    assert prof.board["dla_max_subgraphs_per_core"] == 8

    plan = evaluate(prof, [Stage(("gpu",), 0, 0), Stage(("dla0",), 1, 1)])
    mb = lambda nbytes: nbytes / 1e6  # noqa: E731  (tensors are handed on at fp16: half their fp32 bytes)
    x_in = 0.01 + 0.001 * mb(3 * 1024 * 2)           # host -> gpu: default link
    reformat = 0.04 + 0.02 * mb(16 * 1024 * 2)       # gpu -> dla0: the reformat key
    y_out = 0.01 + 0.001 * mb(20 * 1024 * 2)         # dla0 -> host: default link
    # U = {gpu, dla0}: dla1 idles, so it slows no one
    t_gpu = (a_gpu + x_in) * 1.1 + 0.03
    t_dla = (b_dla + reformat + y_out) * 1.2 + 0.2
    assert plan.pe_load_ms["gpu"] == pytest.approx(t_gpu)
    assert plan.pe_load_ms["dla0"] == pytest.approx(t_dla)
    assert plan.bottleneck_ms == pytest.approx(max(t_gpu, t_dla))
    assert plan.latency_ms == pytest.approx(t_gpu + t_dla)

    # both DLAs sharing b: each DLA is slowed by the GPU and the other DLA, the GPU by both
    both = evaluate(prof, [Stage(("gpu",), 0, 0), Stage(("dla0", "dla1"), 1, 1)])
    assert both.pe_load_ms["gpu"] == pytest.approx((a_gpu + x_in) * 1.2 + 0.03)
    assert both.pe_load_ms["dla1"] == pytest.approx(((b_dla + reformat + y_out) * 1.25 + 0.2) / 2)


def test_plan_shows_where_the_terms_bite(toy, tmp_path, capsys):
    from hetsched import profile
    path = tmp_path / "p.json"
    profile.save(model_profile(two_convs(), toy, "fp16"), path)
    saved = json.loads(path.read_text())
    assert saved["stage_overhead_ms"]["dla0"] == 0.2 and saved["contention"]["gpu"]["dla1"] == 0.1
    assert main(["plan", str(path), "--pe", "dla0,dla1", "--method", "replicate"]) == 0
    out = capsys.readouterr().out       # both DLAs: each slowed by the other, each paying 0.2 ms
    assert "x factor" in out and "slowdown" in out and "overhead" in out and "%" in out
    assert main(["plan", str(path), "--pe", "gpu"]) == 0
    out = capsys.readouterr().out       # one PE: nothing contends, only the overhead column
    assert "slowdown" not in out and "(overhead: the share of each PE's load that the per-stage" in out


def test_board_terms_name_only_kinds_the_board_has(tmp_path):
    bad = json.loads(json.dumps(TOY))
    bad["contention"]["gpu"]["npu"] = {"value": 0.1, "source": "t"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(BoardError, match="contention.gpu.npu"):
        load_board(str(path))
    bad = json.loads(json.dumps(TOY))
    del bad["dla"]["atomic_c"]
    path.write_text(json.dumps(bad))
    with pytest.raises(BoardError, match="atomic_c"):
        load_board(str(path))


def test_a_strict_dla_stage_is_one_subgraph_whatever_the_limit(toy):
    """The limit is per engine (one per stage): strict stages hold one DLA subgraph each, so
    even a limit of 1 refuses no strict plan, and the planners' plans stand."""
    four = model_profile(_chain(4), toy, "fp16")
    four.board["dla_max_subgraphs_per_core"] = 1
    stages = [Stage(("dla0",), 0, 0), Stage(("gpu",), 1, 1), Stage(("dla0",), 2, 2), Stage(("gpu",), 3, 3)]
    assert dla_subgraphs(four, stages) == {"dla0": [1, 1]}
    validate(four, stages)
    for method in ("heuristic", "optimal"):
        validate(four, make_plan(four, method).stages)


def _chain(n):
    rng = np.random.default_rng(1)
    nodes, inits, prev = [], [], "x"
    for i in range(n):
        inits.append(numpy_helper.from_array(rng.standard_normal((64, 64, 3, 3)).astype(np.float32), f"w{i}"))
        out = "y" if i == n - 1 else f"t{i}"
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [out], name=f"c{i}", kernel_shape=[3, 3], pads=[1] * 4))
        prev = out
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 32, 32])], inits)
    return graph.from_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), name="chain")


def test_fallback_islands_count_against_the_subgraph_limit():
    prof = fallback_profile()        # six conv + leaky pairs: a whole-network DLA stage has 6 DLA runs
    whole = [Stage(("dla0",), 0, 11)]
    assert dla_subgraphs(prof, whole, dla_fallback=True) == {"dla0": [6]}
    prof.board["dla_max_subgraphs_per_core"] = 4
    with pytest.raises(PlanError, match=r"stage 0 needs 6 DLA subgraphs on dla0 \(its fallback islands "
                                        r"split it\); TensorRT builds at most 4 per DLA core in one engine"):
        validate(prof, whole, dla_fallback=True)
    with pytest.raises(PlanError, match="cannot run on dla0"):   # strict: refused for its nulls
        validate(prof, whole)
    rep = make_plan(prof, "replicate", dla_fallback=True)
    assert not any(p.startswith("dla") for s in rep.stages for p in s.pes)
    heur = make_plan(prof, "heuristic", dla_fallback=True)
    assert all(k <= 4 for ks in dla_subgraphs(prof, heur.stages, dla_fallback=True).values() for k in ks)
    # two DLA stages of 3 and 2 DLA runs fit: the limit is per engine, not per core
    split = [Stage(("dla0",), 0, 5), Stage(("gpu",), 6, 6), Stage(("dla0",), 7, 11)]
    assert dla_subgraphs(prof, split, dla_fallback=True) == {"dla0": [3, 2]}   # conv4, conv5 after conv3 on the GPU
    validate(prof, split, dla_fallback=True)


def test_every_assumed_board_figure_says_how_a_board_would_settle_it():
    for name in JETSONS:
        raw = read_raw(name)[0]
        assert raw["schema"] == "hetsched.board/2", name
        assumed = assumed_figures(raw)
        assert assumed, name
        missing = [p for p, _ in assumed if measurement_for(p) is None]
        assert not missing, f"{name}: no measurement for {missing}"
        report = settle_report(raw)
        assert report.count("  run:  ") == len(assumed)
        b = load_board(name)
        assert b.stage_overhead_ms.get("gpu"), name
        if b.dla is not None:
            assert b.contention["gpu"]["dla"] > 0 and b.dla.max_subgraphs_per_core == 8
    # a fitted figure is marked so, and never above the published peak
    raw = read_raw("jetson-agx-xavier")[0]
    fitted = [(k, v["value"]) for k, v in raw["efficiency"].items() for v in [v.get("Conv", {})] if v.get("fitted")]
    assert sorted(k for k, _ in fitted) == ["dla", "gpu"] and all(0 < v <= 1 for _, v in fitted)


def test_probe_models_run_and_the_winograd_pair_has_equal_macs():
    outputs = {}
    for name in PROBES:
        model = probe_model(name)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        outputs[name] = sess.run(None, {inp.name: np.ones(inp.shape, np.float32)})[0].shape
    assert outputs["conv3x3s2_c64_208x208"] == outputs["conv3x3_c64_104x104"]
    macs = {n: sum(l.macs for l in graph.from_model(probe_model(n)).layers)
            for n in ("conv3x3s2_c64_208x208", "conv3x3_c64_104x104")}
    assert macs["conv3x3s2_c64_208x208"] == macs["conv3x3_c64_104x104"] > 0


def test_jetson_profile_settle_runs_without_tensorrt(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "scripts" / "jetson_profile.py"
    r = subprocess.run([sys.executable, str(script), "--settle", "jetson-agx-xavier",
                        "--write-probes", str(tmp_path / "probes")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "stage_overhead_ms.dla = 0.1" in r.stdout and "trtexec" in r.stdout
    assert len(list((tmp_path / "probes").glob("*.onnx"))) == len(PROBES)


def test_dla_section_figures_are_checked(tmp_path):
    path = tmp_path / "bad.json"
    for mutate, message in [(lambda b: b["dla"].__setitem__("winograd_speedup", {"value": 0, "source": "t"}),
                             "dla.winograd_speedup must be above 0"),
                            (lambda b: b["pes"]["dla0"]["peak_gflops"].__setitem__("int8", {"value": 9.0, "source": "t"}),
                             "dla.atomic_k has no figure for int8")]:
        bad = json.loads(json.dumps(TOY))
        mutate(bad)
        path.write_text(json.dumps(bad))
        with pytest.raises(BoardError, match=message):
            load_board(str(path))
