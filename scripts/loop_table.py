#!/usr/bin/env python3
"""Issue 12's done-when table from a folder of whole-loop `hetsched bench --json` reports (one
`MODEL-SIZE.json` per zoo model and size), with its two checks: every planned method within 10%
of its `predicted_fps`, and `chosen` within 3% of the best measured method and ahead of
`loop-intra-op`. Make the folder with, per model and size:

    hetsched bench --model M --size N --source synthetic:640x480 --repeat 3 --json > DIR/M-N.json
    python scripts/loop_table.py DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

PLANNED = ("replicate", "heuristic", "optimal")
ORDER = ("tiny-yolov2", "tiny-yolov3", "yolov4-tiny", "yolov2", "yolov3")   # small to large


def _cell(m: dict) -> str:
    stages = len((m.get("plan") or {}).get("stages", [])) or "?"
    return (f"{m['fps']:.2f} / {m['predicted_fps']:.2f} ({m['fps'] / m['predicted_fps']:.2f}), "
            f"{stages} st")


def table(reports: list[tuple[str, dict]]) -> tuple[str, dict]:
    rows = ["| model | loop-sequential | loop-intra-op | replicate: measured / predicted (ratio) "
            "| heuristic | optimal | chosen (vs best measured, vs loop-intra-op) |",
            "|---|---|---|---|---|---|---|"]
    ratios, good = [], 0
    for name, doc in reports:
        ms = doc["methods"]
        cells = [f"{ms[k]['fps']:.2f}" if k in ms else "-" for k in ("loop-sequential", "loop-intra-op")]
        cells += [_cell(ms[k]) if k in ms and ms[k].get("predicted_fps") else "-" for k in PLANNED]
        ratios += [ms[k]["fps"] / ms[k]["predicted_fps"] for k in PLANNED
                   if k in ms and ms[k].get("predicted_fps")]
        chosen = doc.get("chosen")
        if chosen in ms:
            best = max(v["fps"] for v in ms.values())
            vs_best = ms[chosen]["fps"] / best
            intra = ms.get("loop-intra-op", {}).get("fps")
            vs_intra = ms[chosen]["fps"] / intra if intra else None
            good += vs_best >= 0.97 and vs_intra is not None and vs_intra > 1.0
            cells.append(f"{chosen}: {vs_best:.3f}, "
                         + (f"{vs_intra:.2f}x" if vs_intra is not None else "no loop-intra-op"))
        else:
            cells.append(f"{chosen}: not measured")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    within = sum(0.9 <= r <= 1.1 for r in ratios)
    summary = {"planned": len(ratios), "within_10pct": within,
               "ratio_min": min(ratios, default=None), "ratio_max": max(ratios, default=None),
               "ratio_median": statistics.median(ratios) if ratios else None,
               "chosen_ok": good, "models": len(reports)}
    return "\n".join(rows), summary


def _rank(model: str) -> int:
    return ORDER.index(model) if model in ORDER else len(ORDER)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="folder of MODEL-SIZE.json bench reports")
    args = ap.parse_args(argv)
    files = sorted((p for p in Path(args.folder).glob("*-*.json") if p.stem.rsplit("-", 1)[1].isdigit()),
                   key=lambda p: (-int(p.stem.rsplit("-", 1)[1]), _rank(p.stem.rsplit("-", 1)[0]), p.stem))
    if not files:
        print(f"error: no MODEL-SIZE.json reports in {args.folder}", file=sys.stderr)
        return 1
    reports = []
    for p in files:
        try:
            reports.append((" ".join(p.stem.rsplit("-", 1)),
                            json.loads(p.read_text())))
        except (OSError, ValueError) as e:
            print(f"warning: {p} left out ({e})", file=sys.stderr)
    text, s = table(reports)
    print(text)
    if not s["planned"]:
        print("\nno planned method with a predicted_fps in these reports")
        return 0
    print(f"\n{s['within_10pct']} of {s['planned']} planned within 10% of predicted "
          f"(measured / predicted {s['ratio_min']:.2f}-{s['ratio_max']:.2f}, median "
          f"{s['ratio_median']:.2f}); chosen within 3% of the best and ahead of loop-intra-op: "
          f"{s['chosen_ok']} of {s['models']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
