"""The runtime against the unsplit model: dumped outputs of split, replicated, skip-crossing CPU
plans equal one onnxruntime session over the whole model on the same inputs."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run
from hetsched import graph
from hetsched.cli import main
from hetsched.models.zoo import build_zoo
from runtime_helpers import hetsched_threads

# tiny-yolov3 at 128: L8.leaky (layer 13) is routed to layer 28, across every later cut
PLANS = {
    "three-stages": [{"pes": ["cpu0"], "first": 0, "last": 9},
                     {"pes": ["cpu1"], "first": 10, "last": 20},
                     {"pes": ["cpu0"], "first": 21, "last": 31}],
    "replicated-skip": [{"pes": ["cpu0"], "first": 0, "last": 9},
                        {"pes": ["cpu0", "cpu1"], "first": 10, "last": 16},
                        {"pes": ["cpu1"], "first": 17, "last": 23},
                        {"pes": ["cpu0"], "first": 24, "last": 31}],
}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "t3.onnx"
    path.write_bytes(build_zoo("tiny-yolov3", 128).SerializeToString())
    return path


@pytest.mark.parametrize("name", sorted(PLANS))
def test_dumped_outputs_equal_unsplit_model(tmp_path, model_file, name, capsys):
    g = graph.load(model_file)
    crossing = {t for b in (10, 17, 21, 24) for t in g.crossing(b)}
    assert "L8.leaky" in crossing  # the skip really crosses the cuts
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"schema": "hetsched.plan/1", "stages": PLANS[name]}))
    dump, jsonl = tmp_path / "dump", tmp_path / "det.jsonl"
    frames = 12
    rc = main(["run", "--model", str(model_file), "--plan", str(plan), "--source",
               "synthetic:160x120", "--frames", str(frames), "--dump", str(dump), "--jsonl",
               str(jsonl), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)["report"]
    assert report["frames"] == frames and report["dropped"] == 0
    files = sorted(p.name for p in dump.iterdir())
    assert files == [f"{i:06d}.npz" for i in range(frames)]  # none missing, none extra, no temp
    prev = None
    for f in files:
        data = np.load(dump / f)
        x = data["in/images"]
        assert prev is None or not np.array_equal(prev, x)  # frames differ: order is checkable
        prev = x
        ref = run(g.model, {"images": x})
        for out in g.outputs:
            assert np.max(np.abs(data[f"out/{out}"] - ref[out])) <= 1e-4
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(frames))
    assert all("detections" in r for r in lines)
    assert not hetsched_threads()


def test_dumped_inputs_are_the_synthetic_frames_in_order(tmp_path, model_file):
    """Frame k's dumped input is the pre-processed synthetic frame k, regenerated here."""
    from hetsched.detect.preprocess import PreConfig, preprocess
    from hetsched.runtime.sources import SyntheticSource
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stages": PLANS["replicated-skip"]}))
    dump = tmp_path / "d"
    assert main(["run", "--model", str(model_file), "--plan", str(plan), "--source",
                 "synthetic:160x120", "--frames", "6", "--dump", str(dump)]) == 0
    src = SyntheticSource(160, 120)
    for k in range(6):
        want, _ = preprocess(src.frame(k), PreConfig((128, 128)))
        assert np.array_equal(np.load(dump / f"{k:06d}.npz")["in/images"], want)


def test_plan_for_another_model_is_refused(tmp_path, model_file, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stages": [{"pes": ["cpu0"], "first": 0, "last": 40}]}))
    out = tmp_path / "det.jsonl"
    assert main(["run", "--model", str(model_file), "--plan", str(plan), "--frames", "2",
                 "--jsonl", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("hetsched: error: ") and "0..31" in err and "\n" not in err
    assert not out.exists()


def test_unreadable_video_is_one_line(tmp_path, model_file, capsys):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stages": PLANS["three-stages"]}))
    assert main(["run", "--model", str(model_file), "--plan", str(plan), "--source", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"hetsched: error: cannot open video '{bad}' (missing, unreadable, or a format this OpenCV cannot decode)"


def test_plan_naming_a_missing_core(tmp_path, model_file, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stages": [{"pes": ["cpu63"], "first": 0, "last": 31}]}))
    assert main(["run", "--model", str(model_file), "--plan", str(plan), "--frames", "2"]) == 1
    assert "PE 'cpu63' needs core(s) [63]" in capsys.readouterr().err


def test_emulated_gpu_and_dla_plan_runs(tmp_path, capsys):
    """A board this machine lacks: GPU and DLA PEs added to a measured profile, run emulated."""
    from hetsched.profile import from_dict, save
    model = tmp_path / "t2.onnx"
    assert main(["zoo", "tiny-yolov2", "--size", "416", "-o", str(model)]) == 0
    d = json.loads((Path(__file__).parent / "data" / "tiny-yolov2-416.vm.json").read_text())
    d["model"]["sha256"] = None
    d["source"] = "modeled"
    d["pes"].update({"gpu": {"kind": "gpu"}, "dla0": {"kind": "dla"}, "dla1": {"kind": "dla"}})
    for layer in d["layers"]:
        c = layer["cost_ms"]["cpu0"]
        layer["cost_ms"].update({"gpu": c / 20, "dla0": c / 10, "dla1": c / 10})
    prof = tmp_path / "board.json"
    save(from_dict(d), prof)
    plan = tmp_path / "plan.json"
    assert main(["plan", str(prof), "--pes", "gpu,dla0,dla1", "-o", str(plan)]) == 0
    capsys.readouterr()
    assert main(["run", "--model", str(model), "--plan", str(plan), "--profile", str(prof),
                 "--frames", "20", "--source", "synthetic:160x120", "--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["report"]["frames"] == 20
    used = {w["pe"] for w in doc["report"]["workers"]}
    assert used <= {"gpu", "dla0", "dla1"} and used
    # a modeled profile's plan is emulated, and says so before it runs and in the report
    assert sorted(doc["report"]["emulated"]) == sorted(used)
    assert "warning: emulating " in out.err and "the profile is modeled" in out.err
    assert main(["run", "--model", str(model), "--plan", str(plan), "--profile", str(prof),
                 "--frames", "20", "--source", "synthetic:160x120"]) == 0
    text = capsys.readouterr().out
    assert "emulated PEs: " in text and "measured" not in text.split("emulated PEs: ")[1]


def test_cli_run_sigterm_exits_143_within_a_second(tmp_path, model_file):
    import signal
    import subprocess
    import sys
    import time
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stages": PLANS["replicated-skip"]}))
    out = tmp_path / "det.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "hetsched.cli", "run", "--model", str(model_file),
                          "--plan", str(plan), "--source", "synthetic:160x120", "--jsonl", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # frames are flowing once the sink's file has taken its first buffer of lines (a fixed
    # second after it appeared was not always enough on the loaded 2-core VM)
    deadline = time.monotonic() + 60
    while not any(f.stat().st_size for f in out.parent.glob(".det.jsonl.*")):
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.05)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=10)
    assert time.monotonic() - t0 < 2.0   # one second to stop, plus interpreter exit
    assert p.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == f"hetsched: stopped by SIGTERM; kept {out}"
    lines = out.read_text().splitlines()   # a user stop keeps the complete lines written
    assert lines and [json.loads(x)["seq"] for x in lines] == list(range(len(lines)))


def test_annotated_video_and_latest_mode(tmp_path, model_file, capsys):
    import cv2
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stages": PLANS["three-stages"]}))
    video = tmp_path / "annotated.mp4"
    assert main(["run", "--model", str(model_file), "--plan", str(plan), "--source",
                 "synthetic:160x120", "--frames", "8", "--video", str(video), "--mode", "latest",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["report"]
    cap = cv2.VideoCapture(str(video))
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (120, 160, 3)
        n += 1
    assert n == report["frames"] == 8 - report["dropped"] and n >= 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_planned_pre_and_post_processing_give_the_unsplit_loops_detections(tmp_path):
    """A pipeline profile's plan runs Preprocess and Postprocess as the stages it names, the
    post-processing replicated over both cores here: every frame's detections equal the whole
    loop run one frame at a time through the unsplit model, in order, none missing."""
    from hetsched import job
    from hetsched.ortsession import session
    from hetsched.partition.cost import Stage, evaluate
    from hetsched.profiler.loop import with_loop
    from hetsched.profile import PE, Transfer
    from hetsched.profiler import assemble
    from hetsched.runtime.frame import Frame
    from hetsched.runtime.sources import open_source
    from hetsched.runtime.spec import from_dict
    from hetsched.runtime.task import make_task
    g = graph.load(build_zoo("tiny-yolov3", 128))
    pes = [PE("cpu0", "cpu", {"cores": [0]}), PE("cpu1", "cpu", {"cores": [1]})]
    net = assemble(g, pes, {"cpu0": [1.0] * len(g), "cpu1": [1.0] * len(g)},
                   {"default": Transfer(0.0, 0.0)}, source="measured", board={"name": "t"})
    prof = with_loop(net, {"cpu0": 1.0, "cpu1": 1.0}, {"cpu0": 2.0, "cpu1": 2.0},
                     frame_bytes=640 * 480 * 3, result_bytes=1000, host_ms=0.5, loop={})
    assert prof.is_pipeline() and len(prof.layers) == len(g) + 2
    n = len(prof.layers)
    stages = [Stage(("cpu0",), 0, 8), Stage(("cpu1",), 9, 20), Stage(("cpu0",), 21, n - 2),
              Stage(("cpu0", "cpu1"), n - 1, n - 1)]
    plan = evaluate(prof, stages)
    out = tmp_path / "det.jsonl"
    spec = from_dict({"model": {"zoo": "tiny-yolov3", "size": 128}, "frames": 12,
                      "source": "synthetic:320x240", "sink": {"jsonl": str(out)}}, "test")
    job.build_pipeline(g, prof, plan, spec, open_source(spec.source, 12)).run()
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in got] == list(range(12))
    task = make_task(g, spec.detect)
    sess = session(g.model, 1, "all")
    names = [o.name for o in sess.get_outputs()]
    src = open_source(spec.source, 12)
    for k in range(12):
        f = Frame(k, src.read(), 0.0)
        task.pre(f)
        f.tensors.update(zip(names, sess.run(names, f.tensors)))
        task.post(f)
        want = f.result.to_list()
        assert len(got[k]["detections"]) == len(want), k
        for a, b in zip(got[k]["detections"], want):
            assert a["class"] == b["class"] and np.allclose(a["box"], b["box"], atol=0.05)
