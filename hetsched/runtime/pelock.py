"""The lock a PE's workers share: first come, first served once a waiter has waited long enough.

A PE that serves several stages runs one frame at a time, in the order its workers asked for it
(contract section 4's model, and what `simulate` replays). `threading.Lock` does not keep that
order: a releasing worker whose next frame is already queued takes the lock straight back
before the waiter wakes, and since a PE's workers are pinned to the same cores the waiter cannot
even run until the holder blocks. One stage then runs several frames in a row while the stage
it feeds on the other PE starves: deep plans on the two CPU cores ran 5-6% under their
prediction for it (README, Performance).

Handing the lock to the waiter costs a wake-up (~0.1 ms on the VM) during which the PE is
owned but idle; for emulated stages of well under a millisecond that cost more than the order
gained (tiny-yolov3 and yolov4-tiny on the emulated Xavier ran 6-8% slower with a strict
hand-over). So `release` hands the lock to the longest waiter once it has waited `fair_after_s`
(1 ms by default: shorter than any real CPU stage, longer than a short emulated one); before
that it frees the lock, wakes that waiter, and whoever asks first takes it. The pipeline gives
the hand-over only to pinned PEs (CPU cores), whose starvation it cures; a PE whose workers are
not pinned (GPU, DLA, emulated) gets `fair_after_s=math.inf`, since its waiter can run on another
core and a hand-over would only add the waiter's wake-up to each release.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from .channel import Aborted


class _Waiter:
    __slots__ = ("turn", "since", "granted")

    def __init__(self):
        self.turn = threading.Event()
        self.since = time.perf_counter()
        self.granted = False


class FifoLock:
    def __init__(self, fair_after_s: float = 1e-3):
        self.fair_after_s = fair_after_s
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[_Waiter] = deque()

    def acquire(self, abort: threading.Event, poll_s: float = 0.05) -> None:
        """Take the lock (in arrival order for waits over `fair_after_s`); raise `Aborted`,
        without the lock, once `abort` is set."""
        with self._mutex:
            if not self._held:
                self._held = True
                return
            me = _Waiter()
            self._waiters.append(me)
        while True:
            me.turn.wait(poll_s)
            with self._mutex:
                if not me.granted and not self._held:
                    self._held = True
                    self._waiters.remove(me)
                    return
                if me.granted and not abort.is_set():
                    return
                if not me.granted:
                    me.turn.clear()
                    if abort.is_set():
                        self._waiters.remove(me)
                        raise Aborted
                    continue
            # handed the lock while giving up: pass it on
            self.release()
            raise Aborted

    def release(self) -> None:
        with self._mutex:
            if self._waiters and time.perf_counter() - self._waiters[0].since >= self.fair_after_s:
                w = self._waiters.popleft()
                w.granted = True            # still held: now by that waiter
                w.turn.set()
            else:
                self._held = False
                if self._waiters:
                    self._waiters[0].turn.set()

    @property
    def waiting(self) -> int:
        return len(self._waiters)
