"""This machine's CPU cores as processing elements: `cpu0` is core 0, `cpu2-3` is cores 2 and 3
as one PE; which cores this process may use, and what the CPU is called. The profiler, the
runtime and `devices` all name cores this way."""

from __future__ import annotations

import os
import platform
import re

from .errors import HetschedError
from .profile import PE

_CPU = re.compile(r"^cpu(\d+)(?:-(\d+))?$")


def usable_cores() -> set[int]:
    return set(os.sched_getaffinity(0))


def cpu_pe(name: str) -> PE:
    m = _CPU.match(name)
    if not m:
        raise HetschedError(f"'{name}' is not a CPU PE name (cpuN or cpuA-B)")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    if hi < lo:
        raise HetschedError(f"PE '{name}': core range runs backwards")
    cores = list(range(lo, hi + 1))
    missing = sorted(set(cores) - usable_cores())
    if missing:
        raise HetschedError(f"PE '{name}' needs core(s) {missing}, but this process may use cores "
                            f"{sorted(usable_cores())}")
    return PE(name, "cpu", {"cores": cores})


def parse_pes(spec: str) -> list[PE]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise HetschedError("no PE given (e.g. --pe cpu0,cpu1)")
    if len(set(names)) != len(names):
        raise HetschedError(f"PE list '{spec}' names a PE twice")
    pes = [cpu_pe(n) for n in names]
    taken: dict[int, str] = {}
    for pe in pes:
        for c in pe.extra["cores"]:
            if c in taken:
                raise HetschedError(f"PEs '{taken[c]}' and '{pe.name}' share core {c}")
            taken[c] = pe.name
    return pes


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
