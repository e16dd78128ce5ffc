"""``ablate export ... --follow``: the results folder watched while a study runs, its runs mirrored
into MLflow as their files appear; a damaged file named once and picked up once whole; Ctrl-C
(SIGINT to the command in a child process) stops cleanly."""

from __future__ import annotations

import signal
import time

import pytest

from ablate.cli import app
from ablate.report.export.exporters import MLFLOW, follow
from ablate.report.export.mlflow import MlflowTarget
from ablate.store.folder import iter_runs

from helpers.process import ablate, finish, write
from helpers.sweeps import tiny_sweep
from helpers.trackers import points, pooling_study

pytest.importorskip("mlflow")
from mlflow import MlflowClient


def seed_runs(uri: str, name: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], "tags.`ablate.kind` = 'seed'", max_results=1000)


def test_a_damaged_file_is_skipped_with_one_warning_and_picked_up_once_whole(tmp_path, mlflow_uri):
    results = pooling_study(tmp_path / "results")
    path = sorted((results / "pool" / "runs").glob("*.json"))[0]
    whole = path.read_text()
    path.write_text(whole[: len(whole) // 2])  # half-written: a copy in progress, a full disk
    looks: list[tuple[list[str], list[str]]] = []

    def on_look(look, runs) -> None:
        looks.append((look.warnings, [r.run_id for r in runs if r.created]))
        if len(looks) == 2:
            path.write_text(whole)  # whole at last

    done = follow(
        MLFLOW, MlflowTarget(mlflow_uri), results, interval=0.01, should_stop=lambda: len(looks) == 3, on_look=on_look
    )
    (warning,) = looks[0][0]
    assert str(path) in warning and "not JSON" in warning and "skipped until it is whole" in warning
    assert len(looks[0][1]) == 3 and path.stem not in looks[0][1]
    assert looks[1] == ([], [])  # still damaged: not named again
    assert looks[2] == ([], [path.stem])
    assert done.warnings == [warning] and done.created == 4 and done.looks == 3
    assert len(seed_runs(mlflow_uri, "pool")) == 4


def test_a_named_experiment_is_waited_for(tmp_path, mlflow_uri):
    results = tmp_path / "results"
    looks: list[tuple[list[str], int]] = []

    def on_look(look, runs) -> None:
        looks.append((look.waiting, len(runs)))
        if len(looks) == 1:
            pooling_study(results)  # the study starts after the export

    follow(
        MLFLOW,
        MlflowTarget(mlflow_uri),
        results,
        ["pool"],
        interval=0.01,
        should_stop=lambda: len(looks) == 2,
        on_look=on_look,
    )
    assert looks == [(["pool"], 0), ([], 4)]


@pytest.mark.slow
def test_follow_during_a_running_workers_2_study_mirrors_every_epoch_once(cli, tmp_path, mlflow_uri):
    write(tmp_path, "tiny.toml", tiny_sweep(seeds=(0,), epochs=2))
    follower = ablate(
        tmp_path, "export", "mlflow", "tiny", "--results", "res", "--tracking-uri", mlflow_uri,
        "--follow", "--interval", "0.5",
    )  # fmt: skip
    runner = ablate(tmp_path, "run", "tiny.toml", "--device", "cpu", "--results", "res", "--workers", "2")
    code, out = finish(runner, timeout=300)
    assert code == 0, out
    records = list(iter_runs(tmp_path / "res", "tiny"))
    assert len(records) == 2
    deadline = time.monotonic() + 60
    done = lambda: sum("ablate.record" in r.data.tags for r in seed_runs(mlflow_uri, "tiny")) == len(records)  # noqa: E731
    while not done() and time.monotonic() < deadline:
        time.sleep(0.2)
    follower.send_signal(signal.SIGINT)  # Ctrl-C
    fcode, fout = finish(follower, timeout=60)
    assert fcode == 0 and "stopped following: 2 run(s) mirrored, 2 new" in fout and "Traceback" not in fout, fout
    assert fout.count(": ok, 2 epochs (new run)") == 2  # a line per run as it was mirrored
    client = MlflowClient(tracking_uri=mlflow_uri)
    runs = {r.data.tags["ablate.run_id"]: r for r in seed_runs(mlflow_uri, "tiny")}
    assert set(runs) == {r["run_id"] for r in records}
    for record in records:
        run = runs[record["run_id"]]
        for key in ("val_acc", "train_loss", "lr"):
            history = client.get_metric_history(run.info.run_id, f"epoch/{key}")
            assert [m.step for m in history] == [0, 1]  # every epoch, once
            assert [m.value for m in history] == pytest.approx([e[key] for e in record["epochs"]])
        steps = client.get_metric_history(run.info.run_id, "step/train_loss")
        assert [m.step for m in steps] == [s["step"] for s in record["steps"]]
    # Exporting once more after the study: nothing was missed, nothing is added.
    n_points = points(mlflow_uri)
    args = ["export", "mlflow", "tiny", "--results", str(tmp_path / "res"), "--tracking-uri", mlflow_uri]
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "0 new, 0 metric points added" in again.output, again.output
    assert points(mlflow_uri) == n_points
