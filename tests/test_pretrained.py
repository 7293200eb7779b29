"""The real pretrained detector (PP-OCRv6 DB text detector from the rapidocr wheel): its
probability map lights up over rendered text and not elsewhere, whole and split three ways."""

import cv2
import numpy as np
import pytest

from hetsched import graph
from hetsched.errors import HetschedError
from hetsched.models.pretrained import PPOCR_INPUT, PPOCR_MEAN, PPOCR_STD, ppocr_det_path

from conftest import run, run_chain

SIZE = 320


@pytest.fixture(scope="module")
def det():
    try:
        path = ppocr_det_path()
    except HetschedError as e:
        pytest.skip(str(e))
    return graph.load(path, {PPOCR_INPUT: [1, 3, SIZE, SIZE]})


LINES = [("HETSCHED", (20, 90), 1.6, 4), ("pipeline 2026", (30, 230), 1.1, 3)]


@pytest.fixture(scope="module")
def scene():
    img = np.full((SIZE, SIZE, 3), 255, np.uint8)
    boxes = []
    for text, org, scale, thick in LINES:
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick)
        boxes.append((org[0], org[1] - h, org[0] + w, org[1] + base))  # x0, y0, x1, y1
    ink = (img.min(axis=2) < 128).astype(np.uint8)
    far = 1 - cv2.dilate(ink, np.ones((41, 41), np.uint8))   # well away from any text
    x = (img.astype(np.float32) / 255.0 - np.array(PPOCR_MEAN, np.float32)) / np.array(PPOCR_STD, np.float32)
    return x.transpose(2, 0, 1)[None].astype(np.float32), boxes, far.astype(bool)


def _check_map(prob, boxes, far):
    """DB marks each text line as one region (a shrunk kernel of the line), nothing else."""
    prob = prob[0, 0]
    assert prob.shape == far.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats((prob > 0.3).astype(np.uint8))
    regions = sorted(stats[1:].tolist(), key=lambda r: r[1])
    assert len(regions) == len(boxes), f"{len(regions)} text regions for {len(boxes)} lines"
    for (rx, ry, rw, rh, _), (x0, y0, x1, y1) in zip(regions, boxes):
        assert x0 - 4 <= rx and rx + rw <= x1 + 4 and y0 - 4 <= ry and ry + rh <= y1 + 4
        assert rw >= 0.75 * (x1 - x0), "the region does not span the line"
    assert prob[far].mean() < 0.01, f"background lights up: mean p {prob[far].mean():.4f}"
    assert prob[far].max() < 0.3


def test_probability_map_marks_the_text(det, scene):
    x, boxes, far = scene
    out = run(det.model, {PPOCR_INPUT: x}, threads=2)
    _check_map(out[det.outputs[0]], boxes, far)


def test_three_way_split_gives_the_same_map(det, scene):
    x, boxes, far = scene
    n = len(det)
    subs = det.split([n // 3, 2 * n // 3])
    assert len(subs) == 3
    env = run_chain(subs, {PPOCR_INPUT: x})
    whole = run(det.model, {PPOCR_INPUT: x}, threads=2)[det.outputs[0]]
    np.testing.assert_allclose(env[det.outputs[0]], whole, atol=1e-4, rtol=0)
    _check_map(env[det.outputs[0]], boxes, far)


def test_normalisation_folds_constants_and_identities(det):
    # the Paddle export carries 147 Identity nodes and Constant weights; none may be a layer
    assert not any(l.op in ("Identity", "Constant") for l in det.layers)
    assert len(det) == 317
    assert max(len(c) for c in det.crossing_sets()) <= 6  # the FPN's skips, not hundreds of weights


def test_db_boxes_cover_each_text_line(det, scene):
    """The DB post-processing turns the map into one box per rendered line, around its ink."""
    from hetsched.detect.db import DBConfig, boxes_from_map
    from hetsched.detect.preprocess import Letterbox
    x, boxes, _ = scene
    prob = run(det.model, {PPOCR_INPUT: x}, threads=2)[det.outputs[0]]
    found = boxes_from_map(prob, DBConfig(), Letterbox(1, 1, 0, 0, SIZE, SIZE))
    assert len(found.quads) == len(boxes)
    got = sorted(((q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()) for q in found.quads),
                 key=lambda b: b[1])
    ink = x[0, 0] < 0
    for (gx0, gy0, gx1, gy1), (x0, y0, x1, y1) in zip(got, sorted(boxes, key=lambda b: b[1])):
        ys, xs = np.nonzero(ink[y0:y1, x0:x1])
        ix0, iy0, ix1, iy1 = x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1
        # unclipped boxes reach around the ink: contain it, within a line height of margin
        margin = iy1 - iy0
        assert gx0 <= ix0 + 2 and gy0 <= iy0 + 2 and gx1 >= ix1 - 2 and gy1 >= iy1 - 2
        assert gx0 >= ix0 - margin and gx1 <= ix1 + margin and gy0 >= iy0 - margin and gy1 <= iy1 + margin
    assert (found.scores > 0.5).all()
