"""Baselines by hand, and `hetsched plan` end to end: tables, JSON, plots, one-line errors."""

import json
import os
import re
import subprocess
import sys

import pytest

from hetsched import profile
from hetsched.cli import main
from hetsched.partition import make_plan
from hetsched.partition.cost import PlanError, Stage, evaluate


def test_single_is_the_best_whole_network_pe(example_file):
    prof = profile.load(example_file)
    plan = make_plan(prof, "single")
    assert [s.pes for s in plan.stages] == [("cpu0",)] and plan.bottleneck_ms == pytest.approx(44.5)


def test_one_pe_is_best_when_transfers_dominate(example_file):
    """A planner must be able to say 'one PE is best here'."""
    d = json.loads(example_file.read_text())
    d["transfer"]["default"] = {"latency_ms": 50.0, "ms_per_mb": 0.0}
    prof = profile.from_dict(d)
    for method in ("heuristic", "optimal"):
        plan = make_plan(prof, method)
        assert len(plan.stages) == 1 and plan.stages[0].pes == ("cpu0",)


def test_replicate_takes_the_best_copies(tmp_path):
    d = {"schema": "hetsched.profile/1", "source": "modeled",
         "model": {"name": "r", "sha256": None, "inputs": {"x": [1]}}, "board": {"name": "r"},
         "host": "cpu0", "pes": {"cpu0": {"kind": "cpu"}, "gpu": {"kind": "gpu"}, "dla0": {"kind": "dla"}},
         "layers": [{"name": "a", "op": "Conv", "inputs": ["x"], "outputs": ["y"],
                     "cost_ms": {"cpu0": 100.0, "gpu": 2.0, "dla0": 3.0}}],
         "tensors": {"x": {"bytes": 0}, "y": {"bytes": 0}}, "graph_outputs": ["y"],
         "transfer": {"default": {"latency_ms": 0.0, "ms_per_mb": 0.0}}}
    plan = make_plan(profile.from_dict(d), "replicate")
    # gpu + dla0 round robin: each serves every other frame -> max(2, 3) / 2 = 1.5 ms
    assert set(plan.stages[0].pes) == {"gpu", "dla0"} and plan.bottleneck_ms == pytest.approx(1.5)


def test_even_splits_by_flops(example_file):
    prof = profile.load(example_file)
    with pytest.raises(PlanError, match="cannot run it"):
        make_plan(prof, "even")
    plan = make_plan(prof, "even", pes=["cpu0"])
    assert len(plan.stages) == 1


def test_plan_validation_errors(example_file):
    prof = profile.load(example_file)
    with pytest.raises(PlanError, match="PE 'tpu', which the profile does not have"):
        evaluate(prof, [Stage(("tpu",), 0, 4)])
    with pytest.raises(PlanError, match="layer 0 'pre' cannot run on gpu"):
        evaluate(prof, [Stage(("gpu",), 0, 4)])
    with pytest.raises(PlanError, match="starts at layer 2, expected 1"):
        evaluate(prof, [Stage(("cpu0",), 0, 0), Stage(("gpu",), 2, 4)])
    with pytest.raises(PlanError, match="same PE group"):
        evaluate(prof, [Stage(("cpu0",), 0, 0), Stage(("cpu0",), 1, 4)])
    with pytest.raises(PlanError, match="different kinds"):
        evaluate(prof, [Stage(("cpu0",), 0, 0), Stage(("gpu", "dla0"), 1, 3), Stage(("cpu0",), 4, 4)])
    with pytest.raises(PlanError, match="max_stages=2"):
        evaluate(prof, [Stage(("cpu0",), 0, 0), Stage(("gpu",), 1, 3), Stage(("cpu0",), 4, 4)], max_stages=2)
    with pytest.raises(PlanError, match="replication is off"):
        evaluate(prof, [Stage(("cpu0",), 0, 0), Stage(("dla0", "dla1"), 1, 1), Stage(("gpu",), 2, 3),
                        Stage(("cpu0",), 4, 4)], replication=False)


def test_plan_cli_all_json_plot(example_file, tmp_path, capsys):
    out, png = tmp_path / "plan.json", tmp_path / "plan.png"
    assert main(["plan", str(example_file), "--method", "all", "--json", "-o", str(out), "--plot", str(png)]) == 0
    doc = json.loads(capsys.readouterr().out)
    best, doc = doc["best"], doc["methods"]
    assert set(doc) == {"heuristic", "optimal", "single", "replicate", "even"}
    assert doc["optimal"]["bottleneck_ms"] == pytest.approx(4.1)
    assert doc["optimal"]["schema"] == "hetsched.plan/1"
    assert "error" in doc["even"]
    assert doc[best]["bottleneck_ms"] == pytest.approx(4.1)
    assert json.loads(out.read_text()) == doc[best]   # the plan file is the best plan
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["plan", str(example_file), "--method", "optimal", "--pes", "cpu0,gpu", "--max-stages", "3"]) == 0
    text = capsys.readouterr().out
    assert "bottleneck" in text and "fps predicted" in text
    # the per-PE table covers the allowed PEs (and the host where it carries work), no others
    pe_rows = {line.split()[0] for line in text.splitlines()[text.splitlines().index(
        next(l for l in text.splitlines() if l.startswith("PE "))) + 1:] if line[:1].isalnum()
        and not line.startswith(("optimal", "("))}
    host = profile.load(example_file).host
    assert pe_rows <= {"cpu0", "gpu", host} and {"cpu0", "gpu"} <= pe_rows


@pytest.mark.parametrize("args,match,code", [
    (["--pes", "cpu0,tpu"], r"PE\(s\) \['tpu'\] are not in the profile", 1),
    (["--pes", "gpu,dla0"], "layer 0 'pre' .* cannot run on any allowed PE", 1),
    (["--max-stages", "0"], "argument --max-stages: must be at least 1", 2),
    (["--pes", ""], "argument --pes: expected PE names separated by commas, got ''", 2),
    (["--pes", "gpu,"], "argument --pes: expected PE names separated by commas, got 'gpu,'", 2),
    (["--method", "heuristic", "--require-proof"], "--method heuristic proves nothing", 2),
    (["--plot", "chart.gif"], r"chart.gif: a chart is written as png, svg, pdf .* '.gif' is none", 1),
])
def test_plan_cli_errors(example_file, tmp_path, args, match, code):
    import re
    r = subprocess.run([sys.executable, "-m", "hetsched.cli", "plan", str(example_file), *args,
                        "-o", str(tmp_path / "p.json")], capture_output=True, text=True)
    assert r.returncode == code and re.search(match, r.stderr.strip())
    if code == 1:
        assert len(r.stderr.strip().splitlines()) == 1
    else:      # argparse: the usage, then one error line
        assert r.stderr.startswith("usage: ") and "error:" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "p.json").exists()


def test_auto_runs_the_best_priced_plan():
    """`method: auto` (the runtime's default) chooses by prediction: the best-priced plan of the
    heuristic and the exact optimum (proven here), under the contract's order; no margin rule."""
    from pathlib import Path

    from hetsched import job
    from hetsched.partition import make_plan
    root = Path(__file__).resolve().parents[1] / "profiles"
    for name in ("tiny-yolov3-416.vm.json", "tiny-yolov2-416.vm.json"):
        prof = profile.load(root / name)
        run, plans = job.plan_to_run(prof, job.AUTO_METHODS)
        optimum = make_plan(prof, "optimal")
        assert run.key() == pytest.approx(optimum.key())
        assert set(plans.plans) | set(plans.errors) == set(job.AUTO_METHODS)
        assert all(run.bottleneck_ms <= p.bottleneck_ms * (1 + 1e-9) for p in plans.plans.values())
        assert job.plan_for(prof, {"method": "auto"}, None, len(prof.layers)).stages == run.stages


def test_plan_cli_answers_when_the_proof_times_out(tmp_path, capsys):
    """`plan --method optimal` past its limit prints the best plan it knows and how far from
    the optimum it may be, and exits 0; `--json` carries proven/lower_bound_ms/gap;
    `--require-proof` makes it an error."""
    from pathlib import Path
    prof = Path(__file__).parent / "data" / "tiny-yolov2-416.vm.json"
    assert main(["plan", str(prof), "--method", "optimal", "--time-limit", "0.001"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"not proven optimal: within \d+\.\d% of the optimum", text)
    assert main(["plan", str(prof), "--method", "optimal", "--time-limit", "0.001", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["proven"] is False and 0 < doc["lower_bound_ms"] <= doc["bottleneck_ms"]
    assert doc["gap"] == pytest.approx(doc["bottleneck_ms"] / doc["lower_bound_ms"] - 1)
    assert main(["plan", str(prof), "--method", "optimal", "--time-limit", "0.001",
                 "--require-proof"]) == 1
    assert "time limit" in capsys.readouterr().err
    assert main(["plan", str(prof), "--method", "optimal", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["proven"] is True


XAVIER_TINY = __import__("pathlib").Path(__file__).parents[1] / "profiles" / "jetson-agx-xavier" \
    / "tiny-yolov2-relu-416.fp16.json"


def test_mixed_kind_replicas_are_compared_never_chosen_or_written(tmp_path, capsys):
    """The replicate baseline's GPU + DLA copies mix PE kinds, which a plan may not: `--method
    all` shows them and picks a contract plan, `-o` refuses to write them, and without
    replication replicate is single."""
    from hetsched.partition import plan_every
    prof = profile.load(XAVIER_TINY)
    tried = plan_every(prof, pes=["gpu", "dla0", "dla1"], max_stages=1, time_limit_s=5)
    rep = tried.plans["replicate"]
    assert {prof.pes[p].kind for p in rep.stages[0].pes} == {"gpu", "dla"}
    assert tried.outside == {"replicate"}
    assert rep.bottleneck_ms < tried.best().bottleneck_ms     # cheaper, and still not chosen
    assert tried.best().method != "replicate"
    out = tmp_path / "rep.json"
    assert main(["plan", str(XAVIER_TINY), "--method", "replicate", "-o", str(out)]) == 1
    assert "not written" in capsys.readouterr().err and not out.exists()
    assert make_plan(prof, "replicate", replication=False).key() == make_plan(prof, "single").key()


def test_plan_files_survive_a_reader_that_closes_stdout(tmp_path):
    out, png = tmp_path / "p.json", tmp_path / "p.png"
    proc = subprocess.Popen([sys.executable, "-m", "hetsched.cli", "plan", str(XAVIER_TINY),
                             "--method", "heuristic", "-o", str(out), "--plot", str(png)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()     # the reader is gone before anything is printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "stdout closed" in err and "Traceback" not in err
    assert json.loads(out.read_text())["stages"] and png.read_bytes()[:4] == b"\x89PNG"


def test_plan_chart_format_follows_the_suffix(example_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    for name, magic in (("p.svg", b"<?xml"), ("p.pdf", b"%PDF"), ("p.png", b"\x89PNG")):
        assert main(["plan", str(example_file), "--plot", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_bytes().startswith(magic), name


def test_an_unwritable_output_is_named_not_its_temporary_file(example_file, capsys):
    """/proc refuses new files even to root; the error names the file asked for."""
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here")
    target = "/proc/hetsched-cannot-write.json"
    assert main(["plan", str(example_file), "-o", target]) == 1
    err = capsys.readouterr().err.strip()
    assert f"cannot write {target}" in err and ".tmp" not in err, err


def test_an_output_below_a_file_names_that_file(example_file, tmp_path, capsys):
    (tmp_path / "f.json").write_text("{}")
    target = tmp_path / "f.json" / "x.json"
    assert main(["plan", str(example_file), "-o", str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"cannot write {target}: {tmp_path / 'f.json'} is a file, not a folder"), err
