"""Smoke tests of every script under ``scripts/``, at their smallest sizes, so that the figures the
docs publish stay reproducible: each script runs end to end and prints its tables.

The Python scripts run in this process (``runpy``, as ``__main__``, with ``sys.argv`` set): a
fresh interpreter would spend more time importing torch than the script spends measuring.
Fashion-MNIST is a tiny generated copy in ``$ABLATE_DATA``, so the tests need no download and
no Debian package. ``gpu_check.sh`` needs CUDA for its real stages; here it runs its CPU smoke
version with CUDA hidden. ``publish_studies.sh`` trains for hours; here a stand-in ``ablate``
records what it is asked to do. (``measure_workers.py`` and ``gpu_packing.py`` are smoke-tested
in ``test_scripts_executors.py``.)
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from ablate import NORMS

from helpers import ROOT
from helpers.data import write_fashion

SCRIPTS = ROOT / "scripts"


@pytest.fixture
def tiny_fashion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A generated Fashion-MNIST (48 train, 100 test images) in ``$ABLATE_DATA``; cache in tmp_path."""
    write_fashion(tmp_path / "data" / "fashion-mnist", n_train=48, n_test=100)
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))  # restored afterwards, even if a script sets it
    return tmp_path / "data"


def run_script(name: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``scripts/<name>`` as ``python scripts/<name> ARGS`` would; returns its exit status."""
    monkeypatch.setattr(sys, "argv", [str(SCRIPTS / name), *args])
    monkeypatch.syspath_prepend(str(SCRIPTS))  # what running a file puts first on sys.path
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(SCRIPTS / name), run_name="__main__")
    return done.value.code or 0


@pytest.fixture
def keep_norms():
    """compare_loops registers torch's LRN as a norm; leave the registry as it was."""
    before = set(NORMS.names())
    yield
    for name in set(NORMS.names()) - before:
        NORMS.unregister(name)


SECTION_TABLES = {
    "loops": [
        "| ablate (fp32, channels_last; train_epoch, its own clock) |",
        "| hand-written (fp32, channels_last) |",
        "| blog-style",
    ],
    "lrn": ["| norm = none |", "| norm = lrn (ablate.models.lrn) |", "| nn.LocalResponseNorm (before) |"],
    "lrn-op": ["| eager |", "| torch |"],
    "real-data": ["| Fashion-MNIST (cached, 1-channel storage) |"],
    "stored": ["| 1 |"],
}


# Several models built and trained a few steps each: 10-30 s on a busy 2-core CPU, hence "slow".
SLOW_SECTIONS = ("loops", "lrn")


@pytest.mark.parametrize(
    "section", [pytest.param(s, marks=pytest.mark.slow) if s in SLOW_SECTIONS else s for s in SECTION_TABLES]
)
def test_compare_loops_section(section, tiny_fashion, keep_norms, tmp_path, monkeypatch, capsys):
    out_json = tmp_path / "out.json"
    # The smallest run: one epoch of 3 warm-up + 1 timed step per loop, one round (the order of
    # turns is tested in test_bench.py).
    args = [
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--sections",
        section,
        "--json",
        str(out_json),
    ]
    assert run_script("compare_loops.py", args, monkeypatch) == 0  # stored: the two clocks agree within 5%
    printed = capsys.readouterr().out
    for line in SECTION_TABLES[section]:
        assert line in printed, (line, printed)
    import json

    results = json.loads(out_json.read_text())
    measured = results[section]
    if section == "stored":
        assert len(measured) == 1 and abs(measured[0]["ratio"] - 1) <= 0.05, measured
    else:
        rounds = 5 if section == "lrn-op" else 1  # lrn-op takes at least 5 rounds
        assert measured and all(len(v) == rounds and all(x > 0 for x in v) for v in measured.values()), measured


def test_compare_input_pipeline(tiny_fashion, monkeypatch, capsys):
    import torch

    args = [
        "--images",
        "32",
        "--batch-size",
        "16",
        "--rounds",
        "1",
        "--noop-rounds",
        "2",
        "--threads",
        str(torch.get_num_threads()),
    ]
    assert run_script("compare_input_pipeline.py", args, monkeypatch) == 0
    printed = capsys.readouterr().out
    assert "Fashion-MNIST 65x65, 32 training images/epoch, batch 16" in printed
    rows = [line.split() for line in printed.splitlines() if re.match(r"(ablate|torchvision) +[0-9.]+ ms", line)]
    assert [r[0] for r in rows] == ["ablate", "torchvision"], printed
    assert "input cost: torchvision / ablate =" in printed and "full epoch: ablate / torchvision =" in printed


def test_compare_input_pipeline_without_data_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    from ablate.data import fashion_mnist as fm

    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "no-system-copy")
    assert run_script("compare_input_pipeline.py", ["--images", "32"], monkeypatch) == 2
    assert "Fashion-MNIST not found" in capsys.readouterr().err


def test_simulate_factorial_prints_its_table(monkeypatch, capsys):
    assert run_script("simulate_factorial.py", ["--sims", "10"], monkeypatch) == 0
    printed = capsys.readouterr().out
    null = [line for line in printed.splitlines() if " effects | 10 | " in line]
    power = [line for line in printed.splitlines() if line.startswith(("| 2x2 | +4", "| 36 cells | +2"))]
    assert len(null) == 4 * 5 * 2 and len(power) == 4, printed  # grids x noise patterns x families
    assert "HC2 + Bell–McCaffrey, Holm per family (today)" in printed and "HC3, one Holm family (before)" in printed


def test_check_plan_statistics_meet_their_goals(monkeypatch, capsys):
    """The statistics part of check_plan.py (the time part runs ablate plan and ablate run for
    minutes: the docs' table is its output, ablate plan itself is tested in tests/cli/test_plan.py)."""
    assert run_script("check_plan.py", ["--part", "stats"], monkeypatch) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    checks = {r[0].lstrip("| "): r for r in rows[1:]}  # after the header (the separator starts "|-")
    assert checks["seeds for 0.3 points at sd 0.4 (paired)"][1] == "16"
    power = next(r for name, r in checks.items() if name.startswith("power at 16 seeds"))
    assert abs(float(power[2].split()[0]) - 0.80) <= 0.03
    mdd = [r for name, r in checks.items() if name.startswith("factorial MDD")]
    assert len(mdd) == 6 and all(abs(float(r[1]) / float(r[2].split()[0]) - 1) <= 0.10 for r in mdd)
    (decided,) = [r for name, r in checks.items() if name.startswith("--until-decided")]
    documented = float(decided[2].split()[0])
    assert all(abs(float(x) - documented) <= 0.15 for x in decided[1].split(", "))


def test_synthetic_results_are_read_and_reported_like_real_ones(tmp_path, monkeypatch, capsys):
    """scripts/synthetic_results.py at its smallest: every record valid, the manifest's cells all
    present, and a report made of them."""
    from ablate.analysis import load_experiment_data
    from ablate.report.build import build_report

    args = ["--results", str(tmp_path), "--experiments", "1", "--seeds", "2", "--epochs", "3"]
    assert run_script("synthetic_results.py", args, monkeypatch) == 0
    assert "72 run files in 1 experiment(s)" in capsys.readouterr().out
    data = load_experiment_data(tmp_path, "synthetic-1")
    assert data.notes == [] and len(data.ok_runs) == 72 and len(data.variants) == 36
    assert build_report(tmp_path, "synthetic-1", tmp_path / "reports").readme.is_file()
    assert run_script("synthetic_results.py", ["--results", str(tmp_path), "--seeds", "0"], monkeypatch) == 2


def test_gpu_check_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPTS / "gpu_check.sh")], check=True)


@pytest.mark.slow
def test_gpu_check_cpu_smoke_version(tmp_path):
    """Stages 1 (environment), 4 (ablate bench + its report) and 6 (fused seeds) of the CPU smoke
    version. Stage 2 runs test files of this suite and stage 3 compare_loops.py, both tested above."""
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "STAGES": "1 4 6",
        "OUT": str(tmp_path / "out"),
        "VIRTUAL_ENV": sys.prefix,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        ["bash", str(SCRIPTS / "gpu_check.sh")], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no CUDA device: running the CPU smoke version" in done.stdout
    assert "overall status 0" in done.stdout
    assert (tmp_path / "out" / "reports" / "bench" / "README.md").is_file()
    assert "== 3." not in done.stdout  # the stage choice is honoured
    # Stage 6: one table with a row per K, and the K that --fuse-seeds auto takes from it.
    assert "== 6. fused seeds" in done.stdout
    assert re.search(r"relu-overlap-none-drop .*fuse_seeds auto: K=[12] on cpu", done.stdout), done.stdout


def test_gpu_check_reports_a_spent_budget(tmp_path):
    """A stage that cannot run is reported and makes the overall status 1 (the script goes on)."""
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "STAGES": "4",
        "BUDGET": "0",
        "OUT": str(tmp_path / "out"),
        "VIRTUAL_ENV": sys.prefix,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        ["bash", str(SCRIPTS / "gpu_check.sh")], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "!! skipped (time budget of 0s spent): ablate bench" in done.stdout
    assert "overall status 1" in done.stdout


def test_publish_studies_runs_each_study_then_the_reports(tmp_path):
    """``publish_studies.sh`` with a stand-in ``ablate`` that logs its arguments: each study's
    file in turn, the script's own arguments passed on, then ``ablate report``; a failing study
    stops the script (set -e) before the reports."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "bin" / "ablate"
    fake.parent.mkdir()
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n[ -z "${{FAIL_ON:-}}" ] || [ "$2" != "$FAIL_ON" ]\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    script = str(SCRIPTS / "publish_studies.sh")
    subprocess.run(["bash", "-n", script], check=True)

    subprocess.run(["bash", script, "--device", "cpu"], env=env, check=True, timeout=60)
    calls = log.read_text().splitlines()
    studies = [c.split()[1] for c in calls[:-1]]
    assert [c.split()[0] for c in calls[:-1]] == ["run"] * 5 and calls[-1] == "report --results results --out reports"
    assert all(c.endswith("--device cpu") for c in calls[:-1])
    from ablate.experiment.experiment import load_experiment

    for study in studies:  # every file it names exists and is a valid experiment
        assert load_experiment(SCRIPTS.parent / study, (), "cpu").name

    log.unlink()
    failing = subprocess.run(["bash", script], env={**env, "FAIL_ON": studies[1]}, check=False, timeout=60)
    assert failing.returncode != 0
    assert log.read_text().splitlines() == [
        f"run {studies[0]} --results results",
        f"run {studies[1]} --results results",
    ]
