"""The exporter table as a whole: one row per tracker, each an optional extra that ablate runs without."""

from __future__ import annotations

import subprocess
import sys

from ablate.report.export.exporters import EXPORTERS

from helpers import ROOT

# A fresh interpreter in which the trackers cannot be imported, as if their extras were not installed.
WITHOUT_TRACKERS = """
import sys
sys.modules.update(mlflow=None, wandb=None, tensorboard=None)
from typer.testing import CliRunner
from ablate.cli import app
import ablate.report.export.mlflow, ablate.report.export.wandb, ablate.report.export.tensorboard
runner = CliRunner()
assert runner.invoke(app, ["export", "--help"]).exit_code == 0
assert runner.invoke(app, ["list"]).exit_code == 0
for name in ("mlflow", "wandb", "tensorboard"):
    extra = ["--out", "tb"] if name == "tensorboard" else []
    result = runner.invoke(app, ["export", name, "--results", "nowhere", *extra])
    print(result.exit_code, result.output.strip())
"""


def test_every_tracker_is_a_row_and_a_subcommand():
    from ablate.cli.export import app

    assert sorted(EXPORTERS) == ["mlflow", "tensorboard", "wandb"]
    assert sorted(c.name for c in app.registered_commands) == sorted(EXPORTERS)


def test_ablate_runs_without_the_tracker_extras(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_TRACKERS], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"2 error: {name} is not installed; install it with: pip install 'ablate[{name}]'"
        for name in ("mlflow", "wandb", "tensorboard")
    ]
