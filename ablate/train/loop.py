"""Train one cell (variant x seed x settings), or K cells of one variant fused into one model, and
return their run records: the training loop.

The loop follows airbench: data already on the device, batches from a seeded permutation, no
host synchronization inside the epoch (losses and hit counts accumulate on the device and are
read once per epoch). Throughput is timed around training steps only, after the run's first
``prepare.WARMUP_STEPS`` steps, with the device synchronized before each clock read (:mod:`ablate.runtime.clock`);
evaluation is timed separately. :func:`train_step` is the single definition of an optimizer step,
shared with ``ablate bench`` and the benchmark suite. Setting a training up is :mod:`ablate.train.setup`'s
job, checkpoints and resuming :mod:`ablate.train.resume`'s, fusing :mod:`ablate.train.fused`'s, the
record's shape :mod:`ablate.store.record`'s.

One loop serves both: a solo run is a training of one member. Every per-member quantity (loss and
hit sums, log points, epochs, records) is kept per member; a fused step feeds each member its own
batch (its own data order and augmentation) and the loss is the sum of the members' mean losses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ablate.data import ImageSplits
from ablate.experiment.experiment import Cell
from ablate.models.fused import member_state_dict, stack_states
from ablate.runtime.clock import sync
from ablate.runtime.memory import peak_memory_kind, peak_memory_mb
from ablate.store import checkpoints as checkpoint
from ablate.store.record import EpochMetrics, RunRecord, build_record, identity_of, summarize
from ablate.train.fused import load_member_optimizer_states, member_optimizer_state, resume_groups, why_not_fused
from ablate.train.hooks import CellHooks
from ablate.train.resume import load_states, note_resume, restore, save_checkpoint
from ablate.train.setup import (
    EpochProgress,
    Group,
    Member,
    Training,
    assemble,
    build_models,
    new_progress,
    prepare_group,
)


class Interrupted(Exception):
    """Training stopped on request (Ctrl-C, a lost claim) after saving a checkpoint."""


class CellOutOfMemory(RuntimeError):
    """The device ran out of memory; ``str()`` says at which batch, for the record."""


class TrainObserver(Protocol):
    """Progress hooks; called from the training loop, never required to do anything. A fused
    group calls ``on_batch`` once per step (of all members) and ``on_epoch`` once per member."""

    def on_batch(self, epoch: int, step: int, steps: int) -> None: ...

    def on_epoch(self, metrics: dict[str, Any]) -> None: ...


class _Silent:
    def on_batch(self, epoch: int, step: int, steps: int) -> None:
        pass

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        pass


def _wide(out: torch.Tensor) -> torch.Tensor:
    """Logits for the loss: float32, or wider when the model computes wider (a float64 test)."""
    return out if out.dtype == torch.float64 else out.float()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    autocast: Callable[[], Any],
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on (x, y); returns (loss, logits), both still on the device (no sync).

    Solo: ``y`` holds N labels, the loss is their mean. Fused (``ablate.models.fused``): ``y`` is
    K x N, member k's labels in row k; ``x`` holds member k's images in its block of channels, the
    logits come back K x N x classes, and the loss returned is each member's mean (K values),
    whose sum is what is differentiated, so that each member's gradient is its solo run's.

    The same function serves training, ``ablate bench`` and the benchmark suite, so that what is
    benchmarked is what trains. The scaler is a no-op unless precision is fp16 (never fused).
    """
    with autocast():
        out = model(x)
        if y.dim() == 1:
            loss = F.cross_entropy(_wide(out), y)
        else:
            loss = torch.stack([F.cross_entropy(_wide(out[k]), y[k]) for k in range(y.shape[0])])
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss if loss.dim() == 0 else loss.sum()).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss, out


def _group_batches(run: Training, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of ``split`` (train | val | train_eval) for the model: a solo run's own; for a
    fused model each member's batch in its block of channels and its labels in its row (K x N),
    or, where all members evaluate the same split, that split's batch once with its N labels."""
    sources = [getattr(m, f"{split}_batches") for m in run.members]
    if not run.fused or (split != "train" and all(b is sources[0] for b in sources[1:])):
        yield from sources[0]
        return
    layout = torch.channels_last if run.train.channels_last else torch.contiguous_format
    for pairs in zip(*sources):
        yield torch.cat([x for x, _ in pairs], 1).contiguous(memory_format=layout), torch.stack([y for _, y in pairs])


def _per_member(run: Training, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits as K x N x classes and labels as K x N, for a solo or a fused model."""
    k = len(run.members)
    if not run.fused:
        out = out[None]
    return out, (y if y.dim() == 2 else y.expand(k, -1))


@torch.no_grad()
def evaluate(run: Training, split: str = "val") -> list[dict[str, float]]:
    """Per member: mean cross-entropy, top-1 and (with more than 5 classes) top-5 accuracy over
    ``split`` (val | train_eval), in eval mode, as ``{split}_loss``, ``{split}_acc``, ``{split}_top5``."""
    run.step_model.eval()
    k, device = len(run.members), run.device
    num_classes = run.members[0].splits.num_classes
    loss_sum = torch.zeros(k, device=device, dtype=torch.float64)
    top1 = torch.zeros(k, device=device, dtype=torch.int64)
    top5 = torch.zeros(k, device=device, dtype=torch.int64)
    for x, y in _group_batches(run, split):
        with run.autocast():
            out = run.step_model(x)
        out, y = _per_member(run, _wide(out), y)
        for i in range(k):
            loss_sum[i] += F.cross_entropy(out[i], y[i], reduction="sum")
        top1 += (out.argmax(-1) == y).sum(-1)
        if num_classes > 5:
            top5 += (out.topk(5, dim=-1).indices == y[..., None]).any(-1).sum(-1)
    n = getattr(run.members[0], f"{split}_batches").n
    losses, hits, hits5 = loss_sum.tolist(), top1.tolist(), top5.tolist()
    metrics = []
    for i in range(k):
        m = {f"{split}_loss": losses[i] / n, f"{split}_acc": hits[i] / n}
        if num_classes > 5:
            m[f"{split}_top5"] = hits5[i] / n
        metrics.append(m)
    return metrics


def train_epoch(
    run: Training,
    epoch: int,
    observer: TrainObserver | None = None,
    progress: EpochProgress | None = None,
) -> dict[str, Any]:
    """One pass over the training batches (or the rest of one, from a checkpoint's ``progress``).

    Returns each member's training loss and accuracy (``train_loss``, ``train_acc``: lists, one
    per member), the epoch's wall time (``train_time_s``, warm-up included, checkpoint saving
    excluded) and its timed part (``timed_images``, ``timed_seconds``: a member's images in the
    steps after the latest warm-up, between synchronized clock reads). Checkpoints are saved
    inside the epoch when the members' hooks ask for them; a stop request saves them and raises
    :class:`Interrupted`.
    """
    observer = observer or _Silent()
    members, device, timer = run.members, run.device, run.timer
    first = members[0]
    run.model.train()
    if progress is None:
        progress = new_progress(run, epoch)
    else:  # replay the epoch's batch streams from its start
        for member, order, aug in zip(members, progress.order_states, progress.aug_states):
            member.train_batches.order_gen.set_state(order.cpu())
            member.train_batches.aug_gen.set_state(aug.cpu())
    steps, bs = len(first.train_batches), first.train_batches.batch_size
    every_s = first.hooks.checkpoint_every_s
    last_save = time.perf_counter()
    images_before = first.epochs[-1]["images_seen"] if first.epochs else 0
    time_before = sum(e["train_time_s"] for e in first.epochs)

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
    for step, (x, y) in enumerate(_group_batches(run, "train")):
        if step < progress.step:  # already trained on before the checkpoint
            continue
        try:
            loss, out = train_step(run.step_model, run.optimizer, run.scaler, run.autocast, x, y)
        except torch.OutOfMemoryError:
            raise CellOutOfMemory(f"out of memory at batch {run.done_steps + 1} on {device}{_of_group(run)}") from None
        run.scheduler.step()
        out, y = _per_member(run, out.detach(), y)
        # Running sums stay on the device: no host synchronization inside the epoch.
        progress.loss_sum += loss.detach().reshape(-1) * y.shape[-1]
        progress.hits += (out.argmax(-1) == y).sum(-1)
        progress.step = step + 1
        run.done_steps += 1
        if run.done_steps > run.timed_from:
            timer.count(y.shape[-1])
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
            stop = any([m.hooks.should_stop() for m in members])  # (each asked: a poll may do work)
            saving = any(m.hooks.checkpoint is not None for m in members)
            timed = saving and every_s > 0 and time.perf_counter() - last_save >= every_s
            if stop and not saving:
                raise Interrupted(f"stopped in epoch {epoch} after step {progress.step}")
            if stop or timed:
                end_stretch(started)
                save_checkpoint(run, "stop" if stop else "timer", progress)
                if stop:
                    raise Interrupted(f"stopped in epoch {epoch} after step {progress.step}; checkpoint saved")
                last_save = started = begin_stretch()
    end_stretch(started)
    n = first.train_batches.images_per_epoch
    if progress.log_points:
        losses, hits = progress.log_loss.tolist(), progress.log_hits.tolist()
        for i, member in enumerate(members):
            prev_loss, prev_hits, prev_images = 0.0, 0, images_before
            for point, loss_cum, hit_cum in zip(progress.log_points, losses, hits):
                window = point["images"] - prev_images
                member.steps.append(
                    {
                        **point,
                        "train_loss": (loss_cum[i] - prev_loss) / window,
                        "train_acc": (hit_cum[i] - prev_hits) / window,
                    }
                )
                prev_loss, prev_hits, prev_images = loss_cum[i], hit_cum[i], point["images"]
    return {
        "train_loss": [v / n for v in progress.loss_sum.tolist()],
        "train_acc": [v / n for v in progress.hits.tolist()],
        "train_time_s": progress.wall_s,
        "timed_images": progress.timed_images,
        "timed_seconds": progress.timed_seconds,
        "images_seen": images_before + n,
    }


def _of_group(run: Training) -> str:
    return f" (fused group of {len(run.members)})" if run.fused else ""


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
    return train_group([cell], [splits], device, observer, [hooks or CellHooks()])[0]


def train_group(
    cells: Sequence[Cell],
    splits: Sequence[ImageSplits],
    device: torch.device,
    observer: TrainObserver | None = None,
    hooks: Sequence[CellHooks] | None = None,
) -> list[RunRecord]:
    """Train K cells of one variant that share everything but the seed as one fused model, and
    return their records in the order of ``cells`` (each as :func:`train_cell` would return it,
    plus ``runtime.fused``: the group's id, K, the member's place). One cell is a solo run.

    ``splits[i]`` and ``hooks[i]`` are cell i's (the same splits object for all, unless
    ``data.resample`` draws one per seed). Each member checkpoints into its own
    ``hooks[i].checkpoint`` and resumes from it (:mod:`ablate.train.fused` says how resumed
    members regroup); a member whose loss turns non-finite is recorded ``diverged`` at that
    epoch, as its solo run would be, handed to its ``hooks[i].on_finish`` at once, and the
    others go on without it. A stop asked by any member stops the group (checkpoints saved) with
    :class:`Interrupted`. Cells whose model cannot be fused (a layer without a fused form, fp16)
    train one after the other, with one warning saying why.
    """
    if len(splits) != len(cells):
        raise ValueError(f"{len(cells)} cells need as many splits, got {len(splits)}")
    hooks = list(hooks) if hooks is not None else [CellHooks() for _ in cells]
    threads = torch.get_num_threads()
    try:
        return _train_group(list(cells), list(splits), device, observer or _Silent(), hooks)
    finally:  # a resume may have switched to the checkpoint's thread count for this training only
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _train_group(
    cells: list[Cell], splits: list[ImageSplits], device: torch.device, observer: TrainObserver, hooks: list[CellHooks]
) -> list[RunRecord]:
    if len(cells) > 1:
        reason = why_not_fused(cells, splits[0].num_classes, device)
        if reason is not None:
            hooks[0].warn(f"{cells[0].variant.slug()}: {len(cells)} seeds trained one by one, not fused: {reason}")
            return [_train_group([c], [s], device, observer, [h])[0] for c, s, h in zip(cells, splits, hooks)]
    states = load_states(cells, hooks, device)
    records: list[RunRecord | None] = [None] * len(cells)
    for part in resume_groups(states):
        run, progress = _start(*([items[i] for i in part] for items in (cells, splits, hooks, states)), device)
        for i, record in zip(part, _train(run, progress, observer)):
            records[i] = record
    return records  # type: ignore[return-value]


def _start(
    cells: list[Cell],
    splits: list[ImageSplits],
    hooks: list[CellHooks],
    states: list[dict[str, Any] | None],
    device: torch.device,
) -> tuple[Training, EpochProgress | None]:
    """The training of ``cells`` (one group of :func:`~ablate.train.fused.resume_groups`), put back
    where their checkpoints left it if they have some."""
    saved = states[0]
    fused = saved.get("fused") if saved is not None else None
    group = Group(fused["group"], fused["k"]) if fused else None
    run = prepare_group(cells, splits, device, hooks, group)
    if saved is None:
        return run, None
    try:
        progress = restore(run, states)  # type: ignore[arg-type]
    except (checkpoint.CheckpointError, KeyError, TypeError, ValueError, RuntimeError) as e:
        for hook in hooks:
            hook.warn(
                f"{hook.checkpoint}: unusable checkpoint ({type(e).__name__}: {e})".splitlines()[0]
                + "; training this cell from the start"
            )
        # A half-restored run is not trustworthy: rebuild it from scratch (same seeds, same start).
        return prepare_group(cells, splits, device, hooks), None
    saved_threads = saved.get("cpu_threads")
    if device.type == "cpu" and isinstance(saved_threads, int) and saved_threads != torch.get_num_threads():
        # Same thread count, same order of float sums: the resumed run stays bit-identical
        # to an uninterrupted one, and its record's cpu_threads is true of every step.
        hooks[0].warn(
            f"{hooks[0].checkpoint}: resuming with {saved_threads} CPU thread(s), as the checkpoint was saved with "
            f"(not {torch.get_num_threads()}): CPU results depend on the thread count"
        )
        torch.set_num_threads(saved_threads)
    note_resume(run, progress)
    return run, progress


def _train(run: Training, progress: EpochProgress | None, observer: TrainObserver) -> list[RunRecord]:
    """Train a prepared (perhaps restored) training to the end; each member's record, in member order."""
    train, device = run.train, run.device
    steps = len(run.members[0].train_batches)
    records: dict[str, RunRecord] = {}
    order = [m.run_id for m in run.members]
    first = run.members[0].epochs[-1]["epoch"] + 1 if run.members[0].epochs else 1
    for epoch in range(first, train.epochs + 1):
        # An epoch resumed from a checkpoint also cost the training time before it.
        epoch_start = time.perf_counter() - (progress.wall_s if epoch == first and progress is not None else 0.0)
        done = train_epoch(run, epoch, observer, progress if epoch == first else None)
        diverged = {
            i: f"non-finite training loss in epoch {epoch}"
            for i, loss in enumerate(done["train_loss"])
            if not math.isfinite(loss)
        }
        metrics: list[EpochMetrics] = [
            {"epoch": epoch, "lr": run.scheduler.get_last_lr()[0], "train_loss": loss, "train_acc": acc}
            for loss, acc in zip(done["train_loss"], done["train_acc"])
        ]
        if len(diverged) < len(run.members):  # (a solo run that diverged is not evaluated)
            try:
                for split in ("val", "train_eval"):
                    for m, values in zip(metrics, evaluate(run, split)):
                        m.update(values)
            except torch.OutOfMemoryError:
                raise CellOutOfMemory(
                    f"out of memory at batch {run.done_steps} on {device}{_of_group(run)} (evaluation)"
                ) from None
            for i, m in enumerate(metrics):
                if i not in diverged and not math.isfinite(m["val_loss"]):
                    diverged[i] = f"non-finite validation loss in epoch {epoch}"
        for i, member in enumerate(run.members):
            if i in diverged:
                records[member.run_id] = _finish(run, member, "diverged", diverged[i])
                continue
            m = metrics[i]
            m["epoch_time_s"] = time.perf_counter() - epoch_start
            # All training steps of the epoch, warm-up included (what the epoch cost)...
            m["train_time_s"] = done["train_time_s"]
            # ...and the steady-state rate over its timed steps (all of them when none came after
            # the warm-up, as in a one-epoch run shorter than the warm-up plus one step).
            if done["timed_seconds"] > 0:
                m["timed_steps"] = done["timed_images"] // train.batch_size
                m["train_images_per_s"] = done["timed_images"] / done["timed_seconds"]
            else:
                m["timed_steps"] = steps
                m["train_images_per_s"] = member.train_batches.images_per_epoch / done["train_time_s"]
            m["images_seen"] = done["images_seen"]
            m["peak_memory_mb"] = peak_memory_mb(device)
            member.epochs.append(m)
            observer.on_epoch(m)
        if diverged:
            run = _without(run, set(diverged))
            if not run.members:
                break
        save_checkpoint(run, "epoch", None)
    for member in run.members:
        records[member.run_id] = _finish(run, member, "ok", None)
    return [records[run_id] for run_id in order]


def _without(run: Training, gone: set[int]) -> Training:
    """The training of the members not in ``gone`` (members that diverged): a fused model of the
    rest, carrying on from where every one of them is (weights, optimizer state, schedule)."""
    keep = [i for i in range(len(run.members)) if i not in gone]
    if not keep or not run.fused:
        run.members = [run.members[i] for i in keep]
        return run
    k = len(run.members)
    models_state = [member_state_dict(run.model, i) for i in keep]
    optimizer_state = [member_optimizer_state(run.optimizer, i, k) for i in keep]
    members = [run.members[i] for i in keep]
    with torch.random.fork_rng(devices=[]):
        models = build_models([m.cell for m in members], members[0].splits.num_classes)
    rest = assemble(models, members, run.device, run.group, fuse=True)
    rest.model.load_state_dict(stack_states(models_state, rest.model.state_dict()))
    load_member_optimizer_states(rest.optimizer, optimizer_state)
    rest.scheduler.load_state_dict(run.scheduler.state_dict())
    rest.scaler.load_state_dict(run.scaler.state_dict())
    rest.done_steps, rest.warmup, rest.timed_from, rest.timer = run.done_steps, run.warmup, run.timed_from, run.timer
    return rest


def _finish(run: Training, member: Member, status: str, error: str | None) -> RunRecord:
    """Member's run record, as its solo run's (plus ``runtime.fused``), handed to its ``on_finish``."""
    train, device, splits = run.train, run.device, member.splits
    data = {
        "classes": splits.classes,
        "train_images": splits.train_x.shape[0],
        "val_images": splits.val_x.shape[0],
        "input_size": splits.train_x.shape[-1],
        "mean": list(splits.mean),
        "std": list(splits.std),
        "info": splits.info,
        "resident_on_device": member.train_batches.resident,
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
        "checkpoints_saved": member.checkpoints,
        "checkpoint_s": member.checkpoint_s,
    }
    if run.group is not None:  # where it was fused (K: the members the group formed with)
        runtime["fused"] = {"group": run.group.id, "k": run.group.k, "member": member.index}
    record = build_record(
        identity_of(member.cell),
        status=status,
        error=error,
        params=run.params,
        data=data,
        runtime=runtime,
        epochs=member.epochs,
        steps=member.steps,
        resumed=member.resumed,
        summary=summarize(member.epochs),
    )
    if member.hooks.on_finish is not None:
        member.hooks.on_finish(record)
    return record
