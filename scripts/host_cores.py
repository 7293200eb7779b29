#!/usr/bin/env python3
"""The emulated Xavier detection loop on one core against all of this machine's cores, interleaved.

The loop is scripts/closing_loop.py's; for each core set: its fps, the host's ceiling (the same
loop with every PE at 2% of its stage times) and how many cores the process kept busy. Where
the host's Python work decides a loop, its threads meet at the interpreter lock, and a second
core may add wake-ups across cores more than it adds work done.

    python scripts/host_cores.py [--models tiny-yolov3,yolov4-tiny] [--rounds 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from closing_loop import _fast_pes, xavier_loop  # noqa: E402

from hetsched import job  # noqa: E402
from hetsched.models.zoo import ZOO  # noqa: E402
from hetsched.runtime.sources import open_source  # noqa: E402


def _run(g, prof, plan, spec) -> tuple[float, float]:
    """(fps, cores busy: the process's CPU over the run's wall time)."""
    pipe = job.build_pipeline(g, prof, plan, spec, open_source(spec.source, spec.frames))
    c0, w0 = time.process_time(), time.perf_counter()
    fps = pipe.run(handle_signals=False).fps
    return fps, (time.process_time() - c0) / (time.perf_counter() - w0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--models", default=",".join(ZOO), help="zoo networks, comma-separated")
    ap.add_argument("--frames", type=int, default=1000, help="frames per run")
    ap.add_argument("--rounds", type=int, default=4,
                    help="rounds, each running both core sets (which goes first alternates)")
    ap.add_argument("--source", default="synthetic:320x240", help="the frames' source")
    ap.add_argument("--json", action="store_true", help="print the runs as JSON")
    args = ap.parse_args()
    logging.getLogger("hetsched").setLevel(logging.ERROR)   # the emulation notice, once a run
    every = sorted(os.sched_getaffinity(0))
    sets = {"1 core": every[:1], f"{len(every)} cores": every}
    doc = {}
    try:
        for name in args.models.split(","):
            g, prof, plan, spec = xavier_loop(name, args.source, args.frames)
            fast = _fast_pes(prof)
            _run(g, prof, plan, spec)      # warm-up, not counted: a process's first run is slower
            runs = {k: {"loop": [], "ceiling": []} for k in sets}
            for r in range(args.rounds):
                for k in (list(sets) if r % 2 == 0 else list(sets)[::-1]):
                    os.sched_setaffinity(0, sets[k])
                    runs[k]["loop"].append(_run(g, prof, plan, spec))
                    runs[k]["ceiling"].append(_run(g, fast, plan, spec))
            doc[name] = runs
            for k, v in runs.items():
                print(f"{name:12s} {k:8s} loop fps {statistics.median(f for f, _ in v['loop']):7.1f} "
                      f"({min(f for f, _ in v['loop']):.0f}-{max(f for f, _ in v['loop']):.0f}), "
                      f"cores busy {statistics.median(b for _, b in v['loop']):.2f}; ceiling fps "
                      f"{statistics.median(f for f, _ in v['ceiling']):7.1f} "
                      f"({min(f for f, _ in v['ceiling']):.0f}-{max(f for f, _ in v['ceiling']):.0f})",
                      file=sys.stderr if args.json else sys.stdout, flush=True)
    finally:
        os.sched_setaffinity(0, every)
    if args.json:
        print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
