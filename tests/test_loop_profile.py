"""Pipeline profiles and the version-2 terms measured on the runtime: the loop's layers are
contract-valid and CPU-only, the planners place them, the measured terms are sane, and the
runtime says when it runs another configuration than the profile's."""

import logging
from pathlib import Path

import pytest

from hetsched import graph, job, profile
from hetsched.models.zoo import build_zoo
from hetsched.partition import make_plan
from hetsched.profile import PE, Transfer
from hetsched.profiler import assemble, runtime_terms
from hetsched.profiler.cpu import _with_cut_cost
from hetsched.profiler.loop import DETECTIONS, FRAME, with_loop
from hetsched.cores import usable_cores


def _net(g, pes=("cpu0", "cpu1"), kinds=None):
    kinds = kinds or {p: "cpu" for p in pes}
    return assemble(g, [PE(p, kinds[p], {"cores": [k]}) for k, p in enumerate(pes)],
                    {p: [1.0] * len(g) for p in pes}, {"default": Transfer(0.1, 0.5)},
                    source="measured", board={"name": "t"})


def test_pipeline_profile_is_contract_valid_and_planned(tmp_path):
    g = graph.load(build_zoo("tiny-yolov3", 96))
    net = _net(g, ("cpu0", "gpu"), {"cpu0": "cpu", "gpu": "gpu"})
    prof = with_loop(net, {"cpu0": 3.0}, {"cpu0": 4.0}, frame_bytes=921600, result_bytes=500,
                     host_ms=1.5, loop={"source": "synthetic"})
    profile.save(prof, tmp_path / "p.json")
    back = profile.load(tmp_path / "p.json")
    profile.check_model(back, g)              # the network layers still match the model
    assert back.is_pipeline() and back.network_layers()[0].name == g.layers[0].name
    assert back.layers[0].inputs == (FRAME,) and back.layers[-1].outputs == (DETECTIONS,)
    assert back.layers[0].cost_ms == {"cpu0": 3.0, "gpu": None}
    assert back.graph_outputs == [DETECTIONS] and back.host_ms == 1.5
    plan = make_plan(back, "optimal")
    assert plan.stages[0].pes == ("cpu0",) and plan.stages[-1].pes == ("cpu0",)
    assert plan.pe_load_ms["cpu0"] >= 3.0 + 4.0 + 1.5
    with pytest.raises(ValueError, match="already"):
        with_loop(back, {}, {}, frame_bytes=1, result_bytes=1, host_ms=0, loop={})


def test_cut_cost_goes_to_the_consumer():
    t = {"cpu0->cpu1": Transfer(0.1, 0.5), "cpu1->cpu0": Transfer(0.2, 0.4),
         "default": Transfer(0.15, 0.45)}
    cut = {"cpu0": {"latency_ms": 0.01, "ms_per_mb": 0.2}, "cpu1": {"latency_ms": 0.0, "ms_per_mb": 0.3}}
    out = _with_cut_cost(t, cut)
    assert out["cpu0->cpu1"] == Transfer(0.1, 0.8) and out["cpu1->cpu0"] == Transfer(0.21, 0.6)
    assert out["cpu0->cpu0"] == Transfer(0.01, 0.2) and out["cpu1->cpu1"] == Transfer(0.0, 0.3)
    assert out["default"] == Transfer(0.155, 0.7)


@pytest.mark.skipif(len(usable_cores()) < 2, reason="needs two cores")
def test_runtime_terms_are_measured_and_sane():
    hop = runtime_terms.hop_ms("cpu0", [0], frames=100)
    launch = runtime_terms.launch_ms([0], 1, "all", runs=50)
    assert 0 < hop < 5.0 and 0 < launch < 5.0
    # a wake-up costs something, and far less than the 0.5 ms holds it sits between
    assert 0 < runtime_terms.handover_ms(hold_ms=0.5, frames=200, rounds=1) < 0.5
    g = graph.load(build_zoo("tiny-yolov2", 64))
    cont = runtime_terms.contention(g.model.SerializeToString(), {"cpu0": [0], "cpu1": [1]},
                                    {"cpu0": 1, "cpu1": 1}, "all", rounds=2)
    assert set(cont) == {"cpu0", "cpu1"} and all(v >= 0 for r in cont.values() for v in r.values())
    cut = runtime_terms.cut_cost(g, {"cpu0": [0]}, {"cpu0": 1}, "all", {"cpu0": launch},
                                 cuts=3, runs=2)
    assert cut["cpu0"]["latency_ms"] >= 0 and cut["cpu0"]["ms_per_mb"] >= 0


def test_the_runtime_says_when_it_runs_another_configuration(caplog):
    from hetsched.runtime.spec import from_dict
    g = graph.load(build_zoo("tiny-yolov2", 64))
    prof = _net(g)
    prof.engine = {"backend": "onnxruntime-cpu", "optimization": "all",
                   "intra_op_threads": {"cpu0": 1, "cpu1": 1}}
    said = []
    spec = from_dict({"model": {"zoo": "tiny-yolov2", "size": 64},
                      "engine": {"optimization": "disable"}}, "t")
    with caplog.at_level(logging.WARNING):
        job._say_engine_mismatch(prof, spec, said.append)
    assert said and "optimisation 'disable' (profile: 'all')" in said[0]
    said.clear()
    job._say_engine_mismatch(prof, from_dict({"model": {"zoo": "tiny-yolov2"}}, "t"), said.append)
    assert not said


def test_host_work_is_the_read_plus_the_sinks_the_spec_writes():
    from hetsched.profiler.loop import measure_loop
    from hetsched.runtime.sources import open_source
    from hetsched.runtime.task import make_task
    from hetsched.runtime.spec import from_dict
    g = graph.load(build_zoo("tiny-yolov2", 64))
    spec = from_dict({"model": {"zoo": "tiny-yolov2", "size": 64}, "source": "synthetic:64x48"}, "t")
    pes = [PE("cpu0", "cpu", {"cores": [0]})]

    def measure(sinks):
        return measure_loop(g, make_task(g, spec.detect), lambda: open_source(spec.source, 12), pes,
                            host="cpu0", rounds=3, warmup=1, sinks=sinks)
    bare = measure(())
    assert bare["sink_ms"] == {} and bare["host_ms"] == bare["read_ms"] > 0
    full = measure(("jsonl", "video", "dump"))
    assert set(full["sink_ms"]) == {"jsonl", "video", "dump"}
    assert all(v > 0 for v in full["sink_ms"].values())
    assert full["host_ms"] == pytest.approx(full["read_ms"] + sum(full["sink_ms"].values()))
    # the sinks wrote into a temporary folder that is gone
    import tempfile
    assert not list(Path(tempfile.gettempdir()).glob("hetsched-sink-*"))
