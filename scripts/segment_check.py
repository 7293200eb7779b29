#!/usr/bin/env python3
"""Does a CPU profile predict the runtime? For every zoo model: profile it on the CPU PEs at the
runtime's engine configuration, then run random contiguous segments as runtime stages on each PE
(interleaved, medians over rounds) and compare with the profile's prediction (layer costs plus the
PE's stage overhead). Prints one row per segment and PE and the worst error per model.

    python scripts/segment_check.py [--size 416] [--pes cpu0,cpu1] [--segments 12] [--runs 7] [-o segment_check.json]
"""

import argparse
import json
import sys

from hetsched import graph
from hetsched.atomic import write_text
from hetsched.models.zoo import ZOO, build_zoo
from hetsched.profiler.cpu import profile_cpu
from hetsched.cores import parse_pes
from hetsched.profiler.segments import check_segments, random_segments


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--pes", default="cpu0,cpu1")
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--segments", type=int, default=12, help="random segments per model")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--optimization", default="all", help="onnxruntime level the runtime uses")
    ap.add_argument("-o", "--output", default="segment_check.json")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'model':<14}{'PE':<6}{'segment':>10}{'predicted ms':>14}{'measured ms':>13}{'error':>9}")
    for name in args.models.split(","):
        g = graph.load(build_zoo(name, args.size))
        prof = profile_cpu(g, parse_pes(args.pes), runs=args.runs, warmup=2,
                           optimization=args.optimization)
        res = check_segments(g, prof, random_segments(len(g), args.segments, seed=len(g)),
                             runs=args.runs)
        for r in res:
            print(f"{name:<14}{r.pe:<6}{f'{r.first}..{r.last}':>10}{r.predicted_ms:>14.3f}"
                  f"{r.measured_ms:>13.3f}{r.error:>+9.3f}")
            rows.append({"model": name, "size": args.size, "pe": r.pe, "first": r.first,
                         "last": r.last, "predicted_ms": r.predicted_ms,
                         "measured_ms": r.measured_ms, "error": r.error})
        worst = max(res, key=lambda r: abs(r.error))
        print(f"{name}: worst error {worst.error:+.3f} ({worst.pe}, {worst.first}..{worst.last}); "
              f"within 10%: {sum(abs(r.error) <= 0.10 for r in res)} of {len(res)}")
        sys.stdout.flush()
    write_text(args.output, json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
