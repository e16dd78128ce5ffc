"""``ablate plan``: one screen and plan.json; ``ablate run`` prints the plan's time first and ``ablate
report`` compares the plan with what happened; bad input is one line and exit code 2."""

from __future__ import annotations

import json

import pytest

from ablate.cli import app

from helpers.planted import Outcome, write_planted
from helpers.sweeps import tiny_sweep

TINY = tiny_sweep("tiny", seeds=(0, 1, 2))  # 2 pooling variants, 64 generated images, 4 Adam steps


@pytest.fixture
def noise_folder(tmp_path):
    """Finished runs of a pooling study on shapes (the tiny file's dataset and design), 4 seeds."""
    root = tmp_path / "finished"

    def outcome(axes, seed):
        return Outcome(final_val_acc=0.6 + (0.02 + 0.01 * (seed % 2) if axes["pooling"] == "nonoverlap" else 0.0))

    write_planted(root, "pool", {"pooling": ["overlap", "nonoverlap"]}, [0, 1, 2, 3], outcome)
    return root


def one_line_error(result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.output


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--noise-from", "nowhere"], "--noise-from nowhere: no finished runs there"),
        (["--effect", "0"], "--effect 0: expected percentage points between 0 and 100"),
        (["--effect", "-1"], "--effect -1: expected percentage points"),
        (["--effect", "abc"], "--effect abc: expected a number of percentage points"),
        (["--effect", "nan"], "--effect nan: expected percentage points"),
        (["--device", "cuda:7"], "cuda:7"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--workers", "0"], "--workers 0"),
        (["--looks", "2,4"], "--looks 2,4: expected increasing seed counts from at least 3"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, write_experiment, tmp_path, args, expected):
    path = write_experiment(TINY, "tiny.toml")
    result = cli.invoke(app, ["plan", str(path), "--results", str(tmp_path / "r"), *args])
    one_line_error(result, expected)
    assert not (tmp_path / "r" / "tiny" / "plan.json").exists()


def test_a_noise_source_of_another_metric_or_design_is_refused(cli, write_experiment, tmp_path, noise_folder):
    other_data = write_experiment(
        TINY.replace("train_size = 64", 'dataset = "fashion-mnist"\ntrain_size = 64'), "f.toml"
    )
    result = cli.invoke(app, ["plan", str(other_data), "--noise-from", str(noise_folder / "pool")])
    one_line_error(result, "measured final validation accuracy on shapes, this plan's metric is")
    grid = write_experiment(TINY.replace("[data]", "dropout = [true, false]\n[data]"), "g.toml")
    result = cli.invoke(app, ["plan", str(grid), "--noise-from", "pool", "--results", str(noise_folder)])
    one_line_error(result, "analysed by the paired t, this plan by the factorial linear model")


def test_plan_then_run_then_report(cli, write_experiment, tmp_path, noise_folder):
    path = write_experiment(tiny_sweep("tiny"), "tiny.toml")
    results = tmp_path / "results"
    planned = cli.invoke(
        app,
        ["plan", str(path), "--results", str(results), "--effect", "5", "--noise-from", str(noise_folder / "pool")],
    )
    assert planned.exit_code == 0, planned.output
    for text in ("2 variants x 1 seeds = 2 cells", "Time (in-process on cpu)", "What it can detect", "plan.json"):
        assert text in planned.output
    assert "needs at least 3 seeds" in planned.output  # --until-decided's first look
    doc = json.loads((results / "tiny" / "plan.json").read_text())
    assert doc["kind"] == "ablate-plan" and doc["cells"]["count"] == 2
    assert doc["time"]["wall_s"] > doc["time"]["device_s"] > 0
    assert set(doc["time"]["per_variant"]) == {"relu-overlap-none-drop", "relu-nonoverlap-none-drop"}
    (comparison,) = doc["detect"]["comparisons"]
    assert comparison["name"] == "relu-nonoverlap-none-drop" and comparison["noise"] == "source"
    assert doc["detect"]["noise"]["source"].endswith("pool") and doc["detect"]["effect"] == 5.0

    run = cli.invoke(app, ["run", str(path), "--results", str(results)])
    assert run.exit_code == 0, run.output
    assert "· plan: " in run.output.splitlines()[0] and "(in-process on cpu)" in run.output.splitlines()[0]

    report = cli.invoke(app, ["report", "tiny", "--results", str(results), "--out", str(tmp_path / "reports")])
    assert report.exit_code == 0, report.output
    readme = (tmp_path / "reports" / "tiny" / "README.md").read_text()
    assert "**Plan against outcome**" in readme and "the 2 finished cells were predicted to take" in readme

    # another seed list: the plan is for other cells, and the run says so instead of a time
    again = cli.invoke(app, ["run", str(path), "--results", str(results), "--set", "seeds=[1]", "--dry-run"])
    assert "plan: " not in again.output


def test_run_says_when_the_plan_is_for_other_cells(cli, write_experiment, tmp_path):
    path = write_experiment(tiny_sweep("tiny"), "tiny.toml")
    results = tmp_path / "results"
    (results / "tiny").mkdir(parents=True)
    plan = {"kind": "ablate-plan", "experiment": "tiny", "cells": {"fingerprint": "other"}, "time": {"wall_s": 60}}
    (results / "tiny" / "plan.json").write_text(json.dumps(plan))
    run = cli.invoke(app, ["run", str(path), "--results", str(results), "--limit", "1"])
    assert "plan.json is for other cells (rerun ablate plan)" in run.output.splitlines()[0]
