"""Sources, sinks, specs and engines of the runtime, one at a time."""

import json
import time

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper

from hetsched.engines import EngineOptions, backend
from hetsched.engines.emulated import EmulatedEngine
from hetsched.errors import HetschedError
from hetsched.runtime import spec as specmod
from hetsched.runtime.frame import Frame
from hetsched.runtime.sinks import JsonlSink, VideoSink
from hetsched.runtime.sources import SourceError, SyntheticSource, open_source


def test_synthetic_source_is_deterministic_and_moves():
    a, b = SyntheticSource(160, 120, frames=3), SyntheticSource(160, 120, frames=3)
    frames = [a.read() for _ in range(4)]
    assert frames[3] is None and all(f.shape == (120, 160, 3) for f in frames[:3])
    assert np.array_equal(frames[1], b.frame(1)) and not np.array_equal(frames[0], frames[1])


def test_folder_source_order_and_unreadable_image(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), np.full((8, 8, 3), i * 50, np.uint8))
    src = open_source(str(tmp_path))
    assert [int(src.read()[0, 0, 0]) for _ in range(3)] == [0, 50, 100] and src.read() is None
    (tmp_path / "im3.png").write_bytes(b"garbage")
    src = open_source(str(tmp_path))
    for _ in range(3):
        src.read()
    with pytest.raises(SourceError, match=r"cannot read image '.*im3.png'"):
        src.read()


def test_video_round_trip_and_bad_sources(tmp_path):
    path = tmp_path / "v.mp4"
    sink = VideoSink(path, 10)
    synth = SyntheticSource(64, 48)
    for i in range(5):
        sink.write(Frame(i, synth.frame(i), 0.0, seq=i))
    sink.close(True)
    src = open_source(str(path))
    n = 0
    while src.read() is not None:
        n += 1
    assert n == 5
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(SourceError, match="camera index must be a number"):
        open_source("camera:x")
    with pytest.raises(SourceError, match="unknown option"):
        open_source("synthetic:huge")


def test_a_truncated_video_says_how_many_frames_it_gave(tmp_path, caplog):
    """The first half of a 40-frame MJPG AVI (whose header lists 40): OpenCV ends after 20 as
    quietly as at a whole file's end; the source says so once. The whole file: nothing said."""
    import logging
    whole, cut = tmp_path / "v.avi", tmp_path / "cut.avi"
    w = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(40):
        w.write(rng.integers(0, 255, (120, 160, 3), np.uint8))
    w.release()
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) // 2])

    def frames(path):
        src, n = open_source(str(path)), 0
        while src.read() is not None:
            n += 1
        assert src.read() is None       # and once more: still said once
        src.close()
        return n
    with caplog.at_level(logging.WARNING):
        assert frames(whole) == 40
    assert caplog.text == ""
    with caplog.at_level(logging.WARNING):
        n = frames(cut)
    assert 0 < n < 40
    assert caplog.text.count(f"ended after {n} of the 40 frames its container lists") == 1


def test_sinks_leave_nothing_on_error(tmp_path):
    out = tmp_path / "det.jsonl"
    sink = JsonlSink(out)
    sink.write(Frame(0, None, 0.0, seq=0))
    sink.close(False)
    assert list(tmp_path.iterdir()) == []
    sink = JsonlSink(out)
    sink.write(Frame(0, None, 0.0, seq=0))
    sink.close(True)
    assert json.loads(out.read_text()) == {"seq": 0, "index": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["det.jsonl"]


def test_spec_errors_name_the_key(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("model: {zoo: tiny-yolov3}\nbufers: 3\n")
    with pytest.raises(specmod.SpecError, match=r"p.yaml: unknown key\(s\) \['bufers'\]"):
        specmod.load(bad)
    bad.write_text("model: {zoo: tiny-yolov3, onnx: x.onnx}\n")
    with pytest.raises(specmod.SpecError, match="exactly one of zoo, darknet, onnx"):
        specmod.load(bad)
    bad.write_text("model: [unclosed\n")
    with pytest.raises(specmod.SpecError, match="not valid YAML"):
        specmod.load(bad)
    bad.write_text("model: {zoo: tiny-yolov3}\nframes: -1\n")
    with pytest.raises(specmod.SpecError, match="frames must be a whole number"):
        specmod.load(bad)


def test_shipped_specs_load():
    from pathlib import Path
    specs = sorted((Path(__file__).resolve().parents[1] / "pipelines").glob("*.yaml"))
    assert specs
    for path in specs:
        s = specmod.load(path)
        assert s.buffers >= 1 and s.model


def _tiny_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def test_emulated_engine_holds_the_stage_time_and_gives_shapes():
    eng = EmulatedEngine(_tiny_model(), "dla0", EngineOptions(emulate="timing"), hold_ms=30.0)
    t0 = time.perf_counter()
    out = eng.run({"x": np.ones((1, 3, 4, 4), np.float32)})
    assert time.perf_counter() - t0 >= 0.030
    assert out["y"].shape == (1, 3, 4, 4) and not out["y"].any()
    real = EmulatedEngine(_tiny_model(), "gpu", EngineOptions(emulate="compute"), hold_ms=0.0)
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(real.run({"x": x})["y"], np.maximum(x, 0))


def test_emulated_compute_warns_when_too_slow(caplog):
    eng = EmulatedEngine(_tiny_model(), "gpu", EngineOptions(emulate="compute"), hold_ms=1e-6)
    with caplog.at_level("WARNING"):
        eng.run({"x": np.ones((1, 3, 4, 4), np.float32)})
    assert eng.overruns == 1 and "slower than" in caplog.text


def test_unknown_backend():
    with pytest.raises(HetschedError, match="unknown engine backend 'vulkan'"):
        backend("vulkan")


@pytest.mark.parametrize("name", ["onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt"])
def test_gpu_backends_fail_clearly_or_run(name):
    """Where no GPU stack is installed, these must fail with a one-line reason, not crash; where
    one is, they must reproduce the CPU result."""
    import onnxruntime as ort
    opts = EngineOptions()
    if name.startswith("onnxruntime") and "CUDAExecutionProvider" in ort.get_available_providers():
        pass
    elif name == "tensorrt":
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            with pytest.raises(HetschedError, match="TensorRT is not installed|cuda-python"):
                backend(name)(_tiny_model(), "gpu", opts)
            pytest.skip("TensorRT is not installed here; the error path was checked")
    else:
        with pytest.raises(HetschedError, match="has no .*ExecutionProvider"):
            backend(name)(_tiny_model(), "gpu", opts)
        pytest.skip("onnxruntime-gpu is not installed here; the error path was checked")
    eng = backend(name)(_tiny_model(), "gpu", opts)
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(eng.run({"x": x})["y"], np.maximum(x, 0), atol=1e-3)
    eng.close()
