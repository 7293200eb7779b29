"""The contract's profile format: the worked example loads, round trips, and every defect gets
one line naming it; saving is atomic."""

import copy
import json

import pytest

from hetsched import graph, profile
from hetsched.errors import ProfileError
from hetsched.models.zoo import build_zoo


@pytest.fixture
def example(example_file):
    """The raw JSON (these tests break it on purpose)."""
    return json.loads(example_file.read_text())


@pytest.fixture
def example_v2(example_v2_file):
    return json.loads(example_v2_file.read_text())


def test_worked_example_loads(example):
    p = profile.from_dict(example)
    assert [l.name for l in p.layers] == ["pre", "conv1", "conv2", "add", "post"]
    assert p.graph_inputs() == ["x"]
    assert p.host == "cpu0" and p.pes["dla1"].kind == "dla"
    assert p.cost(0, "gpu") is None
    # 0.1 ms + 0.5 ms/MB, MB = 10^6 bytes; a PE to itself is free
    assert p.transfer_ms("cpu0", "dla0", 2_000_000) == pytest.approx(1.1)
    assert p.transfer_ms("gpu", "gpu", 2_000_000) == 0.0


def test_round_trip(tmp_path, example):
    p = profile.from_dict(example)
    profile.save(p, tmp_path / "p.json")
    q = profile.load(tmp_path / "p.json")
    assert q.to_dict() == p.to_dict()


def _broken(example, mutate):
    d = copy.deepcopy(example)
    mutate(d)
    return d


CASES = [
    (lambda d: d.pop("layers"), "missing field 'layers'"),
    (lambda d: d.update(schema="hetsched.profile/0"), "schema"),
    (lambda d: d.update(source="guessed"), "source"),
    (lambda d: d.update(host="cpu9"), "host 'cpu9'"),
    (lambda d: d["pes"]["gpu"].update(kind="npu"), "pes.gpu.kind"),
    (lambda d: [l["cost_ms"].pop("dla1") for l in d["layers"]], "PE 'dla1' has no cost column"),
    (lambda d: d["layers"][1]["cost_ms"].update(tpu=1.0), "'tpu', which is not one of the pes"),
    (lambda d: d["layers"][1]["cost_ms"].update(gpu=-1.0), "negative"),
    (lambda d: d["layers"][1]["cost_ms"].update(gpu="fast"), "must be a number"),
    (lambda d: d["layers"][1]["cost_ms"].update(gpu=float("inf")), "cost_ms.gpu is inf, beyond"),
    (lambda d: d["layers"][1]["cost_ms"].update(gpu=1e308), "is 1e.308, beyond .* null cost"),
    (lambda d: d.update(host_ms=1e300), r"host_ms is 1e\+300, beyond .*at most 1e\+12\)$"),
    (lambda d: d["layers"].reverse(), "topological order"),
    (lambda d: d["layers"][2].update(name="conv1"), "repeats the layer name 'conv1'"),
    (lambda d: d["layers"][2]["inputs"].append("ghost"), "'ghost', which is not in tensors"),
    (lambda d: d.update(graph_outputs=["nope"]), "graph output 'nope'"),
    (lambda d: d["transfer"].pop("default"), "no 'default'"),
    (lambda d: d["transfer"].update({"cpu0->tpu": {"latency_ms": 0, "ms_per_mb": 0}}), "cpu0->tpu"),
    (lambda d: d["tensors"]["a"].pop("bytes"), "missing field 'bytes'"),
    (lambda d: d.update(stage_overhead_ms={"gpu": -0.1}), r"stage_overhead_ms.gpu is negative"),
    (lambda d: d.update(stage_overhead_ms={"npu": 0.1}), "stage_overhead_ms names 'npu'"),
    (lambda d: d.update(stage_overhead_ms=[0.1]), "'stage_overhead_ms' must be an object"),
    (lambda d: d.update(host_ms=-1), "host_ms is negative"),
    (lambda d: d.update(host_ms="slow"), "host_ms must be a number"),
    (lambda d: d.update(contention={"gpu": {"tpu": 0.1}}), r"contention.gpu names 'tpu'"),
    (lambda d: d.update(contention={"tpu": {"gpu": 0.1}}), "contention names 'tpu'"),
    (lambda d: d.update(contention={"gpu": {"dla0": -0.2}}), r"contention.gpu.dla0 is negative"),
    (lambda d: d.update(contention={"gpu": {"gpu": 0.2}}), "does not contend with itself"),
    (lambda d: d.update(contention={"gpu": 0.2}), r"contention.gpu must be an object"),
    (lambda d: d.update(engine="ort"), "'engine' must be an object"),
    (lambda d: d["transfer"].update({"npu->npu": {"latency_ms": 0, "ms_per_mb": 0}}), "npu->npu"),
]


@pytest.mark.parametrize("mutate,match", CASES)
def test_defects_get_one_line(example, mutate, match):
    with pytest.raises(ProfileError, match=match) as e:
        profile.from_dict(_broken(example, mutate), "p.json")
    assert "\n" not in str(e.value) and str(e.value).startswith("p.json: ")


def test_version_2_example_loads(example_v2):
    p = profile.from_dict(example_v2)
    assert p.host_ms == 0.3 and p.overhead_ms("dla1") == 0.2 and p.engine["backend"] == "example"
    # section 6: the GPU slows by 0.1 per busy DLA, each DLA by 0.2 beside the GPU
    assert p.factor("gpu", {"gpu", "dla0", "dla1", "cpu0"}) == pytest.approx(1.2)
    assert p.factor("gpu", {"gpu", "dla1"}) == pytest.approx(1.1)
    assert p.factor("dla0", {"dla0", "dla1"}) == 1.0 and p.factor("cpu0", set(p.pes)) == 1.0
    assert p.contended() == ["gpu", "dla0", "dla1"]


def test_version_1_reads_with_the_new_terms_at_their_defaults(example):
    p = profile.from_dict(example)
    assert p.host_ms == 0.0 and p.stage_overhead_ms == {} and p.contention == {}
    assert p.engine == {} and p.contended() == []
    assert all(p.overhead_ms(pe) == 0.0 and p.factor(pe, set(p.pes)) == 1.0 for pe in p.pes)
    d = p.to_dict()
    assert d["schema"] == "hetsched.profile/2" and profile.from_dict(d).to_dict() == d


def test_version_2_round_trip(tmp_path, example_v2):
    p = profile.from_dict(example_v2)
    profile.save(p, tmp_path / "p.json")
    q = profile.load(tmp_path / "p.json")
    assert q.to_dict() == p.to_dict()
    assert json.loads((tmp_path / "p.json").read_text())["contention"]["dla0"] == {"gpu": 0.2}


def test_same_pe_transfer_is_free_unless_measured(example_v2):
    d = copy.deepcopy(example_v2)
    d["transfer"]["cpu0->cpu0"] = {"latency_ms": 0.25, "ms_per_mb": 1.0}
    p = profile.from_dict(d)
    assert p.transfer_ms("cpu0", "cpu0", 2_000_000) == pytest.approx(2.25)
    assert p.transfer_ms("cpu1", "cpu1", 2_000_000) == 0.0
    assert p.transfer_ms("cpu1", "cpu0", 2_000_000) == pytest.approx(1.1)   # the default


def test_missing_entry_means_null(example):
    d = _broken(example, lambda d: d["layers"][0]["cost_ms"].pop("gpu"))
    assert profile.from_dict(d).cost(0, "gpu") is None


def test_unreadable_files(tmp_path):
    with pytest.raises(ProfileError, match="no such profile"):
        profile.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"schema": ')
    with pytest.raises(ProfileError, match=r"not valid JSON \(line 1"):
        profile.load(tmp_path / "bad.json")


def test_save_never_leaves_half_a_file(tmp_path, example):
    target = tmp_path / "p.json"
    target.write_text("previous")
    p = profile.from_dict(example)
    p.layers[0].cost_ms["cpu0"] = -5.0  # invalid: refused before anything is written
    with pytest.raises(ProfileError):
        profile.save(p, target)
    assert target.read_text() == "previous"
    assert [f.name for f in tmp_path.iterdir()] == ["p.json"]


def test_profile_for_another_model_is_refused(tmp_path):
    from hetsched.profile import PE, Transfer
    from hetsched.profiler import assemble
    a_path, b_path = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a_path.write_bytes(build_zoo("tiny-yolov3", 64).SerializeToString())
    b_path.write_bytes(build_zoo("tiny-yolov3", 64, seed=1).SerializeToString())
    a, b = graph.load(a_path), graph.load(b_path)
    pes = [PE("cpu0", "cpu")]
    prof = assemble(a, pes, {"cpu0": [1.0] * len(a)}, {"default": Transfer(0, 0)},
                    source="measured", board={"name": "t"})
    profile.check_model(prof, a)
    with pytest.raises(ProfileError, match="not for 'b'"):
        profile.check_model(prof, b, "p.json")
    other_size = graph.load(build_zoo("tiny-yolov3", 96))
    prof.model.sha256 = None
    with pytest.raises(ProfileError, match="inputs"):
        profile.check_model(prof, other_size)
    # no checksum to compare: the layers say it, naming the first that differs
    relu = graph.load(build_zoo("tiny-yolov3", 64, "relu"))
    with pytest.raises(ProfileError, match="32 network layers against its 32, first differing "
                                           "at layer 1: 'L0.leaky' here, 'L0.relu' in the model"):
        profile.check_model(prof, relu, "p.json")
