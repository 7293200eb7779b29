"""`hetsched bench` end to end on a small model: every method runs, the JSON has the documented
shape, energy is null where no backend exists, and the report files are written."""

import json
from pathlib import Path

import pytest

from hetsched.cli import main
from hetsched.runtime.report import Report


@pytest.mark.slow
def test_bench_model_measures_whole_loops_with_predictions(tmp_path, capsys, monkeypatch):
    """Without a spec: the whole loop (source, pre, network, post, sink) by every method, each
    planned one with the fps its plan predicts, and the method `hetsched run` would choose."""
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--model", "tiny-yolov2", "--size", "64", "--source", "synthetic:96x64",
                 "--frames", "3", "--repeat", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["baseline"] == "loop-sequential"
    assert set(doc["methods"]) == {"loop-sequential", "loop-intra-op", "replicate", "heuristic",
                                   "optimal"}
    for name, m in doc["methods"].items():
        assert m["fps"] > 0, name
        if name in ("replicate", "heuristic", "optimal"):
            assert m["predicted_fps"] > 0 and m["plan"]["stages"][0]["first"] == 0
        else:
            assert m["predicted_fps"] is None
    # the plans are of the pipeline profile: pre-processing is layer 0 of the first stage
    assert doc["chosen"] in ("heuristic", "optimal")


@pytest.mark.slow
def test_bench_network_only_json_and_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bench"
    assert main(["bench", "--model", "tiny-yolov2", "--size", "64", "--frames", "3", "--repeat", "2",
                 "--pes", "cpu0", "--network-only", "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["baseline"] == "sequential"
    assert set(doc["methods"]) == {"sequential", "intra-op", "replicate", "heuristic", "optimal"}
    for name, m in doc["methods"].items():
        assert {"fps", "fps_min", "fps_max", "latency_ms_p50", "latency_ms_p99",
                "joules_per_frame"} <= set(m), name
        assert m["fps_min"] <= m["fps"] <= m["fps_max"] and m["fps"] > 0
    if doc["energy"] is None:
        assert all(m["joules_per_frame"] is None for m in doc["methods"].values())
    assert doc["methods"]["sequential"]["ratio_vs_baseline"] == 1.0
    assert {p.name for p in out.iterdir()} == {"bench.json", "report.md", "bench.png"}
    assert "| sequential |" in (out / "report.md").read_text()


@pytest.mark.slow
def test_bench_spec_measures_the_detection_loop(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "p.yaml"
    spec.write_text("model: {zoo: tiny-yolov2, size: 64}\npes: [cpu0, cpu1]\n"
                    "source: synthetic:96x64\nsink: none\n")
    assert main(["bench", str(spec), "--methods", "loop-sequential,loop-pipelined", "--frames", "4",
                 "--repeat", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["baseline"] == "loop-sequential" and doc["loop_ratio"] > 0


def test_bench_rejects_unknown_method(capsys):
    with pytest.raises(SystemExit) as e:      # a usage error, as argparse's own
        main(["bench", "--model", "tiny-yolov2", "--methods", "warp-drive"])
    assert e.value.code == 2
    assert "unknown bench method(s) ['warp-drive']" in capsys.readouterr().err


def test_methods_with_the_same_plan_are_measured_once(tmp_path, monkeypatch):
    """Two methods that planned the same stages run one pipeline, once per repeat, and share
    its figures: a plan is never ranked against itself by noise."""
    from hetsched import bench, graph, job, profile
    from hetsched.models.zoo import build_zoo
    from hetsched.partition import make_plan
    from hetsched.runtime.spec import from_dict
    prof = profile.load(Path(__file__).parent / "data" / "tiny-yolov2-416.vm.json")
    g = graph.load(build_zoo("tiny-yolov2", 416))
    plan = make_plan(prof, "heuristic")
    monkeypatch.setattr(bench, "make_plan", lambda *a, **k: plan)   # every method: one plan
    runs = []
    monkeypatch.setattr(job, "network_pipeline", lambda *a, **k: type(
        "P", (), {"run": lambda self: runs.append(1) or Report(5, 0.5, [100.0] * 5)})())
    spec = from_dict({"model": {"zoo": "tiny-yolov2"}}, "test")
    doc = bench.run_bench(g, prof, spec, ["replicate", "heuristic", "optimal"], frames=5,
                          repeat=2)
    assert len(runs) == 2          # one pipeline, two repeats
    m = doc["methods"]
    assert m["heuristic"]["same_plan_as"] == "replicate" and m["optimal"]["same_plan_as"] == "replicate"
    assert m["heuristic"]["fps"] == m["optimal"]["fps"] == m["replicate"]["fps"] == 10.0
    assert "same_plan_as" not in m["replicate"]
