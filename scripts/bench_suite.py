#!/usr/bin/env python3
"""The benchmark suite on this machine: `hetsched bench` for each zoo network (network methods)
and for the shipped tiny-yolov3 pipeline spec (whole detection loop), each report in its own
folder under --out, and one summary markdown table of all of them.

    python scripts/bench_suite.py [--models tiny-yolov3,yolov4-tiny] [--frames 50] [--repeat 3] [--out out/bench]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hetsched.atomic import write_text  # noqa: E402
from hetsched.bench import HEADER, markdown_rows  # noqa: E402
from hetsched.cli import main as hetsched  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny-yolov2,tiny-yolov3,yolov4-tiny")
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="out/bench")
    args = ap.parse_args()
    out = Path(args.out)
    runs = [(m, ["--model", m]) for m in args.models.split(",") if m]
    runs.append(("tiny-yolov3 detection loop", [str(REPO / "pipelines" / "tiny-yolov3.yaml")]))
    rows = ["| run " + HEADER[0], "|---" + HEADER[1]]
    for name, argv in runs:
        folder = out / name.replace(" ", "-")
        rc = hetsched(["bench", *argv, "--frames", str(args.frames), "--repeat", str(args.repeat),
                       "-o", str(folder)])
        if rc != 0:
            rows.append(f"| {name} | failed (exit {rc}) |" + " |" * 9)
            continue
        rows += markdown_rows(json.loads((folder / "bench.json").read_text()), f"| {name} ")
    machine = json.loads((folder / "bench.json").read_text())["machine"] if runs else {}
    text = ("# Benchmark suite\n\nCommand: `python scripts/bench_suite.py " + " ".join(sys.argv[1:])
            + f"`\n\nMachine: {machine.get('cpu')}, {machine.get('cores')} cores, host "
            f"`{machine.get('host')}`\n\n" + "\n".join(rows) + "\n")
    write_text(out / "summary.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
