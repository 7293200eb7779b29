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


def _cpuinfo_blocks() -> dict[int, dict[str, str]]:
    """/proc/cpuinfo as {processor: {field: value}} (empty where it cannot be read)."""
    blocks: dict[int, dict[str, str]] = {}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return blocks
    for block in text.split("\n\n"):
        fields = dict((k.strip(), v.strip()) for k, _, v in
                      (line.partition(":") for line in block.splitlines()) if k.strip())
        if fields.get("processor", "").isdigit():
            blocks[int(fields["processor"])] = fields
    return blocks


def _sys_value(core: int, leaf: str) -> str | None:
    try:
        with open(f"/sys/devices/system/cpu/cpu{core}/{leaf}") as f:
            return f.read().strip()
    except OSError:
        return None


def core_kind(core: int, info: dict[int, dict[str, str]] | None = None, sysfs=_sys_value) -> tuple:
    """What makes two cores the same kind: the CPU's model and part (Arm cores name their part:
    a TX2's Denver and A57 differ), the kernel's capacity figure for big.LITTLE, and the top
    clock. A field the machine does not report counts as equal."""
    fields = (info if info is not None else _cpuinfo_blocks()).get(core, {})
    return (tuple(fields.get(k) for k in ("model name", "CPU implementer", "CPU part", "CPU variant"))
            + (sysfs(core, "cpu_capacity"), sysfs(core, "cpufreq/cpuinfo_max_freq")))


def pe_signatures(pes: list[PE], info: dict[int, dict[str, str]] | None = None,
                  sysfs=_sys_value) -> dict[str, tuple]:
    """Per CPU PE the kinds of its cores, in order: PEs with equal signatures are interchangeable
    (profiler.pooling measures them as one). `info`: /proc/cpuinfo as `_cpuinfo_blocks` reads it;
    `sysfs(core, leaf)`: a file under /sys/devices/system/cpu/cpuN."""
    info = _cpuinfo_blocks() if info is None else info
    return {pe.name: tuple(core_kind(c, info, sysfs) for c in pe.extra["cores"])
            for pe in pes if pe.kind == "cpu"}
