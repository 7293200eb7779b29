"""Measuring and modelling per-layer costs; `assemble` turns costs into a contract profile."""

from __future__ import annotations

from ..graph import Graph
from ..profile import PE, ModelInfo, Profile, ProfileLayer, Transfer


def assemble(graph: Graph, pes: list[PE], costs: dict[str, list[float | None]],
             transfer: dict[str, Transfer], *, source: str, board: dict, host: str | None = None) -> Profile:
    """A profile of `graph` from per-PE cost columns (one entry per layer, in layer order)."""
    layers = []
    for layer in graph.layers:
        layers.append(ProfileLayer(
            layer.name, layer.op, layer.inputs, layer.outputs,
            {pe.name: costs[pe.name][layer.index] for pe in pes},
            {"macs": layer.macs, "flops": layer.flops, "bytes_moved": layer.bytes_moved}))
    used = {t for layer in graph.layers for t in layer.inputs + layer.outputs}
    tensors = {t: graph.tensors[t].bytes for t in graph.tensors if t in used}
    host = host or next(p.name for p in pes if p.kind == "cpu")
    return Profile(source, ModelInfo(graph.name, graph.sha256, graph.input_shapes), board, host,
                   {pe.name: pe for pe in pes}, layers, tensors, list(graph.outputs), transfer)
