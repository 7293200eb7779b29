"""Stopping the process from outside: SIGINT and SIGTERM, at any moment of any verb.

`signals()` (the command line holds it around every verb) turns both signals into `Interrupted`
raised in the main thread and sets a process-wide flag that long work on other threads polls with
`check()`, so every thread ends at its next check and the main thread can join them before the
interpreter exits. (A daemon thread still inside onnxruntime when the interpreter finalises is
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


@contextmanager
def signals():
    """SIGINT/SIGTERM -> `request` + `Interrupted` in the main thread, for the block's duration.
    A signal the parent process told us to ignore (`nohup`, a shell's background job) stays
    ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
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
        for sig, h in old.items():
            signal.signal(sig, h)
