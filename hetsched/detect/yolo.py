"""Decoding darknet detection heads into boxes, as darknet itself does.

A head's output is the raw 1 x A*(5+C) x H x W map of its last convolution (channel
a*(5+C) + k holds field k of anchor a). `[yolo]` heads (YOLOv3/v4): centre = (sigmoid(t) *
scale_x_y - (scale_x_y - 1)/2 + cell) / grid, size = exp(t) * anchor / input (anchors in input
pixels), objectness and classes by sigmoid. With `new_coords=1` (Scaled-YOLOv4) the convolution
before the head already applied the logistic, so nothing is activated again, the centre is
(t * scale_x_y - (scale_x_y - 1)/2 + cell) / grid and the size t^2 * 4 * anchor / input (darknet's
`forward_yolo_layer` and `get_yolo_box`). `[region]` heads (YOLOv2): the same centre without
scale_x_y, size = exp(t) * anchor / grid (anchors in grid cells), classes by softmax.
A box's score is objectness x its best class probability. The head descriptions come from the
model's `hetsched.heads` metadata, written by the zoo and the darknet importer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..errors import HetschedError
from .nms import nms
from .preprocess import Letterbox


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray     # N x 4, x1 y1 x2 y2 in frame pixels
    scores: np.ndarray    # N
    classes: np.ndarray   # N, int
    names: tuple[str, ...] | None = None   # class names, where the model's metadata gives them

    def to_list(self) -> list[dict]:
        out = [{"box": [round(float(v), 2) for v in b], "score": round(float(s), 5), "class": int(c)}
               for b, s, c in zip(self.boxes, self.scores, self.classes)]
        if self.names:
            for d in out:
                if 0 <= d["class"] < len(self.names):
                    d["name"] = self.names[d["class"]]
        return out


def heads_from_metadata(metadata: dict[str, str]) -> list[dict]:
    raw = metadata.get("hetsched.heads")
    if not raw:
        raise HetschedError("the model carries no 'hetsched.heads' metadata: it was not made by "
                            "the zoo or the darknet importer, so its outputs cannot be decoded")
    return json.loads(raw)


def _sigmoid(x):
    with np.errstate(over="ignore"):        # exp(-x) = inf for x < -88 in float32: 1 / inf = 0, right
        return 1.0 / (1.0 + np.exp(-x))


def decode_head(out: np.ndarray, head: dict, input_hw: tuple[int, int], conf: float):
    """(boxes in input pixels, scores, classes) of one head's candidates scoring above `conf`."""
    c = int(head["classes"])
    anchors = np.asarray(head["anchors"], np.float32)
    a = len(anchors)
    coords = int(head.get("coords", 4))
    fields = coords + 1 + c
    _, ch, gh, gw = out.shape
    if ch != a * fields:
        raise HetschedError(f"head '{head['output']}' has {ch} channels, expected {a} x {fields}")
    t = out.reshape(a, fields, gh, gw).astype(np.float32, copy=False)
    new_coords = bool(head.get("new_coords", 0))
    act = (lambda v: v) if new_coords else _sigmoid    # new_coords: activated by the conv already
    # a cell's score is its objectness times its best class's probability. Activating and
    # arg-maxing every class of every cell was 4/5 of a post-processing that runs once a frame,
    # holding the interpreter lock; the activations rise with the logit, so each cell is first
    # scored from its best logit, and only the cells that pass have every class activated, to be
    # scored and classed exactly as from all of them. numpy's vectorised float32 exp does not
    # always rise in its last bit, so a best probability can exceed its best logit's by one
    # float32 step: a cell within that step above the threshold may be missed
    logits = t[:, coords + 1:]
    top = logits.max(axis=1)
    softmax = head["type"] == "region" and head.get("softmax", False)
    if softmax:
        total = np.exp(logits - top[:, None]).sum(axis=1)
        best = 1.0 / total
    else:
        best = act(top)
    obj = act(t[:, coords])
    ai, yi, xi = np.nonzero(obj * best > conf)
    cand = logits[ai, :, yi, xi]                    # n x classes
    probs = (np.exp(cand - top[ai, yi, xi][:, None]) / total[ai, yi, xi][:, None] if softmax
             else act(cand))
    # the first best probability, as darknet: where a sigmoid saturates to 1 in float32 several
    # classes tie, and the first of them is kept, not the one of the largest logit
    cls = probs.argmax(axis=1)
    score = obj[ai, yi, xi] * np.take_along_axis(probs, cls[:, None], axis=1)[:, 0]
    if ai.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    ih, iw = input_hw
    sxy = float(head.get("scale_x_y", 1.0))
    tx, ty = t[ai, 0, yi, xi], t[ai, 1, yi, xi]
    tw, th = t[ai, 2, yi, xi], t[ai, 3, yi, xi]
    cx = (act(tx) * sxy - (sxy - 1) / 2 + xi) / gw
    cy = (act(ty) * sxy - (sxy - 1) / 2 + yi) / gh
    sw, sh = (tw * tw * 4, th * th * 4) if new_coords else (np.exp(tw), np.exp(th))
    if head.get("anchor_units", "pixels") == "pixels":
        bw = sw * anchors[ai, 0] / iw
        bh = sh * anchors[ai, 1] / ih
    else:
        bw = sw * anchors[ai, 0] / gw
        bh = sh * anchors[ai, 1] / gh
    boxes = np.stack([(cx - bw / 2) * iw, (cy - bh / 2) * ih, (cx + bw / 2) * iw, (cy + bh / 2) * ih], 1)
    return boxes.astype(np.float32), score.astype(np.float32), cls.astype(np.int64)


@dataclass(frozen=True)
class YoloConfig:
    heads: tuple
    input_hw: tuple[int, int]
    conf: float = 0.25
    iou: float = 0.45
    class_agnostic: bool = False
    max_det: int = 300


def postprocess(outputs: dict[str, np.ndarray], cfg: YoloConfig, box: Letterbox) -> Detections:
    parts = [decode_head(outputs[h["output"]], h, cfg.input_hw, cfg.conf) for h in cfg.heads]
    boxes = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    classes = np.concatenate([p[2] for p in parts])
    keep = nms(boxes, scores, cfg.iou, None if cfg.class_agnostic else classes, cfg.max_det)
    return Detections(box.to_frame(boxes[keep]), scores[keep], classes[keep])
