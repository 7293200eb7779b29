"""Greedy non-maximum suppression, vectorised over the remaining boxes at each pick.

Per-class suppression uses the offset trick: each class's boxes are shifted by a distance larger
than any coordinate, so boxes of different classes never overlap and one pass serves all.
"""

from __future__ import annotations

import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.45,
        classes: np.ndarray | None = None, max_out: int = 300) -> np.ndarray:
    """Indices of the kept boxes (x1 y1 x2 y2), best score first; stops at `max_out` kept.
    With `classes`, boxes only suppress boxes of their own class."""
    n = len(boxes)
    if n == 0:
        return np.zeros(0, np.int64)
    b = boxes.astype(np.float64)
    if classes is not None:
        span = float(b.max() - b.min()) + 1.0
        b = b + (np.asarray(classes, np.float64) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    # sorted once, so each pick compares with a contiguous tail (views, not gathers)
    x1, y1, x2, y2 = (np.ascontiguousarray(b[order, k]) for k in range(4))
    area = (x2 - x1) * (y2 - y1)
    dead = np.zeros(n, bool)
    keep = []
    for i in range(n):
        if dead[i]:
            continue
        keep.append(order[i])
        if len(keep) >= max_out:
            break
        w = np.minimum(x2[i], x2[i + 1:]) - np.maximum(x1[i], x1[i + 1:])
        h = np.minimum(y2[i], y2[i + 1:]) - np.maximum(y1[i], y1[i + 1:])
        inter = np.clip(w, 0, None) * np.clip(h, 0, None)
        union = area[i] + area[i + 1:] - inter
        dead[i + 1:] |= inter > iou * np.where(union > 0, union, np.inf)
    return np.asarray(keep, np.int64)
