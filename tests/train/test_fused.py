"""K seeds of a variant trained as one fused model are K solo runs: seed-equivalence over every axis
value, isolation of a member that diverges, resume of a stopped group, and the fallback for a
layer that cannot be fused.

The sweep uses a tiny geometry (registered here: 19-pixel input, 8-16 channels, FC 32), so that
ten steps of two seeds (three where a group must lose or split a member) take a fraction of a
second; AlexNet-65 itself is one case. Float64 runs compare within 1e-9, fp32 runs within 1e-4
relative (the issue's tolerances): losses at every step and epoch, accuracies, the final weights
and BatchNorm statistics (from each cell's last checkpoint), and the whole run record apart from
timing and the fused fields.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from ablate.data.sweep import Datasets
from ablate.experiment.experiment import Cell, parse_experiment
from ablate.models.alexnet import ALEXNET65, ArchSpec
from ablate.registry import ACTIVATIONS, ARCHS, INITS, register_activation, register_arch, register_init
from ablate.store import checkpoints as checkpoint
from ablate.train.fused import resume_groups
from ablate.train.hooks import CellHooks
from ablate.train.loop import Interrupted, train_cell, train_group

CPU = torch.device("cpu")
TINY = ArchSpec(
    input_size=19,
    channels=(8, 16, 16, 16, 8),
    conv1_kernel=5,
    conv1_stride=1,
    conv1_padding=0,
    fc_width=32,
    final_size=1,  # 15 -> 7 -> 3 -> 1 with either pooling
    description="a tiny AlexNet for the fused-training tests",
)
# Keys whose values are clocks, memory or where a member was fused: everything else must agree.
TIMING = {
    "epoch_time_s",
    "train_time_s",
    "train_images_per_s",
    "timed_steps",
    "peak_memory_mb",
    "time_s",
    "wall_time_s",
}
TIMING_RUNTIME = TIMING | {"checkpoint_s", "fused"}


@pytest.fixture(scope="module", autouse=True)
def tiny_arch():
    register_arch("tiny-fuse")(TINY)

    @register_init("explode-seed1")
    def explode(model: nn.Module) -> None:
        """Seed 1 (the seed its RNGs were seeded with) starts with an infinite logit: it diverges."""
        if torch.initial_seed() == 1:
            model.classifier.fc3.bias.data[0] = math.inf

    yield
    ARCHS.unregister("tiny-fuse")
    INITS.unregister("explode-seed1")


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def cells_of(model: dict[str, Any], optimizer: str, seeds=(0, 1, 2), **train: Any) -> list[Cell]:
    """Ten steps (2 epochs x 5) of each seed, augmentation on, a step point at every step."""
    raw = {
        "name": "fused",
        "seeds": list(seeds),
        "model": {"arch": "tiny-fuse", **model},
        "data": {"train_size": 40, "val_size": 20, "augment": "paper"},
        "train": {
            "epochs": 2,
            "batch_size": 8,
            "eval_batch_size": 8,
            "optimizer": optimizer,
            "lr": 0.05 if optimizer == "sgd" else 1e-3,
            "log_every": 1,
            **train,
        },
    }
    return parse_experiment(raw, "fused.toml").cells()


def hooks_in(folder: Path, cells: list[Cell], **kwargs: Any) -> list[CellHooks]:
    return [CellHooks(checkpoint=folder / f"{c.run_id}.pt", checkpoint_every_s=0, **kwargs) for c in cells]


def assert_close(got: Any, want: Any, rel: float, where: str = "record") -> None:
    """``got`` and ``want`` have the same structure, equal strings and flags, numbers within ``rel``
    (relative to the larger), timing keys left out."""
    if isinstance(want, dict):
        skip = TIMING_RUNTIME if where.endswith("runtime") else TIMING
        assert set(got) - skip == set(want) - skip, where
        for key in set(want) - skip:
            assert_close(got[key], want[key], rel, f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            assert_close(a, b, rel, f"{where}[{i}]")
    elif isinstance(want, float) and math.isnan(want):
        assert isinstance(got, float) and math.isnan(got), where
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=rel, abs=rel), where
    else:
        assert got == want, where


def assert_same_weights(a: Path, b: Path, rel: float) -> None:
    """Weights and buffers (BatchNorm's running statistics included) of two checkpoints: each
    tensor within ``rel`` of the larger of its values."""
    ma, mb = (torch.load(p, weights_only=True)["model"] for p in (a, b))
    assert ma.keys() == mb.keys()
    for key in mb:
        scale = mb[key].abs().max().item() if mb[key].is_floating_point() else 1
        assert (ma[key].double() - mb[key].double()).abs().max().item() <= rel * max(scale, 1e-12), key


def solo_and_fused(cells: list[Cell], folder: Path) -> tuple[list[dict], list[dict]]:
    data = Datasets()
    splits = [data(c) for c in cells]
    solo = [train_cell(c, s, CPU, hooks=h) for c, s, h in zip(cells, splits, hooks_in(folder / "solo", cells))]
    fused = train_group(cells, splits, CPU, hooks=hooks_in(folder / "fused", cells))
    return solo, fused


# Every value of every axis at least once: activation, pooling, norm, dropout, optimizer.
CASES = [
    ({"activation": "relu", "pooling": "overlap", "norm": "none", "dropout": True}, "sgd"),
    ({"activation": "tanh", "pooling": "nonoverlap", "norm": "lrn", "dropout": False}, "adam"),
    ({"activation": "sigmoid", "pooling": "overlap", "norm": "batchnorm", "dropout": True}, "adam"),
    ({"activation": "relu", "pooling": "nonoverlap", "norm": "batchnorm", "dropout": False}, "sgd"),
]


@pytest.mark.parametrize(
    "model, optimizer", CASES, ids=lambda v: "-".join(map(str, v.values())) if isinstance(v, dict) else v
)
def test_each_fused_member_is_its_solo_run_in_float64(float64, tmp_path, model, optimizer):
    cells = cells_of(model, optimizer, seeds=(0, 1))
    solo, fused = solo_and_fused(cells, tmp_path)
    for cell, a, b in zip(cells, fused, solo):
        assert a["runtime"]["fused"] == {"group": fused[0]["runtime"]["fused"]["group"], "k": 2, "member": cell.seed}
        assert "fused" not in b["runtime"] and a["run_id"] == b["run_id"] == cell.run_id
        assert len(a["steps"]) == 10 and a["status"] == "ok"
        assert_close(a, b, 1e-9)
        assert_same_weights(tmp_path / "fused" / f"{cell.run_id}.pt", tmp_path / "solo" / f"{cell.run_id}.pt", 1e-9)
    # The seeds really differ (each got its own initial weights, data order, masks).
    assert fused[0]["steps"][0]["train_loss"] != fused[1]["steps"][0]["train_loss"]


def test_each_fused_member_is_its_solo_run_in_fp32(tmp_path):
    """BatchNorm, dropout and Adam in fp32 (AlexNet-65 below is fp32 with LRN and SGD)."""
    model, optimizer = CASES[2]
    cells = cells_of(model, optimizer, seeds=(0, 1))
    solo, fused = solo_and_fused(cells, tmp_path)
    for cell, a, b in zip(cells, fused, solo):
        assert_close(a, b, 1e-4)
        assert_same_weights(tmp_path / "fused" / f"{cell.run_id}.pt", tmp_path / "solo" / f"{cell.run_id}.pt", 1e-4)


def test_alexnet65_fused_members_are_their_solo_runs(tmp_path):
    """The seed network itself, with LRN and dropout: two seeds, ten steps (one epoch: one
    checkpoint of 117 MB per member to compare weights with), fp32."""
    raw = {
        "name": "fused65",
        "seeds": [0, 1],
        "model": {"norm": "lrn"},
        "data": {"train_size": 20, "val_size": 4},
        "train": {"epochs": 1, "batch_size": 2, "eval_batch_size": 4, "optimizer": "sgd", "lr": 0.01, "log_every": 1},
    }
    cells = parse_experiment(raw, "fused65.toml").cells()
    assert ARCHS.get(cells[0].variant.arch) is ALEXNET65
    solo, fused = solo_and_fused(cells, tmp_path)
    for cell, a, b in zip(cells, fused, solo):
        assert a["runtime"]["fused"]["k"] == 2 and len(a["steps"]) == 10
        assert_close(a, b, 1e-4)
        assert_same_weights(tmp_path / "fused" / f"{cell.run_id}.pt", tmp_path / "solo" / f"{cell.run_id}.pt", 1e-4)


def test_a_member_that_diverges_leaves_the_others_unchanged(float64, tmp_path):
    cells = cells_of({"init": "explode-seed1"}, "adam", epochs=3)
    data = Datasets()
    splits = [data(c) for c in cells]
    solo = [train_cell(c, s, CPU) for c, s in zip(cells, splits)]
    finished: list[int] = []
    hooks = [CellHooks(on_finish=lambda r: finished.append(r["seed"])) for _ in cells]
    fused = train_group(cells, splits, CPU, hooks=hooks)
    assert [r["status"] for r in solo] == [r["status"] for r in fused] == ["ok", "diverged", "ok"]
    assert fused[1]["error"] == solo[1]["error"] == "non-finite training loss in epoch 1"
    assert finished == [1, 0, 2]  # the diverged member's record is handed over at once
    for a, b in zip(fused, solo):
        assert_close(a, b, 1e-9)
    assert len(fused[0]["epochs"]) == len(fused[2]["epochs"]) == 3  # the others went on, fused without it


@pytest.mark.parametrize("stop_after_poll, done_steps", [(5, 6)], ids=["mid-epoch-2"])
def test_a_stopped_group_resumes_bit_identically(tmp_path, stop_after_poll, done_steps):
    """Any member's stop request stops the group; every member's checkpoint is saved; the group
    resumed from them ends where the uninterrupted group ends, to the bit (CPU)."""
    cells = cells_of({"norm": "batchnorm"}, "adam", schedule="cosine")
    data = Datasets()
    splits = [data(c) for c in cells]
    whole = train_group(cells, splits, CPU, hooks=hooks_in(tmp_path / "whole", cells))
    polls = {"n": 0}

    def should_stop() -> bool:
        polls["n"] += 1
        return polls["n"] == stop_after_poll

    stopping = hooks_in(tmp_path / "cut", cells)
    stopping[1].should_stop = should_stop
    with pytest.raises(Interrupted):
        train_group(cells, splits, CPU, hooks=stopping)
    assert all((tmp_path / "cut" / f"{c.run_id}.pt").exists() for c in cells)
    torch.rand(1000)  # the global RNGs move on: the checkpoints must restore what matters
    resumed = train_group(cells, splits, CPU, hooks=hooks_in(tmp_path / "cut", cells))
    for cell, a, b in zip(cells, resumed, whole):
        assert [r["done_steps"] for r in a["resumed"]] == [done_steps]
        assert a["runtime"]["fused"] == b["runtime"]["fused"]
        assert [{k: v for k, v in e.items() if k not in TIMING} for e in a["epochs"]] == [
            {k: v for k, v in e.items() if k not in TIMING} for e in b["epochs"]
        ]
        assert [(s["step"], s["train_loss"], s["train_acc"]) for s in a["steps"]] == [
            (s["step"], s["train_loss"], s["train_acc"]) for s in b["steps"]
        ]
        assert_same_weights(tmp_path / "cut" / f"{cell.run_id}.pt", tmp_path / "whole" / f"{cell.run_id}.pt", 0.0)


def test_members_saved_apart_train_apart(tmp_path):
    """A member whose checkpoint is gone starts over on its own (its solo run, to the bit); the
    others resume together; every cell is trained once and ends where its solo run ends."""
    cells = cells_of({"dropout": True}, "sgd")
    data = Datasets()
    splits = [data(c) for c in cells]
    stopping = hooks_in(tmp_path, cells)
    stopping[0].should_stop = lambda: True
    with pytest.raises(Interrupted):
        train_group(cells, splits, CPU, hooks=stopping)
    (tmp_path / f"{cells[2].run_id}.pt").unlink()
    states = [
        checkpoint.load(tmp_path / f"{c.run_id}.pt", c.run_id, CPU) if i < 2 else None for i, c in enumerate(cells)
    ]
    assert resume_groups(states) == [[2], [0, 1]]
    resumed = train_group(cells, splits, CPU, hooks=hooks_in(tmp_path, cells))
    solo = [train_cell(cell, splits[0], CPU) for cell in cells]
    assert [len(r["resumed"]) for r in resumed] == [1, 1, 0]
    assert [e["train_loss"] for e in resumed[2]["epochs"]] == [e["train_loss"] for e in solo[2]["epochs"]]
    for record, alone in zip(resumed, solo):
        assert_close([record["epochs"], record["steps"]], [alone["epochs"], alone["steps"]], 1e-4)


def test_resume_groups_keeps_groups_and_their_order_and_parts_solo_checkpoints():
    def saved(group: str | None, member: int, done: int) -> dict[str, Any]:
        return {"done_steps": done, "fused": {"group": group, "k": 3, "member": member} if group else None}

    states = [saved("g", 2, 10), None, saved("g", 0, 10), saved(None, 0, 10), saved("g", 1, 5), None]
    assert resume_groups(states) == [[1, 5], [2, 0], [3], [4]]


@pytest.fixture
def swish():
    class Swish(nn.Module):  # a user layer with no fused form
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(x)

    register_activation("swish-for-fuse")(Swish)
    yield "swish-for-fuse"
    ACTIVATIONS.unregister("swish-for-fuse")


def test_a_layer_that_cannot_be_fused_trains_its_seeds_one_by_one_with_one_notice(swish):
    cells = cells_of({"activation": swish}, "sgd", seeds=(0, 1), epochs=1)
    data = Datasets()
    splits = [data(c) for c in cells]
    notices: list[str] = []
    fused = train_group(cells, splits, CPU, hooks=[CellHooks(on_warning=notices.append) for _ in cells])
    assert notices == [
        f"{cells[0].variant.slug()}: 2 seeds trained one by one, not fused: features.act1 (Swish) has no fused form"
    ]
    for cell, record in zip(cells, fused):
        assert "fused" not in record["runtime"]
        assert [s["train_loss"] for s in record["steps"]] == [
            s["train_loss"] for s in train_cell(cell, splits[0], CPU)["steps"]
        ]


def test_a_dropout_cells_checkpoint_from_before_format_4_starts_over_and_others_resume(tmp_path):
    """Formats 1-3 drew dropout masks from the global RNG: such a cell cannot be continued."""
    for dropout, resumes in ((True, False), (False, True)):
        (cell,) = cells_of({"dropout": dropout}, "sgd", seeds=(0,))
        splits = Datasets()(cell)
        path = tmp_path / f"{dropout}.pt"
        hooks = CellHooks(checkpoint=path, checkpoint_every_s=0, should_stop=lambda: True)
        with pytest.raises(Interrupted):
            train_cell(cell, splits, CPU, hooks=hooks)
        old = torch.load(path, weights_only=True)
        del old["drop_gen"], old["fused"]
        torch.save({**old, "format": 3}, path)
        notices: list[str] = []
        record = train_cell(cell, splits, CPU, hooks=CellHooks(checkpoint=path, on_warning=notices.append))
        assert bool(record["resumed"]) is resumes
        old_masks = "saved by an older ablate, whose dropout masks came from the global RNG"
        assert notices == ([] if resumes else [f"{path}: {old_masks}; training this cell from the start"])
