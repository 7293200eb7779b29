"""Trivial sources, engines and sinks for driving the pipeline without a model."""

import threading
import time

import numpy as np

from hetsched.runtime.pipeline import Pipeline, Stage, Worker


class CountingSource:
    name = "counting"

    def __init__(self, n=None, fail_at=None, delay=0.0):
        self.n, self.fail_at, self.delay, self.i = n, fail_at, delay, 0

    def read(self):
        if self.fail_at is not None and self.i == self.fail_at:
            raise OSError("disk went away")
        if self.n is not None and self.i >= self.n:
            return None
        if self.delay:
            time.sleep(self.delay)
        self.i += 1
        return np.full((2, 2, 3), self.i - 1, np.int64)

    def close(self):
        pass


class AddEngine:
    """Reads `t{k-1}`, writes `t{k}` = input + 1; raises on frame value `fail_at`."""

    def __init__(self, k, fail_at=None, delay=0.0):
        self.k, self.fail_at, self.delay = k, fail_at, delay
        self.input_names, self.output_names = [f"t{k - 1}"], [f"t{k}"]
        self.closed = False

    def run(self, feeds):
        x = feeds[f"t{self.k - 1}"]
        if self.fail_at is not None and int(x.flat[0]) - (self.k - 1) == self.fail_at:
            raise ValueError("bad tensor")
        if self.delay:
            time.sleep(self.delay)
        return {f"t{self.k}": x + 1}

    def close(self):
        self.closed = True


class ListSink:
    name = "list"

    def __init__(self, block=None, delay=0.0):
        self.items, self.block, self.delay, self.kept = [], block, delay, None

    def write(self, frame):
        if self.block is not None:
            self.block.wait()
        if self.delay:
            time.sleep(self.delay)
        self.items.append((frame.seq, frame.index, int(frame.tensors[max(frame.tensors)].flat[0])))

    def close(self, keep):
        self.kept = keep


def pre(frame):
    frame.tensors = {"t0": frame.image[:1, :1, 0].astype(np.int64)}


def post(frame):
    pass


def chain(n_stages, pes=None, fail=None, delay=0.0, replicate=None):
    """Stage k (1-based engine index) on pes[k]; `fail=(k, frame)`; `replicate={k: [pe, pe]}`."""
    stages = []
    for k in range(1, n_stages + 1):
        names = (replicate or {}).get(k) or [pes[k - 1] if pes else f"pe{k}"]
        workers = [Worker(pe, lambda k=k: AddEngine(k, fail[1] if fail and fail[0] == k else None,
                                                   delay)) for pe in names]
        stages.append(Stage(workers))
    return stages


def make(source, stages, sink, **kw):
    return Pipeline(source, stages, pre=pre, post=post, sinks=[sink], **kw)


def hetsched_threads():
    return [t for t in threading.enumerate() if t.name.startswith("hetsched-")]
