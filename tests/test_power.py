"""Power backends on real-looking sysfs trees built in a temporary folder, one per layout."""

import time

import pytest

from hetsched.devices import power
from hetsched.power import detect, jetson, rapl


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def hwmon_tree(root, rails):
    """JetPack 5+: /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/in{N}_label, in{N}_input (mV),
    curr{N}_input (mA)."""
    dev = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    for n, (label, mv, ma) in enumerate(rails, start=1):
        _write(dev / f"in{n}_label", label + "\n")
        _write(dev / f"in{n}_input", f"{mv}\n")
        _write(dev / f"curr{n}_input", f"{ma}\n")
    _write(dev / "name", "ina3221\n")
    return dev


def iio_tree(root, rails):
    """JetPack 4: /sys/bus/i2c/drivers/ina3221x/0-0041/iio:device1/rail_name_{N}, in_power{N}_input (mW)."""
    dev = root / "sys/bus/i2c/drivers/ina3221x/0-0041/iio:device1"
    for n, (name, mw) in enumerate(rails):
        _write(dev / f"rail_name_{n}", name + "\n")
        _write(dev / f"in_power{n}_input", f"{mw}\n")
    return dev


def test_hwmon_layout_reads_vdd_in(tmp_path):
    hwmon_tree(tmp_path, [("VDD_IN", 5000, 2000), ("VDD_CPU_GPU_CV", 5000, 600), ("VDD_SOC", 5000, 400)])
    meter, reasons = detect(str(tmp_path))
    assert meter.name == "ina3221" and meter.layout == "hwmon"
    assert meter.watts() == pytest.approx(10.0)       # 5 V x 2 A on VDD_IN alone
    assert "VDD_IN" in meter.what


def test_iio_layout_and_energy_integration(tmp_path):
    dev = iio_tree(tmp_path, [("GPU", 3000), ("VDD_IN", 8000), ("CPU", 1500)])
    meter, _ = jetson.probe(str(tmp_path))
    assert meter.layout == "iio" and meter.watts() == pytest.approx(8.0)
    meter.start()
    time.sleep(0.2)
    (dev / "in_power1_input").write_text("8000\n")
    joules = meter.stop()
    assert 8.0 * 0.15 < joules < 8.0 * 0.6   # ~8 W for ~0.2 s, sampled


def test_a_rail_read_empty_mid_rewrite_is_skipped_not_fatal(tmp_path, monkeypatch):
    # the driver (here the test) rewrites a rail's file while the sampler reads it: the read comes
    # back empty. The sampling thread used to die on it and meter nothing more, silently.
    import threading
    died = []
    monkeypatch.setattr(threading, "excepthook", lambda a: died.append(a.exc_value))
    dev = iio_tree(tmp_path, [("VDD_IN", 8000)])
    meter, _ = jetson.probe(str(tmp_path))
    meter.start()
    time.sleep(0.1)
    (dev / "in_power0_input").write_text("")          # caught half-written
    time.sleep(0.1)
    alive = meter._thread.is_alive()
    (dev / "in_power0_input").write_text("8000\n")
    time.sleep(0.1)
    joules = meter.stop()
    assert alive and not died
    assert meter.missed > 0 and "ValueError" in meter.describe()["last_error"]
    assert 8.0 * 0.2 < joules < 8.0 * 0.6              # ~8 W for ~0.3 s: the gap integrated across


def test_jetson_without_vdd_in_sums_rails(tmp_path):
    iio_tree(tmp_path, [("GPU", 3000), ("CPU", 1500)])
    meter, _ = jetson.probe(str(tmp_path))
    assert meter.watts() == pytest.approx(4.5) and "sum" in meter.what


def rapl_tree(root, zones):
    base = root / "sys/class/powercap"
    for n, (energy, top) in enumerate(zones):
        z = base / f"intel-rapl:{n}"
        _write(z / "energy_uj", f"{energy}\n")
        _write(z / "max_energy_range_uj", f"{top}\n")
        _write(z / "name", f"package-{n}\n")
        _write(base / f"intel-rapl:{n}:0" / "energy_uj", "1\n")   # a sub-zone: not added again
    return base


def test_rapl_counts_across_a_wrap(tmp_path):
    base = rapl_tree(tmp_path, [(999_000_000, 1_000_000_000), (5_000_000, 1_000_000_000)])
    meter, _ = rapl.probe(str(tmp_path))
    assert [z.name for z in meter.zones] == ["intel-rapl:0", "intel-rapl:1"]
    assert meter._sample() == 0.0
    (base / "intel-rapl:0" / "energy_uj").write_text("2000000\n")    # wrapped: +3 J
    (base / "intel-rapl:1" / "energy_uj").write_text("6500000\n")    # +1.5 J
    assert meter._sample() == pytest.approx(4.5)


def test_rapl_root_only_is_a_reason(tmp_path, monkeypatch):
    rapl_tree(tmp_path, [(1, 10)])

    def denied(self):
        raise PermissionError("denied")
    monkeypatch.setattr(rapl.RaplMeter, "_read", denied)
    meter, why = rapl.probe(str(tmp_path))
    assert meter is None and "root only" in why


def test_no_backend_is_unavailable_not_zero(tmp_path):
    meter, reasons = detect(str(tmp_path))
    assert meter is None and len(reasons) == 3
    info = power(str(tmp_path))
    assert info == {"present": False, "reasons": reasons}
