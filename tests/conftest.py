"""Shared fixtures: tiny experiment files, a CLI runner, and quick training settings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from helpers.data import data_env  # noqa: F401  (a fixture, for every test module that names it)
from helpers.sweeps import tiny_sweep
from helpers.trackers import mlflow_template, mlflow_uri  # noqa: F401  (fixtures of the exporter tests)

# Two threads on CI's 2 cores; the tests are written to be fast there.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def write_experiment(tmp_path: Path):
    """Write an experiment TOML into tmp_path and return its path: write_experiment(text, name)."""

    def write(text: str, name: str = "exp.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


# A few seconds per run on a 2-core CPU: tiny generated data, one or two epochs.
TINY_EXPERIMENT = tiny_sweep()


@pytest.fixture
def tiny_experiment(write_experiment) -> Path:
    return write_experiment(TINY_EXPERIMENT, "tiny.toml")
