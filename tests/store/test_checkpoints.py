"""Checkpoints in one process: a stopped cell resumes bit-identically (at an epoch boundary and
mid-epoch), and a damaged, foreign or unsafe checkpoint is never trusted."""

from __future__ import annotations

import pickle

import pytest
import torch

from ablate.execute.runner import Datasets
from ablate.experiment.experiment import parse_experiment
from ablate.store import checkpoints as checkpoint
from ablate.train.loop import Interrupted, train_cell
from ablate.train.resume import CellHooks

RAW = {
    "name": "ckpt",
    "seeds": [3],
    "model": {"norm": "batchnorm"},  # running statistics are state too
    "data": {"train_size": 48, "val_size": 16, "augment": "paper"},  # augmentation draws from its own generator
    "train": {"epochs": 2, "batch_size": 16, "optimizer": "sgd", "lr": 0.01, "schedule": "cosine", "log_every": 1},
}
KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "train_eval_acc", "lr", "images_seen")


@pytest.fixture(scope="module")
def cell_and_data():
    cell = parse_experiment(RAW, "ckpt.toml").cells()[0]
    return cell, Datasets()(cell)


class Killed(Exception):
    """Stands in for a process killed right after a checkpoint was written."""


def interrupt(path, kind: str) -> CellHooks:
    """Hooks that stop training at a given point: 'mid-epoch-1' (after step 2 of 3),
    'mid-epoch-2' (after step 1 of epoch 2), or 'after-epoch-1' (right after its checkpoint)."""
    polls = {"n": 0}
    stop_poll = {"mid-epoch-1": 2, "mid-epoch-2": 3}.get(kind)  # should_stop is polled after steps 1, 2, 4, 5

    def should_stop() -> bool:
        polls["n"] += 1
        return polls["n"] == stop_poll

    def on_checkpoint(saved, why) -> None:
        if kind == "after-epoch-1" and why == "epoch":
            raise Killed

    return CellHooks(checkpoint=path, checkpoint_every_s=0, should_stop=should_stop, on_checkpoint=on_checkpoint)


def epochs_of(record):
    return [{k: e[k] for k in KEYS} for e in record["epochs"]]


@pytest.mark.parametrize("kind, done_steps", [("mid-epoch-1", 2), ("after-epoch-1", 3), ("mid-epoch-2", 4)])
def test_stopped_cell_resumes_bit_identically(cell_and_data, tmp_path, kind, done_steps):
    cell, splits = cell_and_data
    device = torch.device("cpu")
    ref_path = tmp_path / "ref.pt"
    whole = train_cell(cell, splits, device, hooks=CellHooks(checkpoint=ref_path, checkpoint_every_s=0))
    path = tmp_path / "c.pt"
    with pytest.raises((Interrupted, Killed)):
        train_cell(cell, splits, device, hooks=interrupt(path, kind))
    torch.rand(1000)  # the global RNGs move on before the rerun: the checkpoint must restore them
    resumed = train_cell(cell, splits, device, hooks=CellHooks(checkpoint=path, checkpoint_every_s=0))
    assert [r["done_steps"] for r in resumed["resumed"]] == [done_steps]
    assert epochs_of(resumed) == epochs_of(whole)
    assert [(s["step"], s["train_loss"], s["train_acc"], s["lr"]) for s in resumed["steps"]] == [
        (s["step"], s["train_loss"], s["train_acc"], s["lr"]) for s in whole["steps"]
    ]
    final = torch.load(path, weights_only=True)["model"]  # both end-of-run checkpoints
    ref = torch.load(ref_path, weights_only=True)["model"]
    assert final.keys() == ref.keys() and all(torch.equal(final[k], ref[k]) for k in ref)


def test_step_points_average_to_the_epoch_loss(cell_and_data):
    cell, splits = cell_and_data
    record = train_cell(cell, splits, torch.device("cpu"))
    for epoch in record["epochs"]:
        points = [s for s in record["steps"] if s["epoch"] == epoch["epoch"]]
        images = [b["images"] - a["images"] for a, b in zip([{"images": epoch["images_seen"] - 48}] + points, points)]
        mean = sum(p["train_loss"] * n for p, n in zip(points, images)) / sum(images)
        assert mean == pytest.approx(epoch["train_loss"], rel=1e-9)
    assert [s["step"] for s in record["steps"]] == list(range(1, 7))  # log_every = 1, 3 steps x 2 epochs


def warned(cell, splits, path):
    messages: list[str] = []
    record = train_cell(cell, splits, torch.device("cpu"), hooks=CellHooks(checkpoint=path, on_warning=messages.append))
    return record, messages


def test_damaged_checkpoint_is_ignored_with_one_warning(cell_and_data, tmp_path):
    cell, splits = cell_and_data
    path = tmp_path / "c.pt"
    path.write_bytes(b"PK\x03\x04 truncated zip")
    record, messages = warned(cell, splits, path)
    assert len(messages) == 1 and "unreadable checkpoint" in messages[0] and "\n" not in messages[0]
    assert record["status"] == "ok" and not record["resumed"]


def test_checkpoint_of_another_config_is_ignored(cell_and_data, tmp_path):
    cell, splits = cell_and_data
    path = tmp_path / "c.pt"
    checkpoint.save(path, "0123456789abcdef", {"model": {}})
    record, messages = warned(cell, splits, path)
    assert len(messages) == 1 and "saved for another config" in messages[0]
    assert not record["resumed"]


def test_checkpoint_that_runs_code_is_refused(cell_and_data, tmp_path):
    cell, splits = cell_and_data

    class Evil:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('pwned').touch()",))

    path = tmp_path / "c.pt"
    torch.save({"format": 1, "run_id": cell.run_id, "x": Evil()}, path, pickle_module=pickle)
    record, messages = warned(cell, splits, path)
    assert len(messages) == 1 and "unreadable checkpoint" in messages[0]
    assert not (tmp_path / "pwned").exists() and record["status"] == "ok"


def test_a_checkpoint_that_cannot_be_written_does_not_cost_the_run(cell_and_data, tmp_path):
    cell, splits = cell_and_data
    (tmp_path / "not-a-folder").write_text("x")
    record, messages = warned(cell, splits, tmp_path / "not-a-folder" / "c.pt")
    assert record["status"] == "ok" and len(record["epochs"]) == 2
    assert len(messages) == 1 and "could not save a checkpoint" in messages[0]
    assert record["runtime"]["checkpoints_saved"] == 0


def test_crcs_are_written_even_where_torch_was_told_not_to_and_damage_is_found(tmp_path):
    """The check on load relies on torch's zip CRC-32s: a save writes them even with
    ``set_crc32_options(False)`` (the option is put back afterwards), and one flipped byte in a
    tensor is then named as damage, where ``torch.load`` alone reads the file."""
    if not hasattr(torch.serialization, "set_crc32_options"):
        pytest.skip("this torch always writes CRC-32s")
    path = tmp_path / "c.pt"
    torch.serialization.set_crc32_options(False)
    try:
        checkpoint.save(path, "r", {"w": torch.arange(50_000, dtype=torch.float32)})
        assert torch.serialization.get_crc32_options() is False
    finally:
        torch.serialization.set_crc32_options(True)
    assert checkpoint.damaged_entry(path) is None
    assert checkpoint.load(path, "r", torch.device("cpu"))["w"].equal(torch.arange(50_000, dtype=torch.float32))
    raw = bytearray(path.read_bytes())
    at = raw.index(torch.arange(10_000, 10_010, dtype=torch.float32).numpy().tobytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert not torch.load(path, weights_only=True)["w"].equal(torch.arange(50_000, dtype=torch.float32))
    with pytest.raises(checkpoint.CheckpointError, match=r"damaged checkpoint \(its entry .* does not match"):
        checkpoint.load(path, "r", torch.device("cpu"))


def test_checkpoints_of_earlier_formats_are_read_and_format_2s_sha256_is_dropped(tmp_path):
    """Cells stopped by an older ablate resume after the upgrade: formats 1 and 2 carry torch's
    CRCs as well; a format this ablate does not know is refused."""
    path = tmp_path / "c.pt"
    for fmt, extra in ((1, {}), (2, {"sha256": "0" * 64})):
        torch.save({"format": fmt, "run_id": "r", "w": torch.ones(3), **extra}, path)
        state = checkpoint.load(path, "r", torch.device("cpu"))
        assert state["format"] == fmt and "sha256" not in state and state["w"].equal(torch.ones(3))
    torch.save({"format": 99, "run_id": "r"}, path)
    with pytest.raises(checkpoint.CheckpointError, match="not an ablate checkpoint"):
        checkpoint.load(path, "r", torch.device("cpu"))
