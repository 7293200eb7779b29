"""Intel/AMD RAPL through powercap sysfs: `/sys/class/powercap/intel-rapl:N/energy_uj` per
package (sub-zones `intel-rapl:N:M` are parts of it and are not added again). The counter wraps
at `max_energy_range_uj`; the meter samples often enough to see at most one wrap between samples.
Reading it is often root-only since 2020 (a side channel), which is reported as the reason."""

from __future__ import annotations

import re
from pathlib import Path

from . import Meter

_ZONE = re.compile(r"^intel-rapl:\d+$")


class RaplMeter(Meter):
    name = "rapl"
    what = "CPU package(s)"
    interval_s = 0.5

    def __init__(self, zones: list[Path]):
        super().__init__()
        self.zones = zones
        self._max = [int((z / "max_energy_range_uj").read_text()) for z in zones]
        self._last: list[int] | None = None

    def _read(self) -> list[int]:
        return [int((z / "energy_uj").read_text()) for z in self.zones]

    def _sample(self) -> float:
        now = self._read()
        if self._last is None:
            self._last = now
            return 0.0
        uj = 0
        for prev, cur, top in zip(self._last, now, self._max):
            uj += cur - prev if cur >= prev else cur + top - prev   # wrapped once
        self._last = now
        return uj / 1e6

    def describe(self) -> dict:
        return {**super().describe(), "zones": [z.name for z in self.zones]}


def probe(root: str = "/"):
    base = Path(root) / "sys/class/powercap"
    zones = sorted(p for p in base.glob("intel-rapl:*") if _ZONE.match(p.name)) if base.is_dir() else []
    if not zones:
        return None, "RAPL: no /sys/class/powercap/intel-rapl:N zone"
    try:
        meter = RaplMeter(zones)
        meter._read()
    except PermissionError:
        return None, "RAPL: energy_uj is readable by root only here"
    except (OSError, ValueError) as e:
        return None, f"RAPL: unreadable ({e})"
    return meter, ""
