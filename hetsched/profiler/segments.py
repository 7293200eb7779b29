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


def predicted_ms(prof: Profile, pe: str, first: int, last: int, graph: Graph | None = None) -> float:
    """Layers + the engine's launch + half the cut at each end that is a cut: the profile's
    `"p->p"` entry prices one whole cut (converting out on one side, back in on the other, the
    fusion lost), and a segment run alone pays one side of each."""
    launch = (prof.board.get("launch_ms") or {}).get(pe, 0.0)
    total = sum(prof.layers[i].cost_ms[pe] or 0.0 for i in range(first, last + 1)) + launch
    if graph is not None and f"{pe}->{pe}" in prof.transfer:
        for b in (first, last + 1):
            if 0 < b < len(graph):
                nbytes = sum(graph.tensors[t].bytes for t in graph.crossing(b))
                total += 0.5 * prof.transfer_ms(pe, pe, nbytes)
    return total


def time_segments(graph: Graph, segments: list[tuple[int, int]], cores: dict[str, list[int]],
                  threads: dict[str, int], optimization: str, *, runs: int = 7, warmup: int = 2,
                  progress=None) -> dict[tuple[str, int], float]:
    """Median ms of one `run` of each segment's session on each PE, (pe, segment index) keyed."""
    models = [graph.submodel(a, b) for a, b in segments]
    runners: dict[str, PinnedThread] = {}
    sessions: dict[str, list] = {}

    def timed(sess, feeds):
        def run():
            t0 = time.perf_counter()
            sess.run(None, feeds)
            return time.perf_counter() - t0
        return run
    samples = {(p, k): [] for p in cores for k in range(len(segments))}
    try:
        for p, c in cores.items():
            runners[p] = PinnedThread(c, f"segments-{p}")
            n = int(threads.get(p, len(c)))
            made = runners[p].call(lambda n=n: [session(m, n, optimization) for m in models])
            sessions[p] = [timed(s, random_feeds(s)) for s in made]
        for r in range(warmup + runs):
            for k in range(len(segments)):
                for p in cores:
                    t = runners[p].call(sessions[p][k])
                    if r >= warmup:
                        samples[(p, k)].append(t)
            if progress:
                progress("segments", r + 1, warmup + runs)
    finally:
        for runner in runners.values():
            runner.close()
    return {key: statistics.median(v) * 1e3 for key, v in samples.items()}


def check_segments(graph: Graph, prof: Profile, segments: list[tuple[int, int]], *,
                   runs: int = 7, warmup: int = 2, pes: list[str] | None = None,
                   progress=None) -> list[SegmentTime]:
    """Each segment run as a stage on each CPU PE of the profile, against its prediction."""
    from ..cores import cpu_pe
    pes = pes or [p for p, pe in prof.pes.items() if pe.kind == "cpu"]
    cores = {p: cpu_pe(p).extra["cores"] for p in pes}
    measured = time_segments(graph, segments, cores, prof.engine.get("intra_op_threads", {}),
                             prof.engine.get("optimization", "disable"), runs=runs,
                             warmup=warmup, progress=progress)
    return [SegmentTime(p, a, b, predicted_ms(prof, p, a, b, graph), measured[(p, k)])
            for k, (a, b) in enumerate(segments) for p in pes]
