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
