"""Jetson boards' INA3221 power monitors in sysfs; the board's total is the VDD_IN rail.

JetPack >= 5 (Orin, Xavier on JP5): `/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/` with
`in{N}_label`, `in{N}_input` (mV) and `curr{N}_input` (mA). JetPack <= 4 (TX2, Xavier):
`/sys/bus/i2c/drivers/ina3221x/*/iio:device*/` with `rail_name_{N}` and `in_power{N}_input` (mW).
These are instantaneous readings: energy is their trapezoid over time.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import Meter

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")


def _read(path: Path) -> str:
    return path.read_text().strip()


def hwmon_rails(root: Path) -> dict[str, callable]:
    rails = {}
    for dev in sorted(root.glob("sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*")):
        for label in sorted(dev.glob("in*_label")):
            n = label.name[2:-len("_label")]
            volt, curr = dev / f"in{n}_input", dev / f"curr{n}_input"
            if volt.exists() and curr.exists():
                rails[_read(label)] = (lambda v=volt, c=curr: int(_read(v)) * int(_read(c)) / 1e6)
    return rails


def iio_rails(root: Path) -> dict[str, callable]:
    rails = {}
    for dev in sorted(root.glob("sys/bus/i2c/drivers/ina3221x/*/iio:device*")):
        for name in sorted(dev.glob("rail_name_*")):
            n = name.name[len("rail_name_"):]
            power = dev / f"in_power{n}_input"
            if power.exists():
                rails[_read(name)] = (lambda p=power: int(_read(p)) / 1e3)
    return rails


class JetsonMeter(Meter):
    name = "ina3221"
    interval_s = 0.01

    def __init__(self, rails: dict[str, callable], layout: str):
        super().__init__()
        self.layout = layout
        self.rails = rails
        total = next((r for r in TOTAL_RAILS if r in rails), None)
        self.total = [total] if total else sorted(rails)
        self.what = f"board ({total} rail)" if total else "sum of all INA3221 rails (no VDD_IN)"
        self._last: tuple[float, float] | None = None

    def watts(self) -> float:
        return sum(self.rails[r]() for r in self.total)

    def _sample(self) -> float:
        now, w = time.perf_counter(), self.watts()
        last, self._last = self._last, (now, w)
        return 0.0 if last is None else (now - last[0]) * (w + last[1]) / 2

    def describe(self) -> dict:
        return {**super().describe(), "layout": self.layout, "rails": sorted(self.rails)}


def probe(root: str = "/"):
    base = Path(root)
    for layout, find in (("hwmon", hwmon_rails), ("iio", iio_rails)):
        try:
            rails = find(base)
        except (OSError, ValueError) as e:
            return None, f"INA3221 ({layout}): unreadable ({e})"
        if rails:
            meter = JetsonMeter(rails, layout)
            try:
                meter.watts()
            except (OSError, ValueError) as e:
                return None, f"INA3221 ({layout}): unreadable ({e})"
            return meter, ""
    return None, "INA3221: no Jetson power monitor in sysfs"
