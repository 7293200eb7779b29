"""A bounded FIFO between pipeline hops that can be closed (end of stream) or aborted (stop now).

`queue.Queue` cannot wake a thread blocked in `get` or `put` when the pipeline must stop, so
every hop would need polling timeouts. Here `abort()` wakes every waiter at once and makes every
blocked or later call raise `Aborted`; a channel fed by several producers (a pre-processing pool,
the members of a replicated stage) ends only when the last of them has called `producer_done()`,
after which `get` drains what is left and then raises `EndOfStream`.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class EndOfStream(Exception):
    """Every producer is done and the channel is empty."""


class Aborted(Exception):
    """The pipeline is stopping; drop whatever is in hand."""


class Channel:
    def __init__(self, name: str, capacity: int, producers: int = 1):
        if capacity < 1:
            raise ValueError(f"channel '{name}': capacity must be at least 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._producers = producers
        self._aborted = False
        # time-weighted occupancy: sum of len * dt since the first put
        self._t_last: float | None = None
        self._area = 0.0
        self._t0: float | None = None
        self.max_len = 0
        self.dropped = 0

    def _account(self) -> None:
        now = time.perf_counter()
        if self._t_last is None:
            self._t0 = now
        else:
            self._area += len(self._items) * (now - self._t_last)
        self._t_last = now

    def put(self, item, drop_oldest: bool = False):
        """Block while full (or, with `drop_oldest`, evict the oldest item and return it)."""
        with self._cond:
            evicted = None
            while len(self._items) >= self.capacity and not self._aborted:
                if drop_oldest:
                    self._account()
                    evicted = self._items.popleft()
                    self.dropped += 1
                    break
                self._cond.wait()
            if self._aborted:
                raise Aborted
            self._account()
            self._items.append(item)
            self.max_len = max(self.max_len, len(self._items))
            self._cond.notify_all()
            return evicted

    def get(self):
        with self._cond:
            while not self._items and self._producers > 0 and not self._aborted:
                self._cond.wait()
            if self._aborted:
                raise Aborted
            if not self._items:
                raise EndOfStream
            self._account()
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def producer_done(self) -> None:
        with self._cond:
            self._producers -= 1
            self._cond.notify_all()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._items.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)

    def mean_occupancy(self) -> float:
        with self._cond:
            if self._t_last is None or self._t_last == self._t0:
                return 0.0
            return self._area / (self._t_last - self._t0)
