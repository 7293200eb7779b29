#!/usr/bin/env python3
"""Where a whole-loop plan loses to its prediction: each stage member's runs inside the running
pipeline (from `Pipeline.events`, the first quarter of the frames left out) against the time the
contract prices it at, and the plan's fps against its prediction. A stage that runs far over its
price inside the pipeline but not alone is meeting another thread (how NMS's hold on the GIL
showed: a Postprocess stage priced at 21 ms ran 70 ms).

    python scripts/stage_times.py [--model yolov4-tiny] [--size 320] [--methods replicate,optimal] [--frames 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hetsched import job  # noqa: E402
from hetsched.partition import make_plan  # noqa: E402
from hetsched.runtime.sources import open_source  # noqa: E402
from hetsched.runtime.spec import from_dict  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--model", default="yolov4-tiny", help="zoo network")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--source", default="synthetic:640x480")
    ap.add_argument("--methods", default="replicate,heuristic,optimal")
    ap.add_argument("--frames", type=int, default=40, help="frames per run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs per method")
    ap.add_argument("--workdir", default="out", help="where profiles are cached")
    args = ap.parse_args(argv)
    spec = from_dict({"model": {"zoo": args.model, "size": args.size}, "source": args.source,
                      "frames": None}, "command line")
    spec.workdir = args.workdir
    g, _ = job.load_model(spec.model, spec.workdir)
    prof, _ = job.cached_profile(g, job.default_pes(), spec.workdir, spec=spec,
                                 say=lambda m: print(m, file=sys.stderr))
    plans = {m: make_plan(prof, m, **({"time_limit_s": 10.0} if m == "optimal" else {}))
             for m in args.methods.split(",")}
    runs = {m: defaultdict(list) for m in plans}
    fps = {m: [] for m in plans}
    for _ in range(args.rounds):
        for m, plan in plans.items():
            pipe = job.build_pipeline(g, prof, plan, spec, open_source(spec.source, args.frames),
                                      record=10**9)
            fps[m].append(pipe.run().fps)
            for j, pe, seq, t0, t1 in pipe.events:
                if seq >= args.frames // 4:
                    runs[m][(j, pe)].append((t1 - t0) * 1e3)
    for m, plan in plans.items():
        got = statistics.median(fps[m])
        print(f"{m}: predicted {plan.throughput_fps:.2f} fps, measured {got:.2f} "
              f"({got / plan.throughput_fps:.3f}), runs {', '.join(f'{x:.2f}' for x in fps[m])}")
        for j, (s, cost) in enumerate(zip(plan.stages, plan.stage_costs)):
            for pe in s.pes:
                ms = runs[m][(j, pe)]
                if ms:
                    print(f"  stage {j} [{s.first}-{s.last}] on {pe}: priced {cost.time_ms(pe):.2f} ms, "
                          f"ran median {statistics.median(ms):.2f} mean {statistics.mean(ms):.2f} "
                          f"({len(ms)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
