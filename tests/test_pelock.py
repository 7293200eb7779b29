"""The PE lock (runtime.pelock.FifoLock): granted in arrival order with the releaser queued
behind its waiters, never lost on abort, and a pipeline whose PE serves several stages still
delivers every frame once, in order."""

import threading
import time

import pytest

from hetsched.runtime.channel import Aborted
from hetsched.runtime.pelock import FifoLock


def _wait_until(cond, timeout=2.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.001)


def test_waiters_get_the_lock_in_arrival_order_and_the_releaser_queues_behind():
    lock, abort, got = FifoLock(fair_after_s=0.0), threading.Event(), []
    lock.acquire(abort)

    def worker(name):
        lock.acquire(abort)
        got.append(name)
        lock.release()
    threads = []
    for k in range(5):
        t = threading.Thread(target=worker, args=(k,))
        t.start()
        threads.append(t)
        _wait_until(lambda k=k: lock.waiting == k + 1)
    lock.release()
    # the old holder asks again at once: it must come after all five (threading.Lock would let
    # it barge in before the first waiter had woken)
    lock.acquire(abort)
    got.append("again")
    lock.release()
    for t in threads:
        t.join(2)
    assert got == [0, 1, 2, 3, 4, "again"]


def test_abort_while_waiting_leaves_the_lock_to_the_others():
    lock, abort = FifoLock(), threading.Event()
    lock.acquire(abort)
    raised = []

    def waiter():
        try:
            lock.acquire(abort, poll_s=0.01)
        except Aborted:
            raised.append(True)
    t = threading.Thread(target=waiter)
    t.start()
    _wait_until(lambda: lock.waiting == 1)
    abort.set()
    t.join(1)
    assert not t.is_alive() and raised == [True] and lock.waiting == 0
    lock.release()
    lock.acquire(threading.Event())         # free again: nobody kept it
    lock.release()


def test_a_lock_handed_over_as_the_waiter_gives_up_is_passed_on(monkeypatch):
    import hetsched.runtime.pelock as pelock
    lock, abort = FifoLock(fair_after_s=0.0), threading.Event()
    lock.acquire(abort)
    nxt = pelock._Waiter()

    class LateTurn(threading.Event):
        def wait(self, timeout=None):
            # the holder hands the lock over just as this waiter's poll times out on an abort
            lock._waiters.append(nxt)          # someone else queued behind
            abort.set()
            lock.release()
            return False
    monkeypatch.setattr(pelock.threading, "Event", LateTurn)
    with pytest.raises(Aborted):
        lock.acquire(abort)
    monkeypatch.undo()
    assert nxt.granted and nxt.turn.is_set()    # passed on to the next waiter, not kept
    lock.release()
    lock.acquire(threading.Event())             # and free once that one let go
    lock.release()


def test_a_short_wait_lets_the_releaser_go_on_a_long_one_is_served_first():
    lock, abort = FifoLock(fair_after_s=0.05), threading.Event()
    order = []

    def waiter():
        lock.acquire(abort)
        order.append("waiter")
        lock.release()
    for pause, expect in ((0.0, ["holder", "waiter"]), (0.1, ["waiter", "holder"])):
        order.clear()
        lock.acquire(abort)
        t = threading.Thread(target=waiter)
        t.start()
        _wait_until(lambda: lock.waiting == 1)
        time.sleep(pause)
        lock.release()
        lock.acquire(abort)              # the releaser asks again at once
        order.append("holder")
        lock.release()
        t.join(2)
        assert order == expect, pause


def test_a_pe_serving_three_stages_delivers_every_frame_in_order():
    import numpy as np
    from hetsched.runtime.pipeline import Pipeline, Stage, Worker

    class Sleepy:
        input_names, output_names = [], []

        def __init__(self, pe, ms):
            self.pe, self.ms = pe, ms

        def run(self, feeds):
            time.sleep(self.ms / 1e3)
            return {}

        def close(self):
            pass

    class Frames:
        name = "t"

        def __init__(self, n):
            self.n, self.i = n, 0

        def read(self):
            if self.i == self.n:
                return None
            self.i += 1
            return np.full((2, 2, 3), self.i, np.uint8)

        def close(self):
            pass
    stages = [Stage([Worker(pe, lambda pe=pe, ms=ms: Sleepy(pe, ms))])
              for pe, ms in (("a", 1), ("b", 2), ("a", 1), ("b", 1), ("a", 0.5))]
    seen = []
    pipe = Pipeline(Frames(60), stages, pre=lambda f: None, post=lambda f: seen.append(f.seq),
                    buffers=2, post_threads=1)
    report = pipe.run(handle_signals=False)
    assert report.frames == 60 and seen == list(range(60))
    assert not [t for t in threading.enumerate() if t.name.startswith("hetsched")]


def test_only_pinned_pes_hand_the_lock_over():
    """The hand-over cures the starvation of a waiter pinned to the holder's cores; an unpinned
    PE's waiter runs elsewhere, so its lock never hands over (no wake-up added to a release)."""
    import math
    from hetsched.runtime.pipeline import Pipeline, Stage, Worker
    stages = [Stage([Worker("cpu0", lambda: None, cores=[0])]), Stage([Worker("gpu", lambda: None)]),
              Stage([Worker("cpu0", lambda: None, cores=[0])])]
    pipe = Pipeline(None, stages, pre=lambda f: None, post=lambda f: None)
    assert pipe._pe_locks["cpu0"].fair_after_s == 1e-3
    assert pipe._pe_locks["gpu"].fair_after_s == math.inf
