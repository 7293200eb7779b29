"""Does a profile predict the runtime? Contiguous segments of a model are run as the runtime runs
a stage (its onnxruntime engine, at the profile's engine configuration, on a thread pinned to
the PE) and timed against what the profile predicts for them: the sum of their layers' costs
plus the PE's stage overhead.

One pinned thread per PE (`pinning.PinnedThread`) creates every segment's session there
(onnxruntime's pool inherits the affinity) and times one run per request; requests alternate over
segments and PEs round by round, so the drift of a shared machine falls on all of them alike,
and each figure is a median over rounds. The prediction is the layers' costs plus the engine's
launch cost (`board.launch_ms`): a stage's whole overhead also holds the runtime's hand-off
(`board.hop_ms`), which a bare `run` does not pay.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from ..graph import Graph
from ..ortsession import random_feeds, session
from ..pinning import PinnedThread
from ..profile import Profile


@dataclass
class SegmentTime:
    pe: str
    first: int
    last: int
    predicted_ms: float
    measured_ms: float

    @property
    def error(self) -> float:
        """(predicted - measured) / measured."""
        return (self.predicted_ms - self.measured_ms) / self.measured_ms


def random_segments(n: int, count: int, seed: int = 0) -> list[tuple[int, int]]:
    """`count` distinct contiguous segments (first, last) of n layers, uniform over pairs."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int]] = []
    pairs = n * (n + 1) // 2
    while len(out) < min(count, pairs):
        a, b = sorted(int(x) for x in rng.integers(0, n, 2))
        if (a, b) not in out:
            out.append((a, b))
    return out


def predicted_ms(prof: Profile, pe: str, first: int, last: int) -> float:
    launch = (prof.board.get("launch_ms") or {}).get(pe, 0.0)
    return sum(prof.layers[i].cost_ms[pe] or 0.0 for i in range(first, last + 1)) + launch


def check_segments(graph: Graph, prof: Profile, segments: list[tuple[int, int]], *,
                   runs: int = 7, warmup: int = 2, pes: list[str] | None = None,
                   progress=None) -> list[SegmentTime]:
    """Each segment run as a stage on each CPU PE of the profile, against its prediction."""
    from .pes import cpu_pe
    pes = pes or [p for p, pe in prof.pes.items() if pe.kind == "cpu"]
    optimization = prof.engine.get("optimization", "disable")
    threads = prof.engine.get("intra_op_threads", {})
    models = [graph.submodel(a, b) for a, b in segments]
    runners: dict[str, PinnedThread] = {}
    sessions: dict[str, list] = {}

    def timed(sess, feeds):
        def run():
            t0 = time.perf_counter()
            sess.run(None, feeds)
            return time.perf_counter() - t0
        return run
    try:
        for p in pes:
            cores = cpu_pe(p).extra["cores"]
            runners[p] = PinnedThread(cores, f"segments-{p}")
            n = int(threads.get(p, len(cores)))
            made = runners[p].call(lambda n=n: [session(m, n, optimization) for m in models])
            sessions[p] = [timed(s, random_feeds(s)) for s in made]
        samples = {(p, k): [] for p in pes for k in range(len(segments))}
        for r in range(warmup + runs):
            for k in range(len(segments)):
                for p in pes:
                    t = runners[p].call(sessions[p][k])
                    if r >= warmup:
                        samples[(p, k)].append(t)
            if progress:
                progress("segments", r + 1, warmup + runs)
    finally:
        for runner in runners.values():
            runner.close()
    return [SegmentTime(p, a, b, predicted_ms(prof, p, a, b),
                        statistics.median(samples[(p, k)]) * 1e3)
            for k, (a, b) in enumerate(segments) for p in pes]
