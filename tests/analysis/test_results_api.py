"""``ablate.load_results``: the report's frames, stacked over experiments, for notebooks."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import ablate
from ablate.analysis import ReportError, load_experiment_data
from ablate.analysis.results import load_results
from ablate.store.folder import write_run

from helpers import ROOT
from helpers.planted import Outcome, make_record, write_planted, write_pooling_study

README = ROOT / "README.md"


def steps_for(seed: int, n: int = 4) -> list[dict]:
    return [
        {
            "step": 10 * (i + 1),
            "epoch": 1 + i // 2,
            "images": 320 * (i + 1),
            "lr": 3e-4,
            "train_loss": 2.0 - 0.1 * i - 0.01 * seed,
            "train_acc": 0.2 + 0.05 * i,
            "time_s": 0.5 * (i + 1),
        }
        for i in range(n)
    ]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two experiments: pooling with a planted 10-point effect and logged steps; a 2x2 grid with a failed run."""
    root = tmp_path / "results"
    write_pooling_study(root, [0, 1, 2], outcome=lambda s: {"extra": {"steps": steps_for(s)}})
    write_planted(
        root,
        "grid",
        {"activation": ["relu", "tanh"], "norm": ["none", "lrn"]},
        [0, 1],
        lambda a, s: Outcome(status="failed" if (a["norm"], s) == ("lrn", 1) else "ok"),
    )
    return root


def test_frames_are_the_reports_frames_with_an_experiment_column(root):
    res = load_results(root)
    assert res.experiments == ["grid", "pool"]
    for name in res.experiments:
        data = load_experiment_data(root, name)
        assert res.baselines[name] == data.baseline == "relu-overlap-none-drop"
        mine = res.runs[res.runs["experiment"] == name].drop(columns="experiment").dropna(axis=1, how="all")
        pd.testing.assert_frame_equal(
            mine.reset_index(drop=True), data.runs.dropna(axis=1, how="all"), check_dtype=False
        )
        epochs = res.epochs[res.epochs["experiment"] == name].reset_index(drop=True)
        pd.testing.assert_frame_equal(epochs[list(data.epochs.columns)], data.epochs, check_dtype=False)
    assert list(res.runs.columns[:5]) == ["experiment", "run_id", "variant", "seed", "status"]
    # 6 pool runs (2 variants x 3 seeds) + 8 grid cells (4 variants x 2 seeds), the 2 failed ones included.
    assert len(res.runs) == 14 and (res.runs["status"] == "failed").sum() == 2
    assert len(res.epochs) == 6 * 6 + 6 * 6  # a failed run has no epochs


def test_group_by_an_axis_finds_the_planted_effect(root):
    res = load_results(root, "pool")
    means = res.runs.groupby("pooling")["final_val_acc"].mean()
    assert means["overlap"] - means["nonoverlap"] == pytest.approx(0.10)
    # Epochs carry the axes too: the last epoch's accuracy by pooling, without a merge.
    last = res.epochs[res.epochs["epoch"] == 6].groupby("pooling")["val_acc"].mean()
    assert last["overlap"] == pytest.approx(0.71) and last["nonoverlap"] == pytest.approx(0.61)
    assert set(res.runs["experiment"]) == {"pool"} and res.experiments == ["pool"]


def test_steps_frame_from_records_that_log_steps_and_only_current_runs(root):
    # A record of an older configuration (its run id is not in the manifest) is left out, as in the report.
    old = make_record("pool", {"pooling": "overlap"}, 0, Outcome(extra={"steps": steps_for(9, 2)}))
    old["run_id"] = "0ld0ld0ld0ld0ld0"
    write_run(root, old)
    res = load_results(root, ["pool", "grid"])
    assert res.experiments == ["pool", "grid"]
    steps = res.steps
    assert len(steps) == 6 * 4 and set(steps["experiment"]) == {"pool"}
    assert "0ld0ld0ld0ld0ld0" not in set(steps["run_id"]) and "0ld0ld0ld0ld0ld0" not in set(res.runs["run_id"])
    first = steps[(steps["variant"] == "relu-nonoverlap-none-drop") & (steps["seed"] == 2)]
    assert list(first["step"]) == [10, 20, 30, 40] and list(first["epoch"]) == [1, 1, 2, 2]
    assert list(first["train_loss"]) == pytest.approx([1.98, 1.88, 1.78, 1.68])
    assert set(first["pooling"]) == {"nonoverlap"} and set(first["status"]) == {"ok"}
    assert "1 run(s) from an older configuration" in " ".join(res.notes["pool"])


def test_no_steps_gives_an_empty_frame_with_columns(root):
    steps = load_results(root, "grid").steps
    assert steps.empty
    assert {"experiment", "run_id", "variant", "seed", "step", "train_loss"} <= set(steps.columns)


def test_unknown_or_empty_experiments(root):
    (root / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(ReportError, match="unknown experiment 'pol'.*did you mean 'pool'"):
        load_results(root, ["pol"])
    with pytest.raises(ValueError, match="no run records"):
        load_results(root, "empty")
    res = load_results(root)  # all: the empty one is skipped and said so
    assert res.experiments == ["grid", "pool"] and list(res.skipped) == ["empty"]
    with pytest.raises(ReportError, match="unknown baseline"):
        load_results(root, "pool", baseline="nope")


def test_exported_from_the_package():
    assert "load_results" in ablate.__all__ and ablate.load_results is load_results
    with pytest.raises(AttributeError):
        ablate.no_such_name  # noqa: B018


def test_readme_example_runs(root, tmp_path, monkeypatch):
    """The README's notebook example runs as written, on a results folder with a pooling experiment."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Results in Python and TensorBoard") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    (root / "pool").rename(root / "pooling")
    monkeypatch.chdir(root.parent)
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {}
    exec(compile(code, "README example", "exec"), namespace)  # our own documentation
    assert isinstance(namespace["runs"], pd.DataFrame) and len(namespace["runs"]) == 6


@pytest.mark.slow
def test_a_real_tiny_run(cli, tiny_experiment, tmp_path):
    from ablate.cli import app

    res = tmp_path / "res"
    ran = cli.invoke(app, ["run", str(tiny_experiment), "--results", str(res), "--device", "cpu"])
    assert ran.exit_code == 0, ran.output
    out = load_results(res)
    assert out.experiments == ["tiny"] and len(out.runs) == 2 and set(out.runs["status"]) == {"ok"}
    assert set(out.runs["pooling"]) == {"overlap", "nonoverlap"} and (out.runs["train_images_per_s"] > 0).all()
    assert len(out.epochs) == 2 and out.epochs["val_acc"].between(0, 1).all()
    # Logged steps, one frame row per point, with the record's numbers and the run's axes.
    assert not out.steps.empty and out.steps[["step", "images", "lr", "train_loss", "time_s"]].notna().all().all()
    for (_run_id, _pooling), rows in out.steps.groupby(["run_id", "pooling"]):
        assert list(rows["step"]) == sorted(rows["step"]) and rows["images"].iloc[-1] == 64
