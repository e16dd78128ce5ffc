"""Checkpoint a training and continue it: what a member's checkpoint holds
(:func:`member_checkpoint`, saved by :func:`save_checkpoint` into each member's own file), which
checkpoints can be used (:func:`load_states`), and how a prepared training is put back where its
members' checkpoints left it (:func:`restore`). The file itself (atomic writes, checksums) is
:mod:`ablate.store.checkpoints`'s; what the runner asks of a cell, :mod:`ablate.train.hooks`'.

Every cell has its own checkpoint (``checkpoints/<run_id>.pt``), whether it trains alone or as a
member of a fused group: a member's holds what its solo run's would (its weights, optimizer state,
generators, metrics so far, its part of the unfinished epoch) plus where it was fused, so a
checkpoint is the cell's whatever K trains it next (see :mod:`ablate.train.fused`).

Format 4: every checkpoint holds the run's dropout generator (``drop_gen``) and, for a fused
member, ``fused`` (group id, K, its place). Formats 1-3 are still read for cells without dropout;
a cell with dropout saved by them drew its masks from the global RNG, which cannot be continued,
so it starts over (one warning).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from ablate.experiment.experiment import Cell
from ablate.models.fused import member_state_dict, stack_states
from ablate.store import checkpoints as checkpoint
from ablate.train.fused import load_member_optimizer_states, member_optimizer_state
from ablate.train.hooks import CellHooks
from ablate.train.setup import WARMUP_STEPS, EpochProgress, Member, Training

__all__ = ["CellHooks", "load_states", "member_checkpoint", "restore", "save_checkpoint"]


def member_checkpoint(run: Training, i: int, progress: EpochProgress | None) -> dict[str, Any]:
    """Everything the rest of member ``i``'s run depends on, as its solo run's checkpoint holds it
    (see :mod:`ablate.store.checkpoints`, which adds the global RNG states)."""
    member, k = run.members[i], len(run.members)
    return {
        "model": member_state_dict(run.model, i) if run.fused else run.model.state_dict(),
        "optimizer": member_optimizer_state(run.optimizer, i, k if run.fused else 1),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "done_steps": run.done_steps,
        "warmup": run.warmup,
        "epochs": member.epochs,
        "steps": member.steps,
        "resumed": member.resumed,
        "timer": {"images": run.timer.images, "seconds": run.timer.seconds},
        "checkpoint_s": member.checkpoint_s,
        "checkpoints": member.checkpoints + 1,
        # Generators as they are now (used when the next epoch starts afresh) ...
        "order_gen": member.train_batches.order_gen.get_state(),
        "aug_gen": member.train_batches.aug_gen.get_state(),
        "drop_gen": member.dropout_gen.get_state(),
        # ... and the unfinished epoch, if any.
        "progress": progress.member_state(i) if progress is not None else None,
        # CPU results depend on the thread count: a resume continues with the same one.
        "cpu_threads": torch.get_num_threads() if run.device.type == "cpu" else None,
        # Where it was fused: the group resumes as the group it was (ablate.train.fused.resume_groups).
        "fused": {"group": run.group.id, "k": run.group.k, "member": member.index} if run.group else None,
    }


def save_checkpoint(run: Training, why: str, progress: EpochProgress | None) -> None:
    """Checkpoint every member that has a checkpoint file and may write it, each into its own."""
    for i, member in enumerate(run.members):
        if member.hooks.checkpoint is not None and member.hooks.may_save():
            _save(run, i, member, why, progress)


def _save(run: Training, i: int, member: Member, why: str, progress: EpochProgress | None) -> None:
    hooks = member.hooks
    try:
        saved = checkpoint.save(hooks.checkpoint, member.run_id, member_checkpoint(run, i, progress))
    except Exception as e:  # noqa: BLE001 - any failed save (see below) must not cost the run
        # torch.save reports a failed write (ENOSPC included) as a RuntimeError from its zip
        # writer, with the original exception as context: a Ctrl-C that landed inside the write
        # is still the user's way out, everything else (a full disk, an unwritable folder) must
        # not cost the training itself: go on without checkpoints (the run file is written at
        # the end as usual), and say so once.
        if _caused_by(e, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        reason = e.strerror if isinstance(e, OSError) and e.strerror else (str(e).splitlines() or [type(e).__name__])[0]
        if not isinstance(e, OSError) and isinstance(e.__context__, OSError) and e.__context__.strerror:
            reason = e.__context__.strerror
        hooks.warn(f"{hooks.checkpoint}: could not save a checkpoint ({reason}); this cell goes on without checkpoints")
        hooks.checkpoint = None
        return
    member.checkpoint_s += saved.seconds
    member.checkpoints += 1
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


def load_states(cells: Sequence[Cell], hooks: Sequence[CellHooks], device: torch.device) -> list[dict[str, Any] | None]:
    """Each cell's usable checkpoint, or None (none, or one that cannot be used: damaged, another
    config's, or a dropout cell's from before format 4; one warning each, and the cell starts over)."""
    states: list[dict[str, Any] | None] = []
    for cell, hook in zip(cells, hooks):
        state = None
        if hook.checkpoint is not None:
            try:
                state = checkpoint.load(hook.checkpoint, cell.run_id, device)
                if state is not None and state["format"] < 4 and cell.variant.dropout:
                    raise checkpoint.CheckpointError(
                        f"{hook.checkpoint}: saved by an older ablate, whose dropout masks came from the global RNG"
                    )
            except checkpoint.CheckpointError as e:
                hook.warn(str(e).splitlines()[0] + "; training this cell from the start")
                state = None
        states.append(state)
    return states


def restore(run: Training, states: Sequence[dict[str, Any]]) -> EpochProgress | None:
    """Put a prepared training back where its members' checkpoints (``states``, in member order,
    saved at one step) left it; returns the unfinished epoch, if any. Raises (KeyError, ValueError,
    ...) on a checkpoint that does not fit: the caller starts those cells over."""
    first = states[0]
    if any(s["done_steps"] != first["done_steps"] for s in states):
        raise ValueError("the members' checkpoints were saved at different steps")
    if run.fused:
        run.model.load_state_dict(stack_states([s["model"] for s in states], run.model.state_dict()))
    else:
        run.model.load_state_dict(first["model"])
    load_member_optimizer_states(run.optimizer, [s["optimizer"] for s in states])
    run.scheduler.load_state_dict(first["scheduler"])
    run.scaler.load_state_dict(first["scaler"])
    run.done_steps = first["done_steps"]
    run.timer.images, run.timer.seconds = first["timer"]["images"], first["timer"]["seconds"]
    for member, state in zip(run.members, states):
        member.epochs, member.steps = list(state["epochs"]), list(state["steps"])
        member.resumed = list(state["resumed"])
        member.checkpoint_s, member.checkpoints = state["checkpoint_s"], state["checkpoints"]
        member.train_batches.order_gen.set_state(state["order_gen"].cpu())
        member.train_batches.aug_gen.set_state(state["aug_gen"].cpu())
        if "drop_gen" in state:  # (formats 1-3: only cells without dropout get here)
            member.dropout_gen.set_state(state["drop_gen"].cpu())
        if state.get("fused"):
            member.index = state["fused"]["member"]
    checkpoint.restore_global_rng(first["rng"])
    # A fresh process warms up again (allocator, autotuning): leave those steps out of the
    # timing too, unless too few steps are left to time any after them.
    total_steps = run.train.epochs * len(run.members[0].train_batches)
    extra = WARMUP_STEPS if total_steps - run.done_steps > WARMUP_STEPS else 0
    run.warmup = first["warmup"] + extra
    run.timed_from = run.done_steps + extra
    if first["progress"] is None:
        return None
    return EpochProgress.of_members([s["progress"] for s in states], run.device)


def note_resume(run: Training, progress: EpochProgress | None) -> None:
    """Add the resume to each member's ``resumed`` and tell its hooks."""
    for member in run.members:
        entry = {
            "epoch": progress.epoch
            if progress is not None
            else (member.epochs[-1]["epoch"] + 1 if member.epochs else 1),
            "step_in_epoch": progress.step if progress is not None else 0,
            "done_steps": run.done_steps,
            "at": time.time(),
        }
        member.resumed.append(entry)
        if member.hooks.on_resume:
            member.hooks.on_resume(entry)
