"""Random small profiles and a brute-force planner that enumerates every plan the contract
allows and prices each with `cost.evaluate`: the independent check for every planner."""

from itertools import product

import numpy as np

from hetsched import profile
from hetsched.errors import HetschedError
from hetsched.partition.cost import Stage, better, evaluate
from hetsched.partition.cost import runnable
from hetsched.partition.groups import stage_groups

POOL = [("cpu0", "cpu"), ("cpu1", "cpu"), ("gpu", "gpu"), ("dla0", "dla"), ("dla1", "dla")]


def random_profile(rng, n, pe_names, null_rate=0.25, skip_rate=0.4, specific_links=True, v2=False):
    """A random profile; `v2` adds the version-2 terms at random: per-PE stage overheads, host
    work, contention between random pairs and measured same-PE ("p->p") transfers."""
    kinds = dict(POOL)
    pes = {p: {"kind": kinds[p]} for p in pe_names}
    host = next((p for p in pe_names if kinds[p] == "cpu"), pe_names[0])
    layers, tensors = [], {"x": {"bytes": int(rng.integers(1, 4_000_000))}}
    outs = []
    for i in range(n):
        ins = [f"t{i - 1}" if i else "x"]
        if i >= 2 and rng.random() < skip_rate:
            ins.append(f"t{int(rng.integers(0, i - 1))}")
        if i >= 1 and rng.random() < 0.15:
            ins.append("x")
        costs = {}
        for p in pe_names:
            costs[p] = None if rng.random() < null_rate else round(float(rng.uniform(0.0, 10.0)), 3)
        if all(v is None for v in costs.values()):
            costs[pe_names[int(rng.integers(0, len(pe_names)))]] = round(float(rng.uniform(0, 10)), 3)
        if rng.random() < 0.1:
            costs[pe_names[0]] = 0.0
        layers.append({"name": f"l{i}", "op": "Conv", "inputs": list(dict.fromkeys(ins)),
                       "outputs": [f"t{i}"], "cost_ms": costs})
        tensors[f"t{i}"] = {"bytes": int(rng.integers(0, 4_000_000))}
    outs.append(f"t{n - 1}")
    if n > 2 and rng.random() < 0.4:
        outs.append(f"t{int(rng.integers(0, n - 1))}")
    # keep every tensor used: an unused early output feeds no one, which the contract allows
    transfer = {"default": {"latency_ms": round(float(rng.uniform(0, 1)), 3),
                            "ms_per_mb": round(float(rng.uniform(0, 2)), 3)}}
    if specific_links:
        for a, b in product(pe_names, pe_names):
            if a != b and rng.random() < 0.3:
                transfer[f"{a}->{b}"] = {"latency_ms": round(float(rng.uniform(0, 1)), 3),
                                         "ms_per_mb": round(float(rng.uniform(0, 3)), 3)}
    d = {"schema": "hetsched.profile/1", "source": "modeled",
         "model": {"name": "rand", "sha256": None, "inputs": {"x": [1]}},
         "board": {"name": "rand"}, "host": host, "pes": pes, "layers": layers,
         "tensors": tensors, "graph_outputs": outs, "transfer": transfer}
    # a PE needs a cost column: make sure each appears at least once with a number
    for p in pe_names:
        if all(l["cost_ms"][p] is None for l in layers):
            layers[int(rng.integers(0, n))]["cost_ms"][p] = round(float(rng.uniform(0, 10)), 3)
    if v2:
        d["schema"] = "hetsched.profile/2"
        d["stage_overhead_ms"] = {p: round(float(rng.uniform(0, 2)), 3) for p in pe_names
                                  if rng.random() < 0.7}
        d["host_ms"] = round(float(rng.uniform(0, 4)), 3) if rng.random() < 0.7 else 0.0
        contention: dict = {}
        for a, b in product(pe_names, pe_names):
            if a != b and rng.random() < 0.35:
                contention.setdefault(a, {})[b] = round(float(rng.uniform(0, 0.6)), 3)
        d["contention"] = contention
        for p in pe_names:
            if rng.random() < 0.2:
                transfer[f"{p}->{p}"] = {"latency_ms": round(float(rng.uniform(0, 0.5)), 3),
                                         "ms_per_mb": round(float(rng.uniform(0, 0.5)), 3)}
    return profile.from_dict(d)


def compositions(n):
    for mask in range(1 << (n - 1)):
        cuts = [i + 1 for i in range(n - 1) if mask >> i & 1]
        edges = [0, *cuts, n]
        yield [(edges[k], edges[k + 1] - 1) for k in range(len(edges) - 1)]


def brute_force(prof, pes=None, replication=True, max_stages=8, exact_set=False):
    """The best plan by enumeration (`exact_set`: among plans that use every PE of `pes`)."""
    pes = pes or list(prof.pes)
    groups = stage_groups(prof, pes, replication)
    best = None
    for spans in compositions(len(prof.layers)):
        if len(spans) > max_stages:
            continue
        options = [[g for g in groups if all(runnable(prof, g, i) for i in range(a, b + 1))]
                   for a, b in spans]
        for seq in product(*options):
            if any(set(seq[k]) == set(seq[k + 1]) for k in range(len(seq) - 1)):
                continue
            if exact_set and {p for g in seq for p in g} != set(pes):
                continue
            stages = [Stage(g, a, b) for g, (a, b) in zip(seq, spans)]
            plan = evaluate(prof, stages, "brute", pes=pes, replication=replication,
                            max_stages=max_stages)
            if better(plan, best):
                best = plan
    return best


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def instances_v2(count, seed=0):
    """Random small v2 profiles over two CPU cores and two DLAs (so that replicated groups of both
    kinds occur), a GPU in some; replication on and off, random `max_stages`."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        names = ["cpu0", "cpu1"] + (["gpu"] if rng.random() < 0.3 else []) + ["dla0", "dla1"]
        n = int(rng.integers(2, 4 if "gpu" in names else 5))
        try:
            prof = random_profile(rng, n, names, null_rate=0.2, v2=True)
        except HetschedError:
            continue
        out.append((prof, bool(rng.random() < 0.75), int(rng.integers(1, n + 2))))
    return out


def instances(count, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        k = int(rng.integers(2, 5))
        names = [POOL[j][0] for j in sorted(rng.choice(len(POOL), size=k, replace=False))]
        n = int(rng.integers(2, 6 if k <= 3 else 5))
        try:
            prof = random_profile(rng, n, names)
        except HetschedError:
            continue
        out.append((prof, bool(rng.random() < 0.5), int(rng.integers(1, n + 2))))
    return out
