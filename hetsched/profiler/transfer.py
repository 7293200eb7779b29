"""Cost of handing a tensor from one CPU PE to another, as the pipeline does it.

A producer thread pinned to PE A writes an array and hands it over a queue to a consumer thread
pinned to PE B, which copies it (the read pulls the data across the cores' caches). The time from
the producer's hand-off to the end of the copy, over sizes from 64 KB to 16 MB, is fitted by least
squares to `latency_ms + ms_per_mb * MB`.
"""

from __future__ import annotations

import queue
import statistics
import threading
import time

import numpy as np

from ..pinning import pin_current_thread
from ..profile import PE, Transfer

SIZES = (1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24)


def _measure_pair(src_cores, dst_cores, sizes=SIZES, repeats=7) -> list[tuple[int, float]]:
    handoff: queue.Queue = queue.Queue(maxsize=1)
    done: queue.Queue = queue.Queue(maxsize=1)
    results: list[tuple[int, float]] = []
    errors: list[BaseException] = []

    def consumer():
        try:
            pin_current_thread(dst_cores)
            while True:
                item = handoff.get()
                if item is None:
                    return
                t0, arr = item
                arr.copy()
                done.put(time.perf_counter() - t0)
        except BaseException as e:
            errors.append(e)
            done.put(None)

    def producer():
        try:
            pin_current_thread(src_cores)
            for size in sizes:
                arr = np.empty(size // 4, np.float32)
                samples = []
                for r in range(repeats):
                    arr.fill(r)  # the data now sits in the producer core's cache
                    handoff.put((time.perf_counter(), arr))
                    dt = done.get()
                    if dt is None:
                        return
                    samples.append(dt)
                results.append((size, statistics.median(samples[1:])))
        except BaseException as e:
            errors.append(e)
        finally:
            handoff.put(None)

    threads = [threading.Thread(target=consumer, daemon=True), threading.Thread(target=producer, daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def fit(points: list[tuple[int, float]]) -> Transfer:
    """Least-squares line through (bytes, seconds), as (latency ms, ms per 10^6 bytes), clamped
    at zero (a negative intercept is noise, not a time)."""
    mb = np.array([p[0] / 1e6 for p in points])
    ms = np.array([p[1] * 1e3 for p in points])
    slope, intercept = np.polyfit(mb, ms, 1)
    return Transfer(round(max(float(intercept), 0.0), 5), round(max(float(slope), 0.0), 5))


def measure_transfers(pes: list[PE]) -> tuple[dict[str, Transfer], str]:
    """Transfer entries for every ordered pair of CPU PEs, and 'default' (their mean; with a
    single PE, two threads on its own cores)."""
    cpus = [p for p in pes if p.kind == "cpu"]
    out: dict[str, Transfer] = {}
    for a in cpus:
        for b in cpus:
            if a is not b:
                out[f"{a.name}->{b.name}"] = fit(_measure_pair(a.extra["cores"], b.extra["cores"]))
    if out:
        out["default"] = Transfer(round(statistics.mean(t.latency_ms for t in out.values()), 5),
                                  round(statistics.mean(t.ms_per_mb for t in out.values()), 5))
    else:
        cores = cpus[0].extra["cores"] if cpus else [0]
        out["default"] = fit(_measure_pair(cores, cores))
    info = ("queue hand-off between threads pinned to the two PEs, consumer copies the array; "
            "least-squares fit over 64 KB..16 MB")
    return out, info
