"""Modeled profiles: each layer's cost on each PE of a board from a roofline.

    cost = max(FLOPs / (peak[precision] x efficiency[kind][op]),
               bytes moved x precision scale / (bandwidth x bandwidth efficiency)) + overhead

- efficiency by op kind: convolutions reach a fitted fraction of peak, other ops a lower one;
- layers TensorRT fuses into the convolution before them (activations, batch norm) cost 0 on
  the GPU and DLA when they read only that convolution's output;
- a DLA's cost is null for ops its generation cannot run, and for fp32 (DLAs run fp16/int8);
- on a DLA whose board gives its convolution core (`board.dla`), a convolution's FLOPs are the
  MACs the core issues, not the layer's: channels padded to Atomic-C / Atomic-K, a first layer in
  image-input mode at its utilisation, a 3x3 stride-1 convolution cut by Winograd (`dla_macs`);
- CPU PEs run onnxruntime in fp32 whatever the precision asked for;
- activation and weight bytes shrink with precision (fp16: half, int8: a quarter), and so do the
  tensors handed between PEs (the engines exchange them at their precision).

The profile carries the board's version-2 terms per PE: `stage_overhead_ms` by PE kind,
`contention` between PE kinds, and (in `board`) the DLA's per-core subgraph limit.

The result is a contract profile with `"source": "modeled"`; nothing in it was measured.
"""

from __future__ import annotations

from math import ceil

from ..graph import Graph
from ..profile import PE, Profile
from . import assemble
from .board import Board, BoardError, DLASpec

PRECISIONS = ("fp32", "fp16", "int8")
_BYTES = {"fp32": 1.0, "fp16": 0.5, "int8": 0.25}
# a PE without the asked precision runs the nearest it has (TensorRT falls back the same way)
_FALLBACK = {"int8": ("int8", "fp16", "fp32"), "fp16": ("fp16", "fp32"), "fp32": ("fp32",)}


def _precision(pe, asked: str) -> str | None:
    if pe.kind == "cpu":
        return "fp32" if "fp32" in pe.peak_gflops else next(iter(pe.peak_gflops))
    for p in _FALLBACK[asked]:
        if p in pe.peak_gflops:
            return p
    return None


def conv_shape(graph: Graph, index: int, inits: dict) -> dict | None:
    """A Conv layer's geometry: input channels per group, output channels, kernel, strides,
    groups and output positions (None if the graph does not give them). `inits`: the model's
    initializers by name."""
    node = graph.model.graph.node[index]
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
        return None
    w = tuple(inits[node.input[1]].dims)     # K, C/groups, kh, kw
    out = graph.tensors.get(node.output[0])
    if len(w) != 4 or out is None or len(out.shape) != 4:
        return None
    attrs = {a.name: a for a in node.attribute}
    strides = tuple(attrs["strides"].ints) if "strides" in attrs else (1, 1)
    groups = attrs["group"].i if "group" in attrs else 1
    return {"k": w[0], "c": w[1], "kh": w[2], "kw": w[3], "strides": strides, "groups": groups,
            "positions": out.shape[2] * out.shape[3]}


def dla_macs(shape: dict, dla: DLASpec, precision: str, first_layer: bool) -> float:
    """The MACs an NVDLA convolution core issues for one convolution (NVDLA hwarch, direct,
    image-input and Winograd modes): per group, input channels in whole Atomic-C blocks and
    output channels in whole Atomic-K blocks; a first layer of <= 4 channels (image input)
    at `image_input_utilisation` instead; 3x3 stride-1 kernels divided by `winograd_speedup`."""
    ac, ak = dla.atomic_c, dla.atomic_k[precision]
    k_per_group = shape["k"] // shape["groups"]
    per_position = shape["kh"] * shape["kw"] * shape["groups"] * ceil(k_per_group / ak) * ak
    if first_layer and shape["c"] <= 4 and shape["groups"] == 1:
        channels = shape["c"] / dla.image_input_utilisation
    else:
        channels = ceil(shape["c"] / ac) * ac
    macs = per_position * channels * shape["positions"]
    if shape["kh"] == shape["kw"] == 3 and shape["strides"] == (1, 1) and shape["groups"] == 1 \
            and not first_layer:
        macs /= dla.winograd_speedup
    return macs


def layer_costs(graph: Graph, board: Board, pe_name: str, precision: str) -> list[float | None]:
    pe = board.pes[pe_name]
    prec = _precision(pe, precision)
    bw = board.bandwidth_gbps * board.bandwidth_efficiency * 1e6   # bytes per ms
    producer = {t: i for i, layer in enumerate(graph.layers) for t in layer.outputs}
    fused_chain: set[int] = set()
    inits = {i.name: i for i in graph.model.graph.initializer} if pe.kind == "dla" else {}
    costs: list[float | None] = []
    for layer in graph.layers:
        if prec is None or (pe.kind == "dla" and layer.op in board.dla_unsupported):
            costs.append(None)
            continue
        src = producer.get(layer.inputs[0]) if len(layer.inputs) == 1 else None
        if (pe.kind in board.fused_kinds and layer.op in board.fused_ops and src is not None
                and (graph.layers[src].op == "Conv" or src in fused_chain)):
            fused_chain.add(layer.index)
            costs.append(0.0)
            continue
        peak = pe.peak_gflops[prec] * board.efficiency_of(pe.kind, layer.op) * 1e6   # FLOP per ms
        scale = 1.0 if pe.kind == "cpu" else _BYTES[prec]
        flops = layer.flops
        if pe.kind == "dla" and board.dla is not None and layer.op == "Conv":
            shape = conv_shape(graph, layer.index, inits)
            if shape is not None:
                first = all(t in graph.inputs for t in layer.inputs)
                flops = 2 * dla_macs(shape, board.dla, prec, first)
        costs.append(max(flops / peak, layer.bytes_moved * scale / bw) + pe.overhead_ms)
    return costs


def model_profile(graph: Graph, board: Board, precision: str = "fp16") -> Profile:
    if precision not in PRECISIONS:
        raise BoardError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    costs = {pe: layer_costs(graph, board, pe, precision) for pe in board.pes}
    pes = [PE(name, p.kind) for name, p in board.pes.items()]
    info = {"name": board.name, "precision": precision,
            "method": "roofline model: max(FLOPs / (peak x efficiency), bytes / bandwidth) + "
                      "per-layer overhead; fused activations free on GPU/DLA",
            "board_file": board.path.name if board.path else None,
            "calibration": board.raw.get("calibration", {}),
            "precision_used": {pe: _precision(p, precision) for pe, p in board.pes.items()}}
    if board.dla is not None and board.dla.max_subgraphs_per_core is not None:
        info["dla_max_subgraphs_per_core"] = board.dla.max_subgraphs_per_core
    prof = assemble(graph, pes, costs, dict(board.transfer), source="modeled", board=info,
                    host=board.host)
    prof.tensors = {t: int(round(b * _BYTES[precision])) for t, b in prof.tensors.items()}
    prof.stage_overhead_ms = {pe: board.overhead_of(pe) for pe in board.pes if board.overhead_of(pe)}
    prof.contention = {pe: row for pe in board.pes if (row := board.contention_of(pe))}
    return prof
