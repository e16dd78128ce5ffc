"""``ablate export tensorboard``: event files written from run files, read back with TensorBoard's own reader."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import pytest

from ablate.cli import app
from ablate.report.export.tensorboard import INSTALL_HINT, ExportError, export_tensorboard, run_name
from ablate.store.folder import iter_runs, write_run

from helpers.planted import Outcome, make_record, write_planted, write_pooling_study

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata


def steps_for(seed: int) -> list[dict]:
    return [
        {
            "step": 8 * (i + 1),
            "epoch": 1 + i // 2,
            "images": 256 * (i + 1),
            "lr": 1e-3 * (i + 1),
            "train_loss": 2.0 - 0.25 * i - 0.01 * seed,
            "train_acc": 0.1 * (i + 1),
            "time_s": 0.5 * (i + 1),
        }
        for i in range(4)
    ]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_pooling_study(
        root, [0, 1], outcome=lambda s: {"images_per_s": 900.0 + 10 * s, "extra": {"steps": steps_for(s)}}, epochs=3
    )
    write_planted(
        root,
        "act",
        {"activation": ["relu", "tanh"]},
        [0],
        lambda a, s: Outcome(status="failed" if a["activation"] == "tanh" else "ok"),
        epochs=2,
    )
    return root


def read(path: Path) -> EventAccumulator:
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def session(acc: EventAccumulator, tag: str):
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[tag]
    if tag == metadata.SESSION_START_INFO_TAG:
        return metadata.parse_session_start_info_plugin_data(content)
    return metadata.parse_session_end_info_plugin_data(content)


def test_one_tensorboard_run_per_ablate_run_with_epoch_step_and_run_scalars(results, tmp_path):
    out = tmp_path / "tb"
    done = export_tensorboard(results, out)
    names = sorted(r.name for r in done.runs)
    assert names == [
        "act/relu-overlap-none-drop/seed0",
        "act/tanh-overlap-none-drop/seed0",
        "pool/relu-nonoverlap-none-drop/seed0",
        "pool/relu-nonoverlap-none-drop/seed1",
        "pool/relu-overlap-none-drop/seed0",
        "pool/relu-overlap-none-drop/seed1",
    ]
    records = {(r["slug"], r["seed"]): r for r in iter_runs(results, "pool")}
    for (slug, seed), record in records.items():
        acc = read(out / "pool" / slug / f"seed{seed}")
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "train_images_per_s"):
            events = acc.Scalars(f"epoch/{key}")
            assert [e.step for e in events] == [1, 2, 3]
            assert [e.value for e in events] == pytest.approx([e[key] for e in record["epochs"]], rel=1e-6)
        for key in ("train_loss", "train_acc", "lr", "images", "time_s"):
            events = acc.Scalars(f"step/{key}")
            assert [e.step for e in events] == [8, 16, 24, 32]
            assert [e.value for e in events] == pytest.approx([s[key] for s in steps_for(seed)], rel=1e-6)
        # Throughput over each window between logged points: 256 images in 0.5 s of training.
        assert [e.value for e in acc.Scalars("step/images_per_s")] == pytest.approx([512.0] * 4)
        (speed,) = acc.Scalars("run/train_images_per_s")
        assert speed.value == pytest.approx(900.0 + 10 * seed) and speed.step == 3
        (final,) = acc.Scalars("run/final_val_acc")
        assert final.value == pytest.approx(record["summary"]["final_val_acc"])
    # Runs without steps get no step/ scalars; a failed run has no curves but is still there.
    no_steps = read(out / "act" / "relu-overlap-none-drop" / "seed0").Tags()["scalars"]
    assert no_steps and not [t for t in no_steps if t.startswith("step/")]
    assert not [
        t
        for t in read(out / "act" / "tanh-overlap-none-drop" / "seed0").Tags()["scalars"]
        if t.startswith(("epoch/", "step/"))
    ]
    assert sum(r.steps for r in done.runs) == 16 and sum(r.epochs for r in done.runs) == 4 * 3 + 2


def test_hparams_hold_axes_seed_status_and_config(results, tmp_path):
    out = tmp_path / "tb"
    export_tensorboard(results, out, ["pool", "act"])
    start = session(read(out / "pool" / "relu-nonoverlap-none-drop" / "seed1"), metadata.SESSION_START_INFO_TAG)
    hp = start.hparams
    assert hp["experiment"].string_value == "pool" and hp["variant"].string_value == "relu-nonoverlap-none-drop"
    assert hp["pooling"].string_value == "nonoverlap" and hp["norm"].string_value == "none"
    assert hp["dropout"].HasField("bool_value") and hp["dropout"].bool_value is True  # a bool, not the number 1
    assert hp["seed"].number_value == 1 and hp["dropout_p"].number_value == 0.5
    assert hp["train.lr"].number_value == pytest.approx(3e-4) and hp["data.dataset"].string_value == "shapes"
    assert hp["status"].string_value == "ok" and hp["device"].string_value == "test cpu"
    assert "data.root" not in hp  # None: left out rather than typed differently across runs
    end = session(read(out / "pool" / "relu-nonoverlap-none-drop" / "seed1"), metadata.SESSION_END_INFO_TAG)
    assert end.status == api_pb2.STATUS_SUCCESS
    failed = read(out / "act" / "tanh-overlap-none-drop" / "seed0")
    assert session(failed, metadata.SESSION_START_INFO_TAG).hparams["status"].string_value == "failed"
    assert session(failed, metadata.SESSION_END_INFO_TAG).status == api_pb2.STATUS_FAILURE


def test_tensorboards_hparams_view_sees_every_axis_across_experiments(results, tmp_path):
    """TensorBoard's own HParams backend, on the exported folder: one column per axis with the
    values of every experiment (no experiment-level summary pins the first run's columns)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context

    out = tmp_path / "tb"
    export_tensorboard(results, out)
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(out))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(out))
    backend = backend_context.Context(base_plugin.TBContext(data_provider=provider, logdir=str(out)))
    ctx = context.RequestContext()
    found = backend.hparams_metadata(ctx, "")
    assert len(found) == 6
    exp = backend.experiment_from_metadata(ctx, "", True, found, backend.hparams_from_data_provider(ctx, "", None))
    infos = {h.name: h for h in exp.hparam_infos}

    def values(name: str) -> list[str]:
        return sorted(v.string_value for v in infos[name].domain_discrete.values)

    assert values("pooling") == ["nonoverlap", "overlap"] and values("activation") == ["relu", "tanh"]
    assert values("experiment") == ["act", "pool"] and values("status") == ["failed", "ok"]
    assert infos["dropout"].type == api_pb2.DATA_TYPE_BOOL
    metrics = {m.name.tag for m in exp.metric_infos}
    assert {"epoch/val_acc", "step/train_loss", "run/train_images_per_s"} <= metrics


def test_odd_names_stay_inside_out_and_duplicates_are_kept(results, tmp_path):
    # A hand-made record without a manifest: its slug (from an activation's name) tries to climb out of --out.
    odd = make_record("weird", {"activation": "../../../escaped"}, 0, Outcome(epochs=1))
    odd.update(run_id="aaaaaaaaaaaaaaaa")
    write_run(results, odd)
    twin = dict(odd, run_id="bbbbbbbbbbbbbbbb")
    write_run(results, twin)
    (results / "we ird name").mkdir()
    write_run(results, dict(make_record("we ird name", {}, 3, Outcome(epochs=1)), experiment="we ird name"))
    out = tmp_path / "deep" / "tb"
    done = export_tensorboard(results, out, ["weird", "we ird name"])
    names = sorted(r.name for r in done.runs)
    assert names == [
        "we_ird_name/relu-overlap-none-drop/seed3",
        "weird/.._.._.._escaped-overlap-none-drop/seed0",
        "weird/.._.._.._escaped-overlap-none-drop/seed0-bbbbbbbbbbbb",
    ]
    for r in done.runs:
        assert r.path.resolve().is_relative_to(out.resolve()) and list(r.path.glob("events.out.tfevents.*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "results"]
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["tb"]
    assert run_name("..", {"slug": ".", "seed": "../x"}) == "__/_/seed.._x"
    assert run_name("a/b", {"slug": "", "variant": {"norm": "lrn"}, "seed": 1}) == "a_b/norm=lrn/seed1"


def test_export_again_replaces_event_files_and_stale_runs_are_left_out(results, tmp_path):
    old = make_record("pool", {"pooling": "overlap"}, 0, Outcome(epochs=1))
    old["run_id"] = "0123456789abcdef"  # not in the manifest: an older configuration
    write_run(results, old)
    out = tmp_path / "tb"
    first = export_tensorboard(results, out, ["pool"])
    second = export_tensorboard(results, out, ["pool"])
    assert len(second.runs) == 4 and second.stale == {"pool": 1} and first.stale == {"pool": 1}
    run = out / "pool" / "relu-overlap-none-drop" / "seed0"
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    assert [e.step for e in read(run).Scalars("epoch/val_acc")] == [1, 2, 3]  # not 1, 2, 3, 1, 2, 3
    assert "0123456789abcdef" not in {r.run_id for r in second.runs}


def test_errors_are_export_errors(results, tmp_path):
    with pytest.raises(ExportError, match="unknown experiment 'pol' .*did you mean 'pool'"):
        export_tensorboard(results, tmp_path / "tb", ["pol"])
    (tmp_path / "empty" / "e" / "runs").mkdir(parents=True)
    with pytest.raises(ExportError, match="no run records to export"):
        export_tensorboard(tmp_path / "empty", tmp_path / "tb")


def test_cli_exports_and_reports_errors_in_one_line(cli, results, tmp_path):
    out = tmp_path / "tb"
    ok = cli.invoke(app, ["export", "tensorboard", "pool", "--results", str(results), "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "4 run(s) exported" in ok.output and "16 steps" in ok.output and "tensorboard --logdir" in ok.output
    assert sorted(p.name for p in out.iterdir()) == ["pool"]
    bad = cli.invoke(app, ["export", "tensorboard", "nope", "--results", str(results), "--out", str(out)])
    assert bad.exit_code == 2 and "unknown experiment 'nope'" in bad.output
    assert "Traceback" not in bad.output and len(bad.output.strip().splitlines()) == 1
    missing = cli.invoke(app, ["export", "tensorboard", "--results", str(results)])
    assert missing.exit_code == 2 and "--out" in missing.output


def test_without_tensorboard_the_command_says_how_to_install_it(cli, results, tmp_path, monkeypatch):
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    result = cli.invoke(app, ["export", "tensorboard", "--results", str(results), "--out", str(tmp_path / "tb")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {INSTALL_HINT}" and "pip install 'ablate[tensorboard]'" in INSTALL_HINT
    assert not (tmp_path / "tb").exists()


@pytest.mark.slow
def test_a_real_tiny_run_exports(cli, tiny_experiment, tmp_path):
    res, out = tmp_path / "res", tmp_path / "tb"
    ran = cli.invoke(app, ["run", str(tiny_experiment), "--results", str(res), "--device", "cpu"])
    assert ran.exit_code == 0, ran.output
    exported = cli.invoke(app, ["export", "tensorboard", "--results", str(res), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    for record in iter_runs(res, "tiny"):
        acc = read(out / "tiny" / record["slug"] / "seed0")
        for key in ("train_loss", "val_loss", "val_acc", "train_acc", "lr", "train_images_per_s"):
            (event,) = acc.Scalars(f"epoch/{key}")
            assert event.step == 1 and event.value == pytest.approx(record["epochs"][0][key], rel=1e-6)
        assert record["steps"], "runs log steps"
        assert [e.step for e in acc.Scalars("step/train_loss")] == [x["step"] for x in record["steps"]]
        losses = [x["train_loss"] for x in record["steps"]]
        assert [e.value for e in acc.Scalars("step/train_loss")] == pytest.approx(losses, rel=1e-6)
        assert len(acc.Scalars("step/images_per_s")) == len(record["steps"])
        walls = [e.wall_time for e in acc.Scalars("step/train_loss")]
        finished = datetime.fromisoformat(record["env"]["finished"]).timestamp()
        assert walls == sorted(walls) and datetime.fromisoformat(record["env"]["started"]).timestamp() <= walls[0]
        assert walls[-1] <= finished + 1  # the env stamps are whole seconds
        hp = session(acc, metadata.SESSION_START_INFO_TAG).hparams
        assert hp["pooling"].string_value == record["variant"]["pooling"] and hp["seed"].number_value == 0
        # Wall times come from the record (start + epoch duration), not from the moment of export.
        (event,) = acc.Scalars("epoch/val_acc")
        started = datetime.fromisoformat(record["env"]["started"]).timestamp()
        assert event.wall_time == pytest.approx(started + record["epochs"][0]["epoch_time_s"], abs=1e-3)
