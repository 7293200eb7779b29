"""Pre/post-processing against independent computations: brute-force NMS, hand-decoded heads,
pyclipper's unclip, letterbox round trips."""

import math

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hetsched.detect.db import DBConfig, boxes_from_map, unclip_rect
from hetsched.detect.nms import nms
from hetsched.detect.preprocess import Letterbox, PreConfig, preprocess
from hetsched.detect.yolo import decode_head


def brute_nms(boxes, scores, thr, classes):
    """Greedy NMS written the slow, obvious way."""
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(classes[i] != classes[k] or iou(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def _iou_matrix(b):
    w = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inter = w * h
    return inter / (area[:, None] + area[None, :] - inter)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(0, 10_000), st.floats(0.1, 0.9), st.booleans())
def test_nms_equals_brute_force(n, seed, thr, per_class):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(1, 40, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.permutation(n).astype(np.float32) / max(n, 1)  # distinct: one greedy order
    classes = rng.integers(0, 3, n) if per_class else np.zeros(n, np.int64)
    # OpenCV compares IoU with the threshold in float32: a pair within float32's rounding of
    # the threshold may go either way
    assume(n == 0 or np.abs(_iou_matrix(boxes.astype(np.float64)) - thr).min() > 1e-5)
    got = nms(boxes, scores, thr, classes if per_class else None, max_out=10_000)
    assert got.tolist() == brute_nms(boxes.astype(np.float64), scores, thr, classes)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 40), st.integers(0, 10_000), st.floats(0.1, 0.9))
def test_nms_equals_brute_force_on_negative_and_degenerate_boxes(n, seed, thr):
    """Boxes past the image's top-left corner (letterboxed edges) and boxes without area: per
    class as the brute force, which never suppresses across classes or through a zero area."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-300, 50, (n, 2))
    wh = np.where(rng.random((n, 2)) < 0.15, 0.0, rng.uniform(1, 300, (n, 2)))
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.permutation(n).astype(np.float32) / max(n, 1)
    classes = rng.integers(0, 3, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(_iou_matrix(boxes) - thr)     # NaN: two boxes without area, never near
    assume(n == 0 or not (np.where(np.isnan(gap), np.inf, gap) <= 1e-5).any())
    assert nms(boxes, scores, thr, classes, max_out=10_000).tolist() == \
        brute_nms(boxes, scores, thr, classes)


def test_nms_orders_ties_by_index_and_takes_any_scores():
    boxes = np.array([[0, 0, 10, 10], [100, 0, 110, 10], [1, 0, 11, 10], [200, 0, 210, 10]], np.float32)
    # ties keep index order; negative and float64 scores are ranked like any others
    assert nms(boxes, np.array([-1.0, -1.0, 5.0, -1.0]), 0.5).tolist() == [2, 1, 3]
    assert nms(boxes, np.array([2.0, 2.0, 2.0, 2.0]), 0.5).tolist() == [0, 1, 3]
    assert nms(boxes, np.ones(4), 0.5, max_out=0).tolist() == []


def test_nms_stops_at_max_out():
    boxes = np.array([[i * 10, 0, i * 10 + 5, 5] for i in range(20)], np.float32)
    assert nms(boxes, np.linspace(1, 0.1, 20), 0.5, max_out=7).tolist() == list(range(7))


def test_yolo_head_decoded_by_hand():
    head = {"type": "yolo", "output": "y", "classes": 2, "anchors": [[10, 14], [23, 27]],
            "grid": [2, 2], "stride": [32, 32], "anchor_units": "pixels", "scale_x_y": 1.0}
    t = np.full((1, 2 * 7, 2, 2), -20.0, np.float32)   # everything off...
    a, cy, cx = 1, 1, 0                                   # ...but anchor 1 at cell (row 1, col 0)
    t[0, a * 7 + 0, cy, cx] = 0.0                         # sigmoid 0.5 -> centre of the cell
    t[0, a * 7 + 1, cy, cx] = np.log(3.0)                 # sigmoid 0.75
    t[0, a * 7 + 2, cy, cx] = np.log(2.0)                 # w = 2 x anchor
    t[0, a * 7 + 3, cy, cx] = 0.0                         # h = anchor
    t[0, a * 7 + 4, cy, cx] = 10.0                        # objectness ~1
    t[0, a * 7 + 6, cy, cx] = 10.0                        # class 1
    boxes, scores, classes = decode_head(t, head, (64, 64), 0.5)
    x, y = (0 + 0.5) / 2 * 64, (1 + 0.75) / 2 * 64
    w, h = 2 * 23, 27
    np.testing.assert_allclose(boxes[0], [x - w / 2, y - h / 2, x + w / 2, y + h / 2], rtol=1e-5)
    assert classes.tolist() == [1] and scores[0] == pytest.approx(1 / (1 + np.exp(-10)) ** 2, rel=1e-5)


def test_region_head_uses_grid_anchors_and_softmax():
    head = {"type": "region", "output": "r", "classes": 3, "anchors": [[1.5, 2.0]], "grid": [4, 4],
            "stride": [32, 32], "anchor_units": "grid", "coords": 4, "softmax": True}
    t = np.full((1, 8, 4, 4), 0.0, np.float32)
    t[0, 4] = -20.0
    t[0, 4, 2, 3] = 20.0                       # only cell (row 2, col 3) has an object
    t[0, 5:, 2, 3] = [0.0, np.log(3.0), 0.0]   # softmax -> 0.2, 0.6, 0.2
    boxes, scores, classes = decode_head(t, head, (128, 128), 0.3)
    assert classes.tolist() == [1] and scores[0] == pytest.approx(0.6, rel=1e-4)
    cx, cy, w, h = (3.5 / 4) * 128, (2.5 / 4) * 128, 1.5 / 4 * 128, 2.0 / 4 * 128
    np.testing.assert_allclose(boxes[0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-5)


def _reference_decode(out, head, input_hw, conf):
    """Cell by cell, anchor by anchor, in float64, as darknet's get_yolo_box / get_region_box
    read the map. A cell's classes are those whose probability is its best within float32's
    rounding (saturated sigmoids tie in float32, and where they round to 1 differs by a step
    between this float64 and numpy's float32; which of them is kept is tested by hand)."""
    c, anchors = head["classes"], head["anchors"]
    f = 5 + c
    _, _, gh, gw = out.shape
    ih, iw = input_hw
    sxy = head.get("scale_x_y", 1.0)
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    found = []
    for a, (aw, ah) in enumerate(anchors):
        for y in range(gh):
            for x in range(gw):
                v = [float(out[0, a * f + k, y, x]) for k in range(f)]
                if head.get("softmax"):
                    m = max(v[5:])
                    e = [math.exp(u - m) for u in v[5:]]
                    probs = [u / sum(e) for u in e]
                else:
                    probs = [sig(u) for u in v[5:]]
                k = int(np.argmax(probs))
                near = {j for j, p in enumerate(probs) if p >= probs[k] * (1 - 1e-6)}
                score = sig(v[4]) * probs[k]
                if score <= conf:
                    continue
                cx, cy = (sig(v[0]) * sxy - (sxy - 1) / 2 + x) / gw, (sig(v[1]) * sxy - (sxy - 1) / 2 + y) / gh
                units = (iw, ih) if head["anchor_units"] == "pixels" else (gw, gh)
                bw, bh = math.exp(v[2]) * aw / units[0], math.exp(v[3]) * ah / units[1]
                found.append(((cx - bw / 2) * iw, (cy - bh / 2) * ih, (cx + bw / 2) * iw, (cy + bh / 2) * ih,
                              score, near))
    return found


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["yolo", "region-softmax", "region"]), classes=st.integers(1, 6),
       anchors=st.integers(1, 3), gh=st.integers(1, 5), gw=st.integers(1, 5),
       spread=st.sampled_from([1.0, 4.0, 30.0]), conf=st.sampled_from([0.05, 0.25, 0.6]),
       seed=st.integers(0, 2**16))
def test_decode_head_matches_a_cell_by_cell_reference(kind, classes, anchors, gh, gw, spread, conf, seed):
    head = {"type": kind.split("-")[0], "output": "y", "classes": classes,
            "anchors": [[10.0 + 7 * a, 14.0 + 5 * a] for a in range(anchors)],
            "anchor_units": "pixels" if kind == "yolo" else "grid",
            "softmax": kind == "region-softmax", "scale_x_y": 1.05 if kind == "yolo" else 1.0}
    rng = np.random.default_rng(seed)
    out = (rng.standard_normal((1, anchors * (5 + classes), gh, gw)) * spread).astype(np.float32)
    out[:, 2::5 + classes] = np.clip(out[:, 2::5 + classes], -3, 3)    # box sizes within reason
    out[:, 3::5 + classes] = np.clip(out[:, 3::5 + classes], -3, 3)
    boxes, scores, cls = decode_head(out, head, (64, 96), conf)
    # both in the map's order: anchor, row, column; a score within float32's rounding of the
    # threshold may fall either side
    want = [r for r in _reference_decode(out, head, (64, 96), conf) if abs(r[4] - conf) > 1e-6]
    got = [(tuple(b), s, k) for b, s, k in zip(boxes, scores, cls) if abs(s - conf) > 1e-6]
    assert len(got) == len(want)
    for (b, s, k), r in zip(got, want):
        assert k in r[5]
        assert s == pytest.approx(r[4], rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(b, r[:4], rtol=1e-4, atol=1e-3)


def test_softmax_probabilities_that_round_equal_keep_the_first_class():
    head = {"type": "region", "output": "y", "classes": 2, "anchors": [[1.0, 1.0]],
            "anchor_units": "grid", "softmax": True}
    a = np.float32(0.1)
    t = np.zeros((1, 7, 1, 1), np.float32)
    t[0, 4:, 0, 0] = [5.0, a, np.nextafter(a, np.float32(1))]    # exp(-1 step) rounds to 1
    assert decode_head(t, head, (32, 32), 0.3)[2].tolist() == [0]


def test_a_score_is_the_best_probability_itself_not_the_best_logits():
    # numpy's vectorised float32 sigmoid can fall by a step where the logit rises (it did for
    # this pair on the AVX-512 VM); the score is objectness x the largest probability either way
    from hetsched.detect.yolo import _sigmoid
    head = {"type": "yolo", "output": "y", "classes": 2, "anchors": [[10, 14]], "anchor_units": "pixels"}
    a = np.float32(0.173031)
    t = np.zeros((1, 7, 1, 1), np.float32)
    t[0, 4:, 0, 0] = [10.0, a, np.nextafter(a, np.float32(1))]
    _, scores, _ = decode_head(t, head, (32, 32), 0.3)
    want = _sigmoid(t[0, 4:5, 0, 0]) * _sigmoid(t[0, 5:, 0, 0]).max()
    assert scores.tolist() == want.tolist()


def test_saturated_classes_tie_and_the_first_is_kept():
    head = {"type": "yolo", "output": "y", "classes": 3, "anchors": [[10, 14]], "anchor_units": "pixels"}
    t = np.zeros((1, 8, 1, 1), np.float32)
    t[0, 4:, 0, 0] = [20.0, -1.0, 20.0, 25.0]     # objectness; classes 1 and 2 both sigmoid to 1.0
    _, scores, classes = decode_head(t, head, (32, 32), 0.5)
    assert classes.tolist() == [1] and scores.tolist() == [1.0]


@pytest.mark.parametrize("fw,fh", [(640, 480), (300, 500), (416, 416)])
def test_letterbox_maps_boxes_back_to_the_frame(fw, fh):
    frame = np.zeros((fh, fw, 3), np.uint8)
    cv2.rectangle(frame, (fw // 4, fh // 3), (fw // 2, fh // 2), (255, 255, 255), -1)
    x, box = preprocess(frame, PreConfig((416, 416)))
    assert x.shape == (1, 3, 416, 416) and x.dtype == np.float32
    ys, xs = np.nonzero(x[0, 0] > 0.9)
    found = box.to_frame(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32))[0]
    np.testing.assert_allclose(found, [fw // 4, fh // 3, fw // 2 + 1, fh // 2 + 1], atol=2.5)


def _reference_preprocess(frame, cfg):
    """The steps written out in numpy, one at a time, as darknet's letterbox_image does them."""
    fh, fw = frame.shape[:2]
    h, w = cfg.size
    canvas = np.full((h, w, 3), cfg.pad_value, np.uint8)
    if cfg.letterbox:
        s = min(w / fw, h / fh)
        nw, nh = max(1, round(fw * s)), max(1, round(fh * s))
        top, left = (h - nh) // 2, (w - nw) // 2
        canvas[top:top + nh, left:left + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    else:
        canvas = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
    if cfg.rgb:
        canvas = canvas[:, :, [2, 1, 0]]
    x = canvas.astype(np.float64) * cfg.scale
    x = (x - np.array(cfg.mean)) / np.array(cfg.std)
    return np.moveaxis(x, 2, 0)[None]


@settings(max_examples=40, deadline=None)
@given(fh=st.integers(1, 90), fw=st.integers(1, 90), h=st.integers(1, 64), w=st.integers(1, 64),
       letterbox=st.booleans(), rgb=st.booleans(), normalised=st.booleans(),
       pad=st.integers(0, 255), seed=st.integers(0, 2**16))
def test_preprocess_matches_the_steps_written_out(fh, fw, h, w, letterbox, rgb, normalised, pad, seed):
    frame = np.random.default_rng(seed).integers(0, 256, (fh, fw, 3), dtype=np.uint8)
    cfg = PreConfig((h, w), letterbox=letterbox, rgb=rgb, pad_value=pad,
                    **(dict(scale=1 / 255, mean=(0.5, 0.4, 0.3), std=(0.2, 0.5, 0.25)) if normalised
                       else dict(scale=1.0)))
    x, _ = preprocess(frame, cfg)
    assert x.shape == (1, 3, h, w) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x, _reference_preprocess(frame, cfg), rtol=1e-5, atol=1e-5)


def test_boxes_are_clipped_to_the_frame():
    box = Letterbox(0.5, 0.5, 10.0, 0.0, 100, 80)
    got = box.to_frame(np.array([[0.0, -5.0, 200.0, 60.0]], np.float32))[0]
    assert got.tolist() == [0.0, 0.0, 100.0, 80.0]


def test_colour_order_and_scaling():
    frame = np.zeros((8, 8, 3), np.uint8)
    frame[..., 0] = 255   # blue in OpenCV's BGR
    x, _ = preprocess(frame, PreConfig((8, 8), letterbox=False))
    assert x[0, 2].min() == 1.0 and x[0, 0].max() == 0.0   # RGB: blue is the last channel


def test_unclip_matches_pyclipper():
    pyclipper = pytest.importorskip("pyclipper")
    for rect in [((50, 40), (30, 10), 0.0), ((80, 60), (44, 12), 17.0), ((30, 30), (5, 20), -40.0)]:
        pts = cv2.boxPoints(rect)
        d = rect[1][0] * rect[1][1] * 1.6 / (2 * (rect[1][0] + rect[1][1]))
        off = pyclipper.PyclipperOffset()
        # pyclipper works in integers: scale up so its rounding does not blur the comparison
        off.AddPath([tuple(int(round(v * 1000)) for v in p) for p in pts], pyclipper.JT_ROUND,
                    pyclipper.ET_CLOSEDPOLYGON)
        grown = np.array(off.Execute(d * 1000)[0], np.float64) / 1000
        want = cv2.minAreaRect(grown.astype(np.float32))[1]
        got = unclip_rect(rect, 1.6)[1]
        np.testing.assert_allclose(sorted(got), sorted(want), atol=0.05)


def test_db_boxes_from_a_drawn_map():
    prob = np.zeros((100, 200), np.float32)
    prob[20:40, 30:130] = 0.9
    prob[70:80, 150:190] = 0.8
    found = boxes_from_map(prob[None, None], DBConfig(), Letterbox(0.5, 0.5, 0, 0, 400, 200))
    assert len(found.quads) == 2
    spans = sorted((q[:, 0].min(), q[:, 0].max()) for q in found.quads)
    assert spans[0][0] < 60 and spans[0][1] > 258   # frame pixels: twice the map's
