"""Smoke tests of the executor measurement scripts at their smallest sizes (scaling and GPU packing figures)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import ROOT

SCRIPT = ROOT / "scripts" / "measure_workers.py"


@pytest.mark.slow
def test_measure_workers_prints_both_sides_and_the_ratio():
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--train-size",
            "32",
            "--set",
            "data.val_size=16",
            "--set",
            "train.batch_size=16",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "round 1: 1 worker:" in done.stdout and "round 1: 2 workers:" in done.stdout
    assert "speed-up (1-worker time / 2-worker time) per round:" in done.stdout


@pytest.mark.slow
def test_gpu_packing_cpu_smoke_run():
    script = SCRIPT.with_name("gpu_packing.py")
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--device",
            "cpu",
            "--packs",
            "1,2",
            "--train-size",
            "32",
            "--epochs",
            "1",
            "--batch",
            "16",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| 1 |" in done.stdout and "| 2 |" in done.stdout and "x one cell" in done.stdout
