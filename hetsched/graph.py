"""An ONNX network as the planner sees it: layers in order, tensor sizes, costs, cuts and splits.

A *layer* is one ONNX node of the normalised model. A *boundary* `b` (1 <= b < n) lies between
layer `b-1` and layer `b`; the tensors that cross it are every activation produced before it (or a
graph input) and consumed at or after it, skip and route connections included. `split` cuts the
model at a set of boundaries into sub-models; sub-model `k` takes as inputs exactly the tensors its
layers consume from outside (so a skip connection goes straight from its producer's stage to its
consumer's, as JEDI does, never through the stages in between) and outputs every tensor that a
later stage consumes or that is a graph output.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from .errors import GraphError, first_line

log = logging.getLogger(__name__)

# Ops that only move or relabel data: zero arithmetic, and no warning for it.
_MOVEMENT_OPS = {
    "Concat", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Split",
    "Slice", "Gather", "Pad", "Expand", "Tile", "Shape", "Cast", "DepthToSpace", "SpaceToDepth",
    "Constant", "ConstantOfShape", "Dropout", "Range",
}
# Elementwise ops and activations: one operation per output element.
_ELEMENTWISE_OPS = {
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Abs", "Neg", "Max", "Min", "Sum",
    "Mean", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf",
    "Softplus", "Mish", "Clip", "Elu", "Selu", "Celu", "Gelu", "Softsign", "ThresholdedRelu",
    "Reciprocal", "Floor", "Ceil", "Round", "Where", "Equal", "Greater", "Less", "Not", "And",
    "Or", "Sign",
}
_POOL_OPS = {"MaxPool", "AveragePool", "LpPool"}
_GLOBAL_OPS = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax",
               "ReduceMin", "ReduceL2", "ReduceProd"}


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@dataclass(frozen=True)
class Layer:
    index: int
    name: str
    op: str
    inputs: tuple[str, ...]   # activation tensors only; weights are not listed
    outputs: tuple[str, ...]
    macs: int
    flops: int
    bytes_moved: int          # activations read and written plus weights read


@dataclass
class Graph:
    """A normalised ONNX model with the per-layer facts the planner needs."""

    model: onnx.ModelProto
    layers: list[Layer]
    tensors: dict[str, Tensor]
    inputs: list[str]          # graph inputs (activations fed by the user)
    outputs: list[str]
    sha256: str | None
    name: str
    metadata: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def input_shapes(self) -> dict[str, list[int]]:
        return {t: list(self.tensors[t].shape) for t in self.inputs}

    def producers(self) -> dict[str, int]:
        """Tensor name -> index of the layer producing it (graph inputs are absent)."""
        return {t: layer.index for layer in self.layers for t in layer.outputs}

    def crossing(self, boundary: int) -> list[str]:
        """Tensors produced before `boundary` (or graph inputs) and consumed at or after it."""
        n = len(self.layers)
        if not 1 <= boundary < n:
            raise GraphError(f"boundary {boundary} is outside 1..{n - 1}")
        return self.crossing_sets()[boundary - 1]

    def crossing_sets(self) -> list[list[str]]:
        """`crossing(b)` for every boundary b = 1..n-1, in one pass over the layers."""
        n = len(self.layers)
        prod = self.producers()
        last_use: dict[str, int] = {}
        for layer in self.layers:
            for t in layer.inputs:
                last_use[t] = layer.index
        born = {t: prod.get(t, -1) for t in last_use}
        order = self._tensor_order()
        sets = []
        for b in range(1, n):
            sets.append([t for t in order if t in last_use and born[t] < b <= last_use[t]])
        return sets

    def _tensor_order(self) -> list[str]:
        order = list(self.inputs)
        for layer in self.layers:
            order.extend(layer.outputs)
        return order

    def split(self, boundaries) -> list[onnx.ModelProto]:
        """Sub-models cut at `boundaries` (sorted, unique, each in 1..n-1), in pipeline order."""
        n = len(self.layers)
        cuts = sorted(set(int(b) for b in boundaries))
        if any(not 1 <= b < n for b in cuts):
            raise GraphError(f"split boundaries must lie in 1..{n - 1}, got {list(boundaries)}")
        edges = [0, *cuts, n]
        return [self.submodel(edges[k], edges[k + 1] - 1) for k in range(len(edges) - 1)]

    def submodel(self, first: int, last: int) -> onnx.ModelProto:
        """Layers first..last (inclusive) as a stand-alone ONNX model."""
        if not 0 <= first <= last < len(self.layers):
            raise GraphError(f"layer range {first}..{last} is outside 0..{len(self.layers) - 1}")
        g = self.model.graph
        nodes = list(g.node[first:last + 1])
        produced = {t for layer in self.layers[first:last + 1] for t in layer.outputs}
        order = self._tensor_order()
        consumed_here = {t for layer in self.layers[first:last + 1] for t in layer.inputs}
        later = {t for layer in self.layers[last + 1:] for t in layer.inputs}
        ins = [t for t in order if t in consumed_here and t not in produced]
        outs = [t for t in order if t in produced and (t in later or t in self.outputs)]
        used = {i for node in nodes for i in node.input}
        inits = [init for init in g.initializer if init.name in used]
        vinfo = [self._value_info(t) for t in order if t in produced and t not in outs]
        graph = helper.make_graph(
            nodes, f"{self.name}_{first}_{last}",
            [self._value_info(t) for t in ins], [self._value_info(t) for t in outs],
            initializer=inits, value_info=vinfo)
        sub = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        sub.ir_version = self.model.ir_version
        for k, v in self.metadata.items():
            sub.metadata_props.add(key=k, value=v)
        return sub

    def _value_info(self, name: str) -> onnx.ValueInfoProto:
        t = self.tensors[name]
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(t.dtype), t.shape)


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(source, input_shapes: dict[str, list[int]] | None = None) -> Graph:
    """Load and normalise an ONNX file (or ModelProto); dynamic dims come from `input_shapes`."""
    if isinstance(source, onnx.ModelProto):
        model, sha, name = source, None, source.graph.name or "model"
    else:
        path = Path(source)
        model, sha, name = _read(path), file_sha256(path), path.stem
    return from_model(model, input_shapes, sha256=sha, name=name)


def _read(path: Path) -> onnx.ModelProto:
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative paths are read from the current folder, {Path.cwd()})"
        raise GraphError(f"{path}: no such model file{where}")
    if path.is_dir():
        raise GraphError(f"{path}: is a folder, not an ONNX file")
    data = path.read_bytes()
    if not data:
        raise GraphError(f"{path}: empty file, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise GraphError(f"{path}: not a valid ONNX model (truncated or not ONNX: {e})") from None
    if not model.graph.node or not model.graph.output or not model.opset_import:
        raise GraphError(f"{path}: not a valid ONNX model (no graph, outputs or opset in it)")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        msg = first_line(e) or type(e).__name__
        raise GraphError(f"{path}: invalid ONNX model ({msg})") from None
    return model


def from_model(model: onnx.ModelProto, input_shapes=None, *, sha256=None, name="model") -> Graph:
    model = _normalise(model, input_shapes or {})
    inits = {i.name: i for i in model.graph.initializer}
    tensors = _tensor_table(model, inits)
    g = model.graph
    inputs = [i.name for i in g.input if i.name not in inits]
    outputs = [o.name for o in g.output]
    layers = []
    unknown_ops = set()
    for idx, node in enumerate(g.node):
        acts_in = tuple(dict.fromkeys(t for t in node.input if t and t not in inits))
        acts_out = tuple(t for t in node.output if t)
        macs, flops, known = _arith(node, tensors, inits)
        if not known:
            unknown_ops.add(node.op_type)
        weights = sum(_init_bytes(inits[t]) for t in node.input if t in inits)
        moved = sum(tensors[t].bytes for t in acts_in + acts_out) + weights
        layers.append(Layer(idx, node.name, node.op_type, acts_in, acts_out, macs, flops, moved))
    if unknown_ops:
        log.warning("no FLOP model for op(s) %s: counted as 0 FLOPs", ", ".join(sorted(unknown_ops)))
    meta = {p.key: p.value for p in model.metadata_props}
    return Graph(model, layers, tensors, inputs, outputs, sha256, name, meta)


def _init_bytes(init: onnx.TensorProto) -> int:
    count = int(np.prod(init.dims, dtype=np.int64)) if init.dims else 1
    return count * helper.tensor_dtype_to_np_dtype(init.data_type).itemsize


def _normalise(model: onnx.ModelProto, input_shapes: dict[str, list[int]]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    _constants_to_initializers(g)
    _drop_identities(g)
    _drop_dead(g)
    _name_nodes(g)
    _toposort(g)
    _fix_input_shapes(g, input_shapes)
    try:
        m = shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
    except Exception as e:
        msg = first_line(e) or type(e).__name__
        raise GraphError(f"shape inference failed: {msg}") from None
    return m


def _constants_to_initializers(g: onnx.GraphProto) -> None:
    """Paddle exports keep weights as Constant nodes; as nodes they would look like layers whose
    outputs cross every cut, so they become initializers."""
    keep = []
    for node in g.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            attr = node.attribute[0]
            value = helper.get_attribute_value(attr)
            if attr.name == "value":
                t = onnx.TensorProto()
                t.CopyFrom(value)
            elif attr.name in ("value_float", "value_int", "value_floats", "value_ints"):
                dtype = np.float32 if "float" in attr.name else np.int64
                t = numpy_helper.from_array(np.array(value, dtype=dtype))
            else:
                keep.append(node)
                continue
            t.name = node.output[0]
            g.initializer.append(t)
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)


def _drop_identities(g: onnx.GraphProto) -> None:
    """Identity nodes carry no work but would double the layer count and the cut points; each is
    removed and its consumers read its input instead (unless its output is a graph output)."""
    outputs = {o.name for o in g.output}
    alias: dict[str, str] = {}
    keep = []
    for node in g.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            src = alias.get(node.input[0], node.input[0])
            alias[node.output[0]] = src
        else:
            keep.append(node)
    if not alias:
        return
    for node in keep:
        for i, t in enumerate(node.input):
            if t in alias:
                node.input[i] = alias[t]
    del g.node[:]
    g.node.extend(keep)
    dropped = set(alias)
    kept_vi = [v for v in g.value_info if v.name not in dropped]
    del g.value_info[:]
    g.value_info.extend(kept_vi)


def _drop_dead(g: onnx.GraphProto) -> None:
    """Layers that feed no graph output would be stages with nothing to hand on."""
    needed = {o.name for o in g.output}
    keep = []
    for node in reversed(g.node):
        if any(t in needed for t in node.output):
            keep.append(node)
            needed.update(node.input)
    if len(keep) != len(g.node):
        log.info("dropped %d layer(s) that feed no graph output", len(g.node) - len(keep))
        del g.node[:]
        g.node.extend(reversed(keep))


def _name_nodes(g: onnx.GraphProto) -> None:
    seen: set[str] = set()
    for idx, node in enumerate(g.node):
        name = node.name or f"{node.op_type}_{idx}"
        while name in seen:
            name = f"{name}_{idx}"
        node.name = name
        seen.add(name)


def _toposort(g: onnx.GraphProto) -> None:
    available = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending = list(g.node)
    ordered = []
    while pending:
        progress = False
        rest = []
        for node in pending:
            if all(t in available for t in node.input):
                ordered.append(node)
                available.update(node.output)
                progress = True
            else:
                rest.append(node)
        if not progress:
            missing = sorted({t for n in rest for t in n.input if t not in available})
            raise GraphError(f"graph has a cycle or undefined tensor(s) {missing[:5]} "
                             f"(first stuck node: {rest[0].name})")
        pending = rest
    del g.node[:]
    g.node.extend(ordered)


def _fix_input_shapes(g: onnx.GraphProto, input_shapes: dict[str, list[int]]) -> None:
    inits = {i.name for i in g.initializer}
    acts = [i for i in g.input if i.name not in inits]
    unknown = set(input_shapes) - {i.name for i in acts}
    if unknown:
        raise GraphError(f"--input-shape names {sorted(unknown)}, but the model's inputs are "
                         f"{[i.name for i in acts]}")
    for vi in acts:
        dims = vi.type.tensor_type.shape.dim
        given = input_shapes.get(vi.name)
        if given is not None:
            if len(given) != len(dims):
                raise GraphError(f"input {vi.name} has rank {len(dims)}, --input-shape gives "
                                 f"{len(given)} dims")
            for d, v in zip(dims, given):
                if d.HasField("dim_value") and d.dim_value != v:
                    raise GraphError(f"input {vi.name} has fixed dim {d.dim_value}, "
                                     f"--input-shape asks for {v}")
                d.Clear()
                d.dim_value = int(v)
            continue
        for pos, d in enumerate(dims):
            if not d.HasField("dim_value"):
                if pos == 0:  # a dynamic batch dimension means one frame at a time
                    d.Clear()
                    d.dim_value = 1
                else:
                    raise GraphError(
                        f"input {vi.name} has dynamic dim {pos} ({d.dim_param or '?'}); give a "
                        f"concrete shape, e.g. --input-shape {vi.name}=1,3,640,640")


def _tensor_table(model: onnx.ModelProto, inits) -> dict[str, Tensor]:
    g = model.graph
    table: dict[str, Tensor] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if not tt.HasField("shape") or any(d is None for d in dims):
            continue
        table[vi.name] = Tensor(vi.name, tuple(dims), helper.tensor_dtype_to_np_dtype(tt.elem_type))
    missing = [t for node in g.node for t in list(node.input) + list(node.output)
               if t and t not in inits and t not in table]
    why = "give concrete --input-shape values"
    if missing and all(i.name in table for i in g.input if i.name not in inits):
        # exporters compute anchor grids from Shape -> Range at run time, which shape inference
        # cannot follow; one run at the (concrete) input shapes gives those shapes
        found, why = _shapes_by_running(model, sorted(set(missing)), table)
        table.update(found)
        missing = [t for t in missing if t not in table]
    if missing:
        raise GraphError(f"shape inference left {len(set(missing))} tensor(s) without a concrete "
                         f"shape (first: {missing[0]}); {why}")
    return table


# ops whose output shapes depend on the input values, not only on its shape
_DATA_DEPENDENT_OPS = {"NonZero", "NonMaxSuppression", "TopK", "Unique", "Compress", "Loop", "If"}


def _shapes_by_running(model: onnx.ModelProto, names: list[str],
                       table: dict[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """Shapes of `names` from one onnxruntime run on zeros (the tensors made graph outputs), and
    why they could not all be found. Downstream of an op whose output shape depends on the data
    (NMS in the graph) the run's shapes are one sample: said in a warning."""
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for t in names:
        if t not in have:
            m.graph.output.append(helper.make_empty_tensor_value_info(t))
    try:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        feeds = {i.name: np.zeros(table[i.name].shape, table[i.name].dtype) for i in sess.get_inputs()}
        values = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    except Exception as e:   # onnxruntime's own errors have no common base; the caller reports
        return {}, f"running the model once for them failed too ({first_line(e) or type(e).__name__})"
    dependent = sorted({n.op_type for n in model.graph.node if n.op_type in _DATA_DEPENDENT_OPS})
    if dependent:
        log.warning("the model has %s, whose output shapes depend on the data: the shapes of the "
                    "tensors shape inference could not follow were taken from one run on zeros",
                    ", ".join(dependent))
    return ({t: Tensor(t, tuple(int(d) for d in values[t].shape), values[t].dtype)
             for t in names if t in values}, "onnxruntime did not give them either")


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _arith(node, tensors: dict[str, Tensor], inits) -> tuple[int, int, bool]:
    """(MACs, FLOPs, known) of one node; FLOPs count a multiply-add as two."""
    op = node.op_type

    def shape(t):
        if t in tensors:
            return tensors[t].shape
        return tuple(inits[t].dims)

    def elems(t):
        return int(np.prod(shape(t), dtype=np.int64))

    out = node.output[0]
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        # weight shape (Cout, Cin/groups, k...): groups and dilation are already in it
        w = shape(node.input[1] if op != "QLinearConv" else node.input[3])
        macs = elems(out) * w[1] * int(np.prod(w[2:], dtype=np.int64))
        bias = elems(out) if len(node.input) > 2 and op == "Conv" else 0
        return macs, 2 * macs + bias, True
    if op == "ConvTranspose":
        w = shape(node.input[1])  # (Cin, Cout/groups, k...)
        macs = elems(node.input[0]) * w[1] * int(np.prod(w[2:], dtype=np.int64))
        return macs, 2 * macs, True
    if op in ("Gemm", "MatMul", "MatMulInteger"):
        a = shape(node.input[0])
        k = (a[0] if _attr(node, "transA", 0) else a[1]) if op == "Gemm" else a[-1]
        macs = elems(out) * k
        return macs, 2 * macs, True
    if op in _POOL_OPS:
        k = int(np.prod(_attr(node, "kernel_shape", [1]), dtype=np.int64))
        return 0, elems(out) * k, True
    if op in _GLOBAL_OPS:
        return 0, elems(node.input[0]), True
    if op in ("Resize", "Upsample"):
        mode = _attr(node, "mode", b"nearest")
        per = 4 if b"linear" in (mode if isinstance(mode, bytes) else mode.encode()) else 1
        return 0, elems(out) * per, True
    if op in ("BatchNormalization", "InstanceNormalization", "LayerNormalization"):
        return 0, 2 * elems(out), True
    if op == "Softmax":
        return 0, 3 * elems(out), True
    if op in _ELEMENTWISE_OPS:
        return 0, elems(out), True
    if op in _MOVEMENT_OPS:
        return 0, 0, True
    return 0, 0, False
