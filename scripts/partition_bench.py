#!/usr/bin/env python3
"""Every planning method over every profile in profiles/ (and, with --synthetic, seeded 300-layer
profiles over 4 and 5 PEs, skip-heavy 40-120-layer ones over 4, and the zoo's skip-heavy
densenet-yolo and unet-yolo modeled on the Xavier): predicted throughput, ratio to the proven optimum, and solve time.
Where the exact search gives up, the lower bound it proved gives each method's worst-case ratio
(">=r"). Writes the table to stdout and the rows to a JSON file.

    python scripts/partition_bench.py [--profiles profiles] [--synthetic] [--time-limit 10] [--only TEXT]
                                      [--max-stages 8] [-o partition_bench.json]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hetsched import profile
from hetsched.atomic import write_text
from hetsched.errors import HetschedError
from hetsched.partition import METHODS, plan_every
from hetsched.partition.cost import DEFAULT_MAX_STAGES

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


def skip_heavy(n: int, pes, seed: int = 0) -> profile.Profile:
    """`synthetic`'s costs with the connectivity of DenseNet blocks, U-Nets, CSP and C2f blocks:
    about 30% of the layers also read a random earlier tensor (any distance back), so many
    tensors stay live across every cut. Shapes of the problem only."""
    rng = np.random.default_rng(seed)
    prof = synthetic(n, pes, seed).to_dict()
    for i, layer in enumerate(prof["layers"]):
        layer["inputs"] = [layer["inputs"][0]]
        if i >= 2 and rng.random() < 0.3:
            layer["inputs"].append(f"t{int(rng.integers(0, i - 1))}")
    prof["model"]["name"] = f"skip-heavy-{n}x{len(pes)}-s{seed}"
    return profile.from_dict(prof)


def detector_like(n: int, pes, seed: int = 0) -> profile.Profile:
    """A seeded 300-layer network shaped like a YOLO: conv + activation pairs with a residual add
    every few layers, feature maps that shrink with depth, three heads (graph outputs), and an
    upsample + concat route before the last two heads, which the DLAs cannot run (as NVDLA v1
    cannot run Resize). GPU per conv lognormal around the layer's size; DLA 2.5x the GPU on
    convolutions, 1.3x on element-wise ops; every CPU core 40x. Shapes only, no board."""
    rng = np.random.default_rng(seed)
    layers, tensors = [], {"x": {"bytes": 2_076_672}}
    heads = {n - 1, (2 * n) // 3, n // 3}
    ups = {n // 3 + 2, (2 * n) // 3 + 2}
    prev, skip = "x", None
    for i in range(n):
        depth = i / n
        size = int(2_000_000 * (0.5 ** (4 * min(depth, 0.6))))
        ins = [prev]
        if i in ups:
            op, gpu = "Resize", 0.02
            dla = None
        elif i - 1 in ups:
            op, gpu = "Concat", 0.01
            ins.append(f"t{max(0, i - n // 6)}")
            dla = 0.013
        elif i % 2 == 0:
            op = "Conv"
            gpu = float(rng.lognormal(np.log(0.08 * (1 + 2 * depth)), 0.5))
            dla = gpu * 2.5
        elif i % 6 == 5 and skip is not None:
            op, gpu = "Add", 0.01
            ins.append(skip)
            dla = 0.013
        else:
            op, gpu = "LeakyRelu", 0.008
            dla = 0.0104
        if i % 6 == 1:
            skip = f"t{i}"
        cost = {}
        for p in pes:
            k = KINDS[p]
            cost[p] = round(gpu * 40, 5) if k == "cpu" else round(gpu, 5) if k == "gpu" else \
                (None if dla is None else round(dla, 5))
        layers.append({"name": f"l{i}", "op": op, "inputs": ins, "outputs": [f"t{i}"], "cost_ms": cost})
        tensors[f"t{i}"] = {"bytes": size}
        prev = f"t{i}"
    return profile.from_dict({
        "schema": "hetsched.profile/1", "source": "modeled",
        "model": {"name": f"detector-like-{n}x{len(pes)}", "sha256": None, "inputs": {"x": [1]}},
        "board": {"name": "synthetic (not a board)"}, "host": pes[0],
        "pes": {p: {"kind": KINDS[p]} for p in pes}, "layers": layers, "tensors": tensors,
        "graph_outputs": [f"t{h}" for h in sorted(heads)],
        "transfer": {"default": {"latency_ms": 0.02, "ms_per_mb": 0.01}}})


def build_cases(profiles_dir, with_synthetic: bool) -> list[tuple[str, profile.Profile, list[str] | None]]:
    """(name, profile, allowed PEs or None) for every case the table covers."""
    cases = []
    for path in sorted(Path(profiles_dir).rglob("*.json")):
        try:
            prof = profile.load(path)
        except HetschedError:
            continue  # not a profile (e.g. a check table)
        cases.append((path.stem, prof, None))
        accel = [p for p, pe in prof.pes.items() if pe.kind != "cpu"]
        if any(prof.pes[p].kind == "dla" for p in accel) and len(accel) < len(prof.pes):
            cases.append((f"{path.stem} [{'+'.join(accel)}]", prof, accel))  # JEDI's setting
    if with_synthetic:
        for name, make, pes in [("synthetic", synthetic, 4), ("synthetic", synthetic, 5),
                                ("detector-like", detector_like, 4),
                                ("detector-like", detector_like, 5)]:
            names = ["cpu0", "gpu", "dla0", "dla1"] if pes == 4 else ["cpu0", "cpu1", "gpu", "dla0", "dla1"]
            cases.append((f"{name}-300x{pes}", make(300, names), None))
        from hetsched import graph
        from hetsched.models.zoo import SKIP_NETS, build_zoo
        from hetsched.profiler.board import load_board
        from hetsched.profiler.roofline import model_profile
        for net in SKIP_NETS:     # real skip-heavy networks, modeled on the Xavier (relu, fp16)
            g = graph.from_model(build_zoo(net, 416, "relu"), name=f"{net}-relu-416")
            cases.append((f"{net}-relu-416 (modeled Xavier)",
                          model_profile(g, load_board("jetson-agx-xavier"), "fp16"), None))
        for n, seed in [(40, 0), (60, 1), (80, 2), (100, 3), (120, 4), (100, 5)]:
            cases.append((f"skip-heavy-{n}x4-s{seed}",
                          skip_heavy(n, ["cpu0", "gpu", "dla0", "dla1"], seed), None))
    return cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--profiles", default="profiles", help="folder of profile JSON files (searched recursively)")
    ap.add_argument("--synthetic", action="store_true",
                    help="add seeded 300-layer 4- and 5-PE profiles, skip-heavy 40-120 x 4 ones and "
                         "densenet-yolo / unet-yolo modeled on the Xavier")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds for the exact search")
    ap.add_argument("--only", metavar="TEXT[,TEXT]", help="only the profiles whose name contains a TEXT")
    ap.add_argument("--max-stages", type=int, default=DEFAULT_MAX_STAGES, help="stages per plan")
    ap.add_argument("-o", "--output", default="partition_bench.json", help="the rows as JSON")
    args = ap.parse_args(argv)
    cases = build_cases(args.profiles, args.synthetic)
    if args.only:
        cases = [c for c in cases if any(t in c[0] for t in args.only.split(","))]
    rows = []
    print(f"{'profile':<44}{'layers':>7}{'PEs':>4}  {'method':<10}{'stages':>7}{'fps':>10}"
          f"{'vs optimal':>12}{'solve ms':>10}")
    for name, prof, pes in cases:
        npes = len(pes or prof.pes)
        tried = plan_every(prof, METHODS, time_limit_s=args.time_limit, pes=pes,
                           max_stages=args.max_stages)
        opt, bound = tried.optimum, tried.lower_bound_ms   # a timed-out search's proven bound
        for m in METHODS:
            plan = tried.plans.get(m)
            row = {"profile": name, "layers": len(prof.layers), "pes": list(pes or prof.pes),
                   "method": m}
            if plan is None:
                row["error"] = tried.errors[m]
                print(f"{name:<44}{len(prof.layers):>7}{npes:>4}  {m:<10} failed: {row['error'][:70]}")
            else:
                ratio = opt.bottleneck_ms / plan.bottleneck_ms if opt is not None else None
                worst = bound / plan.bottleneck_ms if ratio is None and bound else None
                row.update(stages=len(plan.stages), throughput_fps=plan.throughput_fps,
                           bottleneck_ms=plan.bottleneck_ms, ratio_to_optimal=ratio,
                           ratio_to_optimal_at_least=worst, solve_ms=plan.solve_ms, plan=plan.to_dict(),
                           proven=plan.proven)
                r = f"{ratio:.4f}" if ratio is not None else f">={worst:.4f}" if worst else "-"
                print(f"{name:<44}{len(prof.layers):>7}{npes:>4}  {m:<10}{len(plan.stages):>7}"
                      f"{plan.throughput_fps:>10.2f}{r:>12}{plan.solve_ms:>10.1f}")
            rows.append(row)
        sys.stdout.flush()
    solved = {r["profile"] for r in rows if r["method"] == "optimal" and r.get("proven")}
    heur = [r for r in rows if r["method"] == "heuristic" and r["profile"] in solved]
    if heur:
        ratios = np.array([r["ratio_to_optimal"] for r in heur])
        print(f"\nheuristic / optimum over the {len(heur)} profiles the exact planner solved: "
              f"mean {ratios.mean():.4f}, worst {ratios.min():.4f}; heuristic solve at most "
              f"{max(r['solve_ms'] for r in heur):.0f} ms")
    opt_ms = [r["solve_ms"] for r in rows if r["method"] == "optimal" and r.get("proven")]
    gaps = [r["plan"]["gap"] for r in rows if r["method"] == "optimal" and r.get("proven") is False]
    print(f"optimal: proven on {len(solved)} of {len(cases)} within {args.time_limit:g} s"
          + (f", slowest {max(opt_ms) / 1e3:.2f} s" if opt_ms else "")
          + (f"; elsewhere the best known plan, within {100 * max(gaps):.1f}% of the optimum at "
             f"worst" if gaps else ""))
    write_text(args.output, json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
