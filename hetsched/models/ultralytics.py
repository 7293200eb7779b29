"""YOLOv8 (n, s) and YOLOv5 (n, s; v6.0+) as Ultralytics' ONNX exporters write them, with seeded
weights: the zoo's way to give the `ultralytics` and `yolov5` decoders (`detect.exports`) models of
the layouts a user's export has.

Architecture (ultralytics/cfg/models/v8/yolov8.yaml; scales n = depth 0.33, width 0.25, s = depth
0.33, width 0.50, channels capped at 1024 before scaling, rounded up to multiples of 8):

    backbone: Conv 3/2, Conv 3/2, C2f x3, Conv 3/2, C2f x6, Conv 3/2, C2f x6, Conv 3/2, C2f x3, SPPF
    head:     Upsample, Concat P4, C2f x3; Upsample, Concat P3, C2f x3 (P3 out); Conv 3/2, Concat,
              C2f x3 (P4 out); Conv 3/2, Concat, C2f x3 (P5 out); Detect (P3, P4, P5)

with the repeats scaled by depth. `Conv` is convolution + batch norm + SiLU (exported fused: a
biased convolution, Sigmoid, Mul); `C2f` splits its 1x1 convolution's output in two and chains n
bottlenecks (two 3x3 convolutions, residual in the backbone) off the second half, concatenating
every stage before a final 1x1; `SPPF` chains three 5x5 max-pools. `Detect` has per level a box
branch (two 3x3 Conv, a 1x1 to 4 x 16 distribution bins) and a class branch (two 3x3 Conv, a 1x1
to nc); the export flattens the levels to N = sum (H/s)(W/s) columns, decodes the bins by DFL
(softmax, expectation) into left/top/right/bottom distances from each cell centre, then to cx, cy,
w, h in input pixels, and applies the sigmoid to the classes: one output (1, 4 + nc, N).

YOLOv5 (models/yolov5{n,s}.yaml, v6.0+: scales depth 0.33, width 0.25 / 0.50, channels rounded up
to multiples of 8, no cap): Conv 6/2 (pad 2), Conv 3/2, C3 x3, Conv 3/2, C3 x6, Conv 3/2, C3 x9,
Conv 3/2, C3 x3, SPPF; head Conv 1x1, Upsample, Concat P4, C3 x3, Conv 1x1, Upsample, Concat P3,
C3 x3 (P3 out), Conv 3/2, Concat, C3 x3 (P4 out), Conv 3/2, Concat, C3 x3 (P5 out), Detect. `C3`
runs n bottlenecks (1x1 then 3x3, residual in the backbone) on one 1x1 branch, concatenates a
second 1x1 branch and ends in a 1x1. Detect is one 1x1 convolution per level to 3 anchors x
(5 + nc); the export applies the sigmoid to everything, then xy = (2 t + cell - 0.5) x stride,
wh = (2 t)^2 x anchor (pixels), and flattens anchor, row, column to one output (1, N, 5 + nc),
N = 3 x the grid sum (25200 at 640).

Weights are random but shaped like a trained model's start: each convolution scaled to keep
activations O(1), and the biases at the exporters' priors (YOLOv8: classes log(5 / nc /
(640 / stride)^2), boxes 1; YOLOv5: objectness log(8 / (640 / stride)^2), classes
log(0.6 / (nc - 0.99999))), so that an untrained model scores almost nothing (as a trained one
does on background) instead of passing thousands of boxes to NMS.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import HetschedError
from .builder import _Emitter

SCALES = {"yolov8n": (0.33, 0.25, 1024), "yolov8s": (0.33, 0.50, 1024),
          "yolov5n": (0.33, 0.25, None), "yolov5s": (0.33, 0.50, None)}
ANCHORS_V5 = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))
STRIDES = (8, 16, 32)
REG_MAX = 16


class _Net:
    def __init__(self, name: str, seed: int, act: str):
        self.em = _Emitter(name)
        self.rng = np.random.default_rng(seed)
        self.act = act
        self.count = 0

    def _tag(self, what: str) -> str:
        self.count += 1
        return f"m{self.count}.{what}"

    def conv2d(self, x: str, cin: int, cout: int, k: int, s: int = 1, bias=None,
               tag: str | None = None, pad: int | None = None) -> str:
        tag = tag or self._tag("conv")
        w = self.rng.standard_normal((cout, cin, k, k), dtype=np.float32) / np.float32(math.sqrt(cin * k * k))
        b = np.broadcast_to(np.asarray(bias, np.float32), (cout,)).copy() if bias is not None else \
            (0.01 * self.rng.standard_normal(cout)).astype(np.float32)
        self.em.const(f"{tag}.w", w)
        self.em.const(f"{tag}.b", b)
        p = k // 2 if pad is None else pad
        return self.em.node("Conv", [x, f"{tag}.w", f"{tag}.b"], tag, tag, kernel_shape=[k, k],
                            strides=[s, s], pads=[p] * 4)

    def conv(self, x: str, cin: int, cout: int, k: int = 1, s: int = 1, pad: int | None = None) -> str:
        """Ultralytics' Conv: convolution (batch norm fused) + SiLU (or ReLU for the -relu variant)."""
        y = self.conv2d(x, cin, cout, k, s, pad=pad)
        if self.act == "relu":
            return self.em.node("Relu", [y], f"{y}.relu", f"{y}.relu")
        sg = self.em.node("Sigmoid", [y], f"{y}.sigmoid", f"{y}.sigmoid")
        return self.em.node("Mul", [y, sg], f"{y}.silu", f"{y}.silu")

    def c2f(self, x: str, cin: int, cout: int, n: int, shortcut: bool) -> str:
        c = cout // 2
        y = self.conv(x, cin, 2 * c)
        tag = self._tag("split")
        self.em.const(f"{tag}.sizes", np.array([c, c], np.int64))
        self.em.nodes.append(helper.make_node("Split", [y, f"{tag}.sizes"], [f"{tag}.0", f"{tag}.1"],
                                              name=tag, axis=1))
        parts = [f"{tag}.0", f"{tag}.1"]
        for _ in range(n):
            h = self.conv(self.conv(parts[-1], c, c, 3), c, c, 3)
            if shortcut:
                t = self._tag("add")
                h = self.em.node("Add", [parts[-1], h], t, t)
            parts.append(h)
        t = self._tag("concat")
        return self.conv(self.em.node("Concat", parts, t, t, axis=1), (2 + n) * c, cout)

    def c3(self, x: str, cin: int, cout: int, n: int, shortcut: bool) -> str:
        c = cout // 2
        h = self.conv(x, cin, c)
        for _ in range(n):
            y = self.conv(self.conv(h, c, c, 1), c, c, 3)
            if shortcut:
                t = self._tag("add")
                y = self.em.node("Add", [h, y], t, t)
            h = y
        return self.conv(self.concat([h, self.conv(x, cin, c)]), 2 * c, cout)

    def sppf(self, x: str, cin: int, cout: int) -> str:
        c = cin // 2
        parts = [self.conv(x, cin, c)]
        for _ in range(3):
            t = self._tag("maxpool")
            parts.append(self.em.node("MaxPool", [parts[-1]], t, t, kernel_shape=[5, 5], strides=[1, 1],
                                      pads=[2, 2, 2, 2]))
        t = self._tag("concat")
        return self.conv(self.em.node("Concat", parts, t, t, axis=1), 4 * c, cout)

    def upsample(self, x: str) -> str:
        t = self._tag("upsample")
        self.em.const(f"{t}.scales", np.array([1, 1, 2, 2], np.float32))
        return self.em.node("Resize", [x, "", f"{t}.scales"], t, t, mode="nearest")

    def concat(self, parts, axis: int = 1) -> str:
        t = self._tag("concat")
        return self.em.node("Concat", list(parts), t, t, axis=axis)


def channels(width: float, max_ch: int | None):
    return lambda c: int(math.ceil((c if max_ch is None else min(c, max_ch)) * width / 8) * 8)


def repeats(depth: float):
    return lambda n: max(round(n * depth), 1)


def build(name: str, size: int = 640, nc: int = 80, seed: int = 0, activation: str = "silu") -> onnx.ModelProto:
    """`name` (one of SCALES) at `size` x `size`, as its exporter writes it."""
    if name not in SCALES:
        raise HetschedError(f"unknown Ultralytics model '{name}' (known: {', '.join(SCALES)})")
    if size <= 0 or size % 32:
        raise HetschedError(f"input size {size} is not a positive multiple of 32")
    net = _Net(name, seed, activation)
    n = (_yolov8 if name.startswith("yolov8") else _yolov5)(net, SCALES[name], nc, size)
    em = net.em
    out = [1, 4 + nc, n] if name.startswith("yolov8") else [1, n, 5 + nc]
    graph = helper.make_graph(
        em.nodes, name,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out)], em.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="hetsched-zoo")
    meta = {"description": f"hetsched zoo {name}: Ultralytics export layout, seeded weights (untrained)",
            "author": "hetsched zoo", "stride": "32", "task": "detect", "batch": "1",
            "imgsz": f"[{size}, {size}]", "names": str({i: f"class{i}" for i in range(nc)})}
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    return model


def _yolov5(net: _Net, scale, nc: int, size: int) -> int:
    depth, width, max_ch = scale
    ch, rep = channels(width, max_ch), repeats(depth)
    c64, c128, c256, c512, c1024 = ch(64), ch(128), ch(256), ch(512), ch(1024)
    x = net.conv("images", 3, c64, 6, 2, pad=2)
    x = net.c3(net.conv(x, c64, c128, 3, 2), c128, c128, rep(3), True)
    p3 = net.c3(net.conv(x, c128, c256, 3, 2), c256, c256, rep(6), True)
    p4 = net.c3(net.conv(p3, c256, c512, 3, 2), c512, c512, rep(9), True)
    x = net.c3(net.conv(p4, c512, c1024, 3, 2), c1024, c1024, rep(3), True)
    h10 = net.conv(net.sppf(x, c1024, c1024), c1024, c512, 1)
    h13 = net.c3(net.concat([net.upsample(h10), p4]), 2 * c512, c512, rep(3), False)
    h14 = net.conv(h13, c512, c256, 1)
    o3 = net.c3(net.concat([net.upsample(h14), p3]), 2 * c256, c256, rep(3), False)
    o4 = net.c3(net.concat([net.conv(o3, c256, c256, 3, 2), h14]), 2 * c256, c512, rep(3), False)
    o5 = net.c3(net.concat([net.conv(o4, c512, c512, 3, 2), h10]), 2 * c512, c1024, rep(3), False)
    em = net.em
    flat, n = [], 0
    for (x, cin), s, anchors in zip([(o3, c256), (o4, c512), (o5, c1024)], STRIDES, ANCHORS_V5):
        g = size // s
        # Detect._initialize_biases: objectness log(8 / (640 / s)^2), classes log(0.6 / (nc - 0.99999))
        bias = np.zeros((3, 5 + nc), np.float32)
        bias[:, 4] += math.log(8 / (640 / s) ** 2)
        bias[:, 5:] += math.log(0.6 / (nc - 0.99999))
        y = net.conv2d(x, cin, 3 * (5 + nc), 1, bias=bias.ravel())
        t = net._tag("detect")
        em.const(f"{t}.shape5", np.array([1, 3, 5 + nc, g, g], np.int64))
        v = em.node("Reshape", [y, f"{t}.shape5"], f"{t}.view", f"{t}.view")
        v = em.node("Transpose", [v], f"{t}.perm", f"{t}.perm", perm=[0, 1, 3, 4, 2])
        v = em.node("Sigmoid", [v], f"{t}.sigmoid", f"{t}.sigmoid")
        em.const(f"{t}.sizes", np.array([2, 2, 1 + nc], np.int64))
        em.nodes.append(helper.make_node("Split", [v, f"{t}.sizes"], [f"{t}.xy", f"{t}.wh", f"{t}.conf"],
                                         name=f"{t}.split", axis=4))
        yy, xx = np.mgrid[0:g, 0:g]
        em.const(f"{t}.grid", (np.stack([xx, yy], -1)[None, None] - 0.5).astype(np.float32))
        em.const(f"{t}.anchors", np.asarray(anchors, np.float32).reshape(1, 3, 1, 1, 2))
        em.const(f"{t}.two", np.array(2.0, np.float32))
        em.const(f"{t}.stride", np.array(float(s), np.float32))
        xy = em.node("Mul", [f"{t}.xy", f"{t}.two"], f"{t}.xy2", f"{t}.xy2")
        xy = em.node("Add", [xy, f"{t}.grid"], f"{t}.xyg", f"{t}.xyg")
        xy = em.node("Mul", [xy, f"{t}.stride"], f"{t}.xyp", f"{t}.xyp")
        wh = em.node("Mul", [f"{t}.wh", f"{t}.two"], f"{t}.wh2", f"{t}.wh2")
        wh = em.node("Mul", [wh, wh], f"{t}.whsq", f"{t}.whsq")
        wh = em.node("Mul", [wh, f"{t}.anchors"], f"{t}.whp", f"{t}.whp")
        cat = em.node("Concat", [xy, wh, f"{t}.conf"], f"{t}.cat", f"{t}.cat", axis=4)
        em.const(f"{t}.shape3", np.array([1, 3 * g * g, 5 + nc], np.int64))
        flat.append(em.node("Reshape", [cat, f"{t}.shape3"], f"{t}.flat", f"{t}.flat"))
        n += 3 * g * g
    em.node("Concat", flat, "output0", "head.output", axis=1)
    return n


def _yolov8(net: _Net, scale, nc: int, size: int) -> int:
    depth, width, max_ch = scale
    ch, rep = channels(width, max_ch), repeats(depth)
    c64, c128, c256, c512, c1024 = ch(64), ch(128), ch(256), ch(512), ch(1024)
    x = net.conv("images", 3, c64, 3, 2)
    x = net.conv(x, c64, c128, 3, 2)
    x = net.c2f(x, c128, c128, rep(3), True)
    x = net.conv(x, c128, c256, 3, 2)
    p3 = net.c2f(x, c256, c256, rep(6), True)
    x = net.conv(p3, c256, c512, 3, 2)
    p4 = net.c2f(x, c512, c512, rep(6), True)
    x = net.conv(p4, c512, c1024, 3, 2)
    x = net.c2f(x, c1024, c1024, rep(3), True)
    p5 = net.sppf(x, c1024, c1024)
    h12 = net.c2f(net.concat([net.upsample(p5), p4]), c1024 + c512, c512, rep(3), False)
    o3 = net.c2f(net.concat([net.upsample(h12), p3]), c512 + c256, c256, rep(3), False)
    h18 = net.c2f(net.concat([net.conv(o3, c256, c256, 3, 2), h12]), c256 + c512, c512, rep(3), False)
    o5 = net.c2f(net.concat([net.conv(h18, c512, c512, 3, 2), p5]), c512 + c1024, c1024, rep(3), False)
    levels = [(o3, c256), (h18, c512), (o5, c1024)]
    return _detect(net, levels, nc, size)


def _detect(net: _Net, levels, nc: int, size: int) -> int:
    """The Detect head as exported; returns N. Leaves its output in tensor `output0`."""
    em = net.em
    c2 = max(16, levels[0][1] // 4, REG_MAX * 4)
    c3 = max(levels[0][1], min(nc, 100))
    flat, n = [], 0
    for (x, cin), s in zip(levels, STRIDES):
        box = net.conv2d(net.conv(net.conv(x, cin, c2, 3), c2, c2, 3), c2, 4 * REG_MAX, 1, bias=1.0)
        prior = math.log(5 / nc / (640 / s) ** 2)
        cls = net.conv2d(net.conv(net.conv(x, cin, c3, 3), c3, c3, 3), c3, nc, 1, bias=prior)
        cells = (size // s) ** 2
        t = net._tag("flatten")
        em.const(f"{t}.shape", np.array([1, 4 * REG_MAX + nc, cells], np.int64))
        flat.append(em.node("Reshape", [net.concat([box, cls]), f"{t}.shape"], t, t))
        n += cells
    cat = net.concat(flat, axis=2)
    em.const("dfl.sizes", np.array([4 * REG_MAX, nc], np.int64))
    em.nodes.append(helper.make_node("Split", [cat, "dfl.sizes"], ["dfl.box", "dfl.cls"], name="head.split", axis=1))
    # DFL: 16 bins per side -> softmax -> expectation (a fixed 1x1 convolution with weights 0..15)
    em.const("dfl.shape4", np.array([1, 4, REG_MAX, n], np.int64))
    em.node("Reshape", ["dfl.box", "dfl.shape4"], "dfl.bins", "dfl.reshape")
    em.node("Transpose", ["dfl.bins"], "dfl.binsT", "dfl.transpose", perm=[0, 2, 1, 3])
    em.node("Softmax", ["dfl.binsT"], "dfl.prob", "dfl.softmax", axis=1)
    em.const("dfl.w", np.arange(REG_MAX, dtype=np.float32).reshape(1, REG_MAX, 1, 1))
    em.node("Conv", ["dfl.prob", "dfl.w"], "dfl.expect", "dfl.conv", kernel_shape=[1, 1])
    em.const("dfl.shape3", np.array([1, 4, n], np.int64))
    em.node("Reshape", ["dfl.expect", "dfl.shape3"], "dfl.dist", "dfl.reshape2")
    # dist2bbox: distances from each cell centre to cx, cy, w, h, then times the stride
    xs, ys, ss = [], [], []
    for s in STRIDES:
        g = size // s
        yy, xx = np.mgrid[0:g, 0:g]
        xs.append(xx.ravel() + 0.5)
        ys.append(yy.ravel() + 0.5)
        ss.append(np.full(g * g, s))
    em.const("anchors", np.stack([np.concatenate(xs), np.concatenate(ys)])[None].astype(np.float32))
    em.const("strides", np.concatenate(ss)[None, None].astype(np.float32))
    em.const("box.halves", np.array([2, 2], np.int64))
    em.nodes.append(helper.make_node("Split", ["dfl.dist", "box.halves"], ["box.lt", "box.rb"],
                                     name="box.split", axis=1))
    em.node("Sub", ["anchors", "box.lt"], "box.x1y1", "box.x1y1")
    em.node("Add", ["anchors", "box.rb"], "box.x2y2", "box.x2y2")
    em.node("Add", ["box.x1y1", "box.x2y2"], "box.sum", "box.sum")
    em.const("box.two", np.array(2.0, np.float32))
    em.node("Div", ["box.sum", "box.two"], "box.cxy", "box.cxy")
    em.node("Sub", ["box.x2y2", "box.x1y1"], "box.wh", "box.wh")
    em.node("Concat", ["box.cxy", "box.wh"], "box.xywh", "box.concat", axis=1)
    em.node("Mul", ["box.xywh", "strides"], "box.pixels", "box.scale")
    em.node("Sigmoid", ["dfl.cls"], "cls.scores", "cls.sigmoid")
    em.node("Concat", ["box.pixels", "cls.scores"], "output0", "head.output", axis=1)
    return n
