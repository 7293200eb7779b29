"""What a pipeline run measured: throughput, latency percentiles, per-worker busy fraction, queue
occupancy, dropped frames; as a dataclass, a JSON-ready dict and a table."""

from __future__ import annotations

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

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def latency(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else None

    def to_dict(self) -> dict:
        r = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return {
            "frames": self.frames, "wall_s": r(self.wall_s), "fps": r(self.fps),
            "latency_ms_p50": r(self.latency(50)), "latency_ms_p95": r(self.latency(95)),
            "latency_ms_p99": r(self.latency(99)),
            "workers": [{"stage": w.stage, "pe": w.pe, "frames": w.frames,
                         "busy_fraction": r(w.busy_s / self.wall_s if self.wall_s else 0.0)}
                        for w in self.workers],
            "queues": self.queues, "dropped": self.dropped, "stopped": self.stopped,
            "error": self.error, "leaked_threads": self.leaked_threads,
        }

    def format(self) -> str:
        d = self.to_dict()
        rows = [f"frames {d['frames']} in {d['wall_s']} s: {d['fps']} fps; latency ms p50 "
                f"{d['latency_ms_p50']}  p95 {d['latency_ms_p95']}  p99 {d['latency_ms_p99']}; "
                f"dropped {d['dropped']}"]
        rows.append(f"{'stage':>5}  {'PE':<8}{'frames':>8}{'busy':>8}")
        for w in d["workers"]:
            rows.append(f"{w['stage']:>5}  {w['pe']:<8}{w['frames']:>8}{w['busy_fraction']:>8.2f}")
        rows.append("queues (mean / max / capacity): " + ", ".join(
            f"{k} {v['mean']:.2f}/{v['max']}/{v['capacity']}" for k, v in d["queues"].items()))
        if self.stopped:
            rows.append(f"stopped early: {self.stopped}")
        if self.leaked_threads:
            rows.append(f"threads that did not end within 1 s: {', '.join(self.leaked_threads)}")
        return "\n".join(rows)
