#!/usr/bin/env python3
"""Profile every zoo network on this machine's CPU PEs into profiles/, and print how well the
sum of per-layer costs matches each PE's whole-model time (the profiler's proof).

    python scripts/profile_zoo.py [--size 416] [--pe cpu0,cpu1] [--runs 10] [--out profiles]
"""

import argparse
import json
import platform
import sys
from pathlib import Path

from hetsched import graph, profile
from hetsched.cli import Progress
from hetsched.models.zoo import ZOO, build_zoo
from hetsched.cores import cpu_model_name
from hetsched.profiler.cpu import profile_cpu
from hetsched.cores import parse_pes, usable_cores


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--pe", default=",".join(f"cpu{c}" for c in sorted(usable_cores())))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--out", default="profiles")
    args = ap.parse_args(argv)
    pes = parse_pes(args.pe)
    out = Path(args.out)
    rows = []
    print(f"machine: {platform.node()}, {cpu_model_name()}, PEs {args.pe}; "
          f"{args.runs} runs after {args.warmup} warm-up")
    print(f"{'model':<14}{'PE':<6}{'layers':>7}{'sum ms':>10}{'whole ms':>10}{'sum/whole':>11}{'optimised ms':>14}")
    for name in args.models.split(","):
        g = graph.load(build_zoo(name, args.size))
        prof = profile_cpu(g, pes, runs=args.runs, warmup=args.warmup, progress=Progress(quiet=True))
        path = out / f"{name}-{args.size}.{platform.node() or 'local'}.json"
        profile.save(prof, path)
        for pe in prof.pes:
            whole = prof.board["whole_model_ms"][pe]
            summed = prof.board["sum_layers_ms"][pe]
            opt = prof.board["optimized_model_ms"][pe]
            rows.append({"model": name, "pe": pe, "layers": len(g), "sum_ms": summed,
                         "whole_ms": whole, "ratio": summed / whole, "optimized_ms": opt,
                         "profile": str(path)})
            print(f"{name:<14}{pe:<6}{len(g):>7}{summed:>10.1f}{whole:>10.1f}{summed / whole:>11.3f}{opt:>14.1f}")
        sys.stdout.flush()
    (out / "zoo_profile_check.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
