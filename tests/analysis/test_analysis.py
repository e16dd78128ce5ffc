"""ablate.analysis: result files -> frames, counts of bad runs, targets, paired tables, grid effects."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from ablate import analysis
from ablate.analysis import ReportError, Targets, load_experiment_data
from ablate.store.folder import manifest_path, write_run

from helpers.planted import Outcome, make_record, seeded_noise, write_planted

BASE = "relu-overlap-none-drop"
NONOVERLAP = "relu-nonoverlap-none-drop"


def _pooling(root: Path, outcome=None, seeds=(0, 1, 2)) -> dict:
    return write_planted(
        root,
        "pool",
        {"pooling": ["overlap", "nonoverlap"]},
        list(seeds),
        outcome or (lambda axes, s: Outcome(final_val_acc=0.5 + 0.01 * s)),
    )


def test_frames_have_one_row_per_cell_and_per_epoch(tmp_path: Path) -> None:
    _pooling(tmp_path)
    data = load_experiment_data(tmp_path, "pool")
    assert data.variants == [BASE, NONOVERLAP] and data.baseline == BASE
    assert len(data.runs) == 6 and set(data.runs["status"]) == {"ok"}
    assert len(data.epochs) == 6 * 6
    assert list(data.runs["seed"]) == [0, 1, 2, 0, 1, 2]  # variant order, then seed
    row = data.runs.iloc[1]
    assert row["final_val_acc"] == pytest.approx(0.51)
    assert row["gen_gap"] == pytest.approx(0.05)
    assert row["pooling"] == "overlap" and row["device"] == "test cpu"
    ep = data.epochs[data.epochs["run_id"] == row["run_id"]]
    assert list(ep["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert ep["cum_wall_time_s"].iloc[-1] == pytest.approx(6 * 2.1)
    assert data.varying_axes() == {"pooling": ["overlap", "nonoverlap"]}


def test_failed_diverged_and_missing_runs_are_counted_not_dropped(tmp_path: Path) -> None:
    bad = {(BASE, 0): "diverged", (NONOVERLAP, 1): "failed", (NONOVERLAP, 2): "missing"}

    def outcome(axes, s):
        from ablate.variant import Variant

        return Outcome(status=bad.get((Variant(**axes).slug(), s), "ok"))

    _pooling(tmp_path, outcome)
    data = load_experiment_data(tmp_path, "pool")
    assert len(data.runs) == 6  # the missing cell is a row too
    status = dict(zip(zip(data.runs["variant"], data.runs["seed"]), data.runs["status"]))
    assert (
        status[(BASE, 0)] == "diverged" and status[(NONOVERLAP, 1)] == "failed" and status[(NONOVERLAP, 2)] == "missing"
    )
    assert data.runs.loc[data.runs["status"] == "failed", "error"].item() == "RuntimeError: out of memory"
    assert data.epochs[data.epochs["status"] == "diverged"]["epoch"].max() == 3  # epochs before divergence kept

    counts = analysis.status_counts(data).set_index("variant")
    assert counts.loc[BASE, ["n_ok", "n_diverged", "n_failed", "n_missing"]].tolist() == [2, 1, 0, 0]
    assert counts.loc[NONOVERLAP, ["n_ok", "n_diverged", "n_failed", "n_missing"]].tolist() == [1, 0, 1, 1]
    summary = analysis.summary_frame(data).set_index("variant")
    assert summary.loc[NONOVERLAP, "n"] == 1 and math.isnan(summary.loc[NONOVERLAP, "final_val_acc_ci_low"])
    assert summary.loc[BASE, "n"] == 2 and summary.loc[BASE, "final_val_acc_mean"] == pytest.approx(0.6)

    # Baseline ok on seeds 1, 2; variant only on seed 0: nothing pairs up.
    comp = analysis.compare_to_baseline(data)
    acc = comp[comp["metric"] == "final_val_acc"].iloc[0]
    assert acc["n"] == 0 and acc["verdict"] == "no paired runs" and math.isnan(acc["diff"])


def test_stale_runs_of_an_older_config_are_ignored_and_counted(tmp_path: Path) -> None:
    _pooling(tmp_path)
    old = make_record("pool", {"pooling": "overlap"} | {"arch": "alexnet65"}, 0, Outcome(final_val_acc=0.99))
    old["run_id"] = "0ld0ld0ld0ld0ld0"
    write_run(tmp_path, old)
    data = load_experiment_data(tmp_path, "pool")
    assert data.stale_runs == 1 and len(data.runs) == 6 and "0ld0ld0ld0ld0ld0" not in set(data.runs["run_id"])
    assert any("older configuration" in n for n in data.notes)


def test_runs_from_several_devices_get_a_note(tmp_path: Path) -> None:
    _pooling(tmp_path)
    assert not any("devices" in n for n in load_experiment_data(tmp_path, "pool").notes)
    other = make_record("pool", {"pooling": "nonoverlap"}, 2, Outcome(extra={"env": {"device_name": "NVIDIA H100"}}))
    write_run(tmp_path, other)  # same run id as the planted one: replaces it
    notes = load_experiment_data(tmp_path, "pool").notes
    assert any("2 devices (NVIDIA H100, test cpu)" in n for n in notes)


def test_time_to_target(tmp_path: Path) -> None:
    reach = {0: 3, 1: None}
    write_planted(tmp_path, "t", {"pooling": ["overlap"]}, [0, 1], lambda axes, s: Outcome(reach_train_target=reach[s]))
    data = load_experiment_data(tmp_path, "t", targets=Targets(train_error=0.25, val_acc=0.4))
    r0, r1 = data.runs.iloc[0], data.runs.iloc[1]
    assert r0["epochs_to_train_target"] == 3 and r0["time_to_train_target_s"] == pytest.approx(3 * 2.0)
    assert bool(r0["reached_train_target"]) and not bool(r1["reached_train_target"])
    assert math.isnan(r1["epochs_to_train_target"])
    # val acc 0.15 -> 0.6 in 6 even steps: 0.225, 0.3, 0.375, 0.45 -> epoch 4 is the first >= 0.4
    assert r0["epochs_to_val_target"] == 4
    summary = analysis.summary_frame(data).iloc[0]
    assert summary["train_target_reached"] == 1 and summary["epochs_to_train_target_mean"] == 3
    assert summary["val_target_reached"] == 2


def test_target_comparison_needs_every_paired_run_to_reach_it(tmp_path: Path) -> None:
    _pooling(
        tmp_path, lambda axes, s: Outcome(reach_train_target=2 if axes["pooling"] == "overlap" else (4 if s else None))
    )
    comp = analysis.compare_to_baseline(load_experiment_data(tmp_path, "pool"))
    row = comp[comp["metric"] == "epochs_to_train_target"].iloc[0]
    assert row["verdict"] == analysis.NOT_REACHED and "2/3" in row["note"] and "3/3 baseline" in row["note"]


def test_baseline_choice_and_errors(tmp_path: Path) -> None:
    _pooling(tmp_path)
    assert load_experiment_data(tmp_path, "pool", baseline=NONOVERLAP).variants == [NONOVERLAP, BASE]
    with pytest.raises(
        ReportError, match="unknown baseline 'relu-overlap-none'.*did you mean 'relu-overlap-none-drop'"
    ):
        load_experiment_data(tmp_path, "pool", baseline="relu-overlap-none")
    with pytest.raises(ReportError, match="unknown experiment 'pol'.*found: pool.*did you mean 'pool'"):
        load_experiment_data(tmp_path, "pol")
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(ReportError, match="no run records"):
        load_experiment_data(tmp_path, "empty")
    (tmp_path / "bench").mkdir()  # not an experiment: no runs/ folder
    assert analysis.available_experiments(tmp_path) == ["empty", "pool"]


def test_without_manifest_every_record_is_used(tmp_path: Path) -> None:
    _pooling(tmp_path)
    manifest_path(tmp_path, "pool").unlink()
    data = load_experiment_data(tmp_path, "pool")
    assert data.baseline == BASE and len(data.runs) == 6 and data.axes == {"pooling": ["nonoverlap", "overlap"]}
    assert any("no usable experiment.json manifest" in n for n in data.notes)


def _grid_outcome(axes: dict, s: int) -> Outcome:
    """0.5 + seed effect + 4 points for nonoverlap + 2 for lrn + 3 more for both; dropout: nothing."""
    rng = seeded_noise(7, tuple(sorted(axes.items())), s)
    y = 0.5 + 0.02 * ((s * 7) % 5 - 2)  # seed effect (cancels in paired contrasts)
    y += 0.04 * (axes["pooling"] == "nonoverlap") + 0.02 * (axes["norm"] == "lrn")
    y += 0.03 * (axes["pooling"] == "nonoverlap" and axes["norm"] == "lrn")
    return Outcome(final_val_acc=float(y + rng.normal(0, 0.002)))


def test_grid_main_effects_and_interactions_recover_planted_values(tmp_path: Path) -> None:
    axes = {"pooling": ["overlap", "nonoverlap"], "norm": ["none", "lrn"], "dropout": [True, False]}
    write_planted(tmp_path, "grid", axes, list(range(6)), _grid_outcome)
    data = load_experiment_data(tmp_path, "grid")
    eff = analysis.grid_effects(data).set_index(["kind", "axes", "level"])
    truth = {
        ("main", "pooling", "nonoverlap"): (0.055, "better"),  # 0.04 + half of the 0.03 interaction
        ("main", "norm", "lrn"): (0.035, "better"),
        ("main", "dropout", "False"): (0.0, "no detectable difference"),
        ("interaction", "pooling x norm", "nonoverlap x lrn"): (0.03, "positive interaction"),
        ("interaction", "pooling x dropout", "nonoverlap x False"): (0.0, "no detectable interaction"),
        ("interaction", "norm x dropout", "lrn x False"): (0.0, "no detectable interaction"),
    }
    assert len(eff) == len(truth)
    for key, (value, verdict) in truth.items():
        row = eff.loc[key]
        assert row["n"] == 48 and row["ci_low"] <= value <= row["ci_high"], key
        assert row["estimate"] == pytest.approx(value, abs=0.004), key
        assert row["verdict"] == verdict, key
    assert (eff["p_holm"] >= eff["p"]).all()

    heat = analysis.cell_means(data, "final_val_acc", "pooling", "norm")
    assert heat.loc["nonoverlap", "lrn"] - heat.loc["overlap", "lrn"] - heat.loc["nonoverlap", "none"] + heat.loc[
        "overlap", "none"
    ] == pytest.approx(0.03, abs=0.004)


def test_grid_effects_survive_a_failed_cell(tmp_path: Path) -> None:
    axes = {"pooling": ["overlap", "nonoverlap"], "norm": ["none", "lrn"], "dropout": [True, False]}

    def outcome(ax: dict, s: int) -> Outcome:
        o = _grid_outcome(ax, s)
        if (ax["pooling"], ax["norm"], ax["dropout"], s) == ("nonoverlap", "none", False, 1):
            o.status = "failed"
        return o

    write_planted(tmp_path, "grid", axes, [0, 1, 2], outcome)
    eff = analysis.grid_effects(load_experiment_data(tmp_path, "grid")).set_index(["kind", "axes", "level"])
    pooling = eff.loc[("main", "pooling", "nonoverlap")]
    # The model keeps the failed cell's other two seeds: every run that is ok informs every effect,
    # so the estimate is still the full marginal difference 0.04 + 0.03 / 2.
    assert pooling["n"] == 23 and "fit on the 23 of 24 runs that are ok" in pooling["note"]
    assert pooling["estimate"] == pytest.approx(0.04 + 0.03 / 2, abs=0.005)
    norm = eff.loc[("main", "norm", "lrn")]
    assert norm["note"] and norm["verdict"] == "better"
    c = analysis.balanced_contrast(
        {"a": {0: 1.0, 1: 2.0, 2: 3.0}, "b": {0: 0.5, 2: 1.0}}, [[(1.0, "a"), (-1.0, "b")]], [0, 1, 2]
    )
    assert c.seeds == [0, 2] and c.values == [0.5, 2.0] and "seed(s) 1 left out" in c.note


def test_grid_effects_only_for_grids_with_two_axes(tmp_path: Path) -> None:
    _pooling(tmp_path)
    assert analysis.grid_effects(load_experiment_data(tmp_path, "pool")).empty


def test_matched_pairs_differ_in_one_axis_only(tmp_path: Path) -> None:
    write_planted(tmp_path, "g", {"activation": ["relu", "tanh"], "norm": ["none", "lrn"]}, [0], lambda a, s: Outcome())
    data = load_experiment_data(tmp_path, "g")
    assert sorted(analysis.matched_pairs(data, "activation", "relu", "tanh")) == [
        ("relu-overlap-lrn-drop", "tanh-overlap-lrn-drop"),
        ("relu-overlap-none-drop", "tanh-overlap-none-drop"),
    ]
    assert analysis.matched_pairs(data, "dropout", True, False) == []


def test_frames_parse_real_result_layout(tmp_path: Path) -> None:
    """A record exactly as train.py writes it (top-5, runtime, summary) gives the same numbers."""
    _pooling(tmp_path, seeds=(0,))
    data = load_experiment_data(tmp_path, "pool")
    assert pd.api.types.is_float_dtype(data.epochs["val_top5"])
    assert data.runs["params"].iloc[0] == 14_601_930


def test_gap_uses_eval_mode_training_accuracy_and_falls_back_for_older_records(tmp_path: Path) -> None:
    _pooling(tmp_path / "new", lambda axes, s: Outcome(final_val_acc=0.5, train_eval_offset=0.03))
    row = load_experiment_data(tmp_path / "new", "pool").runs.iloc[0]
    assert row["gen_gap"] == pytest.approx(0.08) and row["gap_source"] == "train_eval_acc"
    _pooling(tmp_path / "old", lambda axes, s: Outcome(final_val_acc=0.5, train_eval=False, train_eval_offset=0.03))
    row = load_experiment_data(tmp_path / "old", "pool").runs.iloc[0]
    assert row["gen_gap"] == pytest.approx(0.05) and row["gap_source"] == "train_acc"


# --- step logs, damaged files, sources of variation ---------------------------------------------------
def test_steps_frame_has_one_row_per_run_and_log_point(tmp_path: Path) -> None:
    from helpers.planted import STEPS_PER_EPOCH

    def outcome(axes: dict, seed: int) -> Outcome:
        return Outcome(
            log_every=4,
            reach_train_target_step=22 if axes["pooling"] == "overlap" else None,
            status="failed" if (axes["pooling"], seed) == ("nonoverlap", 1) else "ok",
        )

    write_planted(tmp_path, "st", {"pooling": ["overlap", "nonoverlap"]}, [0, 1], outcome, epochs=3)
    data = load_experiment_data(tmp_path, "st")
    per_run = 3 * STEPS_PER_EPOCH // 4
    assert len(data.steps) == 3 * per_run  # the failed run has no steps
    assert list(data.steps.columns[:4]) == ["run_id", "variant", "seed", "status"]
    first = data.steps[data.steps["run_id"] == data.steps["run_id"].iloc[0]]
    assert first["step"].tolist() == list(range(4, 3 * STEPS_PER_EPOCH + 1, 4))
    assert (first["images"] == first["step"] * 32).all() and first["time_s"].is_monotonic_increasing
    runs = data.ok_runs.set_index(["variant", "seed"])
    hit = runs.loc[("relu-overlap-none-drop", 1)]
    # first log point at or after step 22 is step 24: 768 images = 1.5 epochs of 512
    assert hit["images_to_train_target"] == 24 * 32 and hit["epochs_to_train_target"] == pytest.approx(1.5)
    assert hit["time_to_train_target_s"] == pytest.approx(24 * 0.11)
    assert not runs.loc[("relu-nonoverlap-none-drop", 0), "reached_train_target"]
    assert "images_to_train_target" in [m.name for m in analysis.metrics_for(data.targets, steps=True)]


def test_records_without_steps_keep_epoch_resolution(tmp_path: Path) -> None:
    write_planted(
        tmp_path, "old", {"pooling": ["overlap", "nonoverlap"]}, [0, 1], lambda a, s: Outcome(reach_train_target=3)
    )
    data = load_experiment_data(tmp_path, "old")
    assert data.steps.empty and (data.ok_runs["train_target_resolution"] == "epoch").all()
    assert (data.ok_runs["epochs_to_train_target"] == 3).all()


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        '{"variants": "x"}',
        '{"variants": [{}], "seeds": ["a"]}',
        '{"variants": [{}], "cells": [{"run_id": 1}]}',
    ],
)
def test_damaged_manifest_is_treated_as_absent_with_a_note(tmp_path: Path, content: str) -> None:
    write_planted(tmp_path, "dm", {"pooling": ["overlap", "nonoverlap"]}, [0, 1], lambda a, s: Outcome())
    path = tmp_path / "dm" / "experiment.json"
    path.write_text(content, encoding="utf-8")
    data = load_experiment_data(tmp_path, "dm")
    assert data.manifest is None and len(data.ok_runs) == 4
    assert any(str(path) in n and "damaged" in n for n in data.notes), data.notes


def test_damaged_run_record_is_left_out_with_a_note(tmp_path: Path) -> None:
    import json

    write_planted(tmp_path, "dr", {"pooling": ["overlap", "nonoverlap"]}, [0, 1], lambda a, s: Outcome())
    victim = sorted((tmp_path / "dr" / "runs").glob("*.json"))[0]
    record = json.loads(victim.read_text())
    record["epochs"] = [{"epoch": "one", "val_acc": 0.5}]
    victim.write_text(json.dumps(record))
    data = load_experiment_data(tmp_path, "dr")
    assert (data.runs["status"] == "missing").sum() == 1 and len(data.ok_runs) == 3
    assert any(str(victim) in n and "not counted" in n for n in data.notes), data.notes


def test_variation_sources_follow_the_run_configs(tmp_path: Path) -> None:
    write_planted(tmp_path, "vs", {"pooling": ["overlap", "nonoverlap"]}, [0, 1], lambda a, s: Outcome())
    assert analysis.variation_sources(load_experiment_data(tmp_path, "vs")) == (
        ["initialisation", "data order"],
        ["augmentation", "data sampling"],
    )

    def augmented(axes: dict, seed: int) -> Outcome:
        return Outcome(extra={"config": {"variant": axes, "seed": seed, "data": {"augment": "flip", "resample": True}}})

    write_planted(tmp_path, "vs2", {"pooling": ["overlap", "nonoverlap"]}, [0, 1], augmented)
    covered, fixed = analysis.variation_sources(load_experiment_data(tmp_path, "vs2"))
    assert covered == ["initialisation", "data order", "augmentation", "data sampling"] and fixed == []
