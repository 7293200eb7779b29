"""The processing elements this machine has. Absent hardware is reported as absent, never as an
error; GPU and DLA probes import their libraries lazily."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from .cores import cpu_model_name


def cpus() -> dict:
    affinity = sorted(os.sched_getaffinity(0))
    try:
        freqs = psutil.cpu_freq(percpu=True) or []
    except (OSError, NotImplementedError):
        freqs = []
    return {
        "model": cpu_model_name(),
        "logical": psutil.cpu_count(logical=True),
        "physical": psutil.cpu_count(logical=False),
        "affinity": affinity,
        "freq_mhz": [{"current": round(f.current), "min": round(f.min), "max": round(f.max)}
                     for f in freqs],
        "pes": [f"cpu{c}" for c in affinity],
    }


def gpus() -> dict:
    try:
        import pynvml  # from nvidia-ml-py
    except ImportError:
        return {"present": False, "reason": "nvidia-ml-py is not installed (pip install hetsched[gpu])"}
    try:
        pynvml.nvmlInit()
    except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return {"present": False, "reason": f"NVML unavailable: {e}"}
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            out.append({"index": i, "pe": f"gpu{i}" if i else "gpu",
                        "name": name.decode() if isinstance(name, bytes) else name,
                        "memory_mib": mem.total // (1 << 20)})
        return {"present": bool(out), "devices": out}
    finally:
        pynvml.nvmlShutdown()


def dlas() -> dict:
    try:
        import tensorrt as trt
    except ImportError:
        return {"present": False, "reason": "TensorRT is not installed"}
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        n = int(builder.num_DLA_cores)
    except Exception as e:
        return {"present": False, "reason": f"TensorRT builder unavailable: {e}"}
    return {"present": n > 0, "cores": n, "pes": [f"dla{i}" for i in range(n)],
            "tensorrt": trt.__version__}


def jetson(root: str = "/") -> dict:
    model = Path(root, "proc/device-tree/model")
    try:
        name = model.read_bytes().rstrip(b"\x00").decode(errors="replace").strip()
    except OSError:
        return {"present": False}
    return {"present": "jetson" in name.lower() or "nvidia" in name.lower(), "model": name}


def power(root: str = "/") -> dict:
    from .power import detect
    meter, reasons = detect(root)
    if meter is None:
        return {"present": False, "reasons": reasons}
    return {"present": True, **meter.describe()}


def discover() -> dict:
    return {"cpu": cpus(), "gpu": gpus(), "dla": dlas(), "jetson": jetson(), "power": power()}


def format_table(info: dict) -> str:
    c = info["cpu"]
    lines = [f"CPU     {c['model']}: {c['logical']} logical / {c['physical']} physical cores, "
             f"usable {c['affinity']}",
             f"        PEs: {', '.join(c['pes'])}"]
    if c["freq_mhz"]:
        f = c["freq_mhz"][0]
        # psutil reads 0 where the kernel exposes no cpufreq limits (a VM's vCPU): not a limit
        bounds = (f" (min {f['min']}, max {f['max']})" if f["min"] or f["max"]
                  else " (min and max not exposed)")
        lines.append(f"        frequency {f['current']} MHz{bounds}")
    g = info["gpu"]
    if g["present"]:
        for d in g["devices"]:
            lines.append(f"GPU     {d['pe']}: {d['name']}, {d['memory_mib']} MiB")
    else:
        lines.append(f"GPU     absent ({g.get('reason', 'none found')})")
    d = info["dla"]
    lines.append(f"DLA     {d['cores']} core(s): {', '.join(d['pes'])}" if d["present"]
                 else f"DLA     absent ({d.get('reason', 'no DLA cores')})")
    j = info["jetson"]
    lines.append(f"Jetson  {j['model']}" if j["present"] else "Jetson  not a Jetson board")
    p = info["power"]
    lines.append(f"Power   {p['backend']}: {p['covers']}" if p["present"]
                 else "Power   unavailable (" + "; ".join(p["reasons"]) + ")")
    return "\n".join(lines)
