"""Checkpoint a cell's training and continue it: what the runner asks of a cell's training
(:class:`CellHooks`), what a checkpoint of a run holds (:func:`save_checkpoint`), and how a
prepared run is put back where a checkpoint left it (:func:`resume`). The file itself (atomic
writes, checksums) is :mod:`ablate.store.checkpoints`'s.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ablate.data import ImageSplits
from ablate.experiment.experiment import Cell
from ablate.store import checkpoints as checkpoint
from ablate.train.setup import WARMUP_STEPS, EpochProgress, Training, prepare


@dataclass
class CellHooks:
    """What the runner asks of a cell's training beyond the cell itself."""

    # Where to keep this cell's checkpoint; None = no checkpoints (and no resume).
    checkpoint: Path | None = None
    # Seconds between mid-epoch checkpoints (one is also saved after every epoch); 0 = epochs only.
    checkpoint_every_s: float = 600.0
    # Polled after every optimizer step: True stops training (checkpoint first), raising Interrupted.
    should_stop: Callable[[], bool] = lambda: False
    # Asked before every save: False means the checkpoint file is no longer this trainer's (its
    # claim was taken over) and nothing is written.
    may_save: Callable[[], bool] = lambda: True
    # Told of every checkpoint saved: (cost, why: "epoch" | "timer" | "stop").
    on_checkpoint: Callable[[checkpoint.Saved, str], None] | None = None
    # Told of a checkpoint that could not be used (one line); default: warnings.warn.
    on_warning: Callable[[str], None] | None = None
    # Told when training continues from a checkpoint (the entry added to record["resumed"]).
    on_resume: Callable[[dict[str, Any]], None] | None = None


def save_checkpoint(run: Training, hooks: CellHooks, why: str, progress: EpochProgress | None) -> None:
    """Checkpoint everything the rest of the run depends on (see :mod:`ablate.store.checkpoints`)."""
    if not hooks.may_save():
        return
    state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "done_steps": run.done_steps,
        "warmup": run.warmup,
        "epochs": run.epochs,
        "steps": run.steps,
        "resumed": run.resumed,
        "timer": {"images": run.timer.images, "seconds": run.timer.seconds},
        "checkpoint_s": run.checkpoint_s,
        "checkpoints": run.checkpoints + 1,
        # Generators as they are now (used when the next epoch starts afresh) ...
        "order_gen": run.train_batches.order_gen.get_state(),
        "aug_gen": run.train_batches.aug_gen.get_state(),
        # ... and the unfinished epoch, if any.
        "progress": progress.state() if progress is not None else None,
        # CPU results depend on the thread count: a resume continues with the same one.
        "cpu_threads": torch.get_num_threads() if run.device.type == "cpu" else None,
    }
    try:
        saved = checkpoint.save(hooks.checkpoint, run.run_id, state)
    except Exception as e:  # noqa: BLE001 - any failed save (see below) must not cost the run
        # torch.save reports a failed write (ENOSPC included) as a RuntimeError from its zip
        # writer, with the original exception as context: a Ctrl-C that landed inside the write
        # is still the user's way out, everything else (a full disk, an unwritable folder) must
        # not cost the training itself: go on without checkpoints (the run file is written at
        # the end as usual), and say so once.
        if _caused_by(e, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        warn = hooks.on_warning or (lambda m: warnings.warn(m, stacklevel=3))
        why = e.strerror if isinstance(e, OSError) and e.strerror else (str(e).splitlines() or [type(e).__name__])[0]
        if not isinstance(e, OSError) and isinstance(e.__context__, OSError) and e.__context__.strerror:
            why = e.__context__.strerror
        warn(f"{hooks.checkpoint}: could not save a checkpoint ({why}); this cell goes on without checkpoints")
        hooks.checkpoint = None
        return
    run.checkpoint_s += saved.seconds
    run.checkpoints += 1
    if hooks.on_checkpoint:
        hooks.on_checkpoint(saved, why)


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is ``error`` or anywhere in its chain of causes and contexts."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def restore(run: Training, state: dict[str, Any], total_steps: int) -> EpochProgress | None:
    """Put a prepared run back where the checkpoint left it; returns the unfinished epoch."""
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.done_steps = state["done_steps"]
    run.epochs, run.steps, run.resumed = list(state["epochs"]), list(state["steps"]), list(state["resumed"])
    run.timer.images, run.timer.seconds = state["timer"]["images"], state["timer"]["seconds"]
    run.checkpoint_s, run.checkpoints = state["checkpoint_s"], state["checkpoints"]
    run.train_batches.order_gen.set_state(state["order_gen"])
    run.train_batches.aug_gen.set_state(state["aug_gen"])
    checkpoint.restore_global_rng(state["rng"])
    # A fresh process warms up again (allocator, autotuning): leave those steps out of the
    # timing too, unless too few steps are left to time any after them.
    extra = WARMUP_STEPS if total_steps - run.done_steps > WARMUP_STEPS else 0
    run.warmup = state["warmup"] + extra
    run.timed_from = run.done_steps + extra
    progress = state["progress"]
    return EpochProgress(**progress) if progress is not None else None


def resume(
    run: Training, cell: Cell, splits: ImageSplits, device: torch.device, hooks: CellHooks
) -> tuple[Training, EpochProgress | None]:
    """Load this cell's checkpoint into ``run`` if there is a usable one; warn about one that is
    not and go on without it. Returns the run to train and its unfinished epoch, if any."""
    if hooks.checkpoint is None:
        return run, None
    try:
        state = checkpoint.load(hooks.checkpoint, cell.run_id, device)
        if state is None:
            return run, None
        progress = restore(run, state, cell.train.epochs * len(run.train_batches))
        saved_threads = state.get("cpu_threads")
        if device.type == "cpu" and isinstance(saved_threads, int) and saved_threads != torch.get_num_threads():
            # Same thread count, same order of float sums: the resumed run stays bit-identical
            # to an uninterrupted one, and its record's cpu_threads is true of every step.
            (hooks.on_warning or (lambda m: warnings.warn(m, stacklevel=3)))(
                f"{hooks.checkpoint}: resuming with {saved_threads} CPU thread(s), as the checkpoint was saved with "
                f"(not {torch.get_num_threads()}): CPU results depend on the thread count"
            )
            torch.set_num_threads(saved_threads)
    except (checkpoint.CheckpointError, KeyError, TypeError, ValueError, RuntimeError) as e:
        message = (
            str(e)
            if isinstance(e, checkpoint.CheckpointError)
            else f"{hooks.checkpoint}: unusable checkpoint ({type(e).__name__}: {e})"
        )
        (hooks.on_warning or (lambda m: warnings.warn(m, stacklevel=3)))(
            message.splitlines()[0] + "; training this cell from the start"
        )
        # A half-restored run is not trustworthy: rebuild it from scratch (same seed, same start).
        return prepare(cell, splits, device), None
    run.resumed.append(
        {
            "epoch": progress.epoch if progress is not None else (run.epochs[-1]["epoch"] + 1 if run.epochs else 1),
            "step_in_epoch": progress.step if progress is not None else 0,
            "done_steps": run.done_steps,
            "at": time.time(),
        }
    )
    if hooks.on_resume:
        hooks.on_resume(run.resumed[-1])
    return run, progress
