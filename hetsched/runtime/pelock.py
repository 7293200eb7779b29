"""The lock a PE's workers share: first come, first served, ownership handed to the next waiter.

A PE that serves several stages runs one frame at a time, in the order its workers asked for it
(contract section 4's model, and what `simulate` replays). `threading.Lock` does not keep that
order: a releasing worker whose next frame is already queued takes the lock straight back
before the waiter wakes, and since a PE's workers are pinned to the same cores the waiter cannot
even run until the holder blocks. One stage then runs several frames in a row while the stage
it feeds on the other PE starves. Here `release` passes the lock to the longest waiter, so the
releaser queues behind it.
"""

from __future__ import annotations

import threading
from collections import deque

from .channel import Aborted


class FifoLock:
    def __init__(self):
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Event] = deque()

    def acquire(self, abort: threading.Event, poll_s: float = 0.05) -> None:
        """Wait for the lock in arrival order; raise `Aborted` (without the lock) once `abort`
        is set."""
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Event()
            self._waiters.append(turn)
        while not turn.wait(poll_s):
            if abort.is_set():
                with self._mutex:
                    if not turn.is_set():
                        self._waiters.remove(turn)
                        raise Aborted
                # handed the lock while giving up: pass it on
                self.release()
                raise Aborted

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()     # still held: now by that waiter
            else:
                self._held = False

    @property
    def waiting(self) -> int:
        return len(self._waiters)
