"""Stopping the process from outside: SIGINT and SIGTERM, at any moment of any verb.

`signals()` (the command line holds it around every verb) turns both signals into `Interrupted`
raised in the main thread and sets a process-wide flag (`requested()`): the main thread unwinds,
and the joins on its way out (`PinnedThread.close`, the profiler's load threads) wait only briefly
once it is set, since the process is leaving; `check()` lets long work on another thread stop
at a point of its choosing. (A daemon thread still inside onnxruntime when the interpreter finalises is
what aborted `hetsched profile` with "terminate called without an active exception".)

`Interrupted` derives from `KeyboardInterrupt`, not from `Exception`: the many `except Exception`
and `except HetschedError` that carry a failed step's error as a value must not swallow a stop.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}

_requested = threading.Event()
_reason: list[str] = []


class Interrupted(KeyboardInterrupt):
    """The user stopped the process (`signame`: SIGINT or SIGTERM)."""

    def __init__(self, signame: str = "SIGINT"):
        super().__init__(f"stopped by {signame}")
        self.signame = signame

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signame, 130)


def request(signame: str) -> None:
    """Ask every polling thread to stop (what a signal does; also callable from tests)."""
    if not _requested.is_set():
        _reason.append(signame)
    _requested.set()


def requested() -> str | None:
    """The signal that asked the process to stop, or None."""
    return _reason[0] if _requested.is_set() else None


def check() -> None:
    """Raise `Interrupted` on any thread once a stop has been requested."""
    if _requested.is_set():
        raise Interrupted(_reason[0] if _reason else "SIGINT")


def reset() -> None:
    _requested.clear()
    _reason.clear()


_depth: list[int] = [0]


def active() -> bool:
    """Whether a `signals()` block (a command) is running: only then does a stop end more than
    the pipeline that received it."""
    return _depth[0] > 0


@contextmanager
def signals():
    """SIGINT/SIGTERM -> `request` + `Interrupted` in the main thread, for the block's duration.
    A signal the parent process told us to ignore (`nohup`, a shell's background job) stays
    ignored. Each block starts with the flag clear (a library user's earlier Ctrl-C is over)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reset()
    _depth[0] += 1
    old = {}

    def handler(signum, _frame):
        name = signal.Signals(signum).name
        request(name)
        raise Interrupted(name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue
        old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        _depth[0] -= 1
        for sig, h in old.items():
            signal.signal(sig, h)
