"""Darknet layer sections to an ONNX model: the one emitter behind the zoo and the importer.

A network is a list of `Section`s in darknet's own vocabulary ([net], [convolutional], [route],
...). The zoo writes its networks as sections in Python; the importer parses them from a .cfg. Both
go through `build`, so a zoo network and the matching cfg must yield the same layers.

Batch normalisation is folded into the convolution (as darknet's own inference does), so a
darknet convolutional layer becomes one Conv node and, unless linear, one activation node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import DarknetError
from .sections import Section

OPSET = 13
IR_VERSION = 8
BN_EPS = 1e-6  # darknet divides by sqrt(var) + .000001


class RandomWeights:
    """Seeded weights: the scheduling figures do not depend on values, only shapes.

    Plain He scaling lets yolov3's 23 residual adds grow activations past 1e5, which would make
    any split-versus-whole tolerance meaningless; so, as batch norm does in a trained network,
    each convolution is scaled by the input's estimated second moment to give O(1) outputs."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def conv(self, sec: Section, filters: int, cin: int, size: int, bn: bool, moment: float = 1.0):
        fan_in = cin * size * size
        w = self.rng.standard_normal((filters, cin, size, size), dtype=np.float32)
        w *= np.float32(1.0 / np.sqrt(fan_in * moment))
        b = (0.01 * self.rng.standard_normal(filters)).astype(np.float32)
        return w, b

    def vector(self, sec: Section, n: int) -> np.ndarray:
        """A weighted shortcut's n weights: near darknet's initial 1, apart enough to matter."""
        return self.rng.uniform(0.5, 1.5, n).astype(np.float32)


class DarknetWeights:
    """Reads a darknet .weights file in layer order, folding batch norm as darknet does."""

    def __init__(self, path):
        self.path = str(path)
        with open(path, "rb") as f:
            header = np.frombuffer(f.read(12), dtype=np.int32)
            if header.size < 3:
                raise DarknetError(f"{path}: too short for a darknet weights header")
            major, minor = int(header[0]), int(header[1])
            seen_bytes = 8 if major * 10 + minor >= 2 else 4
            f.read(seen_bytes)
            self.data = np.frombuffer(f.read(), dtype=np.float32)
        self.pos = 0

    def _take(self, n: int, sec: Section) -> np.ndarray:
        if self.pos + n > self.data.size:
            raise DarknetError(f"{self.path}: weights end before {sec.where()} "
                               f"(need {n} floats at offset {self.pos}, file has {self.data.size})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def conv(self, sec: Section, filters: int, cin: int, size: int, bn: bool, moment: float = 1.0):
        bias = self._take(filters, sec).copy()
        if bn:
            scale = self._take(filters, sec)
            mean = self._take(filters, sec)
            var = self._take(filters, sec)
        w = self._take(filters * cin * size * size, sec).reshape(filters, cin, size, size).copy()
        if bn:
            k = scale / (np.sqrt(var) + BN_EPS)
            w *= k[:, None, None, None]
            bias = bias - mean * k
        return w.astype(np.float32), bias.astype(np.float32)

    def vector(self, sec: Section, n: int) -> np.ndarray:
        return self._take(n, sec).astype(np.float32)

    def finish(self) -> None:
        left = self.data.size - self.pos
        if left:
            raise DarknetError(f"{self.path}: {left} floats left over after the last layer; "
                               f"the weights do not belong to this cfg")


@dataclass
class _Out:
    tensor: str
    c: int
    h: int
    w: int
    moment: float = 1.0  # estimated mean square of the values, for RandomWeights' scaling


# Mean square after an activation, for unit-variance zero-mean input (rounded; only a scale).
_ACT_MOMENT = {"linear": 1.0, "leaky": 0.5, "relu": 0.5, "logistic": 0.3, "mish": 0.45, "swish": 0.4}


class _Emitter:
    def __init__(self, name: str):
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs, output: str, name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=name, **attrs))
        return output

    def rename(self, old: str, new: str) -> None:
        for n in self.nodes:
            for seq in (n.input, n.output):
                for i, t in enumerate(seq):
                    if t == old:
                        seq[i] = new


def _activation(em: _Emitter, sec: Section, x: str, kind: str, tag: str) -> str:
    if kind == "linear":
        return x
    if kind == "leaky":
        return em.node("LeakyRelu", [x], f"{tag}.leaky", f"{tag}.leaky", alpha=0.1)
    if kind == "relu":
        return em.node("Relu", [x], f"{tag}.relu", f"{tag}.relu")
    if kind == "logistic":
        return em.node("Sigmoid", [x], f"{tag}.logistic", f"{tag}.logistic")
    if kind == "mish":  # x * tanh(softplus(x)); opset 13 has no Mish op
        sp = em.node("Softplus", [x], f"{tag}.softplus", f"{tag}.softplus")
        th = em.node("Tanh", [sp], f"{tag}.tanh", f"{tag}.tanh")
        return em.node("Mul", [x, th], f"{tag}.mish", f"{tag}.mish")
    if kind == "swish":
        sg = em.node("Sigmoid", [x], f"{tag}.sigmoid", f"{tag}.sigmoid")
        return em.node("Mul", [x, sg], f"{tag}.swish", f"{tag}.swish")
    raise DarknetError(f"{sec.where()}: activation '{kind}' is not supported "
                       f"(leaky, relu, mish, logistic, linear, swish are)")


def _ref(sec: Section, idx: int, raw: int) -> int:
    j = idx + raw if raw < 0 else raw
    if not 0 <= j < idx:
        raise DarknetError(f"{sec.where()}: layer reference {raw} points outside 0..{idx - 1}")
    return j


def build(sections: list[Section], *, name: str, size: int | None = None, weights=None,
          seed: int = 0, activation: str | None = None) -> onnx.ModelProto:
    """ONNX model of a darknet network; `activation` replaces every leaky activation."""
    if not sections or sections[0].kind not in ("net", "network"):
        where = sections[0].where() if sections else name
        raise DarknetError(f"{where}: a darknet network starts with a [net] section")
    net = sections[0]
    h, w = net.get("height", 416), net.get("width", 416)
    if size:
        h = w = size      # the caller's size overrides the cfg's
    c = net.get("channels", 3)
    weights = weights or RandomWeights(seed)
    em = _Emitter(name)
    outs: list[_Out] = []
    heads: list[dict] = []
    prev = _Out("images", c, h, w)
    for idx, sec in enumerate(sections[1:]):
        tag = f"L{idx}"
        k = sec.kind
        if k == "convolutional":
            out = _conv(em, sec, prev, tag, weights, activation)
        elif k == "maxpool":
            out = _pool(em, sec, prev, tag, "MaxPool", "maxpool")
        elif k == "avgpool":
            t = em.node("GlobalAveragePool", [prev.tensor], f"{tag}.avgpool", f"{tag}.avgpool")
            out = _Out(t, prev.c, 1, 1, prev.moment)
        elif k == "route":
            out = _route(em, sec, idx, outs, tag)
        elif k == "shortcut" and (len(sec.ints("from", [])) > 1
                                  or sec.get("weights_type", "none", str) != "none"):
            out = _weighted_shortcut(em, sec, idx, outs, prev, tag, weights)
        elif k == "shortcut":
            if "from" not in sec.params:
                raise DarknetError(f"{sec.where()}: shortcut needs from=")
            other = outs[_ref(sec, idx, sec.get("from"))]
            added = _shortcut_operand(em, sec, other, prev, tag)
            t = em.node("Add", [prev.tensor, added], f"{tag}.shortcut", f"{tag}.shortcut")
            act = sec.get("activation", "linear", str)
            t = _activation(em, sec, t, act, tag)
            m = (prev.moment + other.moment) * _ACT_MOMENT.get(act, 1.0)
            out = _Out(t, prev.c, prev.h, prev.w, m)
        elif k == "upsample":
            stride = sec.get("stride", 2)
            if sec.get("scale", 1.0, float) != 1.0:
                raise DarknetError(f"{sec.where()}: upsample with scale != 1 is not supported")
            scales = em.const(f"{tag}.scales", np.array([1, 1, stride, stride], np.float32))
            t = em.node("Resize", [prev.tensor, "", scales], f"{tag}.upsample", f"{tag}.upsample",
                        mode="nearest", coordinate_transformation_mode="asymmetric",
                        nearest_mode="floor")
            out = _Out(t, prev.c, prev.h * stride, prev.w * stride, prev.moment)
        elif k == "reorg":
            out = _reorg(em, sec, prev, tag)
        elif k in ("sam", "scale_channels"):
            out = _scale(em, sec, idx, outs, prev, tag)
        elif k == "local_avgpool":
            # darknet averages over the window's in-bounds pixels only: count_include_pad=0
            out = _pool(em, sec, prev, tag, "AveragePool", "local_avgpool", count_include_pad=0)
        elif k.lower() == "gaussian_yolo":
            raise DarknetError(f"{sec.where()}: [{k}] (Gaussian YOLOv3's head: 8 box fields with "
                               f"uncertainties) is not supported; its decoder is not written")
        elif k in ("yolo", "region"):
            out = _head(em, sec, prev, heads, h, w)
            for o in outs:  # the head renamed its input tensor to a readable output name
                if o.tensor == prev.tensor:
                    o.tensor = out.tensor
        else:
            raise DarknetError(f"{sec.where()}: section [{k}] is not supported")
        outs.append(out)
        prev = out
    if not heads:
        heads_outputs = [prev]
    else:
        by_name = {o.tensor: o for o in outs}
        heads_outputs = [by_name[hd["output"]] for hd in heads]
    graph = helper.make_graph(
        em.nodes, name,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info(o.tensor, TensorProto.FLOAT, [1, o.c, o.h, o.w])
         for o in heads_outputs],
        initializer=em.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="hetsched")
    model.ir_version = IR_VERSION
    if hasattr(weights, "finish"):
        weights.finish()
    meta = {"hetsched.network": name, "hetsched.input_size": json.dumps([h, w]),
            "hetsched.heads": json.dumps(heads)}
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    return model


def _conv(em, sec, prev, tag, weights, activation) -> _Out:
    filters = sec.get("filters", 1)
    size = sec.get("size", 1)
    stride = sec.get("stride", 1)
    groups = sec.get("groups", 1)
    if sec.get("dilation", 1) != 1 or {sec.get("stride_x", stride), sec.get("stride_y", stride)} != {stride}:
        raise DarknetError(f"{sec.where()}: dilated or non-square-stride convolutions are not supported")
    if sec.get("xnor", 0) or sec.get("binary", 0):
        raise DarknetError(f"{sec.where()}: binary/xnor convolutions are not supported")
    pad = size // 2 if sec.get("pad", 0) else sec.get("padding", 0)
    bn = bool(sec.get("batch_normalize", 0))
    if prev.c % groups or filters % groups:
        raise DarknetError(f"{sec.where()}: groups={groups} does not divide {prev.c} input "
                           f"channels and {filters} filters")
    wt, b = weights.conv(sec, filters, prev.c // groups, size, bn, prev.moment)
    wn = em.const(f"{tag}.weight", wt)
    bname = em.const(f"{tag}.bias", b)
    t = em.node("Conv", [prev.tensor, wn, bname], f"{tag}.conv", f"{tag}.conv",
                kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4, group=groups)
    act = sec.get("activation", "logistic", str)  # darknet's own default
    if activation and act == "leaky":
        act = activation
    t = _activation(em, sec, t, act, tag)
    oh = (prev.h + 2 * pad - size) // stride + 1
    ow = (prev.w + 2 * pad - size) // stride + 1
    return _Out(t, filters, oh, ow, _ACT_MOMENT.get(act, 1.0))


def _route(em, sec, idx, outs, tag) -> _Out:
    refs = sec.ints("layers")
    if not refs:
        raise DarknetError(f"{sec.where()}: route needs layers=")
    groups = sec.get("groups", 1)
    gid = sec.get("group_id", 0)
    if not 0 <= gid < groups:
        raise DarknetError(f"{sec.where()}: group_id={gid} is outside 0..{groups - 1}")
    parts = []
    for n, raw in enumerate(refs):
        src = outs[_ref(sec, idx, raw)]
        if groups > 1:
            if src.c % groups:
                raise DarknetError(f"{sec.where()}: groups={groups} does not divide {src.c} channels")
            step = src.c // groups
            starts = em.const(f"{tag}.s{n}.starts", np.array([gid * step], np.int64))
            ends = em.const(f"{tag}.s{n}.ends", np.array([(gid + 1) * step], np.int64))
            axes = em.const(f"{tag}.s{n}.axes", np.array([1], np.int64))
            t = em.node("Slice", [src.tensor, starts, ends, axes], f"{tag}.slice{n}", f"{tag}.slice{n}")
            src = _Out(t, step, src.h, src.w, src.moment)
        parts.append(src)
    if any((p.h, p.w) != (parts[0].h, parts[0].w) for p in parts):
        raise DarknetError(f"{sec.where()}: route joins layers of different sizes "
                           f"{[(p.h, p.w) for p in parts]}")
    if len(parts) == 1:
        return parts[0]
    t = em.node("Concat", [p.tensor for p in parts], f"{tag}.route", f"{tag}.route", axis=1)
    c = sum(p.c for p in parts)
    return _Out(t, c, parts[0].h, parts[0].w, sum(p.moment * p.c for p in parts) / c)


def _reorg(em, sec, prev, tag) -> _Out:
    """Darknet's reorg (YOLOv2's passthrough layer), index for index as darknet's reorg_cpu with
    forward=0: it reads the C x H x W input as if it were (C/s^2) x sH x sW, which is not the
    same as ONNX SpaceToDepth."""
    s = sec.get("stride", 2)
    c, h, w = prev.c, prev.h, prev.w
    if c % (s * s) or h % s or w % s:
        raise DarknetError(f"{sec.where()}: reorg stride {s} does not divide {c}x{h}x{w}")
    shape6 = em.const(f"{tag}.shape6", np.array([1, c // (s * s), h, s, w, s], np.int64))
    shape4 = em.const(f"{tag}.shape4", np.array([1, c * s * s, h // s, w // s], np.int64))
    a = em.node("Reshape", [prev.tensor, shape6], f"{tag}.reorg_view", f"{tag}.reorg_view")
    b = em.node("Transpose", [a], f"{tag}.reorg_perm", f"{tag}.reorg_perm", perm=[0, 3, 5, 1, 2, 4])
    t = em.node("Reshape", [b, shape4], f"{tag}.reorg", f"{tag}.reorg")
    return _Out(t, c * s * s, h // s, w // s, prev.moment)


def _pool(em, sec, prev, tag, op: str, what: str, **attrs) -> _Out:
    """[maxpool] / [local_avgpool] as darknet's parse_maxpool reads them: stride (default 1,
    stride_x / stride_y override it), size (default the stride), padding (default size - 1,
    split top-left first); output (in + padding - size) / stride + 1."""
    stride = sec.get("stride", 1)
    sx, sy = sec.get("stride_x", stride), sec.get("stride_y", stride)
    size = sec.get("size", stride)
    pad = sec.get("padding", size - 1)
    oh, ow = (prev.h + pad - size) // sy + 1, (prev.w + pad - size) // sx + 1
    t = em.node(op, [prev.tensor], f"{tag}.{what}", f"{tag}.{what}", kernel_shape=[size, size],
                strides=[sy, sx], pads=[pad // 2, pad // 2, pad - pad // 2, pad - pad // 2], **attrs)
    return _Out(t, prev.c, oh, ow, prev.moment)


def _weighted_shortcut(em, sec, idx, outs, prev, tag, weights) -> _Out:
    """darknet's weighted shortcut (`shortcut_multilayer_cpu`, inputs of the previous layer's
    shape): out = prev x w_0 + sum_i from_i x w_i, one weight per input (`per_feature`) or per
    input and channel (`per_channel`), normalised by `relu` (relu(w) / (eps + sum relu)) or
    `softmax` (exp(w - max) / (eps + sum exp)) over the inputs; the weights come after the
    layers before it in the .weights file."""
    refs = sec.ints("from", [])
    if not refs:
        raise DarknetError(f"{sec.where()}: shortcut needs from=")
    others = [outs[_ref(sec, idx, r)] for r in refs]
    for o in others:
        if (o.c, o.h, o.w) != (prev.c, prev.h, prev.w):
            raise DarknetError(f"{sec.where()}: a weighted or multi-input shortcut joins "
                               f"{o.c}x{o.h}x{o.w} to {prev.c}x{prev.h}x{prev.w}: hetsched takes "
                               f"inputs of the previous layer's shape only")
    # darknet's parse_shortcut reads per_layer as per_feature and avg_relu as relu
    kind = {"per_layer": "per_feature"}.get(k := sec.get("weights_type", "none", str), k)
    norm = {"avg_relu": "relu"}.get(n := sec.get("weights_normalization", "none", str), n)
    if kind not in ("none", "per_feature", "per_channel") or norm not in ("none", "relu", "softmax"):
        raise DarknetError(f"{sec.where()}: weights_type={k}, weights_normalization={n}: darknet knows "
                           f"none/per_feature/per_layer/per_channel and none/relu/avg_relu/softmax")
    inputs = [prev, *others]
    n = len(inputs)
    if kind == "none":
        w = None
    else:
        per = 1 if kind == "per_feature" else prev.c
        w = weights.vector(sec, n * per).reshape(n, per).astype(np.float64)
        if norm == "relu":
            r = np.maximum(w, 0)
            w = r / (1e-4 + r.sum(axis=0))
        elif norm == "softmax":
            e = np.exp(w - w.max(axis=0))
            w = e / (1e-4 + e.sum(axis=0))
    terms = []
    for i, o in enumerate(inputs):
        if w is None:
            terms.append(o.tensor)
            continue
        shape = (1,) if w.shape[1] == 1 else (1, prev.c, 1, 1)
        k = em.const(f"{tag}.w{i}", w[i].astype(np.float32).reshape(shape))
        terms.append(em.node("Mul", [o.tensor, k], f"{tag}.weighted{i}", f"{tag}.weighted{i}"))
    t = terms[0]
    for i, term in enumerate(terms[1:], 1):
        t = em.node("Add", [t, term], f"{tag}.shortcut" if i == n - 1 else f"{tag}.sum{i}",
                    f"{tag}.shortcut" if i == n - 1 else f"{tag}.sum{i}")
    act = sec.get("activation", "linear", str)
    t = _activation(em, sec, t, act, tag)
    return _Out(t, prev.c, prev.h, prev.w, sum(o.moment for o in inputs) * _ACT_MOMENT.get(act, 1.0))


def _scale(em, sec, idx, outs, prev, tag) -> _Out:
    """[sam] (`sam_cpu`): the previous layer's output times the `from` layer's, element by
    element. [scale_channels] (`scale_channels_cpu`): the `from` layer's C x H x W output, each
    channel times the previous layer's C x 1 x 1 value (scale_wh=1, per-position scales, is
    refused). Then the section's activation; the output has the `from` layer's shape."""
    if "from" not in sec.params:
        raise DarknetError(f"{sec.where()}: [{sec.kind}] needs from=")
    other = outs[_ref(sec, idx, sec.get("from"))]
    if sec.kind == "sam":
        if (other.c, other.h, other.w) != (prev.c, prev.h, prev.w):
            raise DarknetError(f"{sec.where()}: [sam] multiplies {prev.c}x{prev.h}x{prev.w} by "
                               f"{other.c}x{other.h}x{other.w}; darknet needs the same shape")
    else:
        if sec.get("scale_wh", 0):
            raise DarknetError(f"{sec.where()}: [scale_channels] with scale_wh=1 is not supported")
        if (prev.c, prev.h, prev.w) != (other.c, 1, 1):
            raise DarknetError(f"{sec.where()}: [scale_channels] scales {other.c}x{other.h}x{other.w} "
                               f"by {prev.c}x{prev.h}x{prev.w}; darknet needs {other.c}x1x1")
    t = em.node("Mul", [other.tensor, prev.tensor], f"{tag}.{sec.kind}", f"{tag}.{sec.kind}")
    act = sec.get("activation", "linear", str)
    t = _activation(em, sec, t, act, tag)
    return _Out(t, other.c, other.h, other.w, other.moment * prev.moment * _ACT_MOMENT.get(act, 1.0))


def _shortcut_operand(em, sec, other: "_Out", prev: "_Out", tag: str) -> str:
    """What darknet's shortcut adds to the previous layer (`shortcut_cpu` in blas.c): the output
    keeps the previous layer's shape; its first min(c) channels get the `from` layer's, sampled
    every w_from / w_prev pixels where the `from` layer is larger; channels beyond the `from`
    layer's pass through unchanged. (A smaller `from` layer, which darknet adds to every
    sample-th pixel only, is refused.)"""
    if (other.c, other.h, other.w) == (prev.c, prev.h, prev.w):
        return other.tensor
    if other.h < prev.h or other.w < prev.w or other.h % prev.h or other.w % prev.w \
            or other.w // prev.w != other.h // prev.h:
        raise DarknetError(f"{sec.where()}: shortcut adds {other.c}x{other.h}x{other.w} to "
                           f"{prev.c}x{prev.h}x{prev.w}: hetsched takes a `from` layer of the same "
                           f"size or an integer multiple of it")
    stride, c = other.w // prev.w, min(other.c, prev.c)
    t = other.tensor
    if stride > 1 or c < other.c:
        starts = em.const(f"{tag}.sc.starts", np.array([0, 0, 0], np.int64))
        ends = em.const(f"{tag}.sc.ends", np.array([c, other.h, other.w], np.int64))
        axes = em.const(f"{tag}.sc.axes", np.array([1, 2, 3], np.int64))
        steps = em.const(f"{tag}.sc.steps", np.array([1, stride, stride], np.int64))
        t = em.node("Slice", [t, starts, ends, axes, steps], f"{tag}.sc.slice", f"{tag}.sc.slice")
    if c < prev.c:       # zeros for the channels only the previous layer has
        pads = em.const(f"{tag}.sc.pads", np.array([0, 0, 0, 0, 0, prev.c - c, 0, 0], np.int64))
        t = em.node("Pad", [t, pads], f"{tag}.sc.pad", f"{tag}.sc.pad")
    return t


def _head(em, sec, prev, heads, in_h, in_w) -> _Out:
    classes = sec.get("classes", 20)
    anchors = sec.floats("anchors", [])
    pairs = [anchors[i:i + 2] for i in range(0, len(anchors) - 1, 2)]
    if sec.kind == "yolo":
        num = sec.get("num", len(pairs))   # darknet reads num anchor pairs from the list
        if num > len(pairs):
            raise DarknetError(f"{sec.where()}: num={num} but anchors lists {len(pairs)} pairs")
        pairs = pairs[:num]
        mask = sec.ints("mask", list(range(len(pairs))))
        if any(not 0 <= m < len(pairs) for m in mask):
            raise DarknetError(f"{sec.where()}: mask {mask} indexes outside {len(pairs)} anchors")
        used = [pairs[m] for m in mask]
        expect = len(mask) * (classes + 5)
    else:
        num = sec.get("num", len(pairs))
        coords = sec.get("coords", 4)
        used = pairs[:num]
        expect = num * (classes + coords + 1)
    if prev.c != expect:
        raise DarknetError(f"{sec.where()}: the layer before a [{sec.kind}] head has {prev.c} "
                           f"channels, the head needs {expect}")
    out_name = f"{sec.kind}_{sum(1 for hd in heads if hd['type'] == sec.kind)}"
    em.rename(prev.tensor, out_name)
    head = {"type": sec.kind, "output": out_name, "classes": classes, "anchors": used,
            "grid": [prev.h, prev.w], "stride": [in_h // prev.h, in_w // prev.w],
            # yolo anchors are in input pixels, region anchors in grid cells
            "anchor_units": "pixels" if sec.kind == "yolo" else "grid"}
    if sec.kind == "yolo":
        head["scale_x_y"] = sec.get("scale_x_y", 1.0, float)
        head["new_coords"] = sec.get("new_coords", 0)
    else:
        head["coords"] = sec.get("coords", 4)
        head["softmax"] = bool(sec.get("softmax", 0))
    heads.append(head)
    return _Out(out_name, prev.c, prev.h, prev.w, prev.moment)
