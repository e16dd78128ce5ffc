"""Fixtures for the exporter tests (no tests here): a real MLflow tracking store, a sqlite database
in the test's folder whose tables MLflow makes once per session (its migrations take seconds), and
the study the MLflow tests export. ``tests/conftest.py`` imports the fixtures, for every test module."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from ablate.store.folder import iter_runs, write_run

from helpers.planted import Outcome, make_record, write_pooling_study


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow database with its tables made; each test copies it."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture
def mlflow_uri(mlflow_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh store in tmp_path; the working directory too, where MLflow's default artifact root
    (./mlruns) lands."""
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def points(uri: str, kind: str | None = None) -> int:
    """Metric points in an MLflow sqlite store (of ablate's runs of ``kind``: seed, variant): every
    row of MLflow's metrics table, the full history of each key and not only its latest value."""
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
        query = "SELECT COUNT(*) FROM metrics"
        if kind is not None:
            query += " WHERE run_uuid IN (SELECT run_uuid FROM tags WHERE key = 'ablate.kind' AND value = ?)"
        return db.execute(query, (kind,) if kind else ()).fetchone()[0]


def pooling_study(root: Path) -> Path:
    """The pooling study (2 variants x 2 seeds, 3 epochs) with a step logged every 8 steps and
    seeds that differ, so that the intervals over seeds have a width."""
    write_pooling_study(root, [0, 1], noise=lambda overlap, seed: 0.01 * seed * (1 + overlap), epochs=3)
    for record in iter_runs(root, "pool"):  # the same runs, with step logs
        outcome = Outcome(final_val_acc=record["summary"]["final_val_acc"], epochs=3, log_every=8)
        write_run(root, make_record("pool", record["variant"], record["seed"], outcome))
    return root
