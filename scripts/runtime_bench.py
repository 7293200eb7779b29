#!/usr/bin/env python3
"""Runtime benchmarks (figures for notes and the README, never timed unit tests):

1. framework overhead: frames/s through a 4-stage pipeline of no-op engines;
2. emulated fixed-time stages: measured throughput against the contract's bound;
3. tiny-yolov3 at 416 on this machine: the planned cpu0,cpu1 pipeline against one onnxruntime
   session with default threads (all cores), the whole detection loop, interleaved A B A B so
   machine drift falls on both alike.

    python scripts/runtime_bench.py [--quick] [-o runtime_bench.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hetsched import job  # noqa: E402
from hetsched.engines import EngineOptions  # noqa: E402
from hetsched.engines.emulated import EmulatedEngine  # noqa: E402
from hetsched.runtime.pipeline import Pipeline, Stage, Worker  # noqa: E402
from hetsched.runtime.sources import open_source  # noqa: E402
from hetsched.runtime.spec import from_dict  # noqa: E402


class _Count:
    name = "count"

    def __init__(self, n):
        self.n, self.i = n, 0

    def read(self):
        if self.i >= self.n:
            return None
        self.i += 1
        return self.i

    def close(self):
        pass


class _Noop:
    def run(self, feeds):
        return {}

    def close(self):
        pass


def _pre(frame):
    frame.tensors = {"x": np.zeros((1, 3, 4, 4), np.float32)}


def overhead(frames: int) -> dict:
    stages = [Stage([Worker(f"pe{k}", _Noop)]) for k in range(4)]
    report = Pipeline(_Count(frames), stages, pre=_pre, post=lambda f: None).run()
    return {"frames": frames, "fps": round(report.fps, 1)}


def _relu(c=3):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 4, 4])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["x_out"])], "g", [x],
                          [helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [1, c, 4, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def emulated(frames: int, stage_ms=(5.0, 8.0, 6.0, 4.0)) -> dict:
    """Distinct emulated PEs with fixed stage times: the contract's bound is the slowest stage."""
    model = _relu()
    opts = EngineOptions(emulate="timing")

    def stage(k, ms):
        return Stage([Worker(f"dla{k}", lambda: EmulatedEngine(model, f"dla{k}", opts, ms))])
    stages = [stage(k, ms) for k, ms in enumerate(stage_ms)]
    report = Pipeline(_Count(frames), stages, pre=_pre, post=lambda f: None).run()
    bound = 1000.0 / max(stage_ms)
    return {"stage_ms": list(stage_ms), "frames": frames, "bound_fps": round(bound, 2),
            "fps": round(report.fps, 2), "ratio": round(report.fps / bound, 4)}


def detector(frames: int, rounds: int, workdir: str) -> dict:
    pes = job.default_pes()
    spec = from_dict({"model": {"zoo": "tiny-yolov3", "size": 416}, "pes": pes, "frames": frames,
                      "source": "synthetic:640x480"}, "bench")
    g, _ = job.load_model(spec.model, workdir)
    prof, _ = job.cached_profile(g, pes, workdir, say=lambda m: print(m, file=sys.stderr),
                                 spec=spec)
    plan, _ = job.plan_to_run(prof)   # what `hetsched demo` runs: the best-priced plan
    piped, seq, seq1 = [], [], []
    for r in range(rounds):
        seq.append(job.run_sequential(g, spec, frames, threads=0).fps)
        piped.append(job.build_pipeline(g, prof, plan, spec, open_source(spec.source, frames)).run().fps)
        seq1.append(job.run_sequential(g, spec, frames, threads=1).fps)
        print(f"round {r + 1}: pipeline {piped[-1]:.2f} fps, one session (all cores) "
              f"{seq[-1]:.2f}, one session (1 thread) {seq1[-1]:.2f}", file=sys.stderr)
    med = statistics.median
    return {"model": "tiny-yolov3-416", "pes": pes, "plan": plan.to_dict(),
            "predicted_fps": round(plan.throughput_fps, 2),
            "frames_per_round": frames, "rounds": rounds,
            "pipeline_fps": [round(v, 2) for v in piped],
            "one_session_all_cores_fps": [round(v, 2) for v in seq],
            "one_session_one_thread_fps": [round(v, 2) for v in seq1],
            "ratio_vs_all_cores": round(med(piped) / med(seq), 3),
            "ratio_vs_one_thread": round(med(piped) / med(seq1), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer frames and rounds")
    ap.add_argument("--workdir", default="out")
    ap.add_argument("-o", "--output", default="runtime_bench.json")
    args = ap.parse_args()
    q = args.quick
    result = {"machine": {"host": platform.node(), "cpu": _cpu(),
                          "python": platform.python_version()}}
    result["overhead"] = overhead(2000 if q else 10_000)
    print(f"overhead: {result['overhead']['fps']} frames/s through 4 no-op stages", file=sys.stderr)
    result["emulated"] = emulated(100 if q else 400)
    e = result["emulated"]
    print(f"emulated stages {e['stage_ms']} ms: {e['fps']} fps of a {e['bound_fps']} fps bound "
          f"({e['ratio']:.3f})", file=sys.stderr)
    result["detector"] = detector(30 if q else 100, 2 if q else 3, args.workdir)
    from hetsched.atomic import write_text
    write_text(args.output, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


def _cpu():
    from hetsched.cores import cpu_model_name
    return cpu_model_name()


if __name__ == "__main__":
    sys.exit(main())
