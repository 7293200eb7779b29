"""Per-layer costs from a trace of the *optimised* session, which is what the runtime's engines
run: onnxruntime fuses layers (Conv + activation, Conv + Add) and converts convolution chains
to its blocked NCHWc layout, so its trace names fewer nodes than the model has layers.

Mapping (pure, no onnxruntime here):
1. A traced node belongs to the layer whose name it carries: onnxruntime names a fused or
   layout-converted node after one of the layers it replaces, with a suffix
   (`L0.leaky_nchwc` is L0's conv and activation). The longest layer name that equals the node's
   name or prefixes it followed by `_` wins.
2. A node that carries no layer's name (the `ReorderInput`/`ReorderOutput` layout conversions)
   belongs to the layer producing the first original tensor among its outputs, else among its
   inputs, else the first layer reading a graph input it reads.
3. A layer no node is named after was fused away. A convolution (or another matrix op) joins
   the first named layer reading its output: onnxruntime names a Conv + activation node after the
   activation. Anything else (an addition or activation fused into the convolution before it)
   joins the last named layer producing one of its inputs; failing either, the other.
4. A node's time is spread over its layer and the layers fused into it in proportion to their
   costs in the unoptimised trace (where every layer runs alone), so a plan that cuts between
   fused layers is charged each side's share.
"""

from __future__ import annotations

from dataclasses import dataclass


_MATRIX_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


@dataclass
class OptNode:
    name: str
    inputs: list[str]
    outputs: list[str]


def _owner_by_name(node: str, by_len: list[str]) -> str | None:
    for name in by_len:
        if node == name or node.startswith(name + "_"):
            return name
    return None


def attribute(layers, nodes: list[OptNode], node_ms: dict[str, float],
              plain_ms: list[float]) -> tuple[list[float], dict[str, list[str]]]:
    """Per-layer costs (ms) from optimised-node times. `layers`: the model's layers in order
    (`.name`, `.op`, `.inputs`, `.outputs`); `nodes`: the optimised graph's nodes; `node_ms`: traced
    time per node name; `plain_ms`: each layer's unoptimised cost (the split weights). Returns
    the costs and, per named layer, the layers whose time it carries (for the profile's record)."""
    names = [l.name for l in layers]
    index = {n: i for i, n in enumerate(names)}
    producer = {t: i for i, l in enumerate(layers) for t in l.outputs}
    readers: dict[str, list[int]] = {}
    for i, l in enumerate(layers):
        for t in l.inputs:
            readers.setdefault(t, []).append(i)
    by_len = sorted(names, key=len, reverse=True)
    owner_ms = [0.0] * len(layers)
    named = set()
    for node in nodes:
        ms = node_ms.get(node.name)
        if ms is None:
            continue
        owner = _owner_by_name(node.name, by_len)
        if owner is not None:
            named.add(index[owner])
            owner_ms[index[owner]] += ms
            continue
        made = [producer[t] for t in node.outputs if t in producer]
        used = [producer[t] for t in node.inputs if t in producer]
        first_reader = [readers[t][0] for t in node.inputs if t in readers and t not in producer]
        for pick in (made, used, first_reader):
            if pick:
                owner_ms[pick[0]] += ms
                break
    # fused-away layers join a named neighbour
    group = {i: [i] for i in named}
    for i, layer in enumerate(layers):
        if i in named:
            continue
        ahead = [r for t in layer.outputs for r in readers.get(t, []) if r in named]
        behind = [producer[t] for t in layer.inputs if producer.get(t) in named]
        forward = [min(ahead)] if ahead else []
        backward = [max(behind)] if behind else []
        order = forward + backward if layer.op in _MATRIX_OPS else backward + forward
        home = order[0] if order else None
        if home is None:
            named.add(i)        # nothing to join: keeps whatever rule 2 gave it
            group[i] = [i]
        else:
            group[home].append(i)
    costs = [0.0] * len(layers)
    for home, members in group.items():
        total = owner_ms[home] + sum(owner_ms[m] for m in members if m != home)
        weights = [max(plain_ms[m], 0.0) for m in members]
        w = sum(weights)
        for m, wt in zip(members, weights):
            costs[m] = total * (wt / w if w > 0 else 1.0 / len(members))
    return costs, {names[h]: [names[m] for m in sorted(ms)] for h, ms in group.items() if len(ms) > 1}
