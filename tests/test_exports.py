"""Exported detectors (detect.exports): each layout decoded against a reference decoding written
here, candidate by candidate, from the documented formats (facts.md, "Detectors people bring") on
hand-built outputs with known boxes and, as a property, on random ones; layout detection; and a
real pretrained YOLOv8n (the nudenet wheel's 320n.onnx), whole and split three ways."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from hetsched import graph
from hetsched.detect.exports import decoder, detect_kind, grid_sum, layouts
from hetsched.detect.preprocess import Letterbox
from hetsched.errors import HetschedError
from hetsched.runtime.frame import Frame
from hetsched.runtime.task import DetectOptions, make_task

from conftest import run, run_chain

HW = (64, 64)
N = 64 + 16 + 4          # candidates of strides 8, 16, 32 at 64 x 64, counted by hand
LB = Letterbox(0.5, 0.5, 0.0, 8.0, 128, 96)   # a 128 x 96 frame letterboxed into 64 x 64


def model_with_outputs(shapes, dtypes=None, metadata=None, names=None, hw=HW):
    """x (1, 3, 64, 64) -> pool -> one MatMul + Reshape per output: a real model whose outputs have
    the given shapes (values are irrelevant: the decoders are fed hand-built outputs)."""
    dtypes = dtypes or [TensorProto.FLOAT] * len(shapes)
    names = names or [f"out{i}" for i in range(len(shapes))]
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"])]
    inits, outs = [], []
    for i, (shape, dt, name) in enumerate(zip(shapes, dtypes, names)):
        size = int(np.prod(shape))
        inits += [numpy_helper.from_array(np.zeros((3, size), np.float32), f"w{i}"),
                  numpy_helper.from_array(np.array(shape, np.int64), f"s{i}")]
        mm, rs = f"mm{i}", (name if dt == TensorProto.FLOAT else f"rs{i}")
        nodes += [helper.make_node("MatMul", ["f", f"w{i}"], [mm]),
                  helper.make_node("Reshape", [mm, f"s{i}"], [rs])]
        if dt != TensorProto.FLOAT:
            nodes.append(helper.make_node("Cast", [rs], [name], to=dt))
        outs.append(helper.make_tensor_value_info(name, dt, list(shape)))
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, *hw])],
                          outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    for k, v in (metadata or {}).items():
        m.metadata_props.add(key=k, value=v)
    return graph.from_model(m, name="m")


# --- reference decodings: one candidate at a time, from the documented formats ------------------

def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _ref_nms(cands, iou):
    """Greedy, per class: best score first, drop what overlaps a kept box of its class."""
    kept = []
    for box, score, cls in sorted(cands, key=lambda c: -c[1]):
        if all(k[2] != cls or _iou(box, k[0]) <= iou for k in kept):
            kept.append((box, score, cls))
    return kept


def _ref_unletterbox(dets, lb):
    out = []
    for (x1, y1, x2, y2), s, c in dets:
        fx = lambda v: min(max((v - lb.pad_x) / lb.scale_x, 0.0), lb.frame_w)  # noqa: E731
        fy = lambda v: min(max((v - lb.pad_y) / lb.scale_y, 0.0), lb.frame_h)  # noqa: E731
        out.append(((fx(x1), fy(y1), fx(x2), fy(y2)), s, c))
    return out


def _corners(cx, cy, w, h):
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def ref_ultralytics(out, conf, iou, lb):
    cands = []
    for j in range(out.shape[2]):
        col = out[0, :, j]
        cls = int(np.argmax(col[4:]))
        if col[4 + cls] > conf:
            cands.append((_corners(*col[:4]), float(col[4 + cls]), cls))
    return _ref_unletterbox(_ref_nms(cands, iou), lb)


def ref_yolov5(out, conf, iou, lb):
    cands = []
    for row in out[0]:
        scores = row[5:] * row[4]
        cls = int(np.argmax(scores))
        if scores[cls] > conf:
            cands.append((_corners(*row[:4]), float(scores[cls]), cls))
    return _ref_unletterbox(_ref_nms(cands, iou), lb)


def ref_yolox(out, conf, iou, lb, hw=HW):
    cells = [(s, gx, gy) for s in (8, 16, 32) for gy in range(hw[0] // s) for gx in range(hw[1] // s)]
    cands = []
    for (s, gx, gy), row in zip(cells, out[0]):
        scores = row[5:] * row[4]
        cls = int(np.argmax(scores))
        if scores[cls] > conf:
            cx, cy = (row[0] + gx) * s, (row[1] + gy) * s
            cands.append((_corners(cx, cy, np.exp(row[2]) * s, np.exp(row[3]) * s), float(scores[cls]), cls))
    return _ref_unletterbox(_ref_nms(cands, iou), lb)


def same(dets, ref, tol=1e-3):
    got = sorted(zip(map(tuple, dets.boxes.tolist()), dets.scores.tolist(), dets.classes.tolist()),
                 key=lambda d: (-d[1], d[2]))
    want = sorted(ref, key=lambda d: (-d[1], d[2]))
    assert len(got) == len(want), (got, want)
    for (gb, gs, gc), (wb, ws, wc) in zip(got, want):
        assert gc == wc and gs == pytest.approx(ws, abs=1e-5)
        assert np.allclose(gb, wb, atol=tol), (gb, wb)


# --- layouts ------------------------------------------------------------------------------------

def test_grid_sum_by_hand():
    assert grid_sum((64, 64)) == N
    assert grid_sum((640, 640)) == 8400 and 3 * grid_sum((640, 640)) == 25200   # facts.md's N


def test_each_layout_is_told_apart_by_its_shapes():
    assert layouts(model_with_outputs([(1, 4 + 3, N)]), HW) == ["ultralytics"]
    assert layouts(model_with_outputs([(1, 3 * N, 5 + 3)]), HW) == ["yolov5"]
    assert layouts(model_with_outputs([(1, N, 5 + 3)]), HW) == ["yolox"]
    assert layouts(model_with_outputs([(1, 100, 6)]), HW) == ["nms"]
    four = model_with_outputs([(1, 1), (1, 100, 4), (1, 100), (1, 100)],
                              [TensorProto.INT32, TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.INT32])
    assert layouts(four, HW) == ["efficientnms"]
    # without the plugin's names, its outputs are told apart by shape and type
    feeds = {"out0": np.array([[1]], np.int32), "out1": np.tile(np.float32([4, 12, 8, 16]), (1, 100, 1)),
             "out2": np.full((1, 100), 0.5, np.float32), "out3": np.full((1, 100), 7, np.int32)}
    dets = decoder("efficientnms", four, HW)(feeds, LB)
    assert dets.classes.tolist() == [7] and dets.scores.tolist() == [0.5]
    assert np.allclose(dets.boxes, [[8, 8, 16, 16]])
    # classes exported as float too: the plugin's order (count, boxes, scores, classes) decides
    floats = model_with_outputs([(1, 1), (1, 100, 4), (1, 100), (1, 100)],
                                [TensorProto.INT32, TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT])
    feeds["out3"] = feeds["out3"].astype(np.float32)
    feeds["out2"] = np.full((1, 100), 0.1, np.float32)         # below conf: the plugin's call, kept
    dets = decoder("efficientnms", floats, HW)(feeds, LB)
    assert dets.classes.tolist() == [7] and dets.scores.tolist() == pytest.approx([0.1])
    assert layouts(model_with_outputs([(1, 10)]), HW) == []


def test_two_layouts_that_fit_are_an_error_naming_both():
    both = model_with_outputs([(1, N, N)])      # (1, 4+nc, N) and (1, N, 5+nc) at once
    with pytest.raises(HetschedError, match=r"fit both the ultralytics and the yolox layout; say "
                                            r"which with detect: \{kind: ultralytics\}"):
        detect_kind(both, HW)
    with pytest.raises(HetschedError, match="fit both"):
        make_task(both, DetectOptions())
    task = make_task(both, DetectOptions(kind="yolox"))    # the user says which
    assert task.kind == "yolox" and not task.pre_cfg.rgb and task.pre_cfg.scale == 1.0


def test_auto_picks_the_export_layout_and_a_wrong_kind_is_refused():
    g = model_with_outputs([(1, 4 + 2, N)], metadata={"names": "{0: 'cat', 1: 'dog'}"})
    assert make_task(g, DetectOptions()).kind == "ultralytics"
    with pytest.raises(HetschedError, match="detect kind 'yolov5' does not fit the model's outputs"):
        make_task(g, DetectOptions(kind="yolov5"))


# --- decoders against the references, on known boxes -------------------------------------------

def test_ultralytics_known_boxes_and_class_names():
    nc = 2
    out = np.zeros((1, 4 + nc, N), np.float32)
    # candidate 5: a cat at (20, 30) 10 x 12; candidate 9 overlaps it, cat, lower: suppressed;
    # candidate 40 overlaps it but is a dog: kept (per-class NMS); candidate 70 scores below conf
    for j, (cx, cy, w, h, cls, s) in {5: (20, 30, 10, 12, 0, 0.9), 9: (21, 30, 10, 12, 0, 0.6),
                                     40: (20, 31, 10, 12, 1, 0.7), 70: (50, 50, 4, 4, 1, 0.1)}.items():
        out[0, :4, j] = (cx, cy, w, h)
        out[0, 4 + cls, j] = s
    g = model_with_outputs([(1, 4 + nc, N)], metadata={"names": "{0: 'cat', 1: 'dog'}"})
    dets = decoder("ultralytics", g, HW, conf=0.25, iou=0.45)({g.outputs[0]: out}, LB)
    same(dets, ref_ultralytics(out, 0.25, 0.45, LB))
    # by hand: (20 +- 5, 30 +- 6) in the 64 x 64 input -> x / 0.5, (y - 8) / 0.5 on the frame
    assert dets.boxes[0].tolist() == pytest.approx([15 / 0.5, (24 - 8) / 0.5, 25 / 0.5, (36 - 8) / 0.5])
    assert [d["name"] for d in dets.to_list()] == ["cat", "dog"]


def test_yolov5_scores_are_objectness_times_class():
    out = np.zeros((1, 3 * N, 5 + 2), np.float32)
    out[0, 17] = (32, 32, 8, 8, 0.5, 0.2, 0.9)     # 0.5 x 0.9 = 0.45, class 1
    out[0, 18] = (10, 10, 8, 8, 0.9, 0.2, 0.1)     # 0.18: below conf
    g = model_with_outputs([(1, 3 * N, 7)])
    dets = decoder("yolov5", g, HW, conf=0.25)({g.outputs[0]: out}, LB)
    same(dets, ref_yolov5(out, 0.25, 0.45, LB))
    assert dets.scores.tolist() == pytest.approx([0.45]) and dets.classes.tolist() == [1]


def test_yolox_decodes_on_each_strides_grid():
    out = np.zeros((1, N, 5 + 1), np.float32)
    # stride 16's grid starts after stride 8's 64 cells: cell (gx 1, gy 2) of stride 16 is row 64 + 2*4 + 1
    out[0, 64 + 9] = (0.5, 0.25, np.log(2.0), 0.0, 0.8, 1.0)
    g = model_with_outputs([(1, N, 6)])
    dets = decoder("yolox", g, HW, conf=0.25)({g.outputs[0]: out}, LB)
    same(dets, ref_yolox(out, 0.25, 0.45, LB))
    # centre ((0.5 + 1) * 16, (0.25 + 2) * 16) = (24, 36), size (2 * 16, 1 * 16) in input pixels
    cx, cy, w, h = 24.0, 36.0, 32.0, 16.0
    assert dets.boxes[0].tolist() == pytest.approx([(cx - w / 2) / 0.5, (cy - h / 2 - 8) / 0.5,
                                                    (cx + w / 2) / 0.5, (cy + h / 2 - 8) / 0.5])


def test_nms_in_graph_rows_and_efficientnms_outputs_pass_through():
    rows = np.zeros((1, 100, 6), np.float32)
    rows[0, 0] = (10, 18, 20, 28, 0.8, 3)
    rows[0, 1] = (11, 18, 21, 28, 0.7, 3)          # overlapping: NMS was done in the graph, kept
    g = model_with_outputs([(1, 100, 6)])
    dets = decoder("nms", g, HW)({g.outputs[0]: rows}, LB)
    assert np.allclose(dets.boxes, [[20, 20, 40, 40], [22, 20, 42, 40]])
    assert dets.classes.tolist() == [3, 3]
    # EfficientNMS: outputs in a shuffled order, recognised by name; only the first num_dets count
    names = ["det_scores", "num_dets", "det_classes", "det_boxes"]
    four = model_with_outputs([(1, 100), (1, 1), (1, 100), (1, 100, 4)],
                              [TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT32, TensorProto.FLOAT],
                              names=names)
    boxes = np.zeros((1, 100, 4), np.float32)
    boxes[0, :2] = [(10, 18, 20, 28), (30, 18, 40, 28)]
    scores = np.zeros((1, 100), np.float32)
    scores[0, :3] = (0.9, 0.6, 0.99)               # the third is past num_dets: ignored
    feeds = {"det_scores": scores, "num_dets": np.array([[2]], np.int32),
             "det_classes": np.array([[1, 2] + [0] * 98], np.int32), "det_boxes": boxes}
    dets = decoder("efficientnms", four, HW)(feeds, LB)
    assert dets.scores.tolist() == pytest.approx([0.9, 0.6]) and dets.classes.tolist() == [1, 2]
    assert np.allclose(dets.boxes, [[20, 20, 40, 40], [60, 20, 80, 40]])


def test_yolox_on_a_non_square_input_walks_rows_then_columns():
    hw = (64, 96)                        # H 64, W 96: grids 8 x 12, 4 x 6, 2 x 3
    n = 8 * 12 + 4 * 6 + 2 * 3
    assert grid_sum(hw) == n
    out = np.zeros((1, n, 6), np.float32)
    out[0, 1 * 12 + 10] = (0.0, 0.0, 0.0, 0.0, 0.9, 1.0)     # stride 8, row 1, column 10
    g = model_with_outputs([(1, n, 6)], hw=hw)
    assert layouts(g, hw) == ["yolox"]
    same_size = Letterbox(1.0, 1.0, 0.0, 0.0, 96, 64)          # the frame is the input
    dets = decoder("yolox", g, hw, conf=0.25)({g.outputs[0]: out}, same_size)
    same(dets, ref_yolox(out, 0.25, 0.45, same_size, hw))
    cx, cy = 10 * 8, 1 * 8                                    # (x + gx) * s with x = 0; w = h = exp(0) * 8
    assert dets.boxes[0].tolist() == pytest.approx([cx - 4, cy - 4, cx + 4, cy + 4])


def test_other_tasks_are_refused_and_names_keep_their_ids():
    pose = model_with_outputs([(1, 56, N)], metadata={"task": "pose"})    # 4 + 1 + 17 x 3 rows
    with pytest.raises(HetschedError, match="task 'pose': hetsched decodes detection exports only"):
        make_task(pose, DetectOptions())
    with pytest.raises(HetschedError, match="task 'pose', not a detection export"):
        make_task(pose, DetectOptions(kind="ultralytics"))
    assert make_task(pose, DetectOptions(kind="none")).decode is None
    g = model_with_outputs([(1, 4 + 3, N)], metadata={"names": "{0: 'a', 2: 'c'}"})
    out = np.zeros((1, 7, N), np.float32)
    out[0, :4, 0] = (10, 10, 4, 4)
    out[0, 4 + 2, 0] = 0.9
    dets = decoder("ultralytics", g, HW)({g.outputs[0]: out}, LB)
    assert dets.to_list()[0]["name"] == "c"


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["ultralytics", "yolov5", "yolox"]),
       st.floats(0.2, 0.6), st.floats(0.3, 0.7))
def test_random_outputs_decode_like_the_reference(seed, kind, conf, iou):
    rng = np.random.default_rng(seed)
    nc = int(rng.integers(1, 4))
    shape = {"ultralytics": (1, 4 + nc, N), "yolov5": (1, 3 * N, 5 + nc), "yolox": (1, N, 5 + nc)}[kind]
    out = np.zeros(shape, np.float32)
    if kind == "ultralytics":
        out[0, :2] = rng.uniform(0, 64, (2, N))
        out[0, 2:4] = rng.uniform(2, 20, (2, N))
        out[0, 4:] = rng.uniform(0, 1, (nc, N)) ** 4          # few candidates pass
    else:
        rows = out[0]
        rows[:, :2] = rng.uniform(0, 64, (len(rows), 2)) if kind == "yolov5" else rng.uniform(-0.5, 1.5, (len(rows), 2))
        rows[:, 2:4] = rng.uniform(2, 20, (len(rows), 2)) if kind == "yolov5" else rng.uniform(-1, 1, (len(rows), 2))
        rows[:, 4] = rng.uniform(0, 1, len(rows)) ** 2
        rows[:, 5:] = rng.uniform(0, 1, (len(rows), nc)) ** 2
    g = model_with_outputs([shape])
    dets = decoder(kind, g, HW, conf=conf, iou=iou)({g.outputs[0]: out}, LB)
    ref = {"ultralytics": ref_ultralytics, "yolov5": ref_yolov5, "yolox": ref_yolox}[kind]
    same(dets, ref(out, conf, iou, LB), tol=2e-3)


# --- a real pretrained YOLOv8n -----------------------------------------------------------------

NUDENET = "nudenet==3.4.2"


@pytest.fixture(scope="session")
def yolov8n():
    """The nudenet wheel's 320n.onnx (Ultralytics YOLOv8n, 18 classes, 320 x 320; facts.md),
    downloaded once into the user's cache with `pip download --no-deps`; never redistributed."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hetsched-tests"
    model = cache / "nudenet-320n.onnx"
    if not model.exists():
        cache.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", NUDENET,
                            "-d", str(cache)], capture_output=True, text=True, timeout=300)
        wheels = sorted(cache.glob("nudenet-*.whl"))
        if r.returncode != 0 or not wheels:
            pytest.skip(f"cannot download {NUDENET} (offline?): {r.stderr.strip()[-200:]}")
        with zipfile.ZipFile(wheels[-1]) as z:
            data = z.read("nudenet/320n.onnx")
        tmp = model.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(model)
    return graph.from_model(onnx.load(str(model)), {"images": [1, 3, 320, 320]}, name="yolov8n")


def _scene(shape: bool):
    img = np.full((240, 320, 3), 200, np.uint8)
    if shape:       # a drawn face-like figure; the detector's classes do not matter here
        cv2.ellipse(img, (160, 120), (50, 65), 0, 0, 360, (150, 180, 230), -1)
        cv2.circle(img, (140, 105), 7, (40, 40, 40), -1)
        cv2.circle(img, (180, 105), 7, (40, 40, 40), -1)
        cv2.ellipse(img, (160, 150), (20, 8), 0, 0, 180, (60, 60, 160), 3)
        cv2.ellipse(img, (160, 60), (55, 25), 0, 180, 360, (30, 30, 60), -1)
    return img


def _detect(g, img, conf, outputs_of):
    task = make_task(g, DetectOptions(conf=conf))
    frame = Frame(0, img, 0.0)
    task.pre(frame)
    x = frame.tensors
    frame.tensors = outputs_of(x)
    raw = frame.tensors[g.outputs[0]]
    task.post(frame)
    return frame.result, raw, frame.meta, task


def test_real_yolov8n_decodes_like_the_reference(yolov8n):
    g = yolov8n
    assert make_task(g, DetectOptions()).kind == "ultralytics"     # by its shape (1, 22, 2100)
    whole = lambda feeds: run(g.model, feeds, threads=2)  # noqa: E731
    dets, raw, lb, _ = _detect(g, _scene(True), 0.25, whole)
    assert raw.shape == (1, 22, grid_sum((320, 320)))
    same(dets, ref_ultralytics(raw, 0.25, 0.45, lb), tol=1e-2)
    assert len(dets.boxes) >= 1 and dets.to_list()[0]["name"]     # names from the metadata
    # the best box lands on the drawn figure, on the source frame (letterbox undone)
    figure = (105, 35, 215, 185)
    assert _iou(dets.boxes[0].tolist(), figure) > 0.5, dets.boxes[0]
    empty, raw, lb, _ = _detect(g, _scene(False), 0.25, whole)
    assert len(empty.boxes) == 0
    low, raw, lb, _ = _detect(g, _scene(True), 0.001, whole)      # many candidates, still the same
    same(low, ref_ultralytics(raw, 0.001, 0.45, lb), tol=1e-2)


def test_real_yolov8n_split_three_ways_gives_the_same_detections(yolov8n):
    g = yolov8n
    n = len(g.layers)
    subs = g.split([n // 3, 2 * n // 3])
    whole = lambda feeds: run(g.model, feeds, threads=2)  # noqa: E731
    split = lambda feeds: {o: v for o, v in run_chain(subs, feeds).items() if o in g.outputs}  # noqa: E731
    a, raw_a, _, _ = _detect(g, _scene(True), 0.01, whole)
    b, raw_b, _, _ = _detect(g, _scene(True), 0.01, split)
    assert np.allclose(raw_a, raw_b, atol=1e-4)
    assert a.to_list() == b.to_list() and len(a.boxes) >= 1


# --- the zoo's YOLOv8 in the exporter's layout --------------------------------------------------

def _v8_definition(width, depth=0.33, nc=80):
    """Convolutions (count) and their parameters (weights + fused biases) of YOLOv8 from its
    architecture (ultralytics/cfg/models/v8/yolov8.yaml), worked out here independently of the
    builder: channels min(c, 1024) x width rounded up to 8, repeats max(round(n x depth), 1)."""
    ch = lambda c: int(np.ceil(min(c, 1024) * width / 8) * 8)  # noqa: E731
    rep = lambda n: max(round(n * depth), 1)  # noqa: E731
    convs = []
    conv = lambda ci, co, k, bias=True: convs.append(k * k * ci * co + (co if bias else 0))  # noqa: E731

    def c2f(ci, co, n):
        c = co // 2
        conv(ci, 2 * c, 1)
        for _ in range(n):
            conv(c, c, 3)
            conv(c, c, 3)
        conv((2 + n) * c, co, 1)
    conv(3, ch(64), 3), conv(ch(64), ch(128), 3), c2f(ch(128), ch(128), rep(3))
    conv(ch(128), ch(256), 3), c2f(ch(256), ch(256), rep(6))
    conv(ch(256), ch(512), 3), c2f(ch(512), ch(512), rep(6))
    conv(ch(512), ch(1024), 3), c2f(ch(1024), ch(1024), rep(3))
    conv(ch(1024), ch(1024) // 2, 1), conv(2 * ch(1024), ch(1024), 1)              # SPPF
    c2f(ch(1024) + ch(512), ch(512), rep(3)), c2f(ch(512) + ch(256), ch(256), rep(3))
    conv(ch(256), ch(256), 3), c2f(ch(256) + ch(512), ch(512), rep(3))
    conv(ch(512), ch(512), 3), c2f(ch(512) + ch(1024), ch(1024), rep(3))
    heads = [ch(256), ch(512), ch(1024)]
    c2, c3 = max(16, heads[0] // 4, 64), max(heads[0], min(nc, 100))
    for ci in heads:
        conv(ci, c2, 3), conv(c2, c2, 3), conv(c2, 64, 1), conv(ci, c3, 3), conv(c3, c3, 3), conv(c3, nc, 1)
    conv(16, 1, 1, bias=False)                                                           # DFL
    return len(convs), sum(convs)


def _v5_definition(width, depth=0.33, nc=80):
    """The same for YOLOv5 v6.0+ (models/yolov5{n,s}.yaml): channels c x width rounded up to 8,
    C3 = two 1x1 branches, n bottlenecks (1x1, 3x3) on the first, a 1x1 after the concat."""
    ch = lambda c: int(np.ceil(c * width / 8) * 8)  # noqa: E731
    rep = lambda n: max(round(n * depth), 1)  # noqa: E731
    convs = []
    conv = lambda ci, co, k: convs.append(k * k * ci * co + co)  # noqa: E731

    def c3(ci, co, n):
        c = co // 2
        conv(ci, c, 1), conv(ci, c, 1), conv(2 * c, co, 1)
        for _ in range(n):
            conv(c, c, 1), conv(c, c, 3)
    c64, c128, c256, c512, c1024 = (ch(c) for c in (64, 128, 256, 512, 1024))
    conv(3, c64, 6), conv(c64, c128, 3), c3(c128, c128, rep(3)), conv(c128, c256, 3)
    c3(c256, c256, rep(6)), conv(c256, c512, 3), c3(c512, c512, rep(9)), conv(c512, c1024, 3)
    c3(c1024, c1024, rep(3)), conv(c1024, c1024 // 2, 1), conv(2 * c1024, c1024, 1)   # SPPF
    conv(c1024, c512, 1), c3(2 * c512, c512, rep(3)), conv(c512, c256, 1), c3(2 * c256, c256, rep(3))
    conv(c256, c256, 3), c3(2 * c256, c512, rep(3)), conv(c512, c512, 3), c3(2 * c512, c1024, rep(3))
    for ci in (c256, c512, c1024):
        conv(ci, 3 * (5 + nc), 1)
    return len(convs), sum(convs)


@pytest.mark.parametrize("name,width,published", [("yolov8n", 0.25, 3151904), ("yolov8s", 0.50, 11156544),
                                                  ("yolov5n", 0.25, 1867405), ("yolov5s", 0.50, 7225885)])
def test_zoo_ultralytics_models_match_their_architecture(name, width, published):
    from hetsched.models.zoo import build_zoo
    model = build_zoo(name, 640)
    onnx.checker.check_model(model)
    inits = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    params = sum(int(np.prod(inits[t].dims)) for n in convs for t in n.input[1:] if t in inits)
    v8 = name.startswith("yolov8")
    count, expected = (_v8_definition if v8 else _v5_definition)(width)
    assert (len(convs), params) == (count, expected)
    assert params == published        # Ultralytics' own fused model summary
    g = graph.from_model(model, name=name)
    small = graph.from_model(build_zoo(name, 320), name=name).tensors["output0"].shape
    if v8:      # facts.md: (1, 4+nc, N), N = 8400 at 640
        assert g.tensors["output0"].shape == (1, 84, 8400) and small == (1, 84, 2100)
    else:       # facts.md: (1, N, 5+nc), N = 25200 at 640
        assert g.tensors["output0"].shape == (1, 25200, 85) and small == (1, 6300, 85)
    assert g.metadata["stride"] == "32" and g.metadata["task"] == "detect"
    assert make_task(g, DetectOptions()).kind == ("ultralytics" if v8 else "yolov5")


def test_zoo_yolov8_head_decodes_like_a_separate_dfl_decoding():
    """output0 against the head's raw distribution bins and class logits decoded here in numpy:
    softmax over 16 bins, expectation, distances from cell centres, times the stride."""
    from hetsched.models.zoo import build_zoo
    model = build_zoo("yolov8n", 320)
    extra = onnx.ModelProto()
    extra.CopyFrom(model)
    for t in ("dfl.box", "dfl.cls"):
        extra.graph.output.append(helper.make_empty_tensor_value_info(t))
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 320, 320)).astype(np.float32)
    out = run(extra, {"images": x}, threads=2)
    bins, logits, got = out["dfl.box"][0], out["dfl.cls"][0], out["output0"][0]
    n = bins.shape[1]
    p = np.exp(bins.reshape(4, 16, n) - bins.reshape(4, 16, n).max(axis=1, keepdims=True))
    dist = (p / p.sum(axis=1, keepdims=True) * np.arange(16)[None, :, None]).sum(axis=1)   # 4 x N
    cx, cy, st = [], [], []
    for s in (8, 16, 32):
        for gy in range(320 // s):
            for gx in range(320 // s):
                cx.append(gx + 0.5), cy.append(gy + 0.5), st.append(s)
    cx, cy, st = map(np.array, (cx, cy, st))
    x1, y1, x2, y2 = cx - dist[0], cy - dist[1], cx + dist[2], cy + dist[3]
    want = np.stack([(x1 + x2) / 2 * st, (y1 + y2) / 2 * st, (x2 - x1) * st, (y2 - y1) * st])
    assert np.allclose(got[:4], want, rtol=1e-4, atol=1e-3)
    assert np.allclose(got[4:], 1 / (1 + np.exp(-logits)), atol=1e-6)
    assert got[4:].max() < 0.25        # untrained, at Ultralytics' class prior: nothing passes


def test_zoo_yolov5_head_decodes_like_a_separate_decoding():
    """output0 against the three detection convolutions' raw maps decoded here: sigmoid, then
    xy = (2 s - 0.5 + cell) x stride, wh = (2 s)^2 x anchor, anchor-row-column order."""
    from hetsched.models.zoo import build_zoo
    model = build_zoo("yolov5n", 320)
    raw_names = [n.input[0] for n in model.graph.node if n.name.endswith(".view")]
    assert len(raw_names) == 3
    extra = onnx.ModelProto()
    extra.CopyFrom(model)
    for t in raw_names:
        extra.graph.output.append(helper.make_empty_tensor_value_info(t))
    x = np.random.default_rng(1).uniform(0, 1, (1, 3, 320, 320)).astype(np.float32)
    out = run(extra, {"images": x}, threads=2)
    anchors = [(10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326)]
    rows = []
    for t, s, anc in zip(raw_names, (8, 16, 32), anchors):
        g = 320 // s
        p = 1 / (1 + np.exp(-out[t][0].reshape(3, 85, g, g).transpose(0, 2, 3, 1)))   # a, y, x, field
        for a in range(3):
            for yy in range(g):
                for xx in range(g):
                    f = p[a, yy, xx]
                    rows.append([(2 * f[0] - 0.5 + xx) * s, (2 * f[1] - 0.5 + yy) * s,
                                 (2 * f[2]) ** 2 * anc[2 * a], (2 * f[3]) ** 2 * anc[2 * a + 1], *f[4:]])
    assert np.allclose(out["output0"][0], np.array(rows, np.float32), rtol=1e-4, atol=1e-3)


def test_pipelines_yolov8n_spec_loads_with_the_ultralytics_decoder():
    from hetsched.models.zoo import build_zoo
    from hetsched.runtime import spec as specmod
    spec = specmod.load(Path(__file__).resolve().parents[1] / "pipelines" / "yolov8n.yaml")
    assert spec.model["zoo"] == "yolov8n" and spec.sink["video"]
    g = graph.from_model(build_zoo("yolov8n", spec.model["size"]), name="yolov8n")
    assert make_task(g, spec.detect).kind == "ultralytics"


def test_run_detect_overrides_the_specs_kind():
    from hetsched.cli import _run_spec, build_parser
    spec_path = str(Path(__file__).resolve().parents[1] / "pipelines" / "yolov8n.yaml")
    args = build_parser().parse_args(["run", spec_path, "--detect", "yolov5"])
    assert _run_spec(args).detect.kind == "yolov5"
    assert _run_spec(build_parser().parse_args(["run", spec_path])).detect.kind == "auto"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", spec_path, "--detect", "yolov9"])


def test_a_model_no_decoder_recognises_is_passed_on_and_said_so(caplog):
    """A classifier's [1, 10] output fits no detection layout: `auto` passes the outputs on
    undecoded and says so once, naming the outputs; `--detect none` asks for that quietly."""
    import logging
    classifier = model_with_outputs([(1, 10)])
    with caplog.at_level(logging.WARNING):
        task = make_task(classifier, DetectOptions())
    assert task.kind == "none" and task.decode is None
    assert "no detection head recognised" in caplog.text and "[1, 10]" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert make_task(classifier, DetectOptions(kind="none")).decode is None
        assert make_task(classifier, DetectOptions()).kind == "none"   # said once a model
    assert caplog.text == ""
