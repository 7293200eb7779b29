"""The model zoo: YOLO detectors as published, written as darknet sections and built with seeded
weights. The scheduling figures depend on shapes, not on weight values; the detection heads'
anchors and class counts travel in the model's metadata for the decoder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import HetschedError
from .sections import Section

if TYPE_CHECKING:   # onnx loads in ~0.3 s: only building a model needs it
    import onnx

COCO_TINY_V2_ANCHORS = "0.57273,0.677385,1.87446,2.06253,3.33843,5.47434,7.88282,3.52778,9.77052,9.16828"
COCO_V3_ANCHORS = "10,13,16,30,33,23,30,61,62,45,59,119,116,90,156,198,373,326"
COCO_TINY_V3_ANCHORS = "10,14,23,27,37,58,81,82,135,169,344,319"
ACTIVATIONS = ("leaky", "relu")


def _sec(kind: str, **params) -> Section:
    return Section(kind, {k: str(v) for k, v in params.items()})


def _conv(filters, size, stride=1, act="leaky", bn=True) -> Section:
    params = dict(filters=filters, size=size, stride=stride, pad=1, activation=act)
    if bn:
        params["batch_normalize"] = 1
    return _sec("convolutional", **params)


def _pool(size=2, stride=2) -> Section:
    return _sec("maxpool", size=size, stride=stride)


def _net() -> Section:
    return _sec("net", width=416, height=416, channels=3)


def _region() -> Section:
    return _sec("region", anchors=COCO_TINY_V2_ANCHORS, classes=80, coords=4, num=5, softmax=1)


def _yolo(mask, anchors, num, **extra) -> Section:
    return _sec("yolo", mask=",".join(map(str, mask)), anchors=anchors, classes=80, num=num, **extra)


def _detector(filters=255) -> Section:
    return _conv(filters, 1, act="linear", bn=False)


def tiny_yolov2() -> list[Section]:
    s = [_net()]
    for f in (16, 32, 64, 128, 256):
        s += [_conv(f, 3), _pool()]
    s += [_conv(512, 3), _pool(2, 1), _conv(1024, 3), _conv(512, 3), _detector(425), _region()]
    return s


def yolov2() -> list[Section]:
    s = [_net(), _conv(32, 3), _pool(), _conv(64, 3), _pool()]
    for wide, narrow, repeats in ((128, 64, 1), (256, 128, 1), (512, 256, 2), (1024, 512, 2)):
        s.append(_conv(wide, 3))
        for _ in range(repeats):
            s += [_conv(narrow, 1), _conv(wide, 3)]
        if wide != 1024:
            s.append(_pool())
    s += [_conv(1024, 3), _conv(1024, 3),
          _sec("route", layers=-9), _conv(64, 1), _sec("reorg", stride=2),
          _sec("route", layers="-1,-4"), _conv(1024, 3), _detector(425), _region()]
    return s


def tiny_yolov3() -> list[Section]:
    s = [_net()]
    for f in (16, 32, 64, 128, 256):
        s += [_conv(f, 3), _pool()]
    s += [_conv(512, 3), _pool(2, 1), _conv(1024, 3), _conv(256, 1), _conv(512, 3), _detector(),
          _yolo([3, 4, 5], COCO_TINY_V3_ANCHORS, 6),
          _sec("route", layers=-4), _conv(128, 1), _sec("upsample", stride=2),
          _sec("route", layers="-1,8"), _conv(256, 3), _detector(),
          _yolo([0, 1, 2], COCO_TINY_V3_ANCHORS, 6)]
    return s


def yolov3() -> list[Section]:
    s = [_net(), _conv(32, 3)]
    taps = {}
    for filters, blocks in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
        s.append(_conv(filters, 3, 2))
        for _ in range(blocks):
            s += [_conv(filters // 2, 1), _conv(filters, 3), _sec("shortcut", **{"from": -3},
                                                                   activation="linear")]
        taps[filters] = len(s) - 2  # darknet index of the stage's last layer ([net] is not one)
    for head, (width, tap, mask) in enumerate(((512, None, (6, 7, 8)),
                                               (256, taps[512], (3, 4, 5)),
                                               (128, taps[256], (0, 1, 2)))):
        if head:
            s += [_sec("route", layers=-4), _conv(width, 1), _sec("upsample", stride=2),
                  _sec("route", layers=f"-1,{tap}")]
        for _ in range(3):
            s += [_conv(width, 1), _conv(width * 2, 3)]
        s += [_detector(), _yolo(mask, COCO_V3_ANCHORS, 9)]
    return s


def yolov4_tiny() -> list[Section]:
    s = [_net(), _conv(32, 3, 2), _conv(64, 3, 2)]
    tap = None
    for f in (64, 128, 256):
        s += [_conv(f, 3), _sec("route", layers=-1, groups=2, group_id=1),
              _conv(f // 2, 3), _conv(f // 2, 3), _sec("route", layers="-1,-2"), _conv(f, 1)]
        tap = len(s) - 2
        s += [_sec("route", layers="-6,-1"), _pool()]
    s += [_conv(512, 3), _conv(256, 1), _conv(512, 3), _detector(),
          _yolo([3, 4, 5], COCO_TINY_V3_ANCHORS, 6, scale_x_y=1.05),
          _sec("route", layers=-4), _conv(128, 1), _sec("upsample", stride=2),
          _sec("route", layers=f"-1,{tap}"), _conv(256, 3), _detector(),
          _yolo([1, 2, 3], COCO_TINY_V3_ANCHORS, 6, scale_x_y=1.05)]  # mask 1,2,3 as published
    return s


def densenet_yolo() -> list[Section]:
    """DenseNet-style (Huang et al., CVPR 2017) backbone with tiny-yolov2's head: three dense
    blocks of four 3x3 convolutions (growth 32), each convolution reading the concatenation of
    the block input and *every* earlier output of its block (a route over all of them, not a
    running concat), 1x1 transition + max-pool between blocks. Not a published network: the
    connectivity that keeps many tensors live across any cut, for the planners."""
    s = [_net(), _conv(32, 3), _pool(), _conv(64, 3), _pool()]
    for block in range(3):
        start = len(s) - 2            # darknet index of the block input ([net] is not a layer)
        outs = []
        for k in range(4):
            s.append(_conv(32, 3))
            outs.append(len(s) - 2)
            s.append(_sec("route", layers=",".join(str(i) for i in [*outs[::-1], start])))
        s += [_conv(128 * (block + 1), 1), _pool()]
    s += [_conv(512, 3), _pool(2, 1), _conv(512, 3), _detector(425), _region()]
    return s


def unet_yolo() -> list[Section]:
    """U-Net-style (Ronneberger et al., MICCAI 2015) encoder-decoder with tiny-yolov3's two heads:
    four encoder levels (two 3x3 convolutions, max-pool), a bottleneck, and four decoder levels
    that upsample and concatenate the encoder level of the same size, so every encoder level
    stays live until its decoder level; a yolo head on the bottleneck (1/16 scale) and one,
    through three stride-2 convolutions, on the last, full-size level (1/8 scale). Not a published
    network: the long-skip connectivity, for the planners.""" 
    s = [_net()]
    skips = []
    for f in (16, 32, 64, 128):
        s += [_conv(f, 3), _conv(f, 3)]
        skips.append(len(s) - 2)
        s.append(_pool())
    s += [_conv(256, 3), _conv(256, 3)]
    bottom = len(s) - 2
    s += [_detector(), _yolo([3, 4, 5], COCO_TINY_V3_ANCHORS, 6), _sec("route", layers=bottom)]
    for level, f in enumerate((128, 64, 32, 16)):
        s += [_sec("upsample", stride=2), _sec("route", layers=f"-1,{skips[-1 - level]}"),
              _conv(f, 3), _conv(f, 3)]
    # the full-size last level, brought to 1/8 scale by three stride-2 convolutions
    s += [_conv(32, 3, 2), _conv(64, 3, 2), _conv(64, 3, 2), _detector(),
          _yolo([0, 1, 2], COCO_TINY_V3_ANCHORS, 6)]
    return s


# skip-heavy networks for the planners (partition_bench): built like the zoo, not published
SKIP_NETS = {"densenet-yolo": densenet_yolo, "unet-yolo": unet_yolo}

ZOO = {
    "tiny-yolov2": tiny_yolov2,
    "yolov2": yolov2,
    "tiny-yolov3": tiny_yolov3,
    "yolov3": yolov3,
    "yolov4-tiny": yolov4_tiny,
}
# The published darknet cfg each zoo network follows (file names as in shared/darknet-cfg).
CFG_NAMES = {
    "tiny-yolov2": "yolo2tiny.cfg",
    "yolov2": "yolo2.cfg",
    "tiny-yolov3": "yolo3tiny.cfg",
    "yolov3": "yolo3.cfg",
    "yolov4-tiny": "yolo4tiny.cfg",
}


# Ultralytics-layout networks (models/ultralytics.py): the exporters' outputs, for the decoders
EXPORT_NETS = ("yolov8n", "yolov8s", "yolov5n", "yolov5s")
# every name build_zoo takes
NAMES = (*ZOO, *SKIP_NETS, *EXPORT_NETS)


def build_zoo(name: str, size: int = 416, activation: str = "leaky", seed: int = 0) -> onnx.ModelProto:
    """A zoo network (or one of `SKIP_NETS`, `EXPORT_NETS`) at `size`, seeded weights. The
    default activation is each family's own (darknet: leaky; YOLOv8: SiLU); `relu` is JEDI's
    DLA-friendly variant of either."""
    nets = {**ZOO, **SKIP_NETS}
    if name not in NAMES:
        raise HetschedError(f"unknown zoo model '{name}' (known: {', '.join(NAMES)})")
    if size <= 0 or size % 32:
        raise HetschedError(f"input size {size} is not a positive multiple of 32")
    if activation not in ACTIVATIONS:
        raise HetschedError(f"activation '{activation}' is not one of {', '.join(ACTIVATIONS)}")
    if name in EXPORT_NETS:
        from .ultralytics import build
        model = build(name, size, seed=seed, activation="relu" if activation == "relu" else "silu")
        if activation == "relu":
            model.graph.name = f"{name}-relu"
        return model
    from .builder import build
    suffix = "" if activation == "leaky" else f"-{activation}"
    return build(nets[name](), name=f"{name}{suffix}", size=size, seed=seed,
                 activation=None if activation == "leaky" else activation)
