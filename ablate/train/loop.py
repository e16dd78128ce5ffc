"""Train one cell (variant x seed x settings) and return its result record: the training loop.

The loop follows airbench: data already on the device, batches from a seeded permutation, no
host synchronization inside the epoch (losses and hit counts accumulate on the device and are
read once per epoch). Throughput is timed around training steps only, after the run's first
``prepare.WARMUP_STEPS`` steps, with the device synchronized before each clock read (:mod:`ablate.runtime.clock`);
evaluation is timed separately. :func:`train_step` is the single definition of an optimizer step,
shared with ``ablate bench`` and the benchmark suite. Setting a cell up is :mod:`ablate.train.setup`'s
job, checkpoints and resuming :mod:`ablate.train.resume`'s, the record's shape :mod:`ablate.store.record`'s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ablate.data import ImageSplits
from ablate.data.loader import DeviceBatches
from ablate.experiment.experiment import Cell
from ablate.models.alexnet import count_params
from ablate.runtime.clock import sync
from ablate.runtime.memory import peak_memory_kind, peak_memory_mb
from ablate.store.record import EpochMetrics, RunRecord, build_record, identity_of, summarize
from ablate.train.resume import CellHooks, resume, save_checkpoint
from ablate.train.setup import EpochProgress, Training, new_progress, prepare


class Interrupted(Exception):
    """Training stopped on request (Ctrl-C, a lost claim) after saving a checkpoint."""


class CellOutOfMemory(RuntimeError):
    """The device ran out of memory; ``str()`` says at which batch, for the record."""


class TrainObserver(Protocol):
    """Progress hooks; called from the training loop, never required to do anything."""

    def on_batch(self, epoch: int, step: int, steps: int) -> None: ...

    def on_epoch(self, metrics: dict[str, Any]) -> None: ...


class _Silent:
    def on_batch(self, epoch: int, step: int, steps: int) -> None:
        pass

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        pass


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    autocast: Callable[[], Any],
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on (x, y); returns (loss, logits), both still on the device (no sync).

    The same function serves training, ``ablate bench`` and the benchmark suite, so that what is
    benchmarked is what trains. The scaler is a no-op unless precision is fp16.
    """
    with autocast():
        out = model(x)
        loss = F.cross_entropy(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss, out


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: DeviceBatches, autocast: Any, num_classes: int, prefix: str = "val"
) -> dict[str, float]:
    """Mean cross-entropy, top-1 and (with more than 5 classes) top-5 accuracy over a split, in
    eval mode, as ``{prefix}_loss``, ``{prefix}_acc``, ``{prefix}_top5``."""
    model.eval()
    loss_sum = torch.zeros((), device=batches.device, dtype=torch.float64)
    top1 = torch.zeros((), device=batches.device, dtype=torch.int64)
    top5 = torch.zeros((), device=batches.device, dtype=torch.int64)
    for x, y in batches:
        with autocast():
            out = model(x)
        out = out.float()
        loss_sum += F.cross_entropy(out, y, reduction="sum")
        top1 += (out.argmax(1) == y).sum()
        if num_classes > 5:
            top5 += (out.topk(5, dim=1).indices == y[:, None]).any(1).sum()
    n = batches.n
    metrics = {f"{prefix}_loss": loss_sum.item() / n, f"{prefix}_acc": top1.item() / n}
    if num_classes > 5:
        metrics[f"{prefix}_top5"] = top5.item() / n
    return metrics


def train_epoch(
    run: Training,
    epoch: int,
    observer: TrainObserver | None = None,
    hooks: CellHooks | None = None,
    progress: EpochProgress | None = None,
) -> dict[str, Any]:
    """One pass over the training batches (or the rest of one, from a checkpoint's ``progress``).

    Returns the epoch's training loss and accuracy, its wall time (``train_time_s``, warm-up
    included, checkpoint saving excluded) and its timed part (``timed_images``,
    ``timed_seconds``: steps after the latest warm-up, between synchronized clock reads).
    Checkpoints are saved inside the epoch when ``hooks`` asks for them; a stop request saves
    one and raises :class:`Interrupted`.
    """
    observer = observer or _Silent()
    hooks = hooks or CellHooks()
    device, timer, batches = run.device, run.timer, run.train_batches
    run.model.train()
    if progress is None:
        progress = new_progress(run, epoch)
    else:  # replay the epoch's batch stream from its start
        batches.order_gen.set_state(progress.order_state)
        batches.aug_gen.set_state(progress.aug_state)
    steps, bs = len(batches), batches.batch_size
    last_save = time.perf_counter()
    images_before = run.epochs[-1]["images_seen"] if run.epochs else 0
    time_before = sum(e["train_time_s"] for e in run.epochs)

    def begin_stretch() -> float:
        sync(device)
        if run.done_steps >= run.timed_from:
            timer.start()
        return time.perf_counter()

    def end_stretch(started: float) -> None:
        images, seconds = timer.stop()
        progress.timed_images += images
        progress.timed_seconds += seconds
        sync(device)
        progress.wall_s += time.perf_counter() - started

    started = begin_stretch()
    for step, (x, y) in enumerate(batches):
        if step < progress.step:  # already trained on before the checkpoint
            continue
        try:
            loss, out = train_step(run.step_model, run.optimizer, run.scaler, run.autocast, x, y)
        except torch.OutOfMemoryError:
            raise CellOutOfMemory(f"out of memory at batch {run.done_steps + 1} on {device}") from None
        run.scheduler.step()
        # Running sums stay on the device: no host synchronization inside the epoch.
        progress.loss_sum += loss.detach() * y.shape[0]
        progress.hits += (out.detach().argmax(1) == y).sum()
        progress.step = step + 1
        run.done_steps += 1
        if run.done_steps > run.timed_from:
            timer.count(y.shape[0])
        if run.log_every and (progress.step % run.log_every == 0 or progress.step == steps):
            k = len(progress.log_points)
            progress.log_loss[k].copy_(progress.loss_sum)  # device-side copies: no sync
            progress.log_hits[k].copy_(progress.hits)
            progress.log_points.append(
                {
                    "step": run.done_steps,
                    "epoch": epoch,
                    "images": images_before + progress.step * bs,
                    "lr": run.scheduler.get_last_lr()[0],
                    # Host clock when the step was queued (on a GPU up to a few steps ahead of it).
                    "time_s": time_before + progress.wall_s + time.perf_counter() - started,
                }
            )
        observer.on_batch(epoch, step + 1, steps)
        if run.done_steps == run.timed_from:  # end of the warm-up (its progress update included)
            timer.start()
        # After the epoch's last step nothing is saved here: the end-of-epoch checkpoint follows
        # (and a stop request is honoured at the first step of the next epoch).
        if progress.step < steps:
            stop = hooks.should_stop()
            timed = (
                hooks.checkpoint is not None
                and hooks.checkpoint_every_s > 0
                and time.perf_counter() - last_save >= hooks.checkpoint_every_s
            )
            if stop and hooks.checkpoint is None:
                raise Interrupted(f"stopped in epoch {epoch} after step {progress.step}")
            if stop or timed:
                end_stretch(started)
                save_checkpoint(run, hooks, "stop" if stop else "timer", progress)
                if stop:
                    raise Interrupted(f"stopped in epoch {epoch} after step {progress.step}; checkpoint saved")
                last_save = started = begin_stretch()
    end_stretch(started)
    n = batches.images_per_epoch
    if progress.log_points:
        losses, hits = progress.log_loss.tolist(), progress.log_hits.tolist()
        prev_loss, prev_hits, prev_images = 0.0, 0, images_before
        for point, loss_cum, hit_cum in zip(progress.log_points, losses, hits):
            window = point["images"] - prev_images
            run.steps.append(
                {**point, "train_loss": (loss_cum - prev_loss) / window, "train_acc": (hit_cum - prev_hits) / window}
            )
            prev_loss, prev_hits, prev_images = loss_cum, hit_cum, point["images"]
    return {
        "train_loss": progress.loss_sum.item() / n,
        "train_acc": progress.hits.item() / n,
        "train_time_s": progress.wall_s,
        "timed_images": progress.timed_images,
        "timed_seconds": progress.timed_seconds,
        "images_seen": images_before + n,
    }


def train_cell(
    cell: Cell,
    splits: ImageSplits,
    device: torch.device,
    observer: TrainObserver | None = None,
    hooks: CellHooks | None = None,
) -> RunRecord:
    """Train ``cell`` on ``splits`` and return its record (status ``ok`` or ``diverged``).

    Exceptions (out of memory, a broken user-registered layer, ...) propagate; the runner turns
    them into ``failed`` records so that a sweep goes on. With ``hooks.checkpoint`` set, a
    checkpoint of this cell found there is resumed from (its record lists the resume under
    ``resumed``), and one is saved after every epoch and every ``hooks.checkpoint_every_s``.
    On the CPU a resumed cell trains with the thread count its checkpoint was saved with (one
    warning when that differs), and this process's count is restored afterwards.

    Throughput: the first :data:`ablate.train.setup.WARMUP_STEPS` optimizer steps of the run (and of each resume)
    are not timed (when the run has more steps than that); every later training step is, between
    device-synchronized clock reads, from the end of the previous step (or the start of the
    epoch) to the end of the epoch's last step. Evaluation, checkpoint saving, the per-epoch
    ``.item()`` reads and model building are outside.
    """
    threads = torch.get_num_threads()
    try:
        return _train_cell(cell, splits, device, observer or _Silent(), hooks or CellHooks())
    finally:  # a resume may have switched to the checkpoint's thread count for this cell only
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _train_cell(
    cell: Cell, splits: ImageSplits, device: torch.device, observer: TrainObserver, hooks: CellHooks
) -> RunRecord:
    train = cell.train
    run, progress = resume(prepare(cell, splits, device), cell, splits, device, hooks)
    steps = len(run.train_batches)
    status, error = "ok", None
    first = run.epochs[-1]["epoch"] + 1 if run.epochs else 1
    for epoch in range(first, train.epochs + 1):
        # An epoch resumed from a checkpoint also cost the training time before it.
        epoch_start = time.perf_counter() - (progress.wall_s if epoch == first and progress is not None else 0.0)
        done = train_epoch(run, epoch, observer, hooks, progress if epoch == first else None)
        if not math.isfinite(done["train_loss"]):
            status, error = "diverged", f"non-finite training loss in epoch {epoch}"
            break
        metrics: EpochMetrics = {
            "epoch": epoch,
            "lr": run.scheduler.get_last_lr()[0],
            "train_loss": done["train_loss"],
            "train_acc": done["train_acc"],
        }
        try:
            metrics.update(evaluate(run.step_model, run.val_batches, run.autocast, splits.num_classes))
            metrics.update(
                evaluate(run.step_model, run.train_eval_batches, run.autocast, splits.num_classes, "train_eval")
            )
        except torch.OutOfMemoryError:
            raise CellOutOfMemory(f"out of memory at batch {run.done_steps} on {device} (evaluation)") from None
        if not math.isfinite(metrics["val_loss"]):
            status, error = "diverged", f"non-finite validation loss in epoch {epoch}"
            break
        metrics["epoch_time_s"] = time.perf_counter() - epoch_start
        # All training steps of the epoch, warm-up included (what the epoch cost)...
        metrics["train_time_s"] = done["train_time_s"]
        # ...and the steady-state rate over its timed steps (all of them when none came after
        # the warm-up, as in a one-epoch run shorter than the warm-up plus one step).
        if done["timed_seconds"] > 0:
            metrics["timed_steps"] = done["timed_images"] // train.batch_size
            metrics["train_images_per_s"] = done["timed_images"] / done["timed_seconds"]
        else:
            metrics["timed_steps"] = steps
            metrics["train_images_per_s"] = run.train_batches.images_per_epoch / done["train_time_s"]
        metrics["images_seen"] = done["images_seen"]
        metrics["peak_memory_mb"] = peak_memory_mb(device)
        run.epochs.append(metrics)
        observer.on_epoch(metrics)
        if hooks.checkpoint is not None:
            save_checkpoint(run, hooks, "epoch", None)

    data = {
        "classes": splits.classes,
        "train_images": splits.train_x.shape[0],
        "val_images": splits.val_x.shape[0],
        "input_size": splits.train_x.shape[-1],
        "mean": list(splits.mean),
        "std": list(splits.std),
        "info": splits.info,
        "resident_on_device": run.train_batches.resident,
    }
    runtime = {
        "precision": run.precision,
        "channels_last": train.channels_last,
        "compile": train.compile,
        **run.backend,
        "deterministic": train.deterministic,
        # CPU results depend on the thread count (it changes the order of float sums).
        "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "warmup_steps_untimed": run.warmup,
        "timed_steps": run.timer.images // train.batch_size,
        "train_images_per_s": run.timer.images_per_s,
        "peak_memory_mb": peak_memory_mb(device),
        "peak_memory_kind": peak_memory_kind(device),
        "log_every": run.log_every,
        "checkpoints_saved": run.checkpoints,
        "checkpoint_s": run.checkpoint_s,
    }
    return build_record(
        identity_of(cell),
        status=status,
        error=error,
        params=count_params(run.model),
        data=data,
        runtime=runtime,
        epochs=run.epochs,
        steps=run.steps,
        resumed=run.resumed,
        summary=summarize(run.epochs),
    )
