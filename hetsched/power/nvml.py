"""NVIDIA GPUs' own energy counter through NVML (`nvidia-ml-py`, module `pynvml`):
`nvmlDeviceGetTotalEnergyConsumption` in mJ since the driver loaded, Volta and newer."""

from __future__ import annotations

from . import Meter


class NvmlMeter(Meter):
    name = "nvml"
    what = "GPU(s)"
    interval_s = 0.5

    def __init__(self, pynvml, handles):
        super().__init__()
        self._nvml, self._handles = pynvml, handles
        self._last: list[int] | None = None

    def _sample(self) -> float:
        now = [self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles]
        last, self._last = self._last, now
        return 0.0 if last is None else sum(b - a for a, b in zip(last, now)) / 1e3


def probe(root: str = "/"):
    if root != "/":
        return None, "NVML: not probed under a fake root"
    try:
        import pynvml
    except ImportError:
        return None, "NVML: nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        if not handles:
            return None, "NVML: no GPU"
        for h in handles:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
    except Exception as e:
        return None, f"NVML: {e}"
    return NvmlMeter(pynvml, handles), ""
