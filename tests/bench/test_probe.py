"""``ablate plan``'s time probe (ablate.bench.probe) and the time model on top of it
(ablate.bench.estimate): what is timed, how many models, bench results used instead of steps, and
the arithmetic of a cell and of a whole command with one process or local workers."""

from __future__ import annotations

import pytest
import torch

from ablate.bench import BenchSettings, save_bench
from ablate.bench.estimate import cell_time, study_time
from ablate.bench.probe import (
    ADDITIVE,
    BENCH,
    MAX_STEPS,
    PROBED,
    REPEATS,
    DataCost,
    ModelCost,
    Probe,
    _stretches,
    data_label,
    models_to_probe,
    probe,
)
from ablate.experiment.experiment import parse_experiment

TINY = {
    "name": "tiny",
    "seeds": [0, 1],
    "axes": {"pooling": ["overlap", "nonoverlap"]},
    "data": {"dataset": "shapes", "train_size": 64, "val_size": 32},
    "train": {"epochs": 1, "batch_size": 16, "eval_batch_size": 32, "optimizer": "adam", "lr": 3e-4},
}


def tiny(**changes):
    return parse_experiment({**TINY, **changes}, "tiny.toml")


def test_the_probe_times_each_model_of_the_experiment_on_its_data(tmp_path):
    exp = tiny()
    result = probe(exp, torch.device("cpu"), results=tmp_path)
    assert result.probed == ["relu-overlap-none-drop", "relu-nonoverlap-none-drop"]
    assert set(result.models) == set(result.probed)
    for cost in result.models.values():
        assert cost.source == PROBED
        assert cost.step_s > 0 and cost.eval_image_s > 0 and cost.checkpoint_s > 0 and cost.build_s > 0
    (data,) = result.data.values()
    assert (data.train_images, data.val_images, data.cache) == (64, 32, "none")  # generated: no cache
    assert result.start_s > 0 and result.record_s > 0 and result.device == "cpu"
    assert result.seconds < 60
    assert result.cores and result.load is not None and result.load >= 0  # Linux says both
    assert ("busy during the probe" in " ".join(result.notes)) == (result.load > result.cores)


def test_generated_data_is_sampled_and_its_time_scaled_to_the_full_size():
    from ablate.bench.probe import SAMPLE_IMAGES, _load_data
    from ablate.data.sweep import Datasets

    cell = tiny(data={"dataset": "shapes", "train_size": 600, "val_size": 300}).cells()[0]
    cost, splits = _load_data(cell, Datasets())
    assert (cost.train_images, cost.val_images, cost.cache) == (600, 300, "generated")
    assert splits.train_x.shape[0] == SAMPLE_IMAGES and splits.val_x.shape[0] == SAMPLE_IMAGES
    assert cost.seconds == pytest.approx(cost.first_s * 900 / (2 * SAMPLE_IMAGES))


def test_a_large_grid_probes_the_baseline_and_single_axis_changes_and_adds_the_rest():
    exp = tiny(
        axes={
            "activation": ["relu", "tanh", "sigmoid"],
            "pooling": ["overlap", "nonoverlap"],
            "norm": ["none", "lrn", "batchnorm"],
            "dropout": [True, False],
        }
    )
    chosen, method = models_to_probe(exp)
    assert len(exp.variants()) == 36 and len(chosen) == 7 and "additive" in method
    assert chosen[0] == exp.baseline


def test_additive_costs_add_each_axis_difference_to_the_baseline(monkeypatch):
    import ablate.bench.probe as probe_module

    exp = tiny(axes={"pooling": ["overlap", "nonoverlap"], "norm": ["none", "lrn"], "dropout": [True, False]})
    monkeypatch.setattr(probe_module, "MAX_DIRECT", 2)  # 8 models: time the baseline and 3 single-axis changes
    chosen, _ = models_to_probe(exp)
    assert len(chosen) == 4
    step = {
        "relu-overlap-none-drop": 1.0,
        "relu-nonoverlap-none-drop": 1.5,
        "relu-overlap-lrn-drop": 1.2,
        "relu-overlap-none-nodrop": 0.9,
    }
    measured = {probe_module.cost_key(v): ModelCost(v.slug(), 0.1, step[v.slug()], 0, 0, 0, PROBED) for v in chosen}
    both = exp.baseline.replace(pooling="nonoverlap", norm="lrn", dropout=False)
    cost = probe_module._additive(exp, measured, both)
    assert cost.step_s == pytest.approx(1.0 + 0.5 + 0.2 - 0.1) and cost.source == ADDITIVE


def test_busy_machines_get_fewer_timed_steps_never_none():
    assert _stretches(0.01, 100.0) == (MAX_STEPS, REPEATS)
    assert _stretches(0.3, 100.0) == (2, REPEATS)
    assert _stretches(1.0, 4.0) == (2, 2)
    assert _stretches(1.0, 1.0) == (1, 1)
    assert _stretches(1.0, -5.0) == (1, 1)


def test_step_and_evaluation_times_come_from_bench_results_when_they_cover_every_model(tmp_path, monkeypatch):
    import ablate.bench.probe as probe_module

    monkeypatch.setattr(probe_module, "start_seconds", lambda device: 1.0)  # timed in the test above
    exp = tiny()
    device = torch.device("cpu")
    rows = []
    for slug, ms in (("relu-overlap-none-drop", 123.0), ("relu-nonoverlap-none-drop", 150.0)):
        for mode, batch, step_ms in (("train", 16, ms), ("infer", 32, 64.0)):
            rows.append(
                {
                    "slug": slug,
                    "mode": mode,
                    "batch_size": batch,
                    "precision": "fp32",
                    "channels_last": True,
                    "compile": "off",
                    "status": "ok",
                    "step_time_ms": step_ms,
                }
            )
    json_path, _ = save_bench(rows, device, BenchSettings(), tmp_path)
    result = probe(exp, device, results=tmp_path)
    cost = result.models["relu-overlap-none-drop"]
    assert cost.source == BENCH and cost.step_s == pytest.approx(0.123) and cost.eval_image_s == pytest.approx(0.002)
    assert json_path.name in result.method
    # without the infer rows the probe times the steps itself
    save_bench([dict(r, status="failed") for r in rows], device, BenchSettings(), tmp_path)
    assert all(c.source == PROBED for c in probe(exp, device, results=tmp_path).models.values())


def fake_probe(exp, start=2.0, data=3.0, step=0.5, eval_image=0.01, build=1.0, checkpoint=0.2, warmup=0.3):
    label = data_label(exp.cells()[0])
    return Probe(
        device="cpu",
        device_name="test",
        threads=1,
        start_s=start,
        record_s=0.1,
        data={label: DataCost(label, data, data, "none", 100, 50)},
        models={
            v.slug(): ModelCost(v.slug(), build, step, warmup, eval_image, checkpoint, PROBED) for v in exp.variants()
        },
        probed=[v.slug() for v in exp.variants()],
        seconds=1.0,
        method="test",
    )


def test_a_cell_is_build_training_evaluation_checkpoints_and_bookkeeping():
    exp = tiny(train={"epochs": 2, "batch_size": 10, "checkpoint_minutes": 0.0})
    t = cell_time(exp.cells()[0], fake_probe(exp))
    # 100 training images / 10 = 10 steps an epoch; 50 validation + 50 training-sample images evaluated
    assert t.parts == pytest.approx(
        {"build": 1.0, "train": 2 * 10 * 0.5 + 0.3, "eval": 2 * 100 * 0.01, "checkpoints": 2 * 0.2, "bookkeeping": 0.1}
    )
    assert (t.train_images, t.eval_images, t.checkpoints) == (200, 200, 2)
    # a mid-epoch checkpoint every 3 s of training (5.15 s an epoch): one more per epoch
    timed = cell_time(
        tiny(train={"epochs": 2, "batch_size": 10, "checkpoint_minutes": 0.05}).cells()[0], fake_probe(exp)
    )
    assert timed.checkpoints == 4


def test_one_process_runs_cells_in_turn_and_workers_share_them():
    exp = tiny(train={"epochs": 2, "batch_size": 10, "checkpoint_minutes": 0.0})
    p = fake_probe(exp)
    cell = cell_time(exp.cells()[0], p).seconds
    one = study_time(exp, p, 1, "in-process")
    # start-up, the data check, then 4 cells in turn; the first loads the data again
    assert one.wall_s == pytest.approx(2.0 + 3.0 + 3.0 + 4 * cell)
    assert one.device_s == pytest.approx(4 * cell) and one.start_s == pytest.approx(5.0)
    two = study_time(exp, p, 2, "2 workers")
    # each worker: a fresh process, its own data load, then 2 of the 4 cells
    assert two.wall_s == pytest.approx(2.0 + 3.0 + 2.0 + 3.0 + 2 * cell)
    three = study_time(exp, p, 3, "3 workers")
    assert three.wall_s == pytest.approx(2.0 + 3.0 + 2.0 + 3.0 + 2 * cell)  # 4 cells on 3 workers: one does 2
