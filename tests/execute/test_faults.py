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

from ablate.execute.runner import Datasets, RunObserver, WorkOptions, train_claimed
from ablate.experiment.experiment import parse_experiment
from ablate.store.claims import claim_path
from ablate.store.folder import checkpoint_path, read_events, run_path

from helpers.sweeps import tiny_sweep

CPU = torch.device("cpu")


def tiny_cells(seeds=(0,), epochs: int = 1, **train):
    """The tiny sweep's cells, smaller still and trained with plain SGD: no optimizer state, so
    each checkpoint is a third of Adam's (the weights alone), which keeps these tests fast."""
    import tomllib

    raw = tomllib.loads(tiny_sweep("faults", seeds=seeds, epochs=epochs))
    raw["data"].update({"train_size": 32, "val_size": 16})  # 4 steps of 8 images per epoch
    raw["train"].update({"optimizer": "sgd", "momentum": 0.0, "lr": 0.01, "batch_size": 8, **train})
    return parse_experiment(raw, "faults.toml")


@pytest.fixture(scope="module")
def exp():
    return tiny_cells()


@pytest.fixture(scope="module")
def data():
    return Datasets()


def finished(results: Path, cell, kept: bool = False) -> Path:
    """Write an ``ok`` run file for ``cell`` without training it (what another runner leaves)."""
    from ablate.store.folder import write_run
    from ablate.store.record import failed_record, identity_of

    record = failed_record(identity_of(cell), "planted")
    record.update(
        status="ok",
        error=None,
        worker={"label": "B", "host": socket.gethostname(), "pid": os.getppid(), "kept_checkpoint": kept},
    )
    return write_run(results, record)


def take_over(results: Path, cell, token: str = "the-new-owner") -> None:
    """What a second runner does to a claim it judged stale: its own claim file in its place."""
    path = claim_path(results, cell.experiment, cell.run_id)
    path.write_text(
        json.dumps(
            {"host": socket.gethostname(), "pid": os.getppid(), "started": time.time(), "worker": "B", "token": token}
        )
    )


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
    assert events == ["start", "lost-claim", "warning"]  # the warning is in the log too (#28 item 3)
    assert len(watcher.warnings) == 1 and "claim lost" in watcher.warnings[0]


def test_a_worker_death_is_never_recorded_over_a_run_file(tmp_path, exp):
    """Item 2: the executor's "worker died" record does not replace a result written before the death."""
    from ablate.execute.runner import record_worker_death

    cell = exp.cells()[0]
    before = finished(tmp_path, cell).read_bytes()
    assert record_worker_death(cell, tmp_path, "signal 9", 1) is None
    assert run_path(tmp_path, cell.experiment, cell.run_id).read_bytes() == before


class FullDisk:
    """A file whose writes fail like a full disk's, after ``room`` bytes (or raise ``error``)."""

    def __init__(self, f, room: int, error: BaseException) -> None:
        self.f, self.room, self.error = f, room, error

    def write(self, b) -> int:
        if self.room < len(b):
            raise self.error
        self.room -= len(b)
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.fixture
def disk_full(monkeypatch):
    """Checkpoint writes fail inside torch.save as they do on a full disk: torch's zip writer turns
    the OSError(ENOSPC) of the write into a RuntimeError ('[enforce fail at inline_container.cc]')."""
    import errno

    from ablate.store import checkpoints as checkpoint

    real = torch.save
    state = {"error": OSError(errno.ENOSPC, "No space left on device")}

    def save(obj, f, *args, **kw):
        return real(obj, FullDisk(f, 4096, state["error"]), *args, **kw)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    return state


def ckpt_hooks(path: Path, warnings: list, stop_after: int | None = None):
    from ablate.train.resume import CellHooks

    polls = {"n": 0}

    def should_stop() -> bool:
        polls["n"] += 1
        return stop_after is not None and polls["n"] >= stop_after

    return CellHooks(checkpoint=path, checkpoint_every_s=0, should_stop=should_stop, on_warning=warnings.append)


def test_a_full_disk_costs_no_training(tmp_path, data, disk_full):
    """Item 4: torch.save's RuntimeError on a full disk is one warning; the cell trains on and ends ok."""
    from ablate.train.loop import train_cell

    cell = tiny_cells().cells()[0]
    messages: list[str] = []
    record = train_cell(cell, data(cell), CPU, hooks=ckpt_hooks(tmp_path / "c.pt", messages))
    assert record["status"] == "ok" and len(record["epochs"]) == 1
    assert len(messages) == 1 and "could not save a checkpoint (No space left on device)" in messages[0], messages
    assert not list(tmp_path.iterdir())  # no temporary file left behind


def test_a_stop_whose_checkpoint_cannot_be_saved_is_still_a_stop(tmp_path, data, disk_full):
    """Item 4: a stop request whose checkpoint hits the full disk stops (exit 130 in the CLI), it is
    not a failed run."""
    from ablate.execute.runner import run_cell
    from ablate.train.loop import Interrupted, train_cell

    cell = tiny_cells().cells()[0]
    messages: list[str] = []
    with pytest.raises(Interrupted):
        run_cell(
            cell,
            CPU,
            lambda: train_cell(cell, data(cell), CPU, hooks=ckpt_hooks(tmp_path / "c.pt", messages, stop_after=2)),
        )
    assert len(messages) == 1


def test_a_second_ctrl_c_inside_the_checkpoint_write_quits(tmp_path, data, disk_full):
    """Item 4: Ctrl-C inside torch.save surfaces as a RuntimeError; it is still the user's Ctrl-C."""
    from ablate.execute.runner import run_cell
    from ablate.train.loop import train_cell

    cell = tiny_cells().cells()[0]
    disk_full["error"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        run_cell(
            cell, CPU, lambda: train_cell(cell, data(cell), CPU, hooks=ckpt_hooks(tmp_path / "c.pt", [], stop_after=2))
        )
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_with_damaged_bytes_is_refused_and_the_cell_restarts(tmp_path, data):
    """Item 5: bytes overwritten inside a tensor of a valid checkpoint (torch.load still reads it)
    are caught by the CRC-32s of its zip entries: one warning, and the cell trains from the start."""
    from ablate.train.loop import Interrupted, train_cell

    cell = tiny_cells().cells()[0]
    path = tmp_path / "c.pt"
    with pytest.raises(Interrupted):  # a checkpoint after step 2
        train_cell(cell, data(cell), CPU, hooks=ckpt_hooks(path, [], stop_after=2))
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 80_000] = os.urandom(80_000)
    path.write_bytes(bytes(raw))
    torch.load(path, weights_only=True)  # still loads: torch does not check the CRCs
    messages: list[str] = []
    record = train_cell(cell, data(cell), CPU, hooks=ckpt_hooks(path, messages))
    assert len(messages) == 1 and "damaged checkpoint" in messages[0] and "from the start" in messages[0], messages
    assert not record["resumed"] and record["status"] == "ok"


def test_two_concurrent_force_runs_train_each_cell_once(tmp_path):
    """Item 3: a --force run that finds a cell retrained (by a concurrent --force run) since it
    started does not train it a second time."""
    from ablate.execute.runner import run_experiment

    exp2 = tiny_cells(seeds=(0,))
    assert len(exp2.cells()) == 2

    for cell in exp2.cells():  # finished long ago: --force retrains these
        os.utime(finished(tmp_path, cell), (time.time() - 3600, time.time() - 3600))

    class Concurrent(RunObserver):
        def on_start(self, todo, skipped) -> None:  # the other --force run finishes both cells now
            for cell in todo:
                finished(tmp_path, cell)

    summary = run_experiment(exp2, CPU, tmp_path, force=True, observer=Concurrent())
    assert summary.records == []
    assert not [e for e in read_events(tmp_path, "faults") if e["event"] == "start"]  # not trained a second time


def dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_killed_runs_are_removed_at_the_next_run_and_by_show_clean(tmp_path, cli, write_experiment):
    """Item 6: temporary checkpoint files of dead writers, a finished cell's checkpoint and its dead
    claim go at the next run; a live writer's temporary file and a checkpoint kept on purpose stay.
    `ablate show` reports the disk checkpoints hold; `ablate show --clean` removes leftovers."""
    from ablate.cli import app
    from ablate.execute.runner import run_experiment

    exp2 = tiny_cells(seeds=(0,))
    plain, kept = exp2.cells()
    finished(tmp_path, plain)
    finished(tmp_path, kept, kept=True)
    ckpts = tmp_path / "faults" / "checkpoints"
    ckpts.mkdir()
    kept_ckpt = ckpts / f"{kept.run_id}.pt"  # --keep-checkpoints: the final weights, on purpose
    kept_ckpt.write_bytes(b"x" * 100)
    leftover_ckpt = ckpts / f"{plain.run_id}.pt"  # a kill between the run file and the removal
    leftover_ckpt.write_bytes(b"x" * 1000)
    dead_tmp = ckpts / f".{plain.run_id}.pt.k1ll3d.tmp"  # a kill mid-write
    dead_tmp.write_bytes(b"x" * 5000)
    live_tmp = ckpts / ".0123456789abcdef.pt.wr1t1ng.tmp"  # being written by a live owner
    live_tmp.write_bytes(b"x")
    (tmp_path / "faults" / "claims").mkdir()
    (tmp_path / "faults" / "claims" / "0123456789abcdef").write_text(
        json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "worker": "me", "token": "t"}
        )
    )
    dead_claim = claim_path(tmp_path, "faults", plain.run_id)
    dead_claim.write_text(
        json.dumps(
            {"host": socket.gethostname(), "pid": dead_pid(), "started": time.time(), "worker": "dead", "token": "t"}
        )
    )

    path = write_experiment(tiny_sweep("faults"), "faults.toml")
    shown = cli.invoke(app, ["show", str(path), "--device", "cpu", "--results", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "checkpoints: 4 file(s)" in text and "removable with 'ablate show --clean'" in text, text
    assert "1 temporary file(s) of killed writers, 1 checkpoint(s) of finished cells, 1 claim(s)" in text

    class Warnings(RunObserver):
        said: list[str] = []

        def on_warning(self, message: str) -> None:
            self.said.append(message)

    summary = run_experiment(exp2, CPU, tmp_path, observer=Warnings())
    assert summary.records == [] and len(summary.skipped) == 2
    assert not dead_tmp.exists() and not leftover_ckpt.exists() and not dead_claim.exists()
    assert live_tmp.exists() and kept_ckpt.exists()
    assert len(Warnings.said) == 1 and "removed 1 temporary file(s)" in Warnings.said[0]

    dead_tmp.write_bytes(b"x")
    cleaned = cli.invoke(app, ["show", str(path), "--device", "cpu", "--results", str(tmp_path), "--clean"])
    assert cleaned.exit_code == 0 and "removed 1 temporary file(s) of killed writers" in cleaned.output, cleaned.output
    assert not dead_tmp.exists() and live_tmp.exists() and kept_ckpt.exists()


def test_a_resume_trains_on_with_the_checkpoints_thread_count(tmp_path, data):
    """Item 16: started with 1 thread, resumed in a process with 2: the rest runs on 1 thread, the
    record says 1 and matches an uninterrupted 1-thread run; the process keeps its 2 threads."""
    from ablate.train.loop import Interrupted, train_cell

    cell = tiny_cells().cells()[0]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        whole = train_cell(cell, data(cell), CPU)
        path = tmp_path / "c.pt"
        with pytest.raises(Interrupted):
            train_cell(cell, data(cell), CPU, hooks=ckpt_hooks(path, [], stop_after=2))  # after step 2
        torch.set_num_threads(2)
        messages: list[str] = []
        resumed = train_cell(cell, data(cell), CPU, hooks=ckpt_hooks(path, messages))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert resumed["resumed"] and resumed["runtime"]["cpu_threads"] == 1
    assert len(messages) == 1 and "resuming with 1 CPU thread(s)" in messages[0]
    keys = ("train_loss", "val_loss", "val_acc")
    assert [[e[k] for k in keys] for e in resumed["epochs"]] == [[e[k] for k in keys] for e in whole["epochs"]]


class _Collect(RunObserver):
    """Keeps the warnings; a KeyboardInterrupt at the first batch when ``interrupt_at`` (as Ray's
    cancellation of a task, or a second Ctrl-C, delivers it)."""

    def __init__(self, interrupt: bool = False) -> None:
        self.warnings: list[str] = []
        self.interrupt = interrupt

    def on_warning(self, message: str) -> None:
        self.warnings.append(message)

    def on_batch(self, epoch: int, step: int, steps: int) -> None:
        if self.interrupt:
            raise KeyboardInterrupt


def test_a_cells_warnings_reach_events_and_its_sweep_and_a_refused_checkpoint_is_no_resume(tmp_path, data, disk_full):
    """#28 items 3 and 11: every warning of a cell, wherever it trains, is a `warning` event tagged
    with its sweep (which a Slurm or Ray driver reads back), and the event log does not claim a
    resume from a checkpoint that was refused."""
    from ablate.execute.runner import sweep_warnings

    cell = tiny_cells().cells()[0]
    ckpt = checkpoint_path(tmp_path, cell.experiment, cell.run_id)
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a checkpoint")
    observer = _Collect()
    record = train_claimed(cell, tmp_path, CPU, data, WorkOptions(worker="w", sweep="s1"), observer)
    assert record["status"] == "ok" and not record["resumed"]
    assert len(observer.warnings) == 2 and "from the start" in observer.warnings[0]
    assert "could not save a checkpoint" in observer.warnings[1]
    log = read_events(tmp_path, cell.experiment)
    assert [e["event"] for e in log] == ["start", "warning", "warning", "finish"]
    assert "checkpoint" not in log[0] and log[-1]["resumed"] == 0
    assert sweep_warnings(tmp_path, cell.experiment, "s1") == [f"w: {m}" for m in observer.warnings]
    assert sweep_warnings(tmp_path, cell.experiment, "another sweep") == []


def test_the_event_log_says_resume_when_a_cell_resumes_and_interrupted_on_keyboard_interrupt(tmp_path, data):
    """#28 item 11: a stop, then a KeyboardInterrupt (how a cancelled Ray task stops), then the end:
    each interruption is logged, and each continuation from the checkpoint is a `resume` event."""
    from ablate.train.loop import Interrupted

    cell = tiny_cells(checkpoint_minutes=1e-9).cells()[0]
    polls = {"n": 0}

    def stop_after_two() -> bool:
        polls["n"] += 1
        return polls["n"] >= 2

    with pytest.raises(Interrupted):
        train_claimed(cell, tmp_path, CPU, data, WorkOptions(), RunObserver(), stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        train_claimed(cell, tmp_path, CPU, data, WorkOptions(), _Collect(interrupt=True))
    record = train_claimed(cell, tmp_path, CPU, data, WorkOptions(), RunObserver())
    assert record["status"] == "ok" and len(record["resumed"]) == 1  # the interrupted resume saved nothing
    log = read_events(tmp_path, cell.experiment)
    kinds = ["start", "interrupted", "start", "resume", "interrupted", "start", "resume", "finish"]
    assert [e["event"] for e in log] == kinds
    assert log[3]["done_steps"] > 0 and log[-1]["resumed"] == 1
