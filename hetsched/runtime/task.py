"""The detection task around the network: which pre-processing feeds it and which decoder reads
its outputs, chosen from the model itself (`auto`): darknet heads in the model's metadata mean
YOLO decoding; an exporter's layout (`detect.exports`: Ultralytics v8/v11, YOLOv5/v7, YOLOX,
NMS in the graph) its decoder, found by the output shapes (an error names both when two fit);
a one-channel probability map means the DB text detector; otherwise the raw outputs are passed
on (`none`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2

from ..detect import KINDS, db, exports, yolo
from ..detect.preprocess import PreConfig, preprocess
from ..errors import HetschedError
from ..graph import Graph
from ..models.pretrained import PPOCR_MEAN, PPOCR_STD

log = logging.getLogger(__name__)
_said_undecoded: set = set()


@dataclass
class DetectOptions:
    kind: str = "auto"
    letterbox: bool | None = None     # None: letterbox for YOLO, resize for DB
    conf: float = 0.25
    iou: float = 0.45
    class_agnostic: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class Task:
    kind: str
    input_name: str
    pre_cfg: PreConfig
    decode: object                    # (outputs, letterbox) -> result, or None
    keep_inputs: bool = False

    def pre(self, frame) -> None:
        x, box = preprocess(frame.image, self.pre_cfg)
        frame.tensors = {self.input_name: x}
        frame.meta = box
        if self.keep_inputs:
            frame.inputs = dict(frame.tensors)

    def post(self, frame) -> None:
        if self.decode is not None:
            frame.result = self.decode(frame.tensors, frame.meta)


def make_task(graph: Graph, opts: DetectOptions) -> Task:
    # The runtime runs pre- and post-processing as work on one PE (a core): OpenCV's own
    # thread pool would run beside it on cores the plan gave to other stages. On the 2-core VM
    # that pool took a letterbox from 0.85 to 1.25-1.45 ms of CPU per frame at the same wall
    # time, and a 4-stage emulated loop ran 8% slower for it (scripts/closing_loop.py). The
    # setting is the process's, as OpenCV has no other.
    cv2.setNumThreads(1)
    if opts.kind not in KINDS:
        raise HetschedError(f"detect kind '{opts.kind}' is not one of {', '.join(KINDS)}")
    if len(graph.inputs) != 1:
        raise HetschedError(f"the runtime feeds one image input; model has {graph.inputs}")
    name = graph.inputs[0]
    shape = graph.tensors[name].shape
    if len(shape) != 4 or shape[1] != 3:
        raise HetschedError(f"input '{name}' has shape {list(shape)}, expected 1 x 3 x H x W")
    hw = (shape[2], shape[3])
    kind = opts.kind
    if kind == "auto":
        if "hetsched.heads" in graph.metadata:
            kind = "yolo"
        elif (found := exports.detect_kind(graph, hw)) is not None:
            kind = found
        elif len(graph.outputs) == 1 and graph.tensors[graph.outputs[0]].shape[1:2] == (1,):
            kind = "db"
        else:
            kind = "none"
            # said, not silent: a run would write frames without detections and no reason;
            # once a model (a run and a bench build the task several times)
            outs = ", ".join(f"{o} {list(graph.tensors[o].shape)}" for o in graph.outputs)
            if (graph.sha256, graph.name, outs) not in _said_undecoded:
                _said_undecoded.add((graph.sha256, graph.name, outs))
                log.warning("no detection head recognised in '%s' (outputs %s): frames are passed "
                            "on undecoded; --detect KIND names the decoder, --detect none keeps "
                            "this quietly", graph.name, outs)
    if kind == "yolo":
        cfg = yolo.YoloConfig(tuple(yolo.heads_from_metadata(graph.metadata)), hw, opts.conf,
                              opts.iou, opts.class_agnostic)
        pre = PreConfig(hw, letterbox=True if opts.letterbox is None else opts.letterbox)
        decode = lambda outs, box: yolo.postprocess(outs, cfg, box)  # noqa: E731
    elif kind in exports.KINDS:
        # as the exporters' models expect: grey 114 padding (centred, where YOLOX's own code pads
        # bottom-right: the boxes map back right either way), YOLOX takes BGR 0-255 unscaled
        yolox = kind == "yolox"
        pre = PreConfig(hw, letterbox=True if opts.letterbox is None else opts.letterbox,
                        rgb=not yolox, scale=1.0 if yolox else 1.0 / 255.0, pad_value=114)
        decode = exports.decoder(kind, graph, hw, opts.conf, opts.iou, opts.class_agnostic)
    elif kind == "db":
        out = graph.outputs[0]
        dcfg = db.DBConfig(**opts.extra)
        pre = PreConfig(hw, letterbox=bool(opts.letterbox), rgb=False, mean=PPOCR_MEAN, std=PPOCR_STD)
        decode = lambda outs, box: db.boxes_from_map(outs[out], dcfg, box)  # noqa: E731
    else:
        pre = PreConfig(hw, letterbox=True if opts.letterbox is None else opts.letterbox)
        decode = None
    return Task(kind, name, pre, decode)
