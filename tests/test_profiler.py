"""The CPU profiler: contract-valid output, and the sum of per-layer costs within 15% of the
whole model's measured time on the same PE, for every zoo model at 416."""

import numpy as np
import pytest

from hetsched import graph, profile
from hetsched.errors import HetschedError
from hetsched.models.zoo import ZOO, build_zoo
from hetsched.profiler.cpu import profile_cpu
from hetsched.profiler.pes import parse_pes, usable_cores
from hetsched.profiler.transfer import fit


def _pes():
    return parse_pes(",".join(f"cpu{c}" for c in sorted(usable_cores())[:2]))


def test_profile_is_contract_valid(tmp_path):
    g = graph.load(build_zoo("tiny-yolov3", 128))
    seen = []
    prof = profile_cpu(g, _pes(), runs=2, warmup=1, progress=lambda *a: seen.append(a))
    profile.save(prof, tmp_path / "p.json")
    back = profile.load(tmp_path / "p.json")
    profile.check_model(back, g)
    assert back.source == "measured"
    assert len(back.layers) == len(g)
    for layer in back.layers:
        assert all(v is not None and v >= 0 for v in layer.cost_ms.values())
    convs = [l for l in back.layers if l.op == "Conv"]
    assert all(l.cost_ms[pe] > 0 for l in convs for pe in back.pes)
    assert "default" in back.transfer
    if len(back.pes) > 1:
        assert "cpu0->cpu1" in back.transfer and "cpu1->cpu0" in back.transfer
    assert seen and seen[-1][0] == "transfer"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_sum_of_layers_matches_whole_model(name):
    g = graph.load(build_zoo(name, 416))
    prof = profile_cpu(g, _pes()[:1], runs=7, warmup=2)
    for pe in prof.pes:
        whole = prof.board["whole_model_ms"][pe]
        summed = sum(l.cost_ms[pe] for l in prof.layers)
        assert abs(summed - whole) / whole <= 0.15, f"{name} on {pe}: sum {summed:.1f} vs whole {whole:.1f} ms"


def test_pe_names():
    assert parse_pes("cpu0")[0].extra["cores"] == [0]
    with pytest.raises(HetschedError, match="not a CPU PE name"):
        parse_pes("gpu")
    with pytest.raises(HetschedError, match="needs core"):
        parse_pes("cpu4096")
    with pytest.raises(HetschedError, match="twice"):
        parse_pes("cpu0,cpu0")
    if len(usable_cores()) > 1:
        with pytest.raises(HetschedError, match="share core 0"):
            parse_pes("cpu0-1,cpu0")


def test_transfer_fit_recovers_a_line():
    pts = [(int(mb * 1e6), (0.02 + 0.1 * mb) / 1e3) for mb in (0.1, 1, 4, 16)]
    t = fit(pts)
    assert t.latency_ms == pytest.approx(0.02, abs=1e-5)
    assert t.ms_per_mb == pytest.approx(0.1, abs=1e-5)
    assert fit([(1000, 1e-6), (2_000_000, 1e-7)]).ms_per_mb == 0.0  # noise never gives negatives
    assert np.isfinite(t.cost_ms(10**6))
