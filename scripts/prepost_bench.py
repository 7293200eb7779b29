#!/usr/bin/env python3
"""Pre- and post-processing per frame, as the runtime's loop runs them (`runtime.task.make_task`:
the spec's letterbox, colour, scaling and layout; the model's decoder and NMS), for each zoo
model: ms per call on this machine, with OpenCV on one thread as the runtime sets it.

Post-processing is timed on two kinds of outputs: zeros (what emulated stages hand on: nothing
passes the threshold, so it is the decoding alone) and the random-weight model's own outputs on
the frames (~2,000 boxes through NMS; a trained model passes tens).

With `--against REV`, the package as it was at git revision REV is timed too, interleaved with
the working tree's round by round (the VM's speed moves 2-4x within minutes), on the same frames
and outputs; the table gives medians over rounds and their ratio.

    python scripts/prepost_bench.py [--against REV] [--models M,...] [--size 416]
        [--source synthetic:640x480] [--rounds 7] [--calls 40] [--json OUT]
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from hetsched import graph  # noqa: E402
from hetsched.atomic import write_text  # noqa: E402
from hetsched.models.zoo import ZOO, build_zoo  # noqa: E402
from hetsched.ortsession import session  # noqa: E402
from hetsched.runtime.frame import Frame  # noqa: E402
from hetsched.runtime.sources import open_source  # noqa: E402
from hetsched.runtime.spec import from_dict  # noqa: E402
from hetsched.runtime.task import make_task  # noqa: E402


def package_at(rev: str, into: Path):
    """`hetsched` as it was at `rev`, importable beside the working tree's as `hetsched_at_rev`
    (its modules import one another relatively, so they stay within that copy)."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "hetsched"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    (into / "hetsched").rename(into / "hetsched_at_rev")
    sys.path.insert(0, str(into))
    return importlib.import_module("hetsched_at_rev.runtime.task")


def _per_call_ms(work, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        work(i)
    return (time.perf_counter() - t0) * 1e3 / n


def workloads(task, g, images, outputs):
    """pre, post on zeros, post on the model's outputs, as functions of a call number."""
    metas = []
    for i, img in enumerate(images):
        f = Frame(i, img, 0.0)
        task.pre(f)
        metas.append(f.meta)
    zeros = {o: np.zeros(g.tensors[o].shape, np.float32) for o in g.outputs}
    n = len(images)

    def pre(i):
        task.pre(Frame(i, images[i % n], 0.0))

    def post_zeros(i):
        task.post(Frame(i, None, 0.0, tensors=dict(zeros), meta=metas[i % n]))

    def post_model(i):
        task.post(Frame(i, None, 0.0, tensors=dict(outputs[i % n]), meta=metas[i % n]))
    return {"pre": pre, "post (zeros)": post_zeros, "post (model)": post_model}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--against", metavar="REV", help="also time the package at this git revision")
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--source", default="synthetic:640x480")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=40, help="calls per workload and round")
    ap.add_argument("--json", metavar="OUT", help="write the figures here too")
    args = ap.parse_args()
    import cv2
    cv2.setNumThreads(1)        # as runtime.task sets it
    tmp = tempfile.TemporaryDirectory()
    then = package_at(args.against, Path(tmp.name)) if args.against else None
    doc, rows = {}, []
    for name in args.models.split(","):
        g = graph.from_model(build_zoo(name, args.size), name=f"{name}-{args.size}")
        spec = from_dict({"model": {"zoo": name}, "source": args.source}, "prepost-bench")
        src = open_source(spec.source, 8)
        images = [src.read() for _ in range(8)]
        src.close()
        task = make_task(g, spec.detect)
        sess = session(g.model, threads=2, opt_level="all")
        outputs = []
        for img in images:
            f = Frame(0, img, 0.0)
            task.pre(f)
            outputs.append(dict(zip(g.outputs, sess.run(g.outputs, f.tensors))))
        sides = {"now": workloads(task, g, images, outputs)}
        if then is not None:
            sides[args.against] = workloads(then.make_task(g, spec.detect), g, images, outputs)
        times = {side: {k: [] for k in w} for side, w in sides.items()}
        for w in sides.values():                    # warm-up: first calls allocate and cache
            for work in w.values():
                _per_call_ms(work, 3)
        order = list(sides)
        for r in range(args.rounds):
            for kind in sides["now"]:
                for side in order if r % 2 == 0 else order[::-1]:   # side by side, taking turns first
                    times[side][kind].append(_per_call_ms(sides[side][kind], args.calls))
        med = {side: {k: statistics.median(v) for k, v in t.items()} for side, t in times.items()}
        doc[name] = {"times_ms": times, "median_ms": med}
        for kind in sides["now"]:
            cells = [f"{med['now'][kind]:.3f}"]
            if then is not None:
                cells += [f"{med[args.against][kind]:.3f}", f"{med[args.against][kind] / med['now'][kind]:.2f}x"]
            rows.append(f"| {name} {args.size} | {kind} | " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr)
    head = "| model | work | ms now |" + (f" ms at {args.against} | speed-up |" if then else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    print("\n".join(rows))
    if args.json:
        write_text(args.json, json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
