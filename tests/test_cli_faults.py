"""The real `hetsched` command in a subprocess, at its fault paths: signals at every phase, bad
input in the middle of a stream, flags out of range, a plan file from `--method all`. Each
checks the exit status, the one line on stderr, and what was (or was not) left on disk."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hetsched.models.zoo import build_zoo

CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
TWO_STAGES = [{"pes": ["cpu0"], "first": 0, "last": 9}, {"pes": ["cpu1"], "first": 10, "last": 31}]


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    """A failed assertion must not leave an endless `run` behind (it would load the machine
    for every later test)."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def hetsched(*args, cwd):
    """The command as a user starts it (the console script's entry point, not `main`); its
    stdout and stderr go to files in `cwd`, so that a test can wait for a line on either."""
    out, err = open(Path(cwd) / "stdout.txt", "w"), open(Path(cwd) / "stderr.txt", "w")
    proc = subprocess.Popen([sys.executable, "-c", "from hetsched.cli import console; console()",
                             *map(str, args)], cwd=cwd, stdout=out, stderr=err, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    _started.append(proc)
    return proc


def _texts(cwd):
    return (Path(cwd) / "stdout.txt").read_text(), (Path(cwd) / "stderr.txt").read_text()


def wait_for(proc, cwd, text, timeout=120):
    deadline = time.monotonic() + timeout
    while not any(text in t for t in _texts(cwd)):
        assert proc.poll() is None, f"ended before '{text}': {_texts(cwd)}"
        assert time.monotonic() < deadline, f"no '{text}' within {timeout} s"
        time.sleep(0.05)


def stop(proc, sig, cwd):
    """Send `sig`; (seconds until the process ended, its stdout, its stderr)."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("did not end within 20 s of the signal")
    return (time.monotonic() - t0, *_texts(cwd))


def finish(proc, cwd, timeout=300):
    proc.wait(timeout=timeout)
    return (proc.returncode, *_texts(cwd))


def leftovers(folder):
    return sorted(p.name for p in Path(folder).rglob("*") if p.name.endswith(".tmp"))


def outputs(folder):
    """What a command left in its folder besides its own stdout/stderr capture."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in ("stdout.txt", "stderr.txt"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "t3.onnx"
    path.write_bytes(build_zoo("tiny-yolov3", 128).SerializeToString())
    return path


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"stages": TWO_STAGES}))
    return path


def test_a_stop_inside_a_c_extension_is_a_stop_not_a_bug(monkeypatch, capsys):
    """A signal during `import onnxruntime` surfaces as its "ImportError: initialization failed"
    (the start-up test below hit it once, 2026-12-01); with a stop requested that is the stop."""
    from hetsched import cli, stopping

    def import_interrupted(args):
        stopping.request("SIGINT")
        raise ImportError("initialization failed")
    monkeypatch.setattr(cli, "cmd_plan", import_interrupted)
    assert cli.main(["plan", "p.json"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "hetsched: stopped by SIGINT; nothing written"
    stopping.reset()


# --- 1, 8: signals while profiling and during start-up --------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", ["start-up", "whole-model rounds on cpu0,cpu1", "contention"])
def test_profile_stops_within_a_second(tmp_path, sig, phase):
    p = hetsched("profile", "tiny-yolov2", "--size", "96", "--pe", "cpu0,cpu1", "-o", "p.json",
                 cwd=tmp_path)
    if phase == "start-up":
        # importing onnx and onnxruntime, building the model: past the first ~0.1 s (before
        # hetsched's handlers exist, Python's own defaults apply) and before any profiling
        time.sleep(1.0)
        assert "whole-model rounds" not in _texts(tmp_path)[1]
    else:
        wait_for(p, tmp_path, phase)
    took, _, err = stop(p, sig, tmp_path)
    assert p.returncode == CODES[sig], err
    assert took < 1.5, f"{took:.2f} s"    # the second, plus the interpreter's exit
    last = err.strip().splitlines()[-1]
    assert last == f"hetsched: stopped by {sig.name}; nothing written", err
    assert "Traceback" not in err and "terminate called" not in err
    assert outputs(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_profile_stopped_inside_the_contention_step_exits_cleanly(tmp_path, sig):
    """Stopped while both cores run sessions of a network large enough that they are still
    running: with every Python thread gone the interpreter's exit aborted on the sessions'
    native threads ("terminate called without an active exception", exit 134) in 2 of 3 such
    stops of `hetsched profile` (a new user's trial, 2026-12-07)."""
    p = hetsched("profile", "tiny-yolov2", "--size", "320", "--pe", "cpu0,cpu1", "--runs", "2",
                 "--warmup", "1", "-o", "p.json", cwd=tmp_path)
    wait_for(p, tmp_path, "contention")
    time.sleep(0.4)
    took, _, err = stop(p, sig, tmp_path)
    assert p.returncode == CODES[sig], err
    assert took < 1.5, f"{took:.2f} s"
    assert err.strip().splitlines()[-1] == f"hetsched: stopped by {sig.name}; nothing written", err
    assert "terminate called" not in err
    assert outputs(tmp_path) == []


@pytest.mark.slow
def test_bench_stopped_while_profiling_exits_130(tmp_path):
    p = hetsched("bench", "--model", "tiny-yolov2", "--size", "96", "--frames", "5",
                 "--repeat", "1", cwd=tmp_path)
    wait_for(p, tmp_path, "whole-model rounds")
    took, _, err = stop(p, signal.SIGINT, tmp_path)
    assert p.returncode == 130 and "error" not in err, err
    assert err.strip().splitlines()[-1].startswith("hetsched: stopped by SIGINT; ")
    assert took < 1.5 and leftovers(tmp_path) == []


# --- 2: a stopped run keeps its outputs and draws its timeline ------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_run_keeps_outputs_and_timeline(tmp_path, model, plan_file, sig):
    pytest.importorskip("matplotlib")
    p = hetsched("run", "--model", model, "--plan", plan_file, "--source", "synthetic:160x120",
                 "--jsonl", "d.jsonl", "--dump", "dump", "--timeline", "t.png", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while len(list((tmp_path / "dump").glob("*.npz"))) < 3:    # frames are being delivered
        assert p.poll() is None and time.monotonic() < deadline, _texts(tmp_path)
        time.sleep(0.05)
    took, out, err = stop(p, sig, tmp_path)
    assert p.returncode == CODES[sig], err
    assert took < 1.5, f"{took:.2f} s"
    assert err.strip().splitlines()[-1] == \
        f"hetsched: stopped by {sig.name}; kept d.jsonl, dump, t.png"
    assert "wrote timeline: t.png" in out and "wrote jsonl: d.jsonl" in out
    assert cv2.imread(str(tmp_path / "t.png")) is not None
    seqs = [json.loads(x)["seq"] for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert seqs and seqs == list(range(len(seqs)))
    assert sorted(f.name for f in (tmp_path / "dump").iterdir()) == [f"{i:06d}.npz" for i in seqs]
    assert leftovers(tmp_path) == []


# --- 3: the plan file of --method all is one plan ----------------------------------------------

def test_plan_all_writes_the_best_plan_that_simulate_and_run_take(tmp_path, example_file, model):
    rc, out, err = finish(hetsched("plan", example_file, "--method", "all", "-o", "best.json",
                                   cwd=tmp_path), tmp_path)
    assert rc == 0, err
    best = out.split("best: ")[1].split()[0]
    doc = json.loads((tmp_path / "best.json").read_text())
    assert doc["method"] == best and doc["stages"]
    assert f"wrote plan ({best}): best.json" in out
    rc, out, err = finish(hetsched("simulate", example_file, "best.json", "--frames", "20",
                                   cwd=tmp_path), tmp_path)
    assert rc == 0, err


def test_a_plan_for_another_model_of_as_many_layers_is_refused(tmp_path, capsys):
    """yolov2 and yolov4-tiny both have 54 layers: a plan's layer numbers fit either, so the
    plan file names its model (a checksum of the layers' names and ops) and readers check it."""
    from hetsched.cli import main
    from hetsched.job import plan_for
    from hetsched import profile
    repo = Path(__file__).resolve().parents[1]
    y2, y4 = repo / "profiles" / "yolov2-416.vm.json", repo / "profiles" / "yolov4-tiny-416.vm.json"
    plan = tmp_path / "y2.plan.json"
    assert main(["plan", str(y2), "--no-replication", "-o", str(plan)]) == 0
    assert json.loads(plan.read_text())["model"]["name"] == "yolov2"
    capsys.readouterr()
    assert main(["simulate", str(y2), str(plan), "--frames", "20"]) == 0
    assert main(["simulate", str(y4), str(plan), "--frames", "20"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"hetsched: error: {plan}: a plan for model 'yolov2' (54 layers), not for the profile's "
        f"'yolov4-tiny' (54 layers): their layers differ")
    with pytest.raises(Exception, match="a plan for model 'yolov2'"):
        plan_for(profile.load(y4), {"file": str(plan)}, None, 54)
    legacy = {k: v for k, v in json.loads(plan.read_text()).items() if k != "model"}
    plan.write_text(json.dumps(legacy))      # a plan file without the record: taken as it is
    assert main(["simulate", str(y4), str(plan), "--frames", "20"]) == 0


# --- 6: counts out of range are usage errors before any work ----------------------------------

@pytest.mark.parametrize("argv,flag", [
    (["run", "pipelines/tiny-yolov3.yaml", "--frames", "0"], "--frames"),
    (["run", "pipelines/tiny-yolov3.yaml", "--frames", "-1"], "--frames"),
    (["run", "pipelines/tiny-yolov3.yaml", "--buffers", "0"], "--buffers"),
    (["bench", "--model", "tiny-yolov2", "--frames", "-1"], "--frames"),
    (["simulate", "a.json", "b.json", "--frames", "0"], "--frames"),
    (["plan", "a.json", "--time-limit", "0"], "--time-limit"),
])
def test_counts_out_of_range_are_usage_errors(tmp_path, argv, flag):
    repo = Path(__file__).resolve().parents[1]
    argv = [str(repo / a) if a.startswith("pipelines/") else a for a in argv]
    t0 = time.monotonic()
    rc, out, err = finish(hetsched(*argv, cwd=tmp_path), tmp_path)
    assert rc == 2 and f"argument {flag}: must be" in err, err
    assert time.monotonic() - t0 < 10 and out == "" and outputs(tmp_path) == []


# --- 7: a bad image in the middle of a folder ---------------------------------------------------

def test_bad_image_mid_folder_delivers_the_frames_before_it(tmp_path, model, plan_file):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (120, 160, 3), np.uint8))
    (folder / "3.png").write_bytes(b"not a png")
    cv2.imwrite(str(folder / "4.png"), rng.integers(0, 255, (120, 160, 3), np.uint8))
    rc, out, err = finish(hetsched("run", "--model", model, "--plan", plan_file, "--source",
                                   folder, "--jsonl", "d.jsonl", "--dump", "dump", cwd=tmp_path),
                          tmp_path)
    assert rc == 1, err
    assert err.strip().splitlines()[-1].startswith("hetsched: error: source ")
    assert "3.png" in err.strip().splitlines()[-1] and "frame 3" in err
    seqs = [json.loads(x)["seq"] for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert seqs == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "dump").iterdir()) == [f"{i:06d}.npz" for i in range(3)]
    assert leftovers(tmp_path) == []


def test_bad_first_image_leaves_no_dump_folder(tmp_path, model, plan_file):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "0.png").write_bytes(b"not a png")
    rc, _, err = finish(hetsched("run", "--model", model, "--plan", plan_file, "--source",
                                 folder, "--jsonl", "d.jsonl", "--dump", "dump", cwd=tmp_path),
                        tmp_path)
    assert rc == 1 and "0.png" in err.strip().splitlines()[-1], err
    assert not (tmp_path / "dump").exists() and not (tmp_path / "d.jsonl").exists()
    assert leftovers(tmp_path) == []


# --- 8, 12: exit codes, and the cause behind an error --------------------------------------------

def test_usage_error_exits_2_and_bad_input_1(tmp_path):
    rc, _, err = finish(hetsched("plan", cwd=tmp_path), tmp_path)
    assert rc == 2 and "usage:" in err
    # options that argparse alone cannot judge: missing together, or not going together
    for argv, line in [(["run"], "hetsched run: error: give a pipeline SPEC.yaml"),
                       (["bench"], "hetsched bench: error: give a pipeline SPEC.yaml"),
                       (["profile", "tiny-yolov2", "-o", "p.json"], "hetsched profile: error: give --pe")]:
        rc, out, err = finish(hetsched(*argv, cwd=tmp_path), tmp_path)
        assert rc == 2 and "usage: hetsched" in err, err
        assert err.strip().splitlines()[-1].startswith(line), err
        assert outputs(tmp_path) == []
    rc, _, err = finish(hetsched("plan", "missing.json", cwd=tmp_path), tmp_path)
    assert rc == 1 and err.strip().splitlines() == [err.strip().splitlines()[-1]]
    assert err.startswith("hetsched: error: ")


def test_verbose_after_the_verb_shows_the_cause(tmp_path, model, plan_file):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "0.png").write_bytes(b"not a png")
    rc, _, err = finish(hetsched("run", "--model", model, "--plan", plan_file, "--source", folder,
                                 "-v", cwd=tmp_path), tmp_path)
    assert rc == 1 and "Traceback" in err and "SourceError" in err
    assert err.strip().splitlines()[-1].startswith("hetsched: error: source ")


def test_unreadable_video_is_hetscheds_line_alone(tmp_path, model, plan_file):
    (tmp_path / "bad.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    rc, out, err = finish(hetsched("run", "--model", model, "--plan", plan_file, "--source",
                                   "bad.mp4", cwd=tmp_path), tmp_path)
    assert rc == 1 and err.strip().splitlines() == [
        "hetsched: error: cannot open video 'bad.mp4' (missing, unreadable, or a format this "
        "OpenCV cannot decode)"], err


@pytest.mark.slow
def test_planning_stops_within_a_second(tmp_path):
    """The exact search of a large profile (it runs to its 10 s limit) stopped after 2 s."""
    import sys as _sys
    _sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from partition_bench import synthetic

    from hetsched import profile
    profile.save(synthetic(300, ["cpu0", "cpu1", "gpu", "dla0", "dla1"]), tmp_path / "big.json")
    p = hetsched("plan", "big.json", "--method", "optimal", "-o", "plan.json", cwd=tmp_path)
    time.sleep(2.0)
    assert p.poll() is None, _texts(tmp_path)
    took, _, err = stop(p, signal.SIGINT, tmp_path)
    assert p.returncode == 130 and took < 1.5, (took, err)
    assert err.strip().splitlines()[-1] == "hetsched: stopped by SIGINT; nothing written"
    assert outputs(tmp_path) == ["big.json"]


def test_a_swallowed_stop_still_stops_the_verb(monkeypatch, capsys):
    """A stop whose Interrupted some library swallowed: the next progress step raises it again,
    and a verb that returns anyway reports the stop, not success."""
    from hetsched import cli, stopping
    try:
        stopping.request("SIGINT")
        with pytest.raises(stopping.Interrupted):
            cli.Progress(io.StringIO(), quiet=True)("rounds", 1, 2)
        stopping.reset()

        def swallowed(args):
            stopping.request("SIGTERM")
            return 0
        monkeypatch.setattr(cli, "cmd_plan", swallowed)
        assert cli.main(["plan", "p.json"]) == 143
        assert capsys.readouterr().err.strip().splitlines()[-1] == \
            "hetsched: stopped by SIGTERM; nothing written"
    finally:
        stopping.reset()
