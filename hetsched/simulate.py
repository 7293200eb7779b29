"""Discrete-event replay of a plan as the runtime runs it, in simulated milliseconds.

The same shape as `runtime/pipeline.py`: a source that reads ahead into a bounded queue, a pool of
pre-processing threads, one worker per PE of each stage (a replicated stage's members take frames
round robin by sequence number, each through its own bounded input queue), a pool of
post-processing threads, and a sink that releases frames in order. A worker holds its PE for the
stage time the contract charges for that frame (`cost.StageCost.frame_ms`: compute and transfers
from the producer member that made the frame, times the contention factor, plus the stage
overhead); a PE that serves several stages runs one frame at a time (first come, first served);
a worker whose output queue is full waits, holding its frame but not its PE. The host's work
outside every stage (`host_ms`: reading, decoding, the sink) holds the host PE for each frame
before the source hands it on, so it competes with any stage the host serves. Everything is
deterministic: ties are broken by the order events were scheduled.

On a chain in steady state the throughput equals the contract's bound; what the bound ignores
shows up here: start-up (the first frame's latency), queueing latency when the source reads
ahead, pre/post-processing pools that are too slow, and too few buffers. With an `Interpreter`,
also Python's global interpreter lock: where the stages are emulated (they sleep) the host's
Python work is what limits a run, and its threads serialise on that lock; and, where it says
how many, the host's cores, which every piece of that work and every thread's turn (waking, the
queues, the PE locks) needs one of: on the 2-core VM an emulated loop of 600-1000 fps keeps
them busy, which the lock alone does not show (scripts/closing_loop.py, README).

Processes are generators that yield requests (`_Get`, `_Put`, `_Acquire`, `_Release`, `_Hold`);
the scheduler resumes each one when its request is met. Complexity O(E log E) for E events,
about 10 per frame and stage.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .errors import HetschedError
from .partition.cost import Plan, evaluate
from .profile import Profile


class _Queue:
    def __init__(self, name, capacity, producers):
        self.name, self.capacity, self.producers = name, capacity, producers
        self.items = deque()
        self.getters = deque()      # waiting processes
        self.putters = deque()      # (process, item)


class _Lock:
    """A lock, or with `capacity` k a pool of k (a machine's cores), granted first come, first
    served."""

    def __init__(self, capacity: int = 1):
        self.capacity = capacity
        self.held = 0
        self.waiters = deque()


@dataclass
class _Get:
    q: _Queue


@dataclass
class _Put:
    q: _Queue
    item: object


@dataclass
class _Acquire:
    lock: _Lock


@dataclass
class _Release:
    lock: _Lock
    by: object = None       # given to the waiter it hands the lock to, as its `_Acquire`'s value


@dataclass
class _Hold:
    ms: float


_EOS = object()
# a PE lock one worker passed to another that waited for it, whose thread then wakes; the
# source's host work holds no lock in the runtime, so passing the host PE on wakes no one
_HANDED = object()


@dataclass(frozen=True)
class Interpreter:
    """Python's global interpreter lock as the runtime's threads meet it, on the machine that
    runs them: every thread's turn at a frame holds it for `hop_ms` (taking the frame from a
    queue, the bookkeeping, handing it on); pre- and post-processing hold it for `pre_share` /
    `post_share` of their time and run the rest (OpenCV, numpy's large loops) beside it; the
    source's read takes `source_ms` here, `source_share` of it under the lock; a PE handed to
    a stage that waited for it is idle for that thread's wake-up. Measured by
    `scripts/closing_loop.py`: the hop from a pipeline of no-op stages, a share from two threads
    doing the same work at once (two tasks that hold the lock for a share f > 1/2 take 2f times
    as long as one alone; on a machine with few cores that share also holds the contention for
    the cores, which the one lock then stands for)."""
    hop_ms: float = 0.0
    pre_share: float = 0.0
    post_share: float = 0.0
    source_ms: float = 0.0
    source_share: float = 0.0
    # the host's cores, where they limit the loop (0: not modeled, every thread runs at once):
    # each piece of Python work holds one, a thread's turn costs `turn_cpu_ms` of one in all,
    # and pre / post burn what their CPU time exceeds their wall time on another
    cores: int = 0
    turn_cpu_ms: float = 0.0
    pre_cpu_ms: float = 0.0
    post_cpu_ms: float = 0.0
    # a PE that serves several stages: the time between one worker releasing it and the next,
    # which waited for it, starting its frame (that thread's wake-up), the PE idle meanwhile;
    # `runtime_terms.handover_ms` measures it (30-40 us on the VM, where emulated stages of
    # 0.1-0.7 ms lost 5-15% to it)
    handover_ms: float = 0.0


class _Sim:
    def __init__(self):
        self.now = 0.0
        self._heap = []
        self._tick = itertools.count()

    def start(self, gen):
        self._resume(gen, None, self.now)

    def _resume(self, gen, value, at):
        heapq.heappush(self._heap, (at, next(self._tick), gen, value))

    def run(self):
        while self._heap:
            self.now, _, gen, value = heapq.heappop(self._heap)
            self._step(gen, value)

    def _step(self, gen, value):
        while True:
            try:
                req = gen.send(value)
            except StopIteration:
                return
            value = None
            if isinstance(req, _Hold):
                self._resume(gen, None, self.now + req.ms)
                return
            if isinstance(req, _Get):
                q = req.q
                if q.items:
                    value = q.items.popleft()
                    if q.putters:
                        putter, item = q.putters.popleft()
                        q.items.append(item)
                        self._resume(putter, None, self.now)
                    continue
                if q.producers == 0:
                    value = _EOS
                    continue
                q.getters.append(gen)
                return
            if isinstance(req, _Put):
                q = req.q
                if req.item is _EOS:              # a producer is done
                    q.producers -= 1
                    if q.producers == 0 and not q.items:
                        while q.getters:
                            self._resume(q.getters.popleft(), _EOS, self.now)
                    continue
                if q.getters:
                    self._resume(q.getters.popleft(), req.item, self.now)
                    continue
                if len(q.items) < q.capacity:
                    q.items.append(req.item)
                    continue
                q.putters.append((gen, req.item))
                return
            if isinstance(req, _Acquire):
                if req.lock.held < req.lock.capacity:
                    req.lock.held += 1
                    continue
                req.lock.waiters.append(gen)
                return
            if isinstance(req, _Release):
                lock = req.lock
                if lock.waiters:      # handed straight to the next in line
                    self._resume(lock.waiters.popleft(), req.by, self.now)
                else:
                    lock.held -= 1
                continue
            raise TypeError(f"unknown request {req!r}")


@dataclass
class SimResult:
    frames: int
    read_ms: list[float]                    # when the source read frame i
    done_ms: list[float]                    # when the sink released frame i
    busy_ms: dict[str, float]               # per PE
    events: list[tuple[int, str, int, float, float]] = field(repr=False, default_factory=list)
    bound_fps: float = 0.0
    depth: int = 0      # the frames the pipeline holds at once: its queues' and its threads'

    @property
    def makespan_ms(self) -> float:
        return self.done_ms[-1] if self.done_ms else 0.0

    @property
    def throughput_fps(self) -> float:
        """Whole run, start-up included: frames / time of the last frame out."""
        return 1000.0 * self.frames / self.makespan_ms if self.makespan_ms else 0.0

    @property
    def steady_fps(self) -> float:
        """From a quarter of the frames, or once the pipeline has filled (`depth` frames
        delivered) if later, to three quarters, before the source runs dry and the last frames
        drain faster than steady state allows. The whole run's rate where fewer than 8 frames
        fall in that span (as the runtime's `Report.steady_fps`): until the pipeline has filled,
        frames that queued behind the fill leave in bursts (yolov3's 7 stages on the modeled
        Xavier: 186 fps over frames 3-11 of 15, 317 over 3 frames, against a bound of 169)."""
        a, b = max(self.frames // 4, self.depth), (3 * self.frames) // 4
        if b - a < 8:
            return self.throughput_fps
        span = self.done_ms[b] - self.done_ms[a]
        return 1000.0 * (b - a) / span if span > 0 else float("inf")

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(np.subtract(self.done_ms, self.read_ms), q))

    def to_dict(self) -> dict:
        r = lambda v: round(v, 4)  # noqa: E731
        return {"frames": self.frames, "throughput_fps": r(self.throughput_fps),
                "steady_fps": r(self.steady_fps), "bound_fps": r(self.bound_fps),
                "first_frame_ms": r(self.done_ms[0] - self.read_ms[0]),
                "latency_ms_p50": r(self.latency_ms(50)), "latency_ms_p95": r(self.latency_ms(95)),
                "latency_ms_p99": r(self.latency_ms(99)),
                "utilisation": {pe: r(b / self.makespan_ms) for pe, b in self.busy_ms.items()}}

    def format(self) -> str:
        d = self.to_dict()
        return "\n".join([
            f"simulated {d['frames']} frames: {d['throughput_fps']:.2f} fps overall, "
            f"{d['steady_fps']:.2f} fps steady (contract bound {d['bound_fps']:.2f})",
            f"latency ms: first frame {d['first_frame_ms']:.2f}, p50 {d['latency_ms_p50']:.2f}, "
            f"p95 {d['latency_ms_p95']:.2f}, p99 {d['latency_ms_p99']:.2f}",
            "utilisation: " + ", ".join(f"{pe} {u:.2f}" for pe, u in d["utilisation"].items())])


def simulate(profile: Profile, plan: Plan, *, frames: int = 200, buffers: int = 2,
             pre_ms: float = 0.0, post_ms: float = 0.0, pre_threads: int = 1,
             post_threads: int = 1, record: int = 2000,
             interpreter: Interpreter | None = None) -> SimResult:
    """Replay `plan` for `frames` frames; stage times come from the contract's evaluator."""
    if frames < 1 or buffers < 1 or pre_threads < 1 or post_threads < 1:
        raise HetschedError("frames, buffers and thread counts must be at least 1")
    if interpreter is not None and interpreter.cores < 0:
        raise HetschedError(f"the host's cores must be 0 (not modeled) or more, got {interpreter.cores}")
    if not (pre_ms >= 0 and post_ms >= 0):       # NaN fails too
        raise HetschedError(f"pre- and post-processing times must be >= 0 ms, got {pre_ms} and {post_ms}")
    priced = evaluate(profile, plan.stages, plan.method, check=False, dla_fallback=plan.dla_fallback)
    stages = plan.stages
    sim = _Sim()
    q_src = _Queue("source", buffers, 1)
    q_stage = [[_Queue(f"stage{j}.{m}", buffers, pre_threads if j == 0 else len(stages[j - 1].pes))
                for m in range(len(s.pes))] for j, s in enumerate(stages)]
    q_post = _Queue("post", buffers, len(stages[-1].pes))
    q_sink = _Queue("sink", buffers, post_threads)
    locks = {pe: _Lock() for s in stages for pe in s.pes}
    host = profile.host
    if profile.host_ms:
        locks.setdefault(host, _Lock())
    busy = {pe: 0.0 for pe in locks}
    read = [0.0] * frames
    done = [0.0] * frames
    events = []
    seq_counter = itertools.count()
    py = interpreter or Interpreter()
    gil = _Lock()

    cores = _Lock(py.cores) if py.cores else None

    def burn(ms):
        yield _Acquire(cores)
        yield _Hold(ms)
        yield _Release(cores)

    def work(ms):
        """`ms` of a thread's CPU work: on a core where they are modeled."""
        if cores is not None:
            yield from burn(ms)
        else:
            yield _Hold(ms)

    def python(ms, share, beside=0.0):
        """`ms` of work, `share` of it holding the interpreter lock; where the host's cores are
        modeled, each part on one of them (a thread waiting for the interpreter lock sleeps, so
        the lock is taken first, the core second: one order, no deadlock), with `beside` ms
        more CPU burnt on another by a library's own threads, which this thread does not wait
        for."""
        if cores is not None and beside > 0:
            sim.start(burn(beside))
        if ms * share > 0:
            yield _Acquire(gil)
            yield from work(ms * share)
            yield _Release(gil)
        if ms * (1 - share) > 0:
            yield from work(ms * (1 - share))

    def turn():
        """A thread's turn at a frame: waking (CPU only, where cores are modeled), then the
        hand-off under the interpreter lock."""
        if cores is not None and py.turn_cpu_ms > py.hop_ms:
            yield from burn(py.turn_cpu_ms - py.hop_ms)
        yield from python(py.hop_ms, 1.0)

    def source():
        for i in range(frames):
            read[i] = sim.now
            yield from python(py.source_ms, py.source_share)
            yield from turn()
            if profile.host_ms:
                yield _Acquire(locks[host])
                yield _Hold(profile.host_ms)
                busy[host] += profile.host_ms
                yield _Release(locks[host])
            yield _Put(q_src, i)
        yield _Put(q_src, _EOS)

    def pre():
        while True:
            f = yield _Get(q_src)
            if f is _EOS:
                break
            seq = next(seq_counter)   # as the runtime: sequence numbers at leaving the source queue
            yield from turn()
            yield from python(pre_ms, py.pre_share, max(0.0, py.pre_cpu_ms - pre_ms))
            yield _Put(q_stage[0][seq % len(q_stage[0])], seq)
        for q in q_stage[0]:
            yield _Put(q, _EOS)

    def worker(j, m, pe):
        cost = priced.stage_costs[j]
        outs = q_stage[j + 1] if j + 1 < len(stages) else [q_post]
        while True:
            f = yield _Get(q_stage[j][m])
            if f is _EOS:
                break
            yield from turn()
            if (yield _Acquire(locks[pe])) is _HANDED and py.handover_ms > 0:
                yield _Hold(py.handover_ms)     # the PE idle while this thread wakes
            t0 = sim.now
            t = cost.frame_ms(profile, f)
            yield _Hold(t)
            busy[pe] += t
            if len(events) < record:
                events.append((j, pe, f, t0 / 1e3, sim.now / 1e3))
            yield _Release(locks[pe], _HANDED)
            yield _Put(outs[f % len(outs)], f)
        for q in outs:
            yield _Put(q, _EOS)

    def post():
        while True:
            f = yield _Get(q_post)
            if f is _EOS:
                break
            yield from turn()
            yield from python(post_ms, py.post_share, max(0.0, py.post_cpu_ms - post_ms))
            yield _Put(q_sink, f)
        yield _Put(q_sink, _EOS)

    def sink():
        waiting, nxt = [], 0
        while True:
            f = yield _Get(q_sink)
            if f is _EOS:
                break
            yield from turn()
            heapq.heappush(waiting, f)
            while waiting and waiting[0] == nxt:
                done[heapq.heappop(waiting)] = sim.now
                nxt += 1

    for j, s in enumerate(stages):
        for m, pe in enumerate(s.pes):
            sim.start(worker(j, m, pe))
    for _ in range(post_threads):
        sim.start(post())
    sim.start(sink())
    for _ in range(pre_threads):
        sim.start(pre())
    sim.start(source())
    sim.run()
    queues = 3 + sum(len(s.pes) for s in stages)
    threads = pre_threads + sum(len(s.pes) for s in stages) + post_threads
    return SimResult(frames, read, done, busy, events, priced.throughput_fps,
                     depth=queues * buffers + threads)
