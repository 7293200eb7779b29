"""The command line: each verb end to end, clear one-line errors, no half-written outputs."""

import json
import re
import subprocess
import sys

import onnx
import pytest

from hetsched.cli import build_parser, main
from hetsched import devices


def test_every_verb_has_help():
    """Every option of every verb says what it does, and a default worth knowing is shown."""
    import argparse
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    assert {"zoo", "import-darknet", "profile", "summary", "devices", "demo"} <= set(verbs)
    for verb, sub in verbs.items():
        text = sub.format_help()
        assert text.startswith(f"usage: hetsched {verb}")
        for action in sub._actions:
            name = "/".join(action.option_strings) or action.dest
            assert action.help, f"{verb} {name} has no help text"
            if action.option_strings and isinstance(action.default, (int, float, str)) \
                    and not isinstance(action.default, bool) and action.default != argparse.SUPPRESS:
                assert f"(default: {action.default})" in " ".join(text.split()) \
                    or "default:" in action.help, f"{verb} {name} hides its default"
        assert "-v, --verbose" in text    # -v after the verb too
    out = subprocess.run([sys.executable, "-m", "hetsched.cli", "run", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "usage: hetsched run" in out.stdout
    out = subprocess.run([sys.executable, "-m", "hetsched.cli", "--version"],
                         capture_output=True, text=True)
    from hetsched import __version__
    assert out.returncode == 0 and out.stdout.strip() == f"hetsched {__version__}"
    assert parser.parse_args(["plan", "p.json", "-v"]).verbose is True
    assert parser.parse_args(["-v", "plan", "p.json"]).verbose is True
    assert not getattr(parser.parse_args(["plan", "p.json"]), "verbose", False)


@pytest.mark.slow
def test_zoo_yolov3(tmp_path, capsys):
    out = tmp_path / "y3.onnx"
    assert main(["zoo", "yolov3", "--size", "416", "-o", str(out)]) == 0
    m = onnx.load(str(out))
    shapes = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output]
    assert shapes == [[1, 255, 13, 13], [1, 255, 26, 26], [1, 255, 52, 52]]


@pytest.mark.slow
def test_profile_summary_plot(tmp_path, capsys):
    model = tmp_path / "t.onnx"
    assert main(["zoo", "tiny-yolov2", "--size", "64", "-o", str(model)]) == 0
    prof = tmp_path / "p.json"
    assert main(["profile", str(model), "--pe", "cpu0", "--runs", "2", "--warmup", "1",
                 "-o", str(prof)]) == 0
    assert "sum of layers" in capsys.readouterr().out
    png = tmp_path / "layers.png"
    assert main(["summary", str(prof), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["summary", str(prof), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layers"] == 23 and data["source"] == "measured"


@pytest.mark.parametrize("argv,match", [
    (["profile", "{tmp}/missing.onnx", "--pe", "cpu0", "-o", "{tmp}/out.json"], "no such model file"),
    (["profile", "{tmp}/junk.onnx", "--pe", "cpu0", "-o", "{tmp}/out.json"], "not a valid ONNX model"),
    (["profile", "{tmp}/junk.onnx", "--pe", "tpu0", "-o", "{tmp}/out.json"], "not a CPU PE name"),
    (["summary", "{tmp}/junk.onnx"], "not valid JSON"),
    (["import-darknet", "{tmp}/bad.cfg", "-o", "{tmp}/out.json"], r"bad.cfg:2 \[yolo9\]"),
    (["zoo", "yolov3", "--size", "100", "-o", "{tmp}/out.json"], "multiple of 32"),
])
def test_errors_are_one_line_and_write_nothing(tmp_path, argv, match):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage" * 50)
    (tmp_path / "bad.cfg").write_text("[net]\n[yolo9]\n")
    argv = [a.format(tmp=tmp_path) for a in argv]
    out = subprocess.run([sys.executable, "-m", "hetsched.cli", *argv], capture_output=True, text=True)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hetsched: error: ")
    assert re.search(match, lines[0]), lines[0]
    assert not (tmp_path / "out.json").exists()
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]


def test_devices_table_says_when_the_cpu_frequency_limits_are_not_exposed():
    info = devices.discover()
    info["cpu"]["freq_mhz"] = [{"current": 2596.0, "min": 0.0, "max": 0.0}]   # a VM's vCPU
    assert "frequency 2596.0 MHz (min and max not exposed)" in devices.format_table(info)
    info["cpu"]["freq_mhz"] = [{"current": 1200.0, "min": 400.0, "max": 2300.0}]
    assert "frequency 1200.0 MHz (min 400.0, max 2300.0)" in devices.format_table(info)


def test_devices_json_reports_absent_hardware_as_absent(capsys):
    assert main(["devices", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cpu"]["logical"] >= 1 and info["cpu"]["pes"]
    for kind in ("gpu", "dla", "jetson"):
        assert isinstance(info[kind]["present"], bool)
        if not info[kind]["present"] and kind != "jetson":
            assert info[kind]["reason"]


def test_jetson_model_from_device_tree(tmp_path):
    dt = tmp_path / "proc" / "device-tree"
    dt.mkdir(parents=True)
    (dt / "model").write_bytes(b"NVIDIA Jetson AGX Xavier Developer Kit\x00")
    assert devices.jetson(str(tmp_path)) == {"present": True, "model": "NVIDIA Jetson AGX Xavier Developer Kit"}
    assert devices.jetson(str(tmp_path / "nowhere")) == {"present": False}


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    argv = ["demo", "--size", "64", "--runs", "2", "--warmup", "1", "--frames", "20", "--rounds",
            "1", "--workdir", str(tmp_path)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "profiling" in first and "sum of layers" in first
    assert main(argv) == 0
    assert "using cached profile" in capsys.readouterr().out
    assert list(tmp_path.glob("*.png"))
