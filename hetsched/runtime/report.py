"""What a pipeline run measured: throughput, latency percentiles, per-worker busy fraction, queue
occupancy, dropped frames; as a dataclass, a JSON-ready dict and a table."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np


@dataclass
class WorkerStats:
    stage: int
    pe: str
    frames: int
    busy_s: float


@dataclass
class Report:
    frames: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    workers: list[WorkerStats] = field(default_factory=list)
    queues: dict[str, dict] = field(default_factory=dict)
    dropped: int = 0
    stopped: str | None = None       # why the run ended early (SIGINT, SIGTERM, error)
    error: str | None = None
    leaked_threads: list[str] = field(default_factory=list)
    # PEs whose stage times were replayed from the profile, not run here: such a report
    # measures the runtime's scheduling of modeled costs, not the board
    emulated: list[str] = field(default_factory=list)
    # the pre- and post-processing pools: name -> (threads, busy seconds summed over them)
    pools: dict[str, tuple[int, float]] = field(default_factory=dict)
    # first read to the last engine run or delivery, whichever is later: the span busy
    # fractions are of (frames still in flight when a run stops were worked on after the last
    # delivery, so `wall_s` alone gave fractions above 1)
    busy_wall_s: float = 0.0
    # when each frame was delivered, seconds from the first read, in delivery order
    done_s: list[float] = field(default_factory=list, repr=False)
    last_read_s: float | None = None   # when the source gave its last frame (None: unknown)
    # the pools' CPU seconds (their threads' own, summed): busy time less this is time a pool
    # thread spent waiting inside its work, for the interpreter lock or a core
    pools_cpu_s: dict[str, float] = field(default_factory=dict)

    def _busy(self, seconds: float, threads: int = 1) -> float:
        span = max(self.busy_wall_s, self.wall_s)
        return seconds / (span * threads) if span > 0 else 0.0

    def service_ms(self) -> float | None:
        """Time a frame spends being worked on (each stage's mean run, plus the pools'), as
        against waiting in queues: latency minus this is queueing."""
        by: dict[int, list[float]] = {}
        for w in self.workers:
            by.setdefault(w.stage, [0.0, 0])
            by[w.stage][0] += w.busy_s
            by[w.stage][1] += w.frames
        if not self.frames or not by:
            return None
        total = sum(b / n for b, n in by.values() if n)
        return 1e3 * (total + sum(busy for _, busy in self.pools.values()) / self.frames)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def steady_fps(self) -> float:
        """The delivery rate in the steady state, the quantity the contract's throughput
        predicts: 1 / the least-squares slope of delivery time against frame number, over the
        frames delivered after the first quarter of the run and before the source read its last
        frame. `fps` counts the fill (the first frame crosses every stage alone, each engine's
        first runs allocate its buffers) and the drain (a source reads ahead of the slowest
        stage by every buffer in between, and once it has read its last frame the host works
        no more), each several percent of a 50-frame run of a deep pipeline. A slope, not the
        span's end points: deliveries come in bursts (replicated members, stages sharing a
        PE), and an end point in a burst moves a short span's rate by 10%. `fps` where fewer
        than 8 frames fall in that window."""
        done = self.done_s
        start = max(1, len(done) // 4)
        stop = len(done) if self.last_read_s is None else bisect_right(done, self.last_read_s)
        if stop - start < 8:
            return self.fps
        slope = float(np.polyfit(np.arange(stop - start, dtype=float),
                                 np.asarray(done[start:stop], dtype=float), 1)[0])
        return 1.0 / slope if slope > 0 else self.fps

    def latency(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else None

    def to_dict(self) -> dict:
        r = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return {
            "frames": self.frames, "wall_s": r(self.wall_s), "fps": r(self.fps),
            "steady_fps": r(self.steady_fps),
            "latency_ms_p50": r(self.latency(50)), "latency_ms_p95": r(self.latency(95)),
            "latency_ms_p99": r(self.latency(99)),
            "workers": [{"stage": w.stage, "pe": w.pe, "frames": w.frames,
                         "busy_fraction": r(self._busy(w.busy_s))} for w in self.workers],
            "pools": {name: {"threads": n, "busy_fraction": r(self._busy(busy, n)),
                             "ms_per_frame": r(1e3 * busy / self.frames) if self.frames else None,
                             "cpu_ms_per_frame": r(1e3 * self.pools_cpu_s[name] / self.frames)
                             if self.frames and name in self.pools_cpu_s else None}
                      for name, (n, busy) in self.pools.items()},
            "service_ms": r(self.service_ms()),
            "queues": self.queues, "dropped": self.dropped, "stopped": self.stopped,
            "error": self.error, "leaked_threads": self.leaked_threads,
            "emulated": self.emulated,
        }

    def format(self) -> str:
        d = self.to_dict()
        rows = [f"frames {d['frames']} in {d['wall_s']} s: {d['fps']} fps ({d['steady_fps']} in the "
                f"steady state); latency ms p50 "
                f"{d['latency_ms_p50']}  p95 {d['latency_ms_p95']}  p99 {d['latency_ms_p99']}; "
                f"dropped {d['dropped']}"]
        rows.append(f"{'stage':>5}  {'PE':<8}{'frames':>8}{'busy':>8}")
        for w in d["workers"]:
            rows.append(f"{w['stage']:>5}  {w['pe']:<8}{w['frames']:>8}{w['busy_fraction']:>8.2f}")
        for name, pool in d["pools"].items():
            rows.append(f"{name:>5}  {str(pool['threads']) + ' thr':<8}{'':>8}"
                        f"{pool['busy_fraction']:>8.2f}")
        service, p50 = d["service_ms"], d["latency_ms_p50"]
        if service and p50 and p50 > 2 * service:
            rows.append(f"latency counts from the source read: a frame is worked on for "
                        f"{service:.1f} ms and waits the rest in the queues, because a file or "
                        f"synthetic source reads ahead of the slowest stage (a camera at its own "
                        f"rate, or --mode latest, waits less)")
        rows.append("queues (mean / max / capacity): " + ", ".join(
            f"{k} {v['mean']:.2f}/{v['max']}/{v['capacity']}" for k, v in d["queues"].items()))
        if self.emulated:
            rows.append(f"emulated PEs: {', '.join(self.emulated)} (their stage times are replayed "
                        f"from the profile: this run measures scheduling, not those PEs)")
        if self.stopped:
            rows.append(f"stopped early: {self.stopped}")
        if self.leaked_threads:
            rows.append(f"threads that did not end within 1 s: {', '.join(self.leaked_threads)}")
        return "\n".join(rows)
