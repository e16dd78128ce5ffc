"""Faults at the edges (issue 19), in one process where a fault can be staged exactly: a paused
owner that lost its claim, a worker killed after its run file, a full disk, a damaged checkpoint,
concurrent --force runs, leftovers on disk."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
from tiny_sweeps import tiny_sweep

from ablate.experiment import parse_experiment
from ablate.leases import claim_path
from ablate.runner import Datasets, RunObserver, WorkOptions, train_claimed
from ablate.store import checkpoint_path, read_events, run_path

CPU = torch.device("cpu")


def tiny_cells(seeds=(0,), epochs: int = 1, **train):
    import tomllib

    raw = tomllib.loads(tiny_sweep("faults", seeds=seeds, epochs=epochs))
    raw["train"].update(train)
    return parse_experiment(raw, "faults.toml")


@pytest.fixture(scope="module")
def exp():
    return tiny_cells()


@pytest.fixture(scope="module")
def data():
    return Datasets()


def take_over(results: Path, cell, token: str = "the-new-owner") -> None:
    """What a second runner does to a claim it judged stale: its own claim file in its place."""
    path = claim_path(results, cell.experiment, cell.run_id)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "started": time.time(),
                                "worker": "B", "token": token}))


class TakenOverAt(RunObserver):
    """Stands in for a pause: while this process trains, another runner takes the claim over
    and saves its own checkpoint (at the last epoch's end, or after a given step)."""

    def __init__(self, results: Path, cell, step: int | None = None) -> None:
        self.results, self.cell, self.step, self.warnings = results, cell, step, []
        self.ckpt = checkpoint_path(results, cell.experiment, cell.run_id)

    def _take(self) -> None:
        take_over(self.results, self.cell)
        self.ckpt.parent.mkdir(parents=True, exist_ok=True)
        self.ckpt.write_bytes(b"the new owner's checkpoint")

    def on_batch(self, epoch: int, step: int, steps: int) -> None:
        if self.step is not None and step == self.step:
            self._take()

    def on_epoch(self, metrics) -> None:
        if self.step is None:  # during the final evaluation
            self._take()

    def on_warning(self, message: str) -> None:
        self.warnings.append(message)


@pytest.mark.parametrize("step", [None, 2], ids=["after-the-last-step", "mid-epoch"])
def test_an_owner_that_lost_its_claim_writes_nothing_and_keeps_the_new_owners_checkpoint(tmp_path, exp, data, step):
    """Item 1: a paused owner wakes up after its claim was taken over: no run file, no
    checkpoint saved over the new owner's, none deleted, and the new owner's claim stays."""
    cell = exp.cells()[0]
    watcher = TakenOverAt(tmp_path, cell, step)
    assert train_claimed(cell, tmp_path, CPU, data, WorkOptions(worker="A"), watcher) is None
    assert not run_path(tmp_path, cell.experiment, cell.run_id).exists()
    assert watcher.ckpt.read_bytes() == b"the new owner's checkpoint"
    assert json.loads(claim_path(tmp_path, cell.experiment, cell.run_id).read_text())["token"] == "the-new-owner"
    events = [e["event"] for e in read_events(tmp_path, cell.experiment)]
    assert events == ["start", "lost-claim"] and len(watcher.warnings) == 1 and "claim lost" in watcher.warnings[0]


def test_a_worker_death_is_never_recorded_over_a_run_file(tmp_path, exp, data):
    """Item 2: the executor's "worker died" record does not replace a result written before the death."""
    from ablate.runner import record_worker_death

    cell = exp.cells()[0]
    assert train_claimed(cell, tmp_path, CPU, data)["status"] == "ok"
    before = run_path(tmp_path, cell.experiment, cell.run_id).read_bytes()
    assert record_worker_death(cell, tmp_path, "signal 9", 1) is None
    assert run_path(tmp_path, cell.experiment, cell.run_id).read_bytes() == before
