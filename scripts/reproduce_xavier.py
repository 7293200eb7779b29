#!/usr/bin/env python3
"""The Xavier experiment on the modeled AGX Xavier: every zoo network (ReLU variants, 416, FP16)
planned over the GPU and both DLAs: `single` (GPU only), `replicate` (whole-network copies on
GPU + DLA0 + DLA1 where they can run it), the heuristic and the exact optimum, predicted fps side
by side, plus the heuristic and replicate with --dla-fallback (layers a DLA cannot run fall back
to the GPU, as jetson_benchmarks and JEDI's engines do). Every figure is a prediction from a
modeled profile, calibrated on YOLOv2-relu alone (profiles/boards/jetson-agx-xavier.json).

    python scripts/reproduce_xavier.py [--time-limit 10] [-o out/xavier]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hetsched import graph  # noqa: E402
from hetsched.atomic import write_text  # noqa: E402
from hetsched.errors import HetschedError  # noqa: E402
from hetsched.models.zoo import ZOO, build_zoo  # noqa: E402
from hetsched.partition import make_plan  # noqa: E402
from hetsched.profiler.board import load_board  # noqa: E402
from hetsched.profiler.roofline import model_profile  # noqa: E402

COLUMNS = [("single", "single", {}), ("replicate", "replicate", {}), ("heuristic", "heuristic", {}),
           ("optimal", "optimal", {}), ("replicate+fb", "replicate", {"dla_fallback": True}),
           ("heuristic+fb", "heuristic", {"dla_fallback": True})]


def describe(plan) -> str:
    return " | ".join(f"{'+'.join(s.pes)} {s.first}-{s.last}" for s in plan.stages)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("-o", "--output", default="out/xavier")
    args = ap.parse_args()
    board = load_board("jetson-agx-xavier")
    pes = ["gpu", "dla0", "dla1"]
    rows, doc = [], {}
    for name in ZOO:
        g = graph.from_model(build_zoo(name, 416, "relu"), name=f"{name}-relu-416")
        prof = model_profile(g, board, args.precision)
        doc[name] = {}
        for col, method, extra in COLUMNS:
            if method == "optimal":
                extra = {"time_limit_s": args.time_limit}
            try:
                plan = make_plan(prof, method, pes=pes, **extra)
                doc[name][col] = {"fps": round(plan.throughput_fps, 1), "plan": describe(plan)}
            except HetschedError as e:
                doc[name][col] = {"fps": None, "error": str(e)}
            print(f"{name:<12} {col:<13} {doc[name][col].get('fps')}  {doc[name][col].get('plan', doc[name][col].get('error'))}",
                  file=sys.stderr)
        best = max((c for c in doc[name] if doc[name][c]["fps"] and "fb" not in c),
                   key=lambda c: doc[name][c]["fps"])
        gpu_only = doc[name]["single"]["fps"]
        verdict = ("GPU only is best" if doc[name][best]["fps"] <= gpu_only * 1.005
                   else f"{doc[name][best]['fps'] / gpu_only:.2f}x GPU-only")
        cells = [f"{doc[name][c]['fps']:.1f}" if doc[name][c]["fps"] else "gave up" if c == "optimal"
                 else "n/a" for c, _, _ in COLUMNS]
        rows.append(f"| {name}-relu | " + " | ".join(cells) + f" | {verdict} |")
    head = ("| network (416, FP16) | single (GPU) | replicate (GPU+2 DLA) | heuristic | optimal | "
            "replicate + fallback | heuristic + fallback | verdict |\n|---|---|---|---|---|---|---|---|")
    table = head + "\n" + "\n".join(rows)
    out = Path(args.output)
    write_text(out / "xavier.md", "# Modeled AGX Xavier: predicted fps\n\nCommand: `python "
               "scripts/reproduce_xavier.py`\n\n" + table + "\n\nJEDI measured, YOLOv2-relu FP16: "
               "187 fps tuned GPU-only, 295 fps GPU+DLA (the calibration targets).\n")
    write_text(out / "xavier.json", json.dumps(doc, indent=1) + "\n")
    chart(doc, out / "xavier.png")
    print(table)
    print(f"\nwrote {out / 'xavier.md'}, {out / 'xavier.json'}, {out / 'xavier.png'}")
    return 0


def chart(doc, path):
    import numpy as np
    from hetsched.plots import _pyplot, _save
    plt = _pyplot()
    nets = list(doc)
    cols = [c for c, _, _ in COLUMNS]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    w = 0.8 / len(cols)
    for k, c in enumerate(cols):
        ax.bar(np.arange(len(nets)) + k * w, [doc[n][c]["fps"] or 0 for n in nets], w, label=c)
    ax.set_xticks(np.arange(len(nets)) + 0.4 - w / 2)
    ax.set_xticklabels([f"{n}-relu" for n in nets])
    ax.set_ylabel("predicted fps (modeled, not measured)")
    ax.set_title("Modeled Jetson AGX Xavier, FP16, 416x416: GPU + DLA0 + DLA1")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    _save(fig, path)


if __name__ == "__main__":
    sys.exit(main())
