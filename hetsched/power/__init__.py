"""Energy meters: how many joules the board (or package, or GPU) used while a benchmark ran.

Backends, tried in this order by `detect()`: Jetson INA3221 rails in sysfs (board power; the
JetPack 5+ `hwmon` layout and the JetPack 4 `iio` layout), NVIDIA's NVML energy counter (GPU
only), Intel/AMD RAPL (`energy_uj`, CPU package). None found means energy is *unavailable*,
reported as null, never as zero. Each meter runs one sampling thread that adds up energy between
samples, so a wrapping counter (RAPL) or an instantaneous power reading (INA3221) becomes joules.
"""

from __future__ import annotations

import threading


class Meter:
    """Base of every backend: `_sample()` returns the joules since the previous call."""

    name = "meter"
    what = ""          # what the figure covers: "board", "GPU", "CPU package"
    interval_s = 0.02

    def __init__(self):
        self._joules = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # readings that failed (a sysfs file read while the driver rewrote it came back empty),
        # over the meter's life: the next good one integrates across the gap
        self.missed = 0
        self.last_error: str | None = None

    def _sample(self) -> float:
        raise NotImplementedError

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._add()

    def _add(self) -> None:
        try:
            j = self._sample()
        except Exception as e:      # one bad reading must not end the metering
            self.missed += 1
            self.last_error = f"{type(e).__name__}: {e}"
            return
        with self._lock:
            self._joules += j

    def start(self) -> "Meter":
        self._sample()   # sets the starting point
        self._joules = 0.0
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name=f"hetsched-power-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> float:
        """Joules since `start`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        self._add()
        return self._joules

    def describe(self) -> dict:
        d = {"backend": self.name, "covers": self.what}
        if self.missed:
            d.update(missed_readings=self.missed, last_error=self.last_error)
        return d


def detect(root: str = "/") -> tuple[Meter | None, list[str]]:
    """The first backend that works here, and why each one before it did not."""
    from . import jetson, nvml, rapl
    reasons = []
    for probe in (jetson.probe, nvml.probe, rapl.probe):
        meter, why = probe(root)
        if meter is not None:
            return meter, reasons
        reasons.append(why)
    return None, reasons
