"""Frames through threads: source -> pre-processing pool -> stage workers -> post-processing pool
-> sink, with a bounded `Channel` between each hop.

One worker thread per PE of each stage. A replicated stage's members take frames round robin
(member m of k gets the frames whose sequence number is m mod k, each through its own input
channel), as JEDI does and the contract prices it: a slow member holds the group back. A PE that
serves several stages runs one frame at a time through a per-PE lock taken in arrival order
(`pelock.FifoLock`), as the contract assumes and the simulator replays. Engines are
opened on their worker threads (CPU workers pin themselves first) and the source starts only
when every engine is ready, so load time is not charged to throughput.

Shutdown follows concurrent.futures.thread: every blocking call is on a channel that `abort()`
wakes, errors travel back as values (`_fail` records the first, names stage, PE and frame, and
aborts every channel), and `run` joins every thread against one deadline. Frames leave in source
order: the sink thread reorders by sequence number. In `latest` mode the source evicts the oldest
waiting frame instead of blocking; sequence numbers are given after that point, so the output
stays gap-free and only the drop count tells.
"""

from __future__ import annotations

import heapq
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from .. import stopping
from ..errors import HetschedError
from ..errors import describe as _why
from ..pinning import pin_current_thread
from .channel import Aborted, Channel, EndOfStream
from .pelock import FifoLock
from .frame import Frame
from .report import Report, WorkerStats

STOP_DEADLINE_S = 1.0
MODES = ("lossless", "latest")


log = logging.getLogger("hetsched")


class PipelineError(HetschedError):
    """A stage, source or sink failed; the message names where and on which frame, and
    `__cause__` is the exception itself (`-v` logs its traceback)."""

    def __init__(self, message: str, report: Report | None = None, kept: bool = False):
        super().__init__(message)
        self.report = report
        self.kept = kept     # the sinks kept what was delivered before the failure


class Stopped(stopping.Interrupted):
    """The run was stopped from outside (SIGINT, SIGTERM, `stop()`); `report` has what was done.
    An `Interrupted`, so no `except HetschedError` on the way up mistakes it for a failed step."""

    def __init__(self, reason: str, report: Report | None = None):
        super().__init__(reason)
        self.reason = reason
        self.report = report


class Source(Protocol):
    name: str

    def read(self): ...          # the next frame (H x W x 3), or None at the end

    def close(self) -> None: ...


class Sink(Protocol):
    name: str

    def write(self, frame: Frame) -> None: ...

    def close(self, keep: bool) -> None: ...   # keep=False: an error ended the run; discard


@dataclass
class Worker:
    pe: str
    open: Callable[[], object]       # returns an engine; called on the worker's own thread
    cores: list[int] | None = None   # pin the thread here first (CPU PEs)


@dataclass
class Stage:
    workers: list[Worker]
    keep: frozenset[str] | None = None   # tensors later hops still need (None: keep all)
    # a planned Preprocess / Postprocess (pipeline profiles): run on the stage's PE, under its
    # lock, before and after the network part
    pre: Callable[[Frame], None] | None = None
    post: Callable[[Frame], None] | None = None


class Pipeline:
    def __init__(self, source: Source, stages: list[Stage], *, pre: Callable[[Frame], None],
                 post: Callable[[Frame], None], sinks: list[Sink] = (), buffers: int = 2,
                 pre_threads: int = 1, post_threads: int = 1, mode: str = "lossless",
                 max_frames: int | None = None, keep_image: bool = False, record: int = 0,
                 host_cores: list[int] | None = None, emulated=()):
        if mode not in MODES:
            raise HetschedError(f"pipeline mode '{mode}' is not one of {', '.join(MODES)}")
        if buffers < 1 or pre_threads < 1 or post_threads < 1:
            raise HetschedError("buffers, pre_threads and post_threads must each be at least 1")
        if not stages or any(not s.workers for s in stages):
            raise HetschedError("a pipeline needs at least one stage, each with at least one PE")
        self.source, self.stages, self.sinks = source, stages, list(sinks)
        self.pre, self.post = pre, post
        self.mode, self.max_frames, self.keep_image = mode, max_frames, keep_image
        self.pre_threads, self.post_threads = pre_threads, post_threads
        self.q_src = Channel("source", buffers)
        # q_stage[j][m]: the input of member m of stage j; each is fed by every producer of the
        # hop before (the pre-processing pool, or every member of stage j-1)
        self.q_stage = [[Channel(f"stage{j}" + (f".{m}" if len(stages[j].workers) > 1 else ""),
                                 buffers, producers=pre_threads if j == 0 else len(stages[j - 1].workers))
                         for m in range(len(stages[j].workers))] for j in range(len(stages))]
        self.q_post = Channel("post", buffers, producers=len(stages[-1].workers))
        self.q_sink = Channel("sink", buffers, producers=post_threads)
        self._channels = [self.q_src, *(c for cs in self.q_stage for c in cs), self.q_post, self.q_sink]
        # the hand-over cures a starvation that pinning causes (a waiter pinned to the holder's
        # cores cannot run until the holder blocks); an unpinned waiter runs on another core,
        # and handing it the PE would only add its wake-up, under the interpreter lock, to every
        # release (the emulated Xavier's 8-stage yolov3 loop ran ~10% slower with it)
        self._pe_locks = {w.pe: FifoLock() if w.cores else FifoLock(fair_after_s=math.inf)
                          for s in stages for w in s.workers}
        self._seq_lock = threading.Lock()
        self._next_seq = 0
        self._error: str | None = None
        self._cause: BaseException | None = None
        # a source that fails after some frames ends the stream there: the frames before it
        # are delivered, then the run reports the failure
        self._source_error: tuple[str, BaseException] | None = None
        self._sinks_closed = False
        self._close_error: tuple[str, BaseException] | None = None
        self._stopped: str | None = None
        self._state = threading.Lock()
        self._done = threading.Event()
        self._abort = threading.Event()
        self._ready = threading.Event()
        self._pending = sum(len(s.workers) for s in stages)
        self._stats: list[WorkerStats] = []
        self._pool_busy = {"pre": [0.0] * pre_threads, "post": [0.0] * post_threads}
        self._pool_cpu = {"pre": [0.0] * pre_threads, "post": [0.0] * post_threads}
        self._t_last_run = 0.0
        self._latencies: list[float] = []
        self._done_s: list[float] = []
        self._frames = 0
        self._t_start = self._t_end = None
        self._t_last_read = None
        self._threads: list[threading.Thread] = []
        self._record = record     # keep the first `record` engine runs for a timeline
        self._host_cores = host_cores   # the source and sink run on the host (contract: host_ms)
        self.emulated = sorted(emulated)
        self.events: list[tuple[int, str, int, float, float]] = []   # stage, PE, seq, t0, t1

    # --- control -------------------------------------------------------------------------

    def _fail(self, message: str, cause: BaseException | None = None) -> None:
        with self._state:
            if self._error is None and self._stopped is None:
                self._error, self._cause = message, cause
                if cause is not None:
                    log.debug("%s", message, exc_info=cause)
        self._halt()

    @property
    def delivered(self) -> int:
        """Frames the sink has released so far (readable from any thread while it runs)."""
        return self._frames

    def stop(self, reason: str = "stop()") -> None:
        """Stop now (safe from a signal handler or another thread); `run` raises `Stopped`."""
        with self._state:
            if self._error is None and self._stopped is None:
                self._stopped = reason
        self._halt()

    def _halt(self) -> None:
        self._abort.set()
        for ch in self._channels:
            ch.abort()
        self._done.set()

    # --- threads -------------------------------------------------------------------------

    def _source_loop(self) -> None:
        if self._host_cores:
            pin_current_thread(self._host_cores)
        try:
            while not self._ready.wait(0.05):
                if self._abort.is_set():
                    return
            self._t_start = time.perf_counter()
            index = 0
            while self.max_frames is None or index < self.max_frames:
                try:
                    image = self.source.read()
                except Exception as e:
                    message = f"source '{self.source.name}' failed at frame {index}: {_why(e)}"
                    if index == 0:
                        self._fail(message, e)
                        return
                    log.debug("%s", message, exc_info=e)
                    self._source_error = (message, e)
                    break
                if image is None:
                    break
                self._t_last_read = time.perf_counter()
                self.q_src.put(Frame(index, image, self._t_last_read),
                               drop_oldest=self.mode == "latest")
                index += 1
            if index == 0:
                self._fail(f"source '{self.source.name}' gave no frames")
                return
            self.q_src.producer_done()
        except Aborted:
            pass

    def _pre_loop(self, k: int) -> None:
        busy, cpu = self._pool_busy["pre"], self._pool_cpu["pre"]
        try:
            while True:
                with self._seq_lock:  # sequence numbers in the order frames leave the source queue
                    frame = self.q_src.get()
                    frame.seq, self._next_seq = self._next_seq, self._next_seq + 1
                try:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    self.pre(frame)
                    busy[k] += time.perf_counter() - t0
                    cpu[k] += time.thread_time() - c0
                except Exception as e:
                    self._fail(f"pre-processing failed on frame {frame.seq}: {_why(e)}", e)
                    return
                if not self.keep_image:
                    frame.image = None
                _route(self.q_stage[0], frame).put(frame)
        except EndOfStream:
            for ch in self.q_stage[0]:
                ch.producer_done()
        except Aborted:
            pass

    def _stage_loop(self, j: int, m: int, worker: Worker, stats: WorkerStats) -> None:
        where = f"stage {j} on {worker.pe}"
        engine = None
        try:
            if worker.cores:
                pin_current_thread(worker.cores)
            engine = worker.open()
        except Exception as e:
            self._fail(f"{where}: cannot load the engine: {_why(e)}", e)
            return
        with self._state:
            self._pending -= 1
            if self._pending == 0:
                self._ready.set()
        inq = self.q_stage[j][m]
        outs = self.q_stage[j + 1] if j + 1 < len(self.stages) else [self.q_post]
        keep = self.stages[j].keep
        pre, post = self.stages[j].pre, self.stages[j].post
        lock = self._pe_locks[worker.pe]
        try:
            while True:
                frame = inq.get()
                lock.acquire(self._abort)
                part = "engine"
                try:
                    t0 = time.perf_counter()
                    if pre is not None:
                        part = "pre-processing"
                        pre(frame)
                        part = "engine"
                    out = engine.run(frame.tensors)
                    if post is not None:
                        frame.tensors.update(out)
                        out = {}
                        part = "post-processing"
                        post(frame)
                    t1 = time.perf_counter()
                    stats.busy_s += t1 - t0
                    self._t_last_run = max(self._t_last_run, t1)
                    if len(self.events) < self._record:
                        self.events.append((j, worker.pe, frame.seq, t0 - self._t_start, t1 - self._t_start))
                except Exception as e:
                    what = where if part == "engine" else f"{part} in {where}"
                    self._fail(f"{what} failed on frame {frame.seq}: {_why(e)}", e)
                    return
                finally:
                    lock.release()
                stats.frames += 1
                frame.tensors.update(out)
                if keep is not None:
                    frame.tensors = {k: v for k, v in frame.tensors.items() if k in keep}
                _route(outs, frame).put(frame)
        except EndOfStream:
            for ch in outs:
                ch.producer_done()
        except Aborted:
            pass
        finally:
            try:
                engine.close()
            except Exception:
                pass

    def _post_loop(self, k: int) -> None:
        busy, cpu = self._pool_busy["post"], self._pool_cpu["post"]
        try:
            while True:
                frame = self.q_post.get()
                try:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    self.post(frame)
                    busy[k] += time.perf_counter() - t0
                    cpu[k] += time.thread_time() - c0
                except Exception as e:
                    self._fail(f"post-processing failed on frame {frame.seq}: {_why(e)}", e)
                    return
                self.q_sink.put(frame)
        except EndOfStream:
            self.q_sink.producer_done()
        except Aborted:
            pass

    def _sink_loop(self) -> None:
        if self._host_cores:
            pin_current_thread(self._host_cores)
        ended = False
        waiting: list = []
        next_seq = 0
        try:
            while True:
                frame = self.q_sink.get()
                heapq.heappush(waiting, (frame.seq, id(frame), frame))
                while waiting and waiting[0][0] == next_seq:
                    f = heapq.heappop(waiting)[2]
                    for sink in self.sinks:
                        try:
                            sink.write(f)
                        except Exception as e:
                            self._fail(f"sink '{sink.name}' failed on frame {f.seq}: {_why(e)}", e)
                            return
                    f.t_done = time.perf_counter()
                    self._latencies.append((f.t_done - f.t_read) * 1e3)
                    self._done_s.append(f.t_done - self._t_start)
                    self._frames += 1
                    self._t_end = f.t_done
                    next_seq += 1
        except EndOfStream:
            ended = True
            if waiting:
                self._fail(f"internal: frames {[w[0] for w in waiting][:5]} never got their "
                           f"predecessor {next_seq}")
        except Aborted:
            pass
        finally:
            self._close_sinks(self._error is None and self._frames > 0)
            if ended:
                self._done.set()

    def _close_sinks(self, keep: bool) -> None:
        if self._sinks_closed:
            return
        self._sinks_closed = True
        for sink in self.sinks:
            try:
                sink.close(keep)
            except Exception as e:
                # kept apart from _fail, which a stop silences: a file that was not put in
                # place must not be reported kept
                if self._close_error is None:
                    self._close_error = (f"sink '{sink.name}' could not be closed: {_why(e)}", e)
                self._fail(f"sink '{sink.name}' could not be closed: {_why(e)}", e)

    def abandon(self) -> None:
        """The run will not happen (stopped or failed before `run`): discard the sinks' files.
        Once `run` has started the sink thread owns them (even one that outlived the stop)."""
        if not any(t.name == "hetsched-sink" for t in self._threads):
            self._close_sinks(False)

    # --- running -------------------------------------------------------------------------

    def _spawn(self, name: str, target, *args) -> None:
        t = threading.Thread(target=target, args=args, name=f"hetsched-{name}", daemon=True)
        self._threads.append(t)
        t.start()

    def run(self, handle_signals: bool = True) -> Report:
        """Run to the end of the stream. Raises `PipelineError` on a failure and `Stopped` on
        SIGINT/SIGTERM/`stop()`, each carrying the report of what was done; every thread has
        ended (or is named in the report) within `STOP_DEADLINE_S` of the stop."""
        restore = self._install_signals() if handle_signals else {}
        if stopping.requested():
            self.stop(stopping.requested())
        try:
            if self._stopped:
                raise _NotStarted
            for j, stage in enumerate(self.stages):
                for m, w in enumerate(stage.workers):
                    stats = WorkerStats(j, w.pe, 0, 0.0)
                    self._stats.append(stats)
                    self._spawn(f"stage{j}-{w.pe}", self._stage_loop, j, m, w, stats)
            self._spawn("source", self._source_loop)
            for k in range(self.pre_threads):
                self._spawn(f"pre{k}", self._pre_loop, k)
            for k in range(self.post_threads):
                self._spawn(f"post{k}", self._post_loop, k)
            self._spawn("sink", self._sink_loop)
            try:
                while not self._done.wait(0.05):
                    pass
            except KeyboardInterrupt:
                self.stop("SIGINT")
            except BaseException:
                self.stop("an exception in the calling thread")
                raise
        except _NotStarted:
            pass
        finally:
            if self._error or self._stopped:
                self._halt()
            leaked = self._join()
            try:
                self.source.close()
            except Exception:
                pass
            if not any(t.name == "hetsched-sink" and t.is_alive() for t in self._threads):
                self._close_sinks(False)   # the sink thread never got to it: nothing was written
            for sig, handler in restore.items():     # last: a second signal meets our handler
                signal.signal(sig, handler)
        report = self._report(leaked)
        if self._close_error and not self._error:
            self._error, self._cause = self._close_error
            report.error = self._error
        if self._error:
            raise PipelineError(self._error, report) from self._cause
        if self._stopped:
            raise Stopped(self._stopped, report)
        if self._source_error:
            report.error = self._source_error[0]
            raise PipelineError(self._source_error[0], report, kept=True) from self._source_error[1]
        return report

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        def handler(signum, _frame):
            name = signal.Signals(signum).name
            if stopping.active():
                stopping.request(name)     # the whole command stops, not just this pipeline
            self.stop(name)

        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                old[sig] = signal.signal(sig, handler)
        return old

    def _join(self) -> list[str]:
        deadline = time.monotonic() + STOP_DEADLINE_S
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self._threads if t.is_alive()]

    def _report(self, leaked: list[str]) -> Report:
        wall = (self._t_end - self._t_start) if self._t_start and self._t_end else 0.0
        queues = {ch.name: {"mean": round(ch.mean_occupancy(), 3), "max": ch.max_len,
                            "capacity": ch.capacity} for ch in self._channels}
        busy_wall = (max(self._t_end or 0.0, self._t_last_run) - self._t_start) \
            if self._t_start else 0.0
        pools = {name: (len(b), sum(b)) for name, b in self._pool_busy.items()}
        return Report(self._frames, wall, list(self._latencies), list(self._stats), queues,
                      self.q_src.dropped, self._stopped, self._error, leaked, list(self.emulated),
                      pools, max(busy_wall, 0.0), list(self._done_s),
                      (self._t_last_read - self._t_start) if self._t_start and self._t_last_read
                      else None, {name: sum(c) for name, c in self._pool_cpu.items()})


class _NotStarted(Exception):
    """`run` was stopped before it started a thread."""


def _route(channels: list[Channel], frame: Frame) -> Channel:
    """Round robin over a replicated stage's members by sequence number."""
    return channels[frame.seq % len(channels)]

