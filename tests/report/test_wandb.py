"""``ablate export wandb``: run files into real W&B runs, offline (nothing goes to the network),
read back from the run folders W&B wrote (its transaction logs, the files ``wandb sync`` uploads)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ablate.cli import app
from ablate.report.export.exporters import WANDB, export
from ablate.report.export.walk import ExportError
from ablate.report.export.wandb import (
    WandbTarget,
    default_mode,
    history_row,
    library,
    read_records,
    run_key,
    segments,
)
from ablate.store.folder import iter_runs, write_run

from helpers.planted import Outcome, make_record, write_pooling_study
from helpers.trackers import pooling_study

pytest.importorskip("wandb")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No API key, offline: as on a machine without W&B credentials."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def read_segment(path: Path) -> dict:
    """One offline run folder's transaction log: the run, its config, history rows, summary, exit code."""
    out: dict = {"history": [], "summary": {}}
    for message in read_records(path, library().pb):
        kind = message.WhichOneof("record_type")
        if kind == "run":
            out["run"] = message.run
            out["config"] = {item.key: json.loads(item.value_json) for item in message.run.config.update}
        elif kind == "history":
            out["history"].append(history_row(message))
        elif kind == "summary":
            out["summary"].update(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in message.summary.update}
            )
        elif kind == "exit":
            out["exit_code"] = message.exit.exit_code
    return out


def test_offline_run_folders_hold_the_history(tmp_path):
    results = pooling_study(tmp_path / "results")
    done = export(WANDB, WandbTarget("ablate", "offline", tmp_path), results)
    assert done.created == 4 and done.points == 4 * (3 + 6)  # a row per epoch and per logged step
    for record in iter_runs(results, "pool"):
        wid = run_key("pool", record["run_id"])
        assert wid == f"pool-{record['run_id']}"
        (segment,) = segments(tmp_path, wid)
        assert segment.parent.parent == tmp_path / "wandb" and segment.parent.name.startswith("offline-run-")
        found = read_segment(segment)
        run = found["run"]
        assert (
            run.run_id == wid
            and run.project == "ablate"
            and run.display_name == f"{record['slug']} seed{record['seed']}"
        )
        assert run.run_group == record["slug"] and run.job_type == "pool" and list(run.tags) == ["ok"]
        config = found["config"]
        assert config["pooling"] == record["variant"]["pooling"] and config["seed"] == record["seed"]
        assert config["train"] == record["config"]["train"] and config["data"] == record["config"]["data"]
        assert config["ablate"]["run_id"] == record["run_id"] and config["ablate"]["device"] == "test cpu"
        rows = found["history"]
        epochs, steps = [r for r in rows if "epoch" in r], [r for r in rows if "step" in r]
        assert [r["epoch"] for r in epochs] == [0, 1, 2]
        for key in ("val_acc", "train_loss", "lr", "train_images_per_s"):
            assert [r[f"epoch/{key}"] for r in epochs] == pytest.approx([e[key] for e in record["epochs"]])
        assert [r["step"] for r in steps] == [s["step"] for s in record["steps"]] == [8, 16, 24, 32, 40, 48]
        assert [r["step/train_loss"] for r in steps] == pytest.approx([s["train_loss"] for s in record["steps"]])
        assert [r["_step"] for r in rows] == list(range(9))  # training order: epoch 1's steps, epoch 1, ...
        assert [next(iter(k for k in ("epoch", "step") if k in r)) for r in rows[:3]] == ["step", "step", "epoch"]
        assert found["summary"]["final_val_acc"] == pytest.approx(record["summary"]["final_val_acc"])
        assert found["summary"]["status"] == "ok" and found["exit_code"] == 0


def test_exporting_again_adds_nothing_and_a_run_trained_again_gets_only_what_it_lacks(tmp_path):
    """A diverged run (its first epoch kept) trained again: a resumed segment with only epoch 2,
    at W&B steps after the first segment's."""
    results = tmp_path / "results"
    write_pooling_study(results, [0], outcome=lambda seed: {"status": "diverged"}, epochs=2)
    target = WandbTarget("ablate", "offline", tmp_path)
    first = export(WANDB, target, results)
    assert first.created == 2 and first.points == 2  # epoch 1 of each
    again = export(WANDB, target, results)
    assert again.created == 0 and again.points == 0
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 2  # no second folder
    for record in list(iter_runs(results, "pool")):
        write_run(results, make_record("pool", record["variant"], 0, Outcome(epochs=2)))
    retrained = export(WANDB, target, results)
    assert retrained.created == 0 and retrained.points == 2  # epoch 2 of each, nothing else
    for record in iter_runs(results, "pool"):
        old, new = (read_segment(p) for p in segments(tmp_path, run_key("pool", record["run_id"])))
        assert old["exit_code"] == 1 and new["exit_code"] == 0  # diverged: failed in W&B
        assert [r["epoch"] for r in old["history"]] == [0] and [r["epoch"] for r in new["history"]] == [1]
        assert [r["_step"] for r in old["history"] + new["history"]] == [0, 1]
        assert new["history"][0]["epoch/val_acc"] == pytest.approx(record["epochs"][1]["val_acc"])
        assert new["run"].run_id == old["run"].run_id
    assert export(WANDB, target, results).points == 0


def test_offline_is_the_default_without_an_api_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc from 'wandb login'
    assert default_mode() == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    (tmp_path / ".netrc").chmod(0o600)  # as 'wandb login' writes it (Python refuses a netrc others can read)
    assert default_mode() == "online"
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert default_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert default_mode() == "offline"
    with pytest.raises(ExportError, match="--mode 'cloud': expected offline or online"):
        WandbTarget(mode="cloud")


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    return "".join(result.output.strip().split("\n"))


def test_cli_exports_offline_and_says_how_to_upload(cli, tmp_path):
    results = pooling_study(tmp_path / "results")
    args = ["export", "wandb", "pool", "--results", str(results), "--dir", str(tmp_path / "w"), "--project", "p"]
    done = cli.invoke(app, args)
    assert done.exit_code == 0, done.output
    flat = "".join(done.output.split("\n"))
    assert "4 run(s) exported to W&B project p (offline" in flat and f"wandb sync {tmp_path / 'w' / 'wandb'}" in flat
    assert len(list((tmp_path / "w" / "wandb").glob("offline-run-*"))) == 4
    assert "0 new, 0 metric points added" in cli.invoke(app, args).output


def test_cli_errors_are_one_line(cli, tmp_path, monkeypatch):
    results = pooling_study(tmp_path / "results")
    base = ["export", "wandb", "--results", str(results)]
    assert "--mode 'cloud': expected offline or online" in one_line_error(cli.invoke(app, [*base, "--mode", "cloud"]))
    (tmp_path / "a-file").write_text("x")
    blocked = one_line_error(cli.invoke(app, [*base, "--dir", str(tmp_path / "a-file")]))
    assert (
        f"cannot write W&B's folder {tmp_path / 'a-file' / 'wandb'}" in blocked and "is a file, not a folder" in blocked
    )
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails as if not installed
    missing = one_line_error(cli.invoke(app, [*base, "--dir", str(tmp_path / "w")]))
    assert missing == "error: wandb is not installed; install it with: pip install 'ablate[wandb]'"
    assert not (tmp_path / "w").exists()
