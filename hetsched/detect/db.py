"""Text boxes from a DB (differentiable binarisation) detector's probability map, as PP-OCR's
post-processing does it: threshold, contours, minimum-area rectangles, mean-probability score,
then "unclip" (grow each box by d = area * ratio / perimeter).

PP-OCR unclips with a polygon offset (pyclipper) and takes the minimum-area rectangle of the
result. The box being unclipped is itself a rectangle, and the round-joined offset of a w x h
rectangle has the (w + 2d) x (h + 2d) rectangle as its minimum-area rectangle, so that is
computed directly; the tests check it against pyclipper.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .preprocess import Letterbox


@dataclass(frozen=True)
class DBConfig:
    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_ratio: float = 1.6
    max_candidates: int = 1000
    min_size: float = 3.0
    dilate: bool = True


@dataclass(frozen=True)
class TextBoxes:
    quads: np.ndarray    # N x 4 x 2 corner points in frame pixels (clockwise from top-left)
    scores: np.ndarray   # N

    def to_list(self) -> list[dict]:
        return [{"quad": [[round(float(x), 2), round(float(y), 2)] for x, y in q],
                 "score": round(float(s), 5)} for q, s in zip(self.quads, self.scores)]


def _ordered(rect) -> np.ndarray:
    pts = cv2.boxPoints(rect)
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    left, right = pts[:2], pts[2:]
    tl, bl = left[np.argsort(left[:, 1], kind="stable")]
    tr, br = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([tl, tr, br, bl], np.float32)


def unclip_rect(rect, ratio: float):
    (cx, cy), (w, h), angle = rect
    area, perimeter = w * h, 2 * (w + h)
    d = area * ratio / perimeter if perimeter > 0 else 0.0
    return (cx, cy), (w + 2 * d, h + 2 * d), angle


def _mean_score(prob: np.ndarray, quad: np.ndarray) -> float:
    h, w = prob.shape
    x0, x1 = int(np.clip(np.floor(quad[:, 0].min()), 0, w - 1)), int(np.clip(np.ceil(quad[:, 0].max()), 0, w - 1))
    y0, y1 = int(np.clip(np.floor(quad[:, 1].min()), 0, h - 1)), int(np.clip(np.ceil(quad[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [(quad - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0])


def boxes_from_map(prob_map: np.ndarray, cfg: DBConfig, box: Letterbox) -> TextBoxes:
    prob = np.asarray(prob_map, np.float32).reshape(prob_map.shape[-2:])
    seg = (prob > cfg.thresh).astype(np.uint8)
    if cfg.dilate:
        seg = cv2.dilate(seg, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(seg, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    quads, scores = [], []
    for contour in contours[: cfg.max_candidates]:
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < cfg.min_size:
            continue
        score = _mean_score(prob, _ordered(rect))
        if score < cfg.box_thresh:
            continue
        grown = unclip_rect(rect, cfg.unclip_ratio)
        if min(grown[1]) < cfg.min_size + 2:
            continue
        quad = _ordered(grown)
        flat = box.to_frame(np.concatenate([quad[:, :1], quad[:, 1:], quad[:, :1], quad[:, 1:]], 1))
        quads.append(flat[:, :2])
        scores.append(score)
    if not quads:
        return TextBoxes(np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32))
    return TextBoxes(np.stack(quads).astype(np.float32), np.asarray(scores, np.float32))
