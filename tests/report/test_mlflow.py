"""``ablate export mlflow``: run files into a real MLflow tracking store (sqlite in a temporary
folder), read back with MLflow's own client."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from ablate import load_results
from ablate.analysis import compare_to_baseline, load_experiment_data, summary_frame
from ablate.cli import app
from ablate.report.export.exporters import MLFLOW, export
from ablate.report.export.mlflow import MlflowTarget
from ablate.report.export.walk import ExportError
from ablate.store.folder import iter_runs, write_run

from helpers.planted import Outcome, make_record, write_pooling_study
from helpers.trackers import points, pooling_study

pytest.importorskip("mlflow")
import mlflow
from mlflow import MlflowClient


@pytest.fixture
def results(tmp_path) -> Path:
    return pooling_study(tmp_path / "results")


@pytest.fixture(scope="module")
def exported(mlflow_template, tmp_path_factory) -> tuple[Path, str]:
    """The pooling study exported once, for the tests that only read the export."""
    folder = tmp_path_factory.mktemp("exported")
    shutil.copy(mlflow_template, folder / "mlflow.db")
    mlflow_uri = f"sqlite:///{folder / 'mlflow.db'}"
    results = pooling_study(folder / "results")
    done = export(MLFLOW, MlflowTarget(mlflow_uri, reports=None), results)
    assert len(done.runs) == 4 and done.created == 4
    return results, mlflow_uri


def ablate_runs(client: MlflowClient, name: str = "pool") -> list:
    exp = client.get_experiment_by_name(name)
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_two_variants_two_seeds_give_two_parent_runs_and_four_nested_runs(exported):
    results, mlflow_uri = exported
    client = MlflowClient(tracking_uri=mlflow_uri)
    runs = ablate_runs(client)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and len(children) == 4
    by_id = {r.info.run_id: r for r in parents}
    records = {r["run_id"]: r for r in iter_runs(results, "pool")}
    assert {c.data.tags["ablate.run_id"] for c in children} == set(records)
    for child in children:
        record = records[child.data.tags["ablate.run_id"]]
        parent = by_id[child.data.tags["mlflow.parentRunId"]]  # nested under its variant's run
        assert parent.data.tags["ablate.variant"] == child.data.tags["ablate.variant"] == record["slug"]
        assert parent.info.run_name == record["slug"]
        assert child.info.run_name == f"{record['slug']} seed{record['seed']}"
        assert parent.data.params["pooling"] == record["variant"]["pooling"]
        params = child.data.params
        assert params["pooling"] == record["variant"]["pooling"] and params["seed"] == str(record["seed"])
        assert params["train.lr"] == str(record["config"]["train"]["lr"]) and params["data.dataset"] == "shapes"
        assert params["dropout"] == "True" and params["data.root"] == "None"  # str(), as mlflow.log_param writes
        tags = child.data.tags
        assert tags["ablate.status"] == "ok" and tags["ablate.device"] == "test cpu"
        assert tags["ablate.ablate_version"] == "0.1.0" and tags["ablate.experiment"] == "pool"
        assert child.info.status == "FINISHED"


def test_metric_steps_run_from_zero_and_values_equal_the_run_files(exported):
    results, mlflow_uri = exported
    client = MlflowClient(tracking_uri=mlflow_uri)
    records = {r["run_id"]: r for r in iter_runs(results, "pool")}
    children = [r for r in ablate_runs(client) if r.data.tags.get("ablate.kind") == "seed"]
    for child in children:
        record = records[child.data.tags["ablate.run_id"]]
        for key in ("val_acc", "train_loss", "train_images_per_s", "lr"):
            history = client.get_metric_history(child.info.run_id, f"epoch/{key}")
            assert [m.step for m in history] == [0, 1, 2]  # epochs 1..3 of the run file
            assert [m.value for m in history] == pytest.approx([e[key] for e in record["epochs"]])
        history = client.get_metric_history(child.info.run_id, "step/train_loss")
        assert [m.step for m in history] == [s["step"] for s in record["steps"]] == [8, 16, 24, 32, 40, 48]
        assert [m.value for m in history] == pytest.approx([s["train_loss"] for s in record["steps"]])
        (final,) = client.get_metric_history(child.info.run_id, "final_val_acc")
        assert final.value == pytest.approx(record["summary"]["final_val_acc"]) and final.step == 2


def test_a_run_trained_again_gets_only_the_points_it_lacks(tmp_path, mlflow_uri):
    """A failed run (no epochs) trained again later: same run id, new epochs; one MLflow run still."""
    results = tmp_path / "results"
    write_pooling_study(results, [0], outcome=lambda seed: {"status": "failed"} if seed == 0 else {}, epochs=2)
    export(MLFLOW, MlflowTarget(mlflow_uri), results)
    client = MlflowClient(tracking_uri=mlflow_uri)
    failed = [r for r in ablate_runs(client) if r.data.tags.get("ablate.status") == "failed"]
    assert len(failed) == 2 and all(r.info.status == "FAILED" for r in failed)
    n_points = points(mlflow_uri, "seed")
    for record in list(iter_runs(results, "pool")):
        write_run(results, make_record("pool", record["variant"], 0, Outcome(epochs=2)))
    again = export(MLFLOW, MlflowTarget(mlflow_uri), results)
    runs = ablate_runs(client)
    assert again.created == 0 and len(runs) == 4
    ok = [r for r in runs if r.data.tags.get("ablate.kind") == "seed"]
    assert all(r.info.status == "FINISHED" and r.data.tags["ablate.status"] == "ok" for r in ok)
    for run in ok:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch/val_acc")] == [0, 1]
    assert points(mlflow_uri, "seed") == n_points + again.points > n_points


def test_search_runs_matches_load_results_on_the_shared_columns(exported, monkeypatch):
    results, mlflow_uri = exported
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    frame = mlflow.search_runs(experiment_names=["pool"], filter_string="tags.`ablate.kind` = 'seed'")
    renamed: dict[str, str] = {}  # metrics.final_val_acc -> final_val_acc, ...; the seed is a param and a tag
    for prefix in ("metrics.", "params.", "tags.ablate."):
        for column in frame.columns:
            if column.startswith(prefix) and column[len(prefix) :] not in renamed.values():
                renamed[column] = column[len(prefix) :]
    frame = frame[list(renamed)].rename(columns=renamed)
    runs = load_results(results, "pool").runs
    shared = sorted(set(frame.columns) & set(runs.columns))
    assert {"run_id", "variant", "seed", "status", "pooling", "final_val_acc", "best_val_acc", "gen_gap"} <= set(shared)
    assert {"train_images_per_s", "wall_time_s", "epochs_done", "steps_logged", "final_train_loss"} <= set(shared)
    merged = runs.merge(frame, on="run_id", suffixes=("", "_mlflow"))
    assert len(merged) == len(runs) == 4
    for column in shared:
        if column == "run_id":
            continue
        ours, theirs = merged[column].tolist(), merged[f"{column}_mlflow"].tolist()
        if isinstance(theirs[0], float):
            assert theirs == pytest.approx([float(x) for x in ours]), column
        else:  # params and tags are text
            assert theirs == [str(x) for x in ours], column


def test_parent_runs_carry_mean_ci_and_verdict_from_the_analysis(exported):
    results, mlflow_uri = exported
    client = MlflowClient(tracking_uri=mlflow_uri)
    parents = {r.data.tags["ablate.variant"]: r for r in ablate_runs(client) if r.data.tags["ablate.kind"] == "variant"}
    data = load_experiment_data(results, "pool")
    summary = summary_frame(data).set_index("variant")
    comparisons = compare_to_baseline(data).set_index(["variant", "metric"])
    for slug, parent in parents.items():
        metrics = parent.data.metrics
        for column in ("final_val_acc_mean", "final_val_acc_ci_low", "final_val_acc_ci_high", "n"):
            assert metrics[column] == pytest.approx(summary.loc[slug, column]), column
        (mean,) = client.get_metric_history(parent.info.run_id, "final_val_acc_mean")
        assert mean.step == 2  # over 2 ok seeds
        assert parent.info.status == "FINISHED"
    baseline = parents[data.baseline]
    assert baseline.data.tags["ablate.verdict"] == "baseline"
    other = parents[next(v for v in data.variants if v != data.baseline)]
    row = comparisons.loc[(other.data.tags["ablate.variant"], "final_val_acc")]
    assert other.data.tags["ablate.verdict"] == other.data.tags["ablate.verdict.final_val_acc"] == row["verdict"]
    assert other.data.metrics["final_val_acc_diff"] == pytest.approx(row["diff"])
    assert other.data.metrics["final_val_acc_diff_ci_low"] == pytest.approx(row["ci_low"])


def test_the_report_folder_is_logged_as_artifacts_of_a_study_run(results, mlflow_uri, tmp_path):
    reports = tmp_path / "reports"
    (reports / "pool").mkdir(parents=True)
    (reports / "pool" / "README.md").write_text("# pool\n")
    (reports / "pool" / "summary.csv").write_text("variant,n\n")
    (reports / "pool" / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    export(MLFLOW, MlflowTarget(mlflow_uri, reports), results)
    export(MLFLOW, MlflowTarget(mlflow_uri, reports), results)  # again: no second study run
    client = MlflowClient(tracking_uri=mlflow_uri)
    (study,) = [r for r in ablate_runs(client) if r.data.tags.get("ablate.kind") == "study"]
    names = sorted(a.path for a in client.list_artifacts(study.info.run_id, "report"))
    assert names == ["report/README.md", "report/curves.png", "report/summary.csv"]
    local = Path(client.download_artifacts(study.info.run_id, "report/curves.png", str(tmp_path / "dl")))
    assert local.read_bytes() == (reports / "pool" / "curves.png").read_bytes()
    assert study.data.params["design"] == "grid" and len(ablate_runs(client)) == 7


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    return result.output.strip()


def test_exporting_again_adds_no_run_and_no_metric_point(cli, results, mlflow_uri):
    args = ["export", "mlflow", "pool", "--results", str(results), "--tracking-uri", mlflow_uri]
    first = cli.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "4 run(s) exported to MLflow" in first.output and "4 new" in first.output
    assert f"mlflow ui --backend-store-uri {mlflow_uri}" in "".join(first.output.split("\n"))
    client = MlflowClient(tracking_uri=mlflow_uri)
    n_runs, n_points = len(ablate_runs(client)), points(mlflow_uri)
    assert n_runs == 6 and n_points > 4 * (3 * 11 + 6 * 5)  # epochs and steps of 4 runs, their own numbers, ...
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "0 new, 0 metric points added" in again.output, again.output
    assert len(ablate_runs(client)) == n_runs and points(mlflow_uri) == n_points
    # An export cut short after the points but before its last tag: the history decides, nothing twice.
    child = next(r for r in ablate_runs(client) if r.data.tags.get("ablate.kind") == "seed")
    client.delete_tag(child.info.run_id, "ablate.record")
    assert export(MLFLOW, MlflowTarget(mlflow_uri), results).points == 0 and points(mlflow_uri) == n_points


def test_missing_extra_is_one_line(cli, results, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import fails as if not installed
    result = cli.invoke(app, ["export", "mlflow", "--results", str(results)])
    assert one_line_error(result) == "error: mlflow is not installed; install it with: pip install 'ablate[mlflow]'"
    assert not (tmp_path / "mlflow.db").exists()


def test_unreachable_tracking_uri_fails_at_once(cli, results):
    started = time.monotonic()
    result = cli.invoke(app, ["export", "mlflow", "--results", str(results), "--tracking-uri", "http://127.0.0.1:1"])
    line = one_line_error(result)
    assert "cannot use the MLflow tracking URI http://127.0.0.1:1: Connection refused" in line
    assert time.monotonic() - started < 15  # not MLflow's minutes of retries


def test_an_mlflow_experiment_of_that_name_with_other_content_is_refused(cli, results, mlflow_uri, tmp_path):
    client = MlflowClient(tracking_uri=mlflow_uri)
    client.create_experiment("pool")  # somebody's own experiment
    mine = cli.invoke(app, ["export", "mlflow", "--results", str(results), "--tracking-uri", mlflow_uri])
    assert "exists and was not made by 'ablate export mlflow'" in one_line_error(mine)
    assert len(ablate_runs(client)) == 0
    other = tmp_path / "other"  # ablate's own "pool", with 2 epochs instead of 3: another configuration
    write_pooling_study(other, [0], epochs=2)
    client.rename_experiment(client.get_experiment_by_name("pool").experiment_id, "theirs")
    export(MLFLOW, MlflowTarget(mlflow_uri), other)
    changed = cli.invoke(app, ["export", "mlflow", "--results", str(results), "--tracking-uri", mlflow_uri])
    line = one_line_error(changed)
    assert "holds another configuration of 'pool' (it differs in train.epochs)" in line
    assert len(ablate_runs(client)) == 4  # the other configuration's runs, untouched


@pytest.mark.parametrize("where", ["a-file", "impossible", "read-only"])
def test_an_unwritable_store_is_one_line(cli, results, tmp_path, where):
    if where == "a-file":
        (tmp_path / "a-file").write_text("x")
        mlflow_uri = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    elif where == "impossible":
        mlflow_uri = "sqlite:////proc/ablate-cannot-exist/mlflow.db"
    else:
        if __import__("os").geteuid() == 0:
            pytest.skip("root can write to read-only folders")
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        mlflow_uri = f"sqlite:///{tmp_path / 'ro' / 'mlflow.db'}"
    result = cli.invoke(app, ["export", "mlflow", "--results", str(results), "--tracking-uri", mlflow_uri])
    assert f"cannot write the MLflow store {mlflow_uri}" in "".join(one_line_error(result).split("\n"))


def test_library_errors_are_export_errors(results, mlflow_uri):
    with pytest.raises(ExportError, match="unknown experiment 'pol' .*did you mean 'pool'"):
        export(MLFLOW, MlflowTarget(mlflow_uri), results, ["pol"])
    (results.parent / "empty" / "e" / "runs").mkdir(parents=True)
    with pytest.raises(ExportError, match="no run records to export"):
        export(MLFLOW, MlflowTarget(mlflow_uri), results.parent / "empty")
