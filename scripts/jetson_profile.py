#!/usr/bin/env python3
"""Run ON a Jetson board (JetPack's Python with TensorRT and cuda-python): measure a profile
of a model on the board's GPU and DLA cores, and its power.

Per layer and PE, the layer alone is built as a TensorRT engine (FP16 by default) and timed with
`execute_async_v3`; on a DLA it is built without GPU fallback, so a layer the DLA cannot run
fails to build and gets a null cost (TensorRT's IProfiler reports a whole DLA segment as one
`{ForeignNode[...]}`, so per-layer DLA times need per-layer engines). Each time includes the
engine's own host<->device copies of that layer's inputs and outputs, which over-charges small
layers; a later version should subtract a measured copy. CPU columns come from the CPU profiler
on the board's cores (the first CPU PE is the host). The board's power (INA3221 VDD_IN) is recorded while each PE's whole model runs.

NOT EXERCISED: no Jetson was available to the session that wrote this (README). Treat its first
run on a board as its test.

    python3 scripts/jetson_profile.py yolov3-relu-416.onnx --pes gpu,dla0,dla1 --cpu cpu0-7 -o xavier.json

What a board would settle (runs anywhere, no TensorRT needed): every figure the board file marks
assumed, with the measurement on the board that replaces it, and the probe models those
measurements use (hetsched/profiler/settle.py):

    python3 scripts/jetson_profile.py --settle jetson-agx-xavier
    python3 scripts/jetson_profile.py --write-probes probes
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    import numpy  # noqa: F401,E402  (hetsched's dependencies: say so in one line if they are missing)
except ImportError as e:
    sys.exit(f"jetson_profile.py: {e}; install hetsched's dependencies first (pip install -e .)")

from hetsched import graph, profile  # noqa: E402
from hetsched.engines import EngineError, EngineOptions  # noqa: E402
from hetsched.ortsession import random_feeds, session  # noqa: E402
from hetsched.power import detect  # noqa: E402
from hetsched.profile import PE, Transfer  # noqa: E402
from hetsched.profiler import assemble  # noqa: E402
from hetsched.profiler.cpu import profile_cpu  # noqa: E402
from hetsched.cores import parse_pes  # noqa: E402


def time_engine(engine, feeds, runs: int) -> float:
    for _ in range(3):
        engine.run(feeds)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        engine.run(feeds)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def layer_costs(g, pe: str, opts: EngineOptions, runs: int) -> list[float | None]:
    from hetsched.engines.tensorrt import TensorRTEngine, build_engine
    costs = []
    for layer in g.layers:
        sub = g.submodel(layer.index, layer.index)
        if pe.startswith("dla"):
            try:
                build_engine(sub.SerializeToString(), pe, opts.precision, gpu_fallback=False)
            except EngineError:
                costs.append(None)
                continue
        eng = TensorRTEngine(sub, pe, opts)
        try:
            feeds = random_feeds(session(sub, 1))
            costs.append(time_engine(eng, feeds, runs))
        finally:
            eng.close()
        print(f"{pe} layer {layer.index}/{len(g) - 1} {layer.name}: {costs[-1]}", file=sys.stderr)
    return costs


def settle(args) -> int:
    from hetsched.profiler.board import read_raw
    from hetsched.profiler.settle import settle_report, write_probes
    if args.write_probes:
        paths = write_probes(args.write_probes)
        print(f"wrote {len(paths)} probe models to {args.write_probes}")
    if args.settle:
        print(settle_report(read_raw(args.settle)[0], args.model or "yolov2-relu-416.onnx"))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("model", nargs="?", help="ONNX model to profile (required unless --settle / --write-probes)")
    ap.add_argument("--settle", metavar="BOARD", help="print, for each assumed figure of BOARD, the "
                                                      "measurement on the board that would replace it")
    ap.add_argument("--write-probes", metavar="DIR", help="write the probe models --settle's commands use")
    ap.add_argument("--pes", default="gpu,dla0,dla1", help="accelerator PEs to profile, comma-separated")
    ap.add_argument("--cpu", default="cpu0", help="CPU PEs to profile too (the first is the host), e.g. cpu0-7")
    ap.add_argument("--precision", default="fp16", choices=["fp16", "int8", "fp32"],
                    help="TensorRT precision of the per-layer engines")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per layer and PE (median)")
    ap.add_argument("-o", "--output", help="profile JSON to write (required to profile)")
    args = ap.parse_args()
    if args.settle or args.write_probes:
        return settle(args)
    if not args.model or not args.output:
        ap.error("a model and -o are required to profile (or give --settle / --write-probes)")
    from hetsched.engines.tensorrt import TensorRTEngine   # fails here, before any work, without TensorRT
    g = graph.load(args.model)
    opts = EngineOptions(precision=args.precision, cache_dir="out/trt-cache")
    accel = [p for p in args.pes.split(",") if p]
    costs = {pe: layer_costs(g, pe, opts, args.runs) for pe in accel}
    pes = [PE(p, "dla" if p.startswith("dla") else "gpu") for p in accel]
    meter, reasons = detect()
    power = {}
    if meter is not None:
        for pe in accel:
            eng = TensorRTEngine(g.model, pe, opts)
            feeds = random_feeds(session(g.model, 1))
            meter.start()
            t0 = time.perf_counter()
            n = 0
            while time.perf_counter() - t0 < 5.0:
                eng.run(feeds)
                n += 1
            power[pe] = {"joules_per_frame": meter.stop() / n, "frames": n}
            eng.close()
    cpu_pes = parse_pes(args.cpu)
    board = {"name": Path("/proc/device-tree/model").read_text().strip("\x00\n")
             if Path("/proc/device-tree/model").exists() else "unknown",
             "method": f"TensorRT per-layer engines, {args.precision}, median of {args.runs}",
             "power": power or {"unavailable": reasons}}
    cpu = profile_cpu(g, cpu_pes)
    for pe in cpu_pes:
        costs[pe.name] = [layer.cost_ms[pe.name] for layer in cpu.layers]
    pes = cpu_pes + pes
    # unified memory: a hand-off between PEs is a cache flush, not a copy; no measured figure yet
    transfer = {"default": Transfer(0.05, 0.02)}
    board["transfer_note"] = "assumed 0.05 ms + 0.02 ms/MB (unified memory); not measured"
    prof = assemble(g, pes, costs, transfer, source="measured", board=board, host=cpu_pes[0].name)
    profile.save(prof, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
