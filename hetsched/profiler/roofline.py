"""Modeled profiles: each layer's cost on each PE of a board from a roofline.

    cost = max(FLOPs / (peak[precision] x efficiency[kind][op]),
               bytes moved x precision scale / (bandwidth x bandwidth efficiency)) + overhead

- efficiency by op kind: convolutions reach a fitted fraction of peak, other ops a lower one;
- layers TensorRT fuses into the convolution before them (activations, batch norm) cost 0 on
  the GPU and DLA when they read only that convolution's output;
- a DLA's cost is null for ops its generation cannot run, and for fp32 (DLAs run fp16/int8);
- CPU PEs run onnxruntime in fp32 whatever the precision asked for;
- activation and weight bytes shrink with precision (fp16: half, int8: a quarter), and so do the
  tensors handed between PEs (the engines exchange them at their precision).

The result is a contract profile with `"source": "modeled"`; nothing in it was measured.
"""

from __future__ import annotations

from ..graph import Graph
from ..profile import PE, Profile
from . import assemble
from .board import Board, BoardError

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


def layer_costs(graph: Graph, board: Board, pe_name: str, precision: str) -> list[float | None]:
    pe = board.pes[pe_name]
    prec = _precision(pe, precision)
    bw = board.bandwidth_gbps * board.bandwidth_efficiency * 1e6   # bytes per ms
    producer = {t: i for i, layer in enumerate(graph.layers) for t in layer.outputs}
    fused_chain: set[int] = set()
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
        costs.append(max(layer.flops / peak, layer.bytes_moved * scale / bw) + pe.overhead_ms)
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
    prof = assemble(graph, pes, costs, dict(board.transfer), source="modeled", board=info,
                    host=board.host)
    prof.tensors = {t: int(round(b * _BYTES[precision])) for t, b in prof.tensors.items()}
    return prof
