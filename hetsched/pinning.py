"""Run work on a thread pinned to a set of cores (Linux: affinity is per thread)."""

from __future__ import annotations

import os
import threading


def pin_current_thread(cores) -> None:
    os.sched_setaffinity(0, set(cores))  # 0 = the calling thread on Linux


def run_pinned(cores, fn, *args, **kwargs):
    """Call fn on a fresh thread pinned to `cores` and return its result (or raise its error).

    onnxruntime's pool threads inherit the affinity of the thread that creates the session, so
    sessions must be created, not just run, inside the pinned thread."""
    box: dict = {}

    def body():
        try:
            pin_current_thread(cores)
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # carried back to the caller as a value
            box["error"] = e

    t = threading.Thread(target=body, name=f"pinned-{','.join(map(str, cores))}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class PinnedThread:
    """One thread pinned to `cores` that runs the callables given to `call`, one at a time, and
    hands back each result (or raises its error here). Work that must stay on one pinned thread
    (onnxruntime sessions: their pools inherit the creating thread's affinity) is done there,
    while the caller interleaves several such threads round by round."""

    def __init__(self, cores, name: str = "pinned"):
        import queue
        self._requests: queue.Queue = queue.Queue()
        self._replies: queue.Queue = queue.Queue()
        self._cores = list(cores)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            pin_current_thread(self._cores)
        except BaseException as e:
            self._replies.put((False, e))
            return
        self._replies.put((True, None))
        while True:
            fn = self._requests.get()
            if fn is None:
                return
            try:
                self._replies.put((True, fn()))
            except BaseException as e:   # carried back as a value
                self._replies.put((False, e))

    def _reply(self):
        ok, value = self._replies.get()
        if not ok:
            raise value
        return value

    def call(self, fn):
        if not hasattr(self, "_started"):
            self._started = self._reply()   # the pinning itself may have failed
        self._requests.put(fn)
        return self._reply()

    def close(self) -> None:
        from . import stopping
        self._requests.put(None)
        # after a stop the caller must not wait out a long run (the process exit copes with a
        # thread still inside onnxruntime: cli.console)
        self._thread.join(0.3 if stopping.requested() else 5.0)
