"""Decoding the outputs of detectors as their exporters write them (facts.md, "Detectors people
bring"), behind one interface: `layouts(graph)` says which layouts a model's outputs fit, and
`decoder(kind, graph, ...)` returns `(outputs, letterbox) -> Detections`.

- `ultralytics` (YOLOv8 / YOLO11): one output (1, 4+nc, N); rows cx, cy, w, h in input pixels,
  then per-class scores with the sigmoid applied, no objectness. N = sum over strides 8, 16, 32
  of (H/s) x (W/s).
- `yolov5` (YOLOv5 / YOLOv7): one output (1, N, 5+nc); cx, cy, w, h in input pixels, objectness,
  class scores (all sigmoid applied); N = 3 anchors x the same grid sum. Score = obj x class.
- `yolox` (decode off, the exporter's default): one output (1, N, 5+nc), raw: x, y offsets on each
  stride's grid and log w, h; decoded as (xy + grid) x stride and exp(wh) x stride; objectness
  and class scores already sigmoid; N = the grid sum over strides 8, 16, 32.
- `nms` (NMS inside the graph): one output (1, K, 6), rows x1, y1, x2, y2, score, class in input
  pixels; rows scoring below `conf` (padding) are dropped.
- `efficientnms` (TensorRT's EfficientNMS plugin): four outputs num_dets (1, 1), boxes (1, K, 4),
  scores (1, K), classes (1, K); the first num_dets rows are the detections, kept as the plugin
  thresholded them (`conf` does not apply).

Only detection exports are read: an export whose `task` metadata says otherwise (pose, obb,
segment) would fit the `ultralytics` shape with other rows in it, and is refused.

Class names come from the model's `names` metadata where the exporter wrote it. Everything is
vectorised; boxes are mapped back through the letterbox onto the source frame.
"""

from __future__ import annotations

import ast

import numpy as np

from ..errors import HetschedError
from ..graph import Graph
from . import EXPORT_KINDS as KINDS
from .nms import nms
from .preprocess import Letterbox
STRIDES = (8, 16, 32)


def grid_sum(hw: tuple[int, int], strides=STRIDES) -> int:
    """Candidates of an anchor-free head over `strides` at input size `hw` (each stride's grid is
    ceil(H/s) x ceil(W/s), as the convolutions' padding makes it)."""
    return sum(-(-hw[0] // s) * -(-hw[1] // s) for s in strides)


def class_names(metadata: dict[str, str]) -> tuple[str, ...] | None:
    """The `names` an Ultralytics/YOLOv5 export writes (a dict or list as a Python literal)."""
    raw = metadata.get("names")
    if not raw:
        return None
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(names, dict):     # ids may skip: each name stays at its id
        ids = [k for k in names if isinstance(k, int) and k >= 0]
        if not ids:
            return None
        return tuple(str(names.get(i, f"class{i}")) for i in range(max(ids) + 1))
    if isinstance(names, (list, tuple)):
        return tuple(str(n) for n in names)
    return None


def _shapes(graph: Graph) -> list[tuple[int, ...]]:
    return [tuple(graph.tensors[o].shape) for o in graph.outputs]


def _not_detection(graph: Graph) -> str | None:
    task = graph.metadata.get("task")
    return task if task and task != "detect" else None


def layouts(graph: Graph, hw: tuple[int, int]) -> list[str]:
    """The export layouts the model's outputs fit, by shape (and, between the two one-output
    layouts of the same shape, YOLOv5 and YOLOX, by the candidate count of each); none for an
    export whose metadata names another task."""
    if _not_detection(graph):
        return []
    shapes = _shapes(graph)
    fits = []
    if len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1:
        _, a, b = shapes[0]
        n = grid_sum(hw)
        if b == n and a >= 5:
            fits.append("ultralytics")
        if a == 3 * n and b >= 6:
            fits.append("yolov5")
        if a == n and b >= 6:
            fits.append("yolox")
        if b == 6 and a not in (n, 3 * n):
            fits.append("nms")
    if len(shapes) == 4:
        ranks = sorted(len(s) for s in shapes)
        if ranks == [2, 2, 2, 3] and any(len(s) == 3 and s[-1] == 4 for s in shapes):
            fits.append("efficientnms")
    return fits


def detect_kind(graph: Graph, hw: tuple[int, int]) -> str | None:
    """The one layout the model fits; None when none does. When two fit, a one-line error that
    names both and the `detect: {kind: ...}` that selects one."""
    task = _not_detection(graph)
    if task:
        raise HetschedError(f"the model's metadata says task '{task}': hetsched decodes detection "
                            f"exports only (detect: {{kind: none}} passes the raw outputs on)")
    fits = layouts(graph, hw)
    if len(fits) > 1:
        raise HetschedError(f"the model's outputs {_shapes(graph)} fit both the {fits[0]} and the "
                            f"{fits[1]} layout; say which with detect: {{kind: {fits[0]}}} (or "
                            f"--detect {fits[0]}) or kind: {fits[1]}")
    return fits[0] if fits else None


def _anchor_free_grid(hw: tuple[int, int], strides=STRIDES):
    """(grid x, grid y, stride) per candidate, in the exporters' order: stride by stride, row-major."""
    xs, ys, ss = [], [], []
    for s in strides:
        gh, gw = -(-hw[0] // s), -(-hw[1] // s)
        yy, xx = np.mgrid[0:gh, 0:gw]
        xs.append(xx.ravel())
        ys.append(yy.ravel())
        ss.append(np.full(gh * gw, s))
    return (np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32),
            np.concatenate(ss).astype(np.float32))


def _nms_roles(graph: Graph) -> dict[str, str]:
    """Which of EfficientNMS's four outputs is which: by name where the export kept the plugin's
    (num_dets, det_boxes, det_scores, det_classes and variants), else by shape and type in the
    plugin's order (count, boxes, scores, classes)."""
    roles: dict[str, str] = {}
    for o in graph.outputs:
        low = o.lower()
        for role, words in (("num", ("num",)), ("boxes", ("box",)), ("scores", ("score",)),
                            ("classes", ("class", "label"))):
            if role not in roles and any(w in low for w in words):
                roles[role] = o
                break
    if len(set(roles.values())) == 4:
        return roles
    shapes = {o: tuple(graph.tensors[o].shape) for o in graph.outputs}
    roles = {"num": next(o for o, s in shapes.items() if len(s) == 2 and s[-1] == 1),
             "boxes": next(o for o, s in shapes.items() if len(s) == 3)}
    rest = [o for o in graph.outputs if o not in roles.values()]
    ints = [o for o in rest if np.issubdtype(graph.tensors[o].dtype, np.integer)]
    roles["classes"] = ints[0] if len(ints) == 1 else rest[1]
    roles["scores"] = next(o for o in rest if o != roles["classes"])
    return roles


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def decoder(kind: str, graph: Graph, hw: tuple[int, int], conf: float = 0.25, iou: float = 0.45,
            class_agnostic: bool = False, max_det: int = 300):
    """`(outputs, letterbox) -> Detections` for export layout `kind` (one of KINDS)."""
    from .yolo import Detections
    if kind not in KINDS:
        raise HetschedError(f"unknown export layout '{kind}' (known: {', '.join(KINDS)})")
    fits = layouts(graph, hw)
    if kind not in fits and (task := _not_detection(graph)):
        raise HetschedError(f"detect kind '{kind}': the model's metadata says task '{task}', "
                            f"not a detection export")
    if kind not in fits:
        raise HetschedError(f"detect kind '{kind}' does not fit the model's outputs "
                            f"{_shapes(graph)} at input {hw[0]}x{hw[1]}"
                            + (f" (they fit {', '.join(fits)})" if fits else ""))
    names = class_names(graph.metadata)
    outs = list(graph.outputs)
    grid = _anchor_free_grid(hw) if kind == "yolox" else None
    roles = _nms_roles(graph) if kind == "efficientnms" else None

    def finish(boxes, scores, classes, box: Letterbox, suppress=True, threshold=True):
        if threshold:
            keep = scores > conf
            boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        order = nms(boxes, scores, iou, None if class_agnostic else classes, max_det) if suppress \
            else np.argsort(-scores, kind="stable")[:max_det]
        boxes, scores, classes = boxes[order], scores[order], classes[order]
        return Detections(box.to_frame(boxes.astype(np.float32)), scores.astype(np.float32),
                          classes.astype(np.int64), names)

    def decode(outputs: dict[str, np.ndarray], box: Letterbox):
        if kind == "efficientnms":
            k = int(np.asarray(outputs[roles["num"]]).reshape(-1)[0])
            return finish(np.asarray(outputs[roles["boxes"]])[0][:k],
                          np.asarray(outputs[roles["scores"]])[0][:k],
                          np.asarray(outputs[roles["classes"]])[0][:k].astype(np.int64), box,
                          suppress=False, threshold=False)
        out = np.asarray(outputs[outs[0]], np.float32)[0]
        if kind == "nms":
            return finish(out[:, :4], out[:, 4], out[:, 5].astype(np.int64), box, suppress=False)
        if kind == "ultralytics":
            out = out.T                                   # N x (4 + nc)
            cls_scores = out[:, 4:]
        else:
            cls_scores = out[:, 5:] * out[:, 4:5]          # objectness x class
        classes = cls_scores.argmax(axis=1)
        scores = np.take_along_axis(cls_scores, classes[:, None], axis=1)[:, 0]
        cand = scores > conf                               # decode only what can pass
        xywh = out[cand, :4]
        if kind == "yolox":
            gx, gy, stride = (g[cand] for g in grid)
            xywh = np.stack([(xywh[:, 0] + gx) * stride, (xywh[:, 1] + gy) * stride,
                             np.exp(xywh[:, 2]) * stride, np.exp(xywh[:, 3]) * stride], axis=1)
        return finish(_xywh_to_xyxy(xywh), scores[cand], classes[cand], box, threshold=False)

    return decode
