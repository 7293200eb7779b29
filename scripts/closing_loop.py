#!/usr/bin/env python3
"""Closing the loop: for each zoo network, the heuristic plan on the modeled AGX Xavier is run
by the real runtime with every PE emulated (`hetsched run --emulate`: each stage held for its
modeled time, zero tensors) on this machine, and replayed by the simulator; their throughputs
should agree. Two runs per network: the network alone (ready-made input tensors, no decoding:
what the plan and the simulator describe), and the whole detection loop on synthetic frames,
whose pre/post-processing runs on this machine's two cores. The network alone is simulated
twice: as the plan describes it, and with this host's own costs of running emulated stages (each
turn's hand-off under the interpreter lock, and the wake-up of a stage that waited for a PE
another stage held: `runtime_terms.handover_ms`, measured each round; every simulation of the
loop with the interpreter lock below counts it too, so their ratios are not those of the tables
before 2026-12-07's ninth session). For the loop the simulator is given the pre/post times measured here, in-process, on the same frames, once as free-running
holds and once with Python's interpreter lock (`simulate.Interpreter`: the share of pre, post
and a source read that holds it, from two threads doing the same work at once, and each
hand-off's time under it, from a pipeline of no-op stages), since with emulated stages the
host's Python work is what limits the loop. The last columns simulate the loop once more with
the CPU time pre and post took inside the run itself (the runtime's report counts each pool
thread's own time): the same work as the run did it, where the times measured alone are of a
machine whose speed drifts between the measurement and the run; and once with that CPU measured
apart from the run, beside the emulated network running alone (`_beside_ms`). The last column
gives the simulator pre's and post's wall times per call with the host as loaded as in the loop
(pre without pause, post once per pre call, in threads of their own beside the emulated network,
`_loaded_wall_ms`), as plain holds: it checks the replay of the pipeline around the host's
effective costs, not the model of how the host's cores and lock make them (the columns before);
the very last gives it the wall times pre and post took in the run itself: no prediction, but
where the replay lands once those costs are right. Each round also runs the loop once more with
every PE's stage times at 2% (`_fast_pes`): the host's ceiling for the plan, which says whether
the loop is decided by the network or by how this host runs its threads. The first table printed
is the summary; the second has every column.

    python scripts/closing_loop.py [--frames 1000] [--rounds 3] [--source synthetic:320x240] [-o out/closing_loop.json]
                                   [--host-cores N]

`--host-cores 1` runs all of it (the measurements, the runs) on one core: on the 2-core VM the
host-bound 4- and 8-stage loops ran 16-21% faster there than on both (scripts/host_cores.py).

With `--cpu DIR`: the whole detection loop on this machine's CPU PEs instead. DIR holds the
`hetsched bench --model M --size N --json` documents of each model (`M-N.json`, as written by
the README's table command); each planned method's plan, over the pipeline profile the bench
cached in `out/`, is replayed by the simulator and set against the fps the runtime measured.

    python scripts/closing_loop.py --cpu out/bench/loop
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hetsched import graph, job  # noqa: E402
from hetsched.atomic import write_text  # noqa: E402
from hetsched.models.zoo import ZOO, build_zoo  # noqa: E402
from hetsched.partition import make_plan  # noqa: E402
from hetsched.profiler.board import load_board  # noqa: E402
from hetsched.profiler.roofline import model_profile  # noqa: E402
from hetsched.runtime.frame import Frame  # noqa: E402
from hetsched.runtime.sources import open_source  # noqa: E402
from hetsched.runtime.spec import from_dict  # noqa: E402
from hetsched.runtime.task import make_task  # noqa: E402
from hetsched.simulate import Interpreter, simulate  # noqa: E402


def _per_call_ms(work, n, threads):
    """Median ms per call of `work(i)` when `threads` threads each make n calls at once."""
    times = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def run(k):
        start.wait()
        for i in range(n):
            t0 = time.perf_counter()
            work(i)
            times[k].append((time.perf_counter() - t0) * 1e3)
    pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statistics.median(x for ts in times for x in ts)


def _share(work, n, rounds=3):
    """The share of `work`'s time that holds the interpreter lock: two threads doing it at once
    take 2f times as long as one alone where f > 1/2 (f <= 1/2 reads as 1/2 or less: noise)."""
    alone, both = [], []
    for _ in range(rounds):        # interleaved, medians: the VM's speed drifts
        alone.append(_per_call_ms(work, n, 1))
        both.append(_per_call_ms(work, n, 2))
    return min(1.0, max(0.0, statistics.median(both) / (2 * statistics.median(alone))))


def host_python(g, spec, n=30):
    """(pre, post, `Interpreter`) here: pre- and post-processing of one frame (on emulated, zero
    outputs) as functions of a frame number, and what of them, of a source read and of each
    hand-off holds Python's interpreter lock."""
    from hetsched.profiler.runtime_terms import handover_ms, hop_ms
    task = make_task(g, spec.detect)
    src = open_source(spec.source, n)
    images, reads = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        images.append(src.read())
        reads.append((time.perf_counter() - t0) * 1e3)
    src.close()
    zeros = {o: np.zeros(g.tensors[o].shape, np.float32) for o in g.outputs}
    frames = []
    for i, img in enumerate(images):
        f = Frame(i, img, 0.0)
        task.pre(f)
        f.tensors.update(zeros)
        frames.append(f)

    def pre(i):
        task.pre(Frame(i, images[i % n], 0.0))

    def post(i):
        base = frames[i % n]
        task.post(Frame(i, None, 0.0, tensors=dict(base.tensors), meta=base.meta))

    local = threading.local()

    def read(i):        # each thread reads its own source, as the runtime's one source thread
        if not hasattr(local, "src"):
            local.src = open_source(spec.source, 10**6)
        local.src.read()
    # four no-op stages and the source, pre, post and sink hops: eight turns a frame
    hop = hop_ms("hop-probe", [], frames=400, stages=4) * 4 / 8
    py = Interpreter(hop_ms=hop, pre_share=_share(pre, n), post_share=_share(post, n),
                     source_ms=statistics.median(reads[1:] or reads), source_share=_share(read, 10),
                     cores=len(os.sched_getaffinity(0)), handover_ms=handover_ms())
    return pre, post, py


def _midway(before, after) -> list[float]:
    """Figures measured just before and just after a run, averaged: the VM's speed drifts."""
    return [(x + y) / 2 for x, y in zip(before, after)]


def _mean_ms(work, n=150) -> tuple[float, float]:
    """Mean wall and CPU ms (`process_time`: every thread of the process) per call over n calls:
    a pipeline's throughput follows the mean, and on this VM a median of 30 calls moved
    0.84-1.38 ms within a minute (the mean of 150: 0.85-1.14)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        work(i)
    return (time.perf_counter() - t0) * 1e3 / n, (time.process_time() - c0) * 1e3 / n


@contextlib.contextmanager
def _network_running(pipe):
    """`pipe` (the emulated network alone) running in a thread of its own, past its fill, for
    the duration of the block; it fails loudly if the network does not run, since the figures
    taken beside it would then be of an idle host."""
    from hetsched.runtime.pipeline import Stopped
    failed = []

    def run():
        try:
            pipe.run(handle_signals=False)
        except Stopped:
            pass
        except BaseException as e:      # carried back
            failed.append(e)
    beside = threading.Thread(target=run, name="beside")
    beside.start()
    try:
        waited = time.perf_counter() + 30
        while pipe.delivered < 50:      # past the pipeline's fill
            if failed or not beside.is_alive() or time.perf_counter() > waited:
                raise RuntimeError("the emulated network to measure beside did not run") \
                    from (failed[0] if failed else None)
            time.sleep(0.01)
        yield
    finally:
        pipe.stop("measured beside it")
        beside.join()
    if failed:
        raise RuntimeError("the emulated network stopped while measured beside") from failed[0]


def _beside_ms(works, pipe, n=50, chunks=5) -> list[float]:
    """Each of `works`' own CPU ms per call (`thread_time`) while `pipe` (the emulated network
    alone) runs in other threads: the work among the stages' threads, queues and locks, as the
    loop runs it. Alone it ran 15-60% cheaper than inside the loop (the pools' own CPU in the
    runtime's report); beside the network it costs about what it does in the loop, and is
    measured apart from the run it is set against. The works take turns in `chunks` chunks of
    n calls; each one's median chunk mean (a transient on the VM moved a single chunk 50%)."""
    means = [[] for _ in works]
    with _network_running(pipe):
        for _ in range(chunks):
            for work, got in zip(works, means):
                c0 = time.thread_time()
                for i in range(n):
                    work(i)
                got.append((time.thread_time() - c0) * 1e3 / n)
    return [statistics.median(got) for got in means]


def _loaded_wall_ms(works, pipe, seconds=1.5) -> list[float]:
    """Each of `works`' wall ms per call, run as a chain in threads of their own while `pipe`
    (the emulated network alone) runs: the first without pause, each next one call per call of
    the one before it, handed on through a queue of two as the loop's buffers (pre, then post:
    the host as loaded as in a loop bound by its pre-processing thread), measured apart from the
    run. A call's wall time is its CPU and its waits for a core and the interpreter lock; the
    simulator given these as plain holds replays the pipeline around them, not how the host
    shares its cores and lock (in the loop, pre-processing's wall time a frame was 1.7x its CPU
    on the VM). With post run without pause too it came out 1.3-1.7x what it took in the loop."""
    import queue
    stop = threading.Event()
    calls = [[0, 0.0] for _ in works]
    links = [queue.Queue(2) for _ in works[1:]]
    failed = []

    def chain(k):
        try:
            link(k)
        except BaseException as e:      # carried back: the others' figures would be of less load
            failed.append(e)
            stop.set()

    def link(k):
        work, got = works[k], calls[k]
        take = links[k - 1] if k else None
        give = links[k] if k < len(links) else None
        i = 0
        while not stop.is_set():
            if take is not None:
                try:
                    take.get(timeout=0.05)
                except queue.Empty:
                    continue
            t0 = time.perf_counter()
            work(i)
            i += 1
            if i > 10:              # past the first calls' warm-up
                got[0] += 1
                got[1] += time.perf_counter() - t0
            while give is not None and not stop.is_set():
                try:
                    give.put(i, timeout=0.05)
                    break
                except queue.Full:
                    pass
    with _network_running(pipe):
        threads = [threading.Thread(target=chain, args=(k,), name="loaded") for k in range(len(works))]
        for t in threads:
            t.start()
        try:
            time.sleep(seconds)
        finally:
            stop.set()
            for t in threads:
                t.join()
    if failed:
        raise RuntimeError("a work measured under the loop's load failed") from failed[0]
    if any(n == 0 for n, _ in calls):
        raise RuntimeError("a work measured under load made no call past its warm-up")
    return [1e3 * total / n for n, total in calls]


def _fast_pes(prof, share=0.02):
    """`prof` with every PE's stage times (compute, transfers, overhead) at `share` of their own:
    the loop run on it is the host's ceiling for the plan: the same threads hand every frame on
    while the PEs all but vanish, about what the host alone carries. About: a hold that short
    skips its sleep on some frames (an emulated engine wakes early by the lateness it learnt;
    alone, at 0.01 ms, half of them), so its threads switch less often than in the loop (which
    beat its ceiling in 8 of 72 rounds on 2026-12-07). Where the ceiling is near or below the
    network's rate, the host decides the loop."""
    from hetsched.profile import Transfer
    layers = [dataclasses.replace(la, cost_ms={p: None if c is None else c * share
                                               for p, c in la.cost_ms.items()})
              for la in prof.layers]
    return dataclasses.replace(
        prof, layers=layers,
        transfer={k: Transfer(t.latency_ms * share, t.ms_per_mb * share) for k, t in prof.transfer.items()},
        stage_overhead_ms={k: v * share for k, v in prof.stage_overhead_ms.items()})


def cpu_loop(folder: Path, workdir: Path) -> int:
    from hetsched import profile
    from hetsched.partition.cost import evaluate, stages_from_dicts
    rows = []
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        model = doc["model"]
        pes = "_".join(next(m["plan"] for m in doc["methods"].values() if m.get("plan"))
                       ["pe_load_ms"].keys())
        cached = sorted(workdir.glob(f"{model}.{pes}.loop-*.profile.json"))
        if not cached:
            print(f"{path.name}: no cached pipeline profile for {model} in {workdir}", file=sys.stderr)
            continue
        planned = {name: m for name, m in doc["methods"].items()
                   if m.get("plan") and "fps" in m and m.get("predicted_fps")}

        def prices_as_bench(prof):
            # the bench's own profile is the one under which its plans price as it said:
            # caches of older code (other tags) sit beside it
            return all(abs(evaluate(prof, stages_from_dicts(m["plan"]["stages"]), check=False)
                           .throughput_fps / m["predicted_fps"] - 1) < 1e-3 for m in planned.values())
        prof = next((p for p in map(profile.load, cached) if prices_as_bench(p)), None)
        if prof is None:
            print(f"{path.name}: none of the cached pipeline profiles of {model} in {workdir} prices "
                  f"its plans as the bench did", file=sys.stderr)
            continue
        for name, m in planned.items():
            plan = evaluate(prof, stages_from_dicts(m["plan"]["stages"]), name, check=False)
            sim = simulate(prof, plan, frames=200, buffers=2)
            rows.append(f"| {model} | {name} | {len(plan.stages)} | {plan.throughput_fps:.2f} | "
                        f"{sim.throughput_fps:.2f} | {m['fps']:.2f} | {m['fps'] / sim.throughput_fps:.3f} |")
    print("| model | method | stages | bound fps | simulated fps (200 frames) | runtime fps | runtime / sim |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


def xavier_loop(name: str, source: str, frames: int):
    """(graph, profile, plan, spec) of zoo network `name` at 416 on the modeled AGX Xavier: the
    heuristic plan over its GPU and DLAs, run with every PE emulated on `frames` frames."""
    g = graph.from_model(build_zoo(name, 416, "relu"), name=f"{name}-relu-416")
    prof = model_profile(g, load_board("jetson-agx-xavier"), "fp16")
    plan = make_plan(prof, "heuristic", pes=["gpu", "dla0", "dla1"])
    spec = from_dict({"model": {"zoo": name}, "source": source, "frames": frames,
                      "engine": {"emulate": "timing"}, "sink": "none"}, "closing-loop")
    return g, prof, plan, spec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--cpu", metavar="DIR", help="the whole loop on CPU PEs, from bench JSON in DIR")
    ap.add_argument("--workdir", default="out", help="where the bench cached its profiles")
    ap.add_argument("--frames", type=int, default=1000, help="frames per run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds per network, each measuring the host's terms and then running; "
                         "the table gives medians (the range of the last ratio in brackets)")
    ap.add_argument("--source", default="synthetic:320x240", help="the frames' source")
    ap.add_argument("--models", default=",".join(ZOO), help="zoo networks, comma-separated")
    ap.add_argument("-o", "--output", default="out/closing_loop.json", help="the rounds as JSON")
    ap.add_argument("--host-cores", type=int, default=0, metavar="N",
                    help="run every thread on the first N of this process's cores (0: all of them)")
    args = ap.parse_args()
    if args.host_cores < 0:
        ap.error(f"--host-cores must be 0 or more, got {args.host_cores}")
    if args.host_cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.host_cores])
    if args.cpu:
        return cpu_loop(Path(args.cpu), Path(args.workdir))
    rows, brief, doc = [], [], {}
    for name in args.models.split(","):
        g, prof, plan, spec = xavier_loop(name, args.source, args.frames)
        free = simulate(prof, plan, frames=args.frames)
        fast = _fast_pes(prof)
        feeds = [{g.inputs[0]: np.zeros(g.tensors[g.inputs[0]].shape, np.float32)}]
        rounds = []
        for _ in range(args.rounds):
            # each round measures the host's terms right before its runs, so that a ratio sets a
            # run against a simulation of the machine as fast as it was then (it drifts >10%)
            pre_work, post_work, py = host_python(g, spec)
            alone = job.network_pipeline(g, prof, plan, spec, feeds, args.frames)
            cpu = time.process_time()       # the run's, not the build's (the stages' sub-models)
            net = alone.run()
            # the runtime's CPU per thread turn (waking, queues, PE locks: a lock that several
            # stages share doubles it), from the same threads and locks without pre/post work:
            # the source, pre, every stage once, post and the sink are a frame's turns (the
            # pipeline's start and end are in it too: a little over a turn's own cost)
            turn = (time.process_time() - cpu) * 1e3 / (args.frames * (len(plan.stages) + 4))
            # the network alone as this host runs it: each turn's hand-off under the interpreter
            # lock, and the wake-up of a stage that waited for a PE another stage held
            handed = simulate(prof, plan, frames=args.frames,
                              interpreter=Interpreter(hop_ms=py.hop_ms, handover_ms=py.handover_ms))
            beside = [job.network_pipeline(g, prof, plan, spec, feeds, 10**7) for _ in range(4)]
            before = _mean_ms(pre_work) + _mean_ms(post_work)
            by_before = _beside_ms([pre_work, post_work], beside[0])
            loaded_before = _loaded_wall_ms([pre_work, post_work], beside[1])
            pipe = job.build_pipeline(g, prof, plan, spec, open_source(spec.source, args.frames))
            c0, w0 = time.process_time(), time.perf_counter()
            loop = pipe.run()
            # how busy the host was: its cores (every thread's CPU over the run's wall time), and
            # the pre-processing thread's wall time a frame against the run's period (near 1:
            # the loop waits on pre, whose wall time is its CPU plus its waits for a core or the
            # interpreter lock)
            cores_busy = (time.process_time() - c0) / (time.perf_counter() - w0)
            pre_wall, post_wall = (1e3 * loop.pools[k][1] / max(1, loop.frames) for k in ("pre", "post"))
            loaded_after = _loaded_wall_ms([pre_work, post_work], beside[2])
            by_after = _beside_ms([pre_work, post_work], beside[3])
            after = _mean_ms(pre_work) + _mean_ms(post_work)
            # after the measurements that bracket the run, so as not to widen their window
            lifted = job.build_pipeline(g, fast, plan, spec, open_source(spec.source, args.frames))
            c0 = time.process_time()
            ceiling = lifted.run()
            ceiling_cpu = (time.process_time() - c0) * 1e3 / max(1, ceiling.frames)
            # the loop is run between two measurements of the host's work, whose means it is
            # simulated with, since the VM's speed drifts by more than the target within minutes
            pre, pre_cpu, post, post_cpu = _midway(before, after)
            py = dataclasses.replace(py, pre_cpu_ms=pre_cpu, post_cpu_ms=post_cpu, turn_cpu_ms=turn)
            costed = simulate(prof, plan, frames=args.frames, pre_ms=pre, post_ms=post)
            locked = simulate(prof, plan, frames=args.frames, pre_ms=pre, post_ms=post,
                              interpreter=dataclasses.replace(py, cores=0))
            held = simulate(prof, plan, frames=args.frames, pre_ms=pre, post_ms=post, interpreter=py)
            # the same with the CPU that pre and post took inside the run (their threads' own
            # time, waits for the lock or a core left out): the work as the run did it, not as
            # it went alone a moment before and after (the two differ where the run's threads
            # share caches and cores)
            run_pre, run_post = (1e3 * loop.pools_cpu_s[k] / max(1, loop.frames)
                                 for k in ("pre", "post"))
            own = simulate(prof, plan, frames=args.frames, pre_ms=run_pre, post_ms=run_post,
                           interpreter=dataclasses.replace(py, pre_cpu_ms=run_pre,
                                                           post_cpu_ms=run_post))
            # and with their CPU measured beside the emulated network, apart from the run
            # (just before and after it, as the work alone)
            by_pre, by_post = _midway(by_before, by_after)
            by = simulate(prof, plan, frames=args.frames, pre_ms=by_pre, post_ms=by_post,
                          interpreter=dataclasses.replace(py, pre_cpu_ms=by_pre,
                                                          post_cpu_ms=by_post))
            # and with their wall time under the loop's load, as plain holds: the pipeline's
            # replay around the host's effective costs (the network's turns as for it alone)
            lw_pre, lw_post = _midway(loaded_before, loaded_after)
            loaded = simulate(prof, plan, frames=args.frames, pre_ms=lw_pre, post_ms=lw_post,
                              interpreter=Interpreter(hop_ms=py.hop_ms, handover_ms=py.handover_ms))
            # and with the wall times pre and post took in the run itself: not a prediction (the
            # run's own figures), but where the replay of the pipeline lands once the host's
            # effective costs are right, which separates the pipeline's model from the host's
            walled = simulate(prof, plan, frames=args.frames, pre_ms=pre_wall, post_ms=post_wall,
                              interpreter=Interpreter(hop_ms=py.hop_ms, handover_ms=py.handover_ms))
            rounds.append({"pre_ms": pre, "post_ms": post, "interpreter": vars(py),
                           "emulated_net_fps": net.fps, "ratio_net": net.fps / free.throughput_fps,
                           "sim_net_host_fps": handed.throughput_fps,
                           "ratio_net_host": net.fps / handed.throughput_fps,
                           "sim_prepost_fps": costed.throughput_fps,
                           "sim_interpreter_fps": locked.throughput_fps,
                           "sim_cores_fps": held.throughput_fps, "emulated_loop_fps": loop.fps,
                           "ratio_loop": loop.fps / costed.throughput_fps,
                           "ratio_loop_interpreter": loop.fps / locked.throughput_fps,
                           "ratio_loop_cores": loop.fps / held.throughput_fps,
                           "run_pre_cpu_ms": run_pre, "run_post_cpu_ms": run_post,
                           "sim_run_work_fps": own.throughput_fps,
                           "ratio_loop_run_work": loop.fps / own.throughput_fps,
                           "beside_pre_cpu_ms": by_pre, "beside_post_cpu_ms": by_post,
                           "sim_beside_fps": by.throughput_fps, "run_cores_busy": cores_busy,
                           "loaded_pre_wall_ms": lw_pre, "loaded_post_wall_ms": lw_post,
                           "sim_loaded_fps": loaded.throughput_fps,
                           "ratio_loop_loaded": loop.fps / loaded.throughput_fps,
                           "run_pre_wall_ms": pre_wall, "run_pre_wall_of_period": pre_wall * loop.fps / 1e3,
                           "run_post_wall_ms": post_wall, "sim_run_wall_fps": walled.throughput_fps,
                           "ratio_loop_run_wall": loop.fps / walled.throughput_fps,
                           "ratio_loop_beside": loop.fps / by.throughput_fps,
                           "host_ceiling_fps": ceiling.fps, "ceiling_cpu_ms": ceiling_cpu})
        doc[name] = {"plan": plan.to_dict(), "bound_fps": plan.throughput_fps,
                     "sim_fps": free.throughput_fps, "rounds": rounds}
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0] if k != "interpreter"}
        med.update({k: statistics.median(r["interpreter"][k] for r in rounds)
                    for k in ("pre_share", "post_share", "hop_ms", "turn_cpu_ms", "handover_ms")})
        doc[name].update(med)
        ratios = [r["ratio_loop_cores"] for r in rounds]
        own = [r["ratio_loop_run_work"] for r in rounds]
        bes = [r["ratio_loop_beside"] for r in rounds]
        lds = [r["ratio_loop_loaded"] for r in rounds]
        wls = [r["ratio_loop_run_wall"] for r in rounds]
        pre, post = med["pre_ms"], med["post_ms"]
        d = doc[name]
        rows.append(f"| {name}-relu | {len(plan.stages)} | {d['bound_fps']:.1f} | {d['sim_fps']:.1f} | "
                    f"{d['emulated_net_fps']:.1f} | **{d['ratio_net']:.3f}** | "
                    f"{d['handover_ms'] * 1e3:.0f} us | {d['sim_net_host_fps']:.1f} | "
                    f"**{d['ratio_net_host']:.3f}** | {pre:.2f} / {post:.2f} | "
                    f"{d['sim_prepost_fps']:.1f} | {d['pre_share']:.2f} / {d['post_share']:.2f} / "
                    f"{d['hop_ms'] * 1e3:.0f} / {d['turn_cpu_ms'] * 1e3:.0f} us | "
                    f"{d['sim_interpreter_fps']:.1f} | {d['sim_cores_fps']:.1f} | "
                    f"{d['emulated_loop_fps']:.1f} | {d['ratio_loop']:.3f} | "
                    f"{d['ratio_loop_interpreter']:.3f} | "
                    f"**{d['ratio_loop_cores']:.3f}** ({min(ratios):.3f}-{max(ratios):.3f}) | "
                    f"{d['run_pre_cpu_ms']:.2f} / {d['run_post_cpu_ms']:.2f} | "
                    f"**{d['ratio_loop_run_work']:.3f}** ({min(own):.3f}-{max(own):.3f}) | "
                    f"{d['beside_pre_cpu_ms']:.2f} / {d['beside_post_cpu_ms']:.2f} | "
                    f"**{d['ratio_loop_beside']:.3f}** ({min(bes):.3f}-{max(bes):.3f}) | "
                    f"{d['run_cores_busy']:.2f} / {d['run_pre_wall_of_period']:.2f} | "
                    f"{d['run_pre_wall_ms']:.2f} | {d['loaded_pre_wall_ms']:.2f} / {d['loaded_post_wall_ms']:.2f} | "
                    f"**{d['ratio_loop_loaded']:.3f}** ({min(lds):.3f}-{max(lds):.3f}) | "
                    f"{d['ratio_loop_run_wall']:.3f} ({min(wls):.3f}-{max(wls):.3f}) |")
        print(rows[-1], file=sys.stderr)
        cei, lps = [r["host_ceiling_fps"] for r in rounds], [r["emulated_loop_fps"] for r in rounds]
        brief.append(f"| {name}-relu | {len(plan.stages)} | {d['sim_net_host_fps']:.1f} | "
                     f"{d['emulated_net_fps']:.1f} | {d['ratio_net_host']:.3f} | "
                     f"{d['host_ceiling_fps']:.0f} ({min(cei):.0f}-{max(cei):.0f}) | "
                     f"{d['host_ceiling_fps'] / d['emulated_net_fps']:.2f} | "
                     f"{d['emulated_loop_fps']:.0f} ({min(lps):.0f}-{max(lps):.0f}) | "
                     f"**{d['ratio_loop_loaded']:.3f}** ({min(lds):.3f}-{max(lds):.3f}) | "
                     f"**{d['ratio_loop_cores']:.3f}** ({min(ratios):.3f}-{max(ratios):.3f}) | "
                     f"{d['ratio_loop_run_wall']:.3f} ({min(wls):.3f}-{max(wls):.3f}) |")
    table = ("| network | stages | bound fps | simulated fps | emulated run fps (network) | run / sim "
             "| PE hand-over here | simulated with the host's hand-offs | run / that "
             "| pre / post ms here | simulated with pre/post | lock share pre / post, hop / turn CPU "
             "| simulated with the interpreter lock | and the host's cores | emulated run fps "
             "(detection loop) | "
             "run / sim without the lock | with the lock | with the lock and the cores (range) "
             "| pre / post CPU ms in the run | run / sim with those (range) "
             "| pre / post CPU ms beside the network | run / sim with those (range) "
             "| in the run: cores busy / pre's wall time of the period | pre's wall ms a frame in the run "
             "| pre / post wall ms under the loop's load | run / sim with those (range) "
             "| run / sim with the run's own pre/post wall times (not a prediction; range) |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
             + "\n".join(rows))
    write_text(args.output, json.dumps(doc, indent=1) + "\n")
    print("| network | stages | network alone: simulated fps (the host's hand-offs) | run fps | "
          "run / sim | the host's ceiling: the loop's fps with the PEs at 2% (range) | "
          "ceiling / network's run | detection loop: run fps (range) | run / sim, pre/post wall "
          "times under the loop's load (range) | "
          "run / sim, the host's cores and lock, pre/post CPU measured alone (range) | "
          "run / sim, the run's own pre/post wall times "
          "(not a prediction; range) |\n|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(brief))
    print("\nEvery column:\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
