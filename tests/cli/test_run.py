"""End to end through the CLI: results files, determinism, resume, divergence, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ablate import ACTIVATIONS, register_activation
from ablate.cli import app
from ablate.store.folder import iter_runs, read_events, scan_runs

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "train_eval_acc", "lr")


def run(cli, path: Path, results: Path, *extra: str):
    return cli.invoke(app, ["run", str(path), "--results", str(results), "--device", "cpu", *extra])


def runs(results: Path, experiment: str = "tiny") -> dict[tuple[str, int], dict]:
    return {(r["slug"], r["seed"]): r for r in iter_runs(results, experiment)}


def metrics(record: dict) -> list[dict]:
    return [{k: e[k] for k in METRICS} for e in record["epochs"]]


def test_run_writes_complete_result_files(cli, tiny_experiment, tmp_path):
    result = run(cli, tiny_experiment, tmp_path / "res")
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "res" / "tiny" / "runs").glob("*.json"))
    assert len(files) == 2
    record = json.loads(files[0].read_text())
    assert files[0].stem == record["run_id"]
    for key in ("run_id", "experiment", "variant", "seed", "status", "config", "env", "epochs", "params"):
        assert key in record, key
    assert record["status"] == "ok" and record["experiment"] == "tiny"
    assert set(record["variant"]) == {"arch", "activation", "pooling", "norm", "dropout", "dropout_p", "init"}
    assert record["params"] == 14_601_930  # alexnet65, 10 shapes classes
    assert set(record["config"]) == {"variant", "seed", "data", "train"}
    for key in (
        "ablate_version",
        "python",
        "torch",
        "cuda",
        "device",
        "device_name",
        "hostname",
        "started",
        "finished",
        "git_commit",
    ):
        assert key in record["env"], key
    (epoch,) = record["epochs"]
    for key in (
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "val_top5",
        "train_eval_loss",
        "train_eval_acc",
        "epoch_time_s",
        "train_images_per_s",
        "peak_memory_mb",
    ):
        assert key in epoch, key
    assert epoch["train_images_per_s"] > 0 and 0 <= epoch["val_acc"] <= epoch["val_top5"] <= 1
    manifest = json.loads((tmp_path / "res" / "tiny" / "experiment.json").read_text())
    assert manifest["baseline_slug"] == "relu-overlap-none-drop" and len(manifest["run_ids"]) == 2
    assert "relu-nonoverlap-none-drop" in result.output  # summary table
    assert not list((tmp_path / "res").rglob("*.tmp"))  # atomic writes leave no temporaries


def test_same_experiment_twice_gives_identical_metrics_and_other_seed_differs(cli, tiny_experiment, tmp_path):
    assert run(cli, tiny_experiment, tmp_path / "a").exit_code == 0
    assert run(cli, tiny_experiment, tmp_path / "b").exit_code == 0
    assert run(cli, tiny_experiment, tmp_path / "c", "--set", "seeds=[1]").exit_code == 0
    a, b, c = runs(tmp_path / "a"), runs(tmp_path / "b"), runs(tmp_path / "c")
    assert a.keys() == b.keys()
    for key in a:
        assert metrics(a[key]) == metrics(b[key]), key
        assert a[key]["run_id"] == b[key]["run_id"]
    for slug in ("relu-overlap-none-drop", "relu-nonoverlap-none-drop"):
        assert metrics(a[(slug, 0)]) != metrics(c[(slug, 1)])


def test_rerun_skips_finished_cells_and_limit_resumes(cli, tiny_experiment, tmp_path):
    res = tmp_path / "res"
    first = run(cli, tiny_experiment, res, "--set", "seeds=[0,1]", "--limit", "3")
    assert first.exit_code == 0, first.output
    assert "1 left for a later run" in first.output
    done = {p.name: p.stat().st_mtime_ns for p in (res / "tiny" / "runs").glob("*.json")}
    assert len(done) == 3
    second = run(cli, tiny_experiment, res, "--set", "seeds=[0,1]")
    assert second.exit_code == 0, second.output
    assert "1 run(s): 1 ok, 0 failed, 0 diverged; 3 already done" in second.output
    after = {p.name: p.stat().st_mtime_ns for p in (res / "tiny" / "runs").glob("*.json")}
    assert len(after) == 4 and all(after[name] == mtime for name, mtime in done.items())
    third = run(cli, tiny_experiment, res, "--set", "seeds=[0,1]")
    assert "0 run(s): 0 ok, 0 failed, 0 diverged; 4 already done" in third.output
    forced = run(cli, tiny_experiment, res, "--set", "seeds=[0]", "--force")
    assert "2 run(s): 2 ok, 0 failed, 0 diverged; 0 already done" in forced.output


class ExplodeAfter(nn.Module):
    """Identity for a number of training forwards, then NaN: a run that diverges mid-way."""

    calls = 0
    limit = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            ExplodeAfter.calls += 1
        return x * float("nan") if ExplodeAfter.calls > ExplodeAfter.limit else torch.relu(x)


class Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this layer is broken on purpose")


@pytest.fixture
def odd_activations():
    register_activation("explode")(ExplodeAfter)
    register_activation("broken")(Broken)
    yield
    ACTIVATIONS.unregister("explode")
    ACTIVATIONS.unregister("broken")


def test_divergence_keeps_epochs_and_failure_does_not_stop_the_sweep(cli, write_experiment, tmp_path, odd_activations):
    path = write_experiment(
        """
        name = "odd"
        seeds = [0]
        design = "one-at-a-time"
        [axes]
        activation = ["broken", "explode"]
        [data]
        train_size = 32
        val_size = 16
        [train]
        epochs = 3
        batch_size = 16
        """
    )
    # 7 activation modules per forward, 2 training steps per epoch: NaN from the 3rd epoch on.
    ExplodeAfter.calls, ExplodeAfter.limit = 0, 7 * 2 * 2
    result = run(cli, path, tmp_path / "res")
    assert result.exit_code == 1  # a failed run is reported as a failure of the command
    assert "1 run(s) failed" in result.output
    records = runs(tmp_path / "res", "odd")
    assert records[("relu-overlap-none-drop", 0)]["status"] == "ok"
    broken = records[("broken-overlap-none-drop", 0)]
    assert broken["status"] == "failed" and "broken on purpose" in broken["error"] and broken["epochs"] == []
    exploded = records[("explode-overlap-none-drop", 0)]
    assert exploded["status"] == "diverged" and "epoch 3" in exploded["error"]
    assert [e["epoch"] for e in exploded["epochs"]] == [1, 2]
    # a rerun retries the failed run only: ok and diverged runs are finished results
    again = run(cli, path, tmp_path / "res")
    assert "1 run(s): 0 ok, 1 failed, 0 diverged; 2 already done" in again.output


def test_dry_run_and_show_list_cells_without_training(cli, tiny_experiment, tmp_path):
    for args in (["run", str(tiny_experiment), "--dry-run"], ["show", str(tiny_experiment)]):
        result = cli.invoke(app, [*args, "--results", str(tmp_path / "res")])
        assert result.exit_code == 0, result.output
        assert "relu-overlap-none-drop" in result.output and "relu-nonoverlap-none-drop" in result.output
        assert "0 done, 2 to run" in result.output
    assert not (tmp_path / "res").exists()
    run(cli, tiny_experiment, tmp_path / "res", "--limit", "1")
    shown = cli.invoke(app, ["show", str(tiny_experiment), "--results", str(tmp_path / "res")])
    assert "1 done, 1 to run" in shown.output


def test_list_shows_axes_presets_and_datasets(cli):
    result = cli.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for word in (
        "relu",
        "tanh",
        "sigmoid",
        "overlap",
        "nonoverlap",
        "lrn",
        "batchnorm",
        "alexnet65",
        "alexnet",
        "shapes",
        "paper",
    ):
        assert word in result.output, word


def test_limit_trains_at_most_n_cells_and_skips_a_cell_another_worker_holds(cli, tiny_experiment, tmp_path):
    """--limit N in this process: the first N unfinished cells that no live claim holds."""
    from ablate.experiment import load_experiment
    from ablate.store.claims import HeldClaim

    res = tmp_path / "res"
    cells = load_experiment(tiny_experiment, ["seeds=[0,1]"]).cells()
    held = HeldClaim(res, "tiny", cells[0].run_id, "another worker")  # alive: this test's own process
    assert held.acquire()
    try:
        result = run(cli, tiny_experiment, res, "--set", "seeds=[0,1]", "--limit", "2")
    finally:
        held.release()
    assert result.exit_code == 0, result.output
    trained = {r["run_id"] for r in scan_runs(res, "tiny").records}
    assert trained == {cells[1].run_id, cells[2].run_id}, result.output
    starts = [e["run_id"] for e in read_events(res, "tiny") if e["event"] == "start"]
    assert sorted(starts) == sorted(trained)
