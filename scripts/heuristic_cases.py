#!/usr/bin/env python3
"""The heuristic alone over every case of `partition_bench.py --synthetic`, each also with
`--dla-fallback` (where a GPU exists), without replication and at 4 stages: the plan's
bottleneck, latency, stage count and solve time (best of two), written to JSON; with --compare,
how many cases came out the same, better or worse than another such file.

To set a change against an older heuristic, run this script from this checkout with the old
package first on the path (the cases are built the same way; only the planner differs):

    git worktree add /tmp/old REV
    PYTHONPATH=/tmp/old python scripts/heuristic_cases.py -o old.json
    python scripts/heuristic_cases.py -o new.json --compare old.json

The README's before/after figures set this against 026310f, the heuristic before its rewrite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from partition_bench import build_cases  # noqa: E402

from hetsched.atomic import write_text  # noqa: E402
from hetsched.errors import HetschedError  # noqa: E402
from hetsched.partition import heuristic  # noqa: E402

OPTIONS = {"": {}, " fb": {"dla_fallback": True}, " norep": {"replication": False},
           " s4": {"max_stages": 4}}


def run(profiles: str) -> dict:
    out = {}
    for name, prof, pes in build_cases(profiles, True):
        for suffix, kw in OPTIONS.items():
            if kw.get("dla_fallback") and not any(p.kind == "gpu" for p in prof.pes.values()):
                continue
            try:
                times = []
                for _ in range(2):
                    t = time.perf_counter()
                    plan = heuristic.solve(prof, pes=pes, **kw)
                    times.append((time.perf_counter() - t) * 1e3)
                out[name + suffix] = {"bottleneck_ms": plan.bottleneck_ms, "latency_ms": plan.latency_ms,
                                      "stages": len(plan.stages), "solve_ms": min(times)}
            except HetschedError as e:
                out[name + suffix] = {"error": str(e)}
        print(f"{name}: done", file=sys.stderr)
    return out


def compare(new: dict, old: dict) -> str:
    same = better = worse = 0
    lines = []
    for case, a in new.items():
        b = old.get(case)
        if b is None or "error" in a or "error" in b:
            if b is not None and a.get("error") != b.get("error"):
                lines.append(f"  {case}: {b.get('error', 'a plan')} -> {a.get('error', 'a plan')}")
            continue
        x, y = a["bottleneck_ms"], b["bottleneck_ms"]
        if abs(x - y) <= 1e-9 * max(x, y):
            same += 1
        elif x < y:
            better += 1
        else:
            worse += 1
            lines.append(f"  {case}: worse, {y / x:.4f} of the old throughput")
    t_new = sum(a["solve_ms"] for a in new.values() if "solve_ms" in a)
    t_old = sum(b["solve_ms"] for b in old.values() if "solve_ms" in b)
    return "\n".join([f"{same} same, {better} better, {worse} worse; total solve time "
                      f"{t_old / 1e3:.1f} s -> {t_new / 1e3:.1f} s", *lines])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--profiles", default="profiles", help="folder of profile JSON files (searched recursively)")
    ap.add_argument("-o", "--output", default="heuristic_cases.json", help="each case's plan figures as JSON")
    ap.add_argument("--compare", metavar="OLD.json", help="a file this script wrote before")
    args = ap.parse_args(argv)
    new = run(args.profiles)
    write_text(args.output, json.dumps(new, indent=1) + "\n")
    print(f"wrote {args.output} ({len(new)} cases)")
    if args.compare:
        print(compare(new, json.loads(Path(args.compare).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
