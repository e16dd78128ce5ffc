"""Experiment files: parsing, --set overrides, [gpu] overrides, expansion into cells, run ids."""

from __future__ import annotations

import pytest

from ablate import Variant
from ablate.experiment.errors import ExperimentError
from ablate.experiment.experiment import load_experiment, parse_override

from helpers import ROOT
from helpers.sweeps import DEMO

EXPERIMENTS = sorted((ROOT / "experiments").rglob("*.toml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(p.parent.parent)))
def test_shipped_experiments_are_valid_on_cpu_and_gpu(path):
    for device_type in ("cpu", "cuda"):
        exp = load_experiment(path, device_type=device_type)
        assert exp.cells() and len(exp.seeds) >= 1
        assert exp.baseline in exp.variants()


def test_grid_design_expands_every_combination(write_experiment):
    exp = load_experiment(write_experiment(DEMO))
    assert exp.name == "demo" and exp.seeds == (0, 1) and exp.design == "grid"
    variants = exp.variants()
    assert len(variants) == 6 and len(set(variants)) == 6
    assert all(v.norm == "lrn" for v in variants)  # non-varied axes come from [model]
    assert variants[0] == Variant(norm="lrn")  # baseline first
    cells = exp.cells()
    assert len(cells) == 12
    assert [c.seed for c in cells[:6]] == [0] * 6  # seed-major: early results pair up by seed
    assert cells[0].data.train_size == 64 and cells[0].train.lr == 0.1 and cells[0].train.epochs == 2


def test_one_at_a_time_design(write_experiment):
    exp = load_experiment(write_experiment(DEMO.replace("seeds = [0, 1]", 'seeds = [0, 1]\ndesign = "one-at-a-time"')))
    slugs = [v.slug() for v in exp.variants()]
    assert slugs == [
        "relu-overlap-lrn-drop",  # baseline
        "relu-nonoverlap-lrn-drop",
        "tanh-overlap-lrn-drop",
        "sigmoid-overlap-lrn-drop",
    ]


def test_defaults_when_tables_are_missing(write_experiment):
    exp = load_experiment(write_experiment("seeds = [3]\n", "plain.toml"))
    assert exp.name == "plain"  # file stem
    assert exp.variants() == [Variant()]
    assert exp.data.dataset == "shapes" and exp.train.optimizer == "sgd"


def test_run_id_is_stable_and_changes_with_any_setting(write_experiment):
    path = write_experiment(DEMO)
    a = load_experiment(path).cells()
    b = load_experiment(path).cells()
    assert [c.run_id for c in a] == [c.run_id for c in b]
    assert len({c.run_id for c in a}) == len(a)
    for override in ("train.lr=0.2", "data.train_size=65", "train.epochs=3", "data.seed=1", "model.dropout=false"):
        changed = load_experiment(path, [override]).cells()
        assert not {c.run_id for c in changed} & {c.run_id for c in a}, override
    # the experiment's name and description are not part of a run's identity
    renamed = load_experiment(path, ["name=other", "description=x"]).cells()
    assert [c.run_id for c in renamed] == [c.run_id for c in a]


@pytest.mark.parametrize(
    "item,keys,value",
    [
        ("train.lr=0.1", ["train", "lr"], 0.1),
        ("seeds=[0,1]", ["seeds"], [0, 1]),
        ('axes.activation=["relu","tanh"]', ["axes", "activation"], ["relu", "tanh"]),
        ("data.dataset=shapes", ["data", "dataset"], "shapes"),
        ('data.dataset="shapes"', ["data", "dataset"], "shapes"),
        ("model.dropout=false", ["model", "dropout"], False),
        ("train.epochs = 3", ["train", "epochs"], 3),
        ("data.root=/tmp/some dir", ["data", "root"], "/tmp/some dir"),
    ],
)
def test_parse_override(item, keys, value):
    assert parse_override(item) == (keys, value)


def test_overrides_apply_and_are_validated(write_experiment):
    path = write_experiment(DEMO)
    exp = load_experiment(path, ["train.lr=0.5", "seeds=[7]", 'axes.activation=["tanh"]', "data.dataset=shapes"])
    assert exp.train.lr == 0.5 and exp.seeds == (7,)
    assert {v.activation for v in exp.variants()} == {"tanh"}
    with pytest.raises(ExperimentError, match=r"train\.lr: -1 \(from --set\) is not allowed"):
        load_experiment(path, ["train.lr=-1"])
    with pytest.raises(ExperimentError, match="expected KEY=VALUE"):
        load_experiment(path, ["train.lr"])


GPU = (
    DEMO
    + """
[gpu]
seeds = [0, 1, 2]
data.train_size = 5000
train.epochs = 30
"""
)


def test_gpu_table_applies_only_on_cuda(write_experiment):
    path = write_experiment(GPU)
    cpu, gpu = load_experiment(path, device_type="cpu"), load_experiment(path, device_type="cuda")
    assert (cpu.seeds, cpu.data.train_size, cpu.train.epochs) == ((0, 1), 64, 2)
    assert (gpu.seeds, gpu.data.train_size, gpu.train.epochs) == ((0, 1, 2), 5000, 30)
    assert gpu.data.val_size == 32 and gpu.train.lr == 0.1  # untouched keys stay
    assert gpu.gpu_overrides_applied and not cpu.gpu_overrides_applied
    # the command line wins over [gpu]
    assert load_experiment(path, ["train.epochs=4"], device_type="cuda").train.epochs == 4


def test_gpu_table_is_validated_on_the_cpu_too(write_experiment):
    with pytest.raises(ExperimentError, match=r"gpu\.train\.epochs: 0 is not allowed"):
        load_experiment(write_experiment(DEMO + "[gpu]\ntrain.epochs = 0\n"))
    with pytest.raises(ExperimentError, match=r"gpu\.model: unknown key"):
        load_experiment(write_experiment(DEMO + "[gpu]\nmodel.norm = 'lrn'\n"))
