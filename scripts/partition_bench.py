#!/usr/bin/env python3
"""Every planning method over every profile in profiles/ (and, with --synthetic, seeded 300-layer
profiles over 4 and 5 PEs): predicted throughput, ratio to the proven optimum, and solve time.
Where the exact search gives up, the lower bound it proved gives each method's worst-case ratio
(">=r"). Writes the table to stdout and the rows to a JSON file.

    python scripts/partition_bench.py [--profiles profiles] [--synthetic] [--time-limit 10] [-o partition_bench.json]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hetsched import profile
from hetsched.atomic import write_text
from hetsched.errors import HetschedError
from hetsched.partition import METHODS, make_plan

KINDS = {"cpu0": "cpu", "cpu1": "cpu", "gpu": "gpu", "dla0": "dla", "dla1": "dla"}


def synthetic(n: int, pes, seed: int = 0) -> profile.Profile:
    """A seeded chain with skips: GPU ~20x a CPU core, DLA ~2.5x slower than the GPU and unable to
    run one layer in ten. Shapes of the problem only; no board stands behind these numbers."""
    rng = np.random.default_rng(seed)
    layers, tensors = [], {"x": {"bytes": 2_076_672}}
    for i in range(n):
        base = float(rng.lognormal(0, 1))
        ins = [f"t{i - 1}" if i else "x"]
        if i > 10 and rng.random() < 0.05:
            ins.append(f"t{int(rng.integers(max(0, i - 60), i - 1))}")
        cost = {}
        for p in pes:
            k = KINDS[p]
            cost[p] = (round(base * 20, 3) if k == "cpu" else round(base * (1 + 0.3 * rng.random()), 3)
                       if k == "gpu" else None if rng.random() < 0.1 else round(base * 2.5 * (1 + 0.2 * rng.random()), 3))
        layers.append({"name": f"l{i}", "op": "Conv", "inputs": ins, "outputs": [f"t{i}"], "cost_ms": cost})
        tensors[f"t{i}"] = {"bytes": int(rng.integers(100_000, 3_000_000))}
    return profile.from_dict({
        "schema": "hetsched.profile/1", "source": "modeled",
        "model": {"name": f"synthetic-{n}x{len(pes)}", "sha256": None, "inputs": {"x": [1]}},
        "board": {"name": "synthetic (not a board)"}, "host": pes[0],
        "pes": {p: {"kind": KINDS[p]} for p in pes}, "layers": layers, "tensors": tensors,
        "graph_outputs": [f"t{n - 1}", f"t{n // 2}"],
        "transfer": {"default": {"latency_ms": 0.05, "ms_per_mb": 0.2}}})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default="profiles")
    ap.add_argument("--synthetic", action="store_true", help="add seeded 300-layer 4- and 5-PE profiles")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds for the exact search")
    ap.add_argument("-o", "--output", default="partition_bench.json")
    args = ap.parse_args(argv)
    cases = []
    for path in sorted(Path(args.profiles).rglob("*.json")):
        try:
            cases.append((path.name, profile.load(path)))
        except HetschedError:
            continue  # not a profile (e.g. a check table)
    if args.synthetic:
        cases.append(("synthetic-300x4", synthetic(300, ["cpu0", "gpu", "dla0", "dla1"])))
        cases.append(("synthetic-300x5", synthetic(300, ["cpu0", "cpu1", "gpu", "dla0", "dla1"])))
    rows = []
    print(f"{'profile':<30}{'layers':>7}{'PEs':>4}  {'method':<10}{'stages':>7}{'fps':>10}"
          f"{'vs optimal':>12}{'solve ms':>10}")
    for name, prof in cases:
        results, bound = {}, None
        for m in METHODS:
            extra = {"time_limit_s": args.time_limit} if m == "optimal" else {}
            try:
                results[m] = make_plan(prof, m, **extra)
            except HetschedError as e:
                results[m] = str(e)
                bound = getattr(e, "lower_bound_ms", bound)   # what a timed-out search proved
        opt = results.get("optimal")
        for m, plan in results.items():
            row = {"profile": name, "layers": len(prof.layers), "pes": list(prof.pes), "method": m}
            if isinstance(plan, str):
                row["error"] = plan
                print(f"{name:<30}{len(prof.layers):>7}{len(prof.pes):>4}  {m:<10} failed: {plan[:70]}")
            else:
                ratio = opt.bottleneck_ms / plan.bottleneck_ms if not isinstance(opt, str) else None
                worst = bound / plan.bottleneck_ms if ratio is None and bound else None
                row.update(stages=len(plan.stages), throughput_fps=plan.throughput_fps,
                           bottleneck_ms=plan.bottleneck_ms, ratio_to_optimal=ratio,
                           ratio_to_optimal_at_least=worst, solve_ms=plan.solve_ms, plan=plan.to_dict())
                r = f"{ratio:.4f}" if ratio is not None else f">={worst:.4f}" if worst else "-"
                print(f"{name:<30}{len(prof.layers):>7}{len(prof.pes):>4}  {m:<10}{len(plan.stages):>7}"
                      f"{plan.throughput_fps:>10.2f}{r:>12}{plan.solve_ms:>10.1f}")
            rows.append(row)
        sys.stdout.flush()
    write_text(args.output, json.dumps(rows, indent=1) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
