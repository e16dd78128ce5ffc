"""Train one cell (variant x seed x settings) and return its result record.

The loop follows airbench: data already on the device, batches from a seeded permutation, no
host synchronization inside the epoch (losses and hit counts accumulate on the device and are
read once per epoch). Throughput is timed around training steps only, after the run's first
``WARMUP_STEPS`` steps, with the device synchronized before each clock read; evaluation is timed
separately. :func:`train_step` is the single definition of an optimizer step, shared with
``ablate bench`` and the benchmark suite.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ablate import checkpoint
from ablate.config import TrainConfig
from ablate.data import ImageSplits
from ablate.data.loader import DeviceBatches
from ablate.experiment import Cell
from ablate.memory import peak_memory_kind, peak_memory_mb, reset_peak_memory
from ablate.models import build_model, count_params
from ablate.precision import autocast_for
from ablate.record import FORMAT_VERSION
from ablate.seeding import seed_everything
from ablate.variant import Variant

# Steps at the start of a run (and after each resume) left out of the throughput figure: they
# include cuDNN autotuning, torch.compile and allocator warm-up, which say nothing about
# steady-state speed.
WARMUP_STEPS = 3
# Step-level points per epoch when [train] log_every is left out.
LOG_POINTS_PER_EPOCH = 20


class Interrupted(Exception):
    """Training stopped on request (Ctrl-C, a lost claim) after saving a checkpoint."""


class CellOutOfMemory(RuntimeError):
    """The device ran out of memory; ``str()`` says at which batch, for the record."""


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


class DeviceError(ValueError):
    """The requested device does not exist here; one line for users."""


class TrainObserver(Protocol):
    """Progress hooks; called from the training loop, never required to do anything."""

    def on_batch(self, epoch: int, step: int, steps: int) -> None: ...

    def on_epoch(self, metrics: dict[str, Any]) -> None: ...


class _Silent:
    def on_batch(self, epoch: int, step: int, steps: int) -> None:
        pass

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        pass


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU) | ``cpu`` | ``cuda`` | ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DeviceError(f"unknown device {spec!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} asked for, but this machine has no CUDA device (use --device cpu or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {spec!r} asked for, but this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}")
        return torch.device("cuda", device.index or 0)
    if device.type != "cpu":
        raise DeviceError(f"unsupported device {spec!r}; expected auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(train: TrainConfig, device: torch.device) -> str:
    if train.precision != "auto":
        return train.precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def make_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer, with PyTorch's fused kernels: same update rule, one kernel for all
    parameters instead of several per tensor (7x faster Adam steps for AlexNet-65 on a CPU)."""
    if train.optimizer == "sgd":
        cls, kwargs = torch.optim.SGD, {"momentum": train.momentum}
    elif train.optimizer == "adam":
        cls, kwargs = torch.optim.Adam, {}
    elif train.optimizer == "adamw":
        cls, kwargs = torch.optim.AdamW, {}
    else:
        raise ValueError(f"unknown optimizer {train.optimizer!r}")
    try:
        return cls(model.parameters(), lr=train.lr, weight_decay=train.weight_decay, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # no fused kernel for this device or torch version
        return cls(model.parameters(), lr=train.lr, weight_decay=train.weight_decay, **kwargs)


def lr_factor(train: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at a given optimizer step (warm-up x schedule)."""
    total = train.epochs * steps_per_epoch

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / train.warmup_steps) if train.warmup_steps else 1.0
        if train.schedule == "step":
            return warm * train.gamma ** ((step // steps_per_epoch) // train.step_epochs)
        if train.schedule == "cosine":
            return warm * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        return warm

    return factor


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it means what it says."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def train_eval_subset(splits: ImageSplits, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed sample of training images, as many as the validation split has, chosen by the data
    seed only: the same images for every variant and run seed. Evaluated in eval mode after each
    epoch, it gives a training accuracy free of dropout and augmentation, so that the
    generalization gap compares like with like."""
    n = min(splits.train_x.shape[0], splits.val_x.shape[0])
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(splits.train_x.shape[0], generator=g)[:n].sort().values
    return splits.train_x[idx], splits.train_y[idx]


def apply_speed_settings(train: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Set the process-wide backend flags a run asks for; returns what is in force, for the record."""
    settings: dict[str, Any] = {"cudnn_benchmark": None, "tf32_conv": None, "tf32_matmul": None}
    if device.type == "cuda":
        # Autotuning picks the fastest conv algorithm per shape in the first steps (left out of
        # the timing); the choice can differ between runs, so it is off for deterministic runs.
        torch.backends.cudnn.benchmark = train.cudnn_benchmark and not train.deterministic
        settings["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
        # PyTorch's defaults (TF32 convolutions on, TF32 matmuls off) are left alone but recorded:
        # they decide what "fp32" means on Ampere and later GPUs.
        settings["tf32_conv"] = bool(torch.backends.cudnn.allow_tf32)
        settings["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return settings


class StepTimer:
    """Clock for training steps: ``start()``, ``count(images)`` after each timed step, ``stop()``.

    Both clock reads follow a device synchronization, so queued GPU work is inside the stretch it
    belongs to. Stretches accumulate over the run (epochs are timed separately, evaluation sits
    between them untimed).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.images, self.seconds = 0, 0.0
        self._start: float | None = None
        self._pending = 0

    def start(self) -> None:
        sync(self.device)
        self._start, self._pending = time.perf_counter(), 0

    def count(self, images: int) -> None:
        self._pending += images

    def stop(self) -> tuple[int, float]:
        """End the current stretch; returns its (images, seconds), (0, 0.0) if it timed no step."""
        if self._start is None:
            return 0, 0.0
        sync(self.device)
        seconds = time.perf_counter() - self._start
        images, self._start = self._pending, None
        if images == 0:
            return 0, 0.0
        self.images += images
        self.seconds += seconds
        return images, seconds

    @property
    def images_per_s(self) -> float | None:
        return self.images / self.seconds if self.seconds > 0 else None


@dataclass
class Training:
    """Everything one cell's training needs, built by :func:`prepare`; :func:`train_epoch` runs it."""

    model: nn.Module
    # The module the loop calls: ``model`` itself, or its torch.compile wrapper.
    step_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    autocast: Callable[[], Any]
    train_batches: DeviceBatches
    val_batches: DeviceBatches
    # A fixed training sample evaluated like the validation split (see train_eval_subset).
    train_eval_batches: DeviceBatches
    device: torch.device
    precision: str
    # Steps left out of the timing so far (the run's warm-up, and again after each resume).
    warmup: int
    timer: StepTimer
    # Backend flags in force (cuDNN autotuning, TF32), for the record.
    backend: dict[str, Any]
    # The cell's run id (names its checkpoint).
    run_id: str = ""
    # Optimizer steps taken so far in the run.
    done_steps: int = 0
    # Timing starts once done_steps reaches this (the end of the latest warm-up).
    timed_from: int = 0
    # Steps between step-level log points (0: none).
    log_every: int = 0
    # Finished epochs' metrics, and the step-level points so far.
    epochs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    # Mid-cell resumes from a checkpoint (epoch, step, when).
    resumed: list[dict[str, Any]] = field(default_factory=list)
    # Seconds spent saving checkpoints, and how many (kept out of every training time).
    checkpoint_s: float = 0.0
    checkpoints: int = 0


def build_for_device(
    variant: Variant, num_classes: int, device: torch.device, channels_last: bool, compile: str
) -> tuple[nn.Module, nn.Module]:
    """The variant's model on ``device`` in the chosen memory layout, and the module a loop
    calls: the model itself, or its ``torch.compile`` wrapper (``compile``: off | default |
    max-autotune). Training and ``ablate bench`` build models only through this."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(variant, num_classes).to(device=device, memory_format=memory_format)
    step_model = model if compile == "off" else torch.compile(model, mode=None if compile == "default" else compile)
    return model, step_model


def _log_every(train: TrainConfig, steps_per_epoch: int) -> int:
    if train.log_every is not None:
        return train.log_every
    return max(1, steps_per_epoch // LOG_POINTS_PER_EPOCH)


def prepare(cell: Cell, splits: ImageSplits, device: torch.device) -> Training:
    """Seed, set the speed flags, build the model, optimizer and batch iterators for ``cell``."""
    train = cell.train
    seed_everything(cell.seed, train.deterministic)
    backend = apply_speed_settings(train, device)
    reset_peak_memory(device)
    precision = resolve_precision(train, device)
    model, step_model = build_for_device(cell.variant, splits.num_classes, device, train.channels_last, train.compile)
    optimizer = make_optimizer(model, train)
    train_batches = DeviceBatches(
        splits.train_x, splits.train_y, splits.mean, splits.std, device, train.batch_size,
        shuffle=True, drop_last=True, seed=cell.seed, augment=cell.data.augment, channels_last=train.channels_last,
    )
    val_batches = DeviceBatches(
        splits.val_x, splits.val_y, splits.mean, splits.std, device, train.eval_batch_size,
        channels_last=train.channels_last,
    )
    train_eval_batches = DeviceBatches(
        *train_eval_subset(splits, cell.data.seed), splits.mean, splits.std, device, train.eval_batch_size,
        channels_last=train.channels_last,
    )
    steps = len(train_batches)
    # Warm-up: cuDNN autotuning, torch.compile and allocator growth happen in the first steps and
    # say nothing about steady-state speed. A run too short to have steps after it is timed whole.
    warmup = WARMUP_STEPS if train.epochs * steps > WARMUP_STEPS else 0
    return Training(
        model=model,
        step_model=step_model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(train, steps)),
        scaler=torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
        autocast=autocast_for(precision, device),
        train_batches=train_batches,
        val_batches=val_batches,
        train_eval_batches=train_eval_batches,
        device=device,
        precision=precision,
        warmup=warmup,
        timer=StepTimer(device),
        backend=backend,
        run_id=cell.run_id,
        timed_from=warmup,
        log_every=_log_every(train, steps),
    )


@dataclass
class _EpochProgress:
    """Where training is inside one epoch: what a mid-epoch checkpoint must hold to continue."""

    epoch: int
    # The data-order and augmentation generators as they were when the epoch began: a resume
    # replays the epoch's batch stream from them and skips the batches already trained on.
    order_state: torch.Tensor
    aug_state: torch.Tensor
    loss_sum: torch.Tensor  # running sums on the device (no host synchronization)
    hits: torch.Tensor
    step: int = 0  # steps done in this epoch
    wall_s: float = 0.0  # training wall time of the epoch before the current stretch
    timed_images: int = 0  # the epoch's timed part before the current stretch
    timed_seconds: float = 0.0
    # Cumulative loss and hit sums at each log point of the epoch (on the device), and the
    # host-side facts of each point; turned into record["steps"] once, at the end of the epoch.
    log_loss: torch.Tensor | None = None
    log_hits: torch.Tensor | None = None
    log_points: list[dict[str, Any]] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _new_progress(run: Training, epoch: int) -> _EpochProgress:
    device, steps = run.device, len(run.train_batches)
    points = -(-steps // run.log_every) if run.log_every else 0
    return _EpochProgress(
        epoch=epoch,
        order_state=run.train_batches.order_gen.get_state(),
        aug_state=run.train_batches.aug_gen.get_state(),
        loss_sum=torch.zeros((), device=device, dtype=torch.float64),
        hits=torch.zeros((), device=device, dtype=torch.int64),
        log_loss=torch.zeros(points, device=device, dtype=torch.float64) if points else None,
        log_hits=torch.zeros(points, device=device, dtype=torch.int64) if points else None,
    )


def train_epoch(
    run: Training,
    epoch: int,
    observer: TrainObserver | None = None,
    hooks: CellHooks | None = None,
    progress: _EpochProgress | None = None,
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
        progress = _new_progress(run, epoch)
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
            progress.log_points.append({
                "step": run.done_steps, "epoch": epoch, "images": images_before + progress.step * bs,
                "lr": run.scheduler.get_last_lr()[0],
                # Host clock when the step was queued (on a GPU up to a few steps ahead of it).
                "time_s": time_before + progress.wall_s + time.perf_counter() - started,
            })
        observer.on_batch(epoch, step + 1, steps)
        if run.done_steps == run.timed_from:  # end of the warm-up (its progress update included)
            timer.start()
        # After the epoch's last step nothing is saved here: the end-of-epoch checkpoint follows
        # (and a stop request is honoured at the first step of the next epoch).
        if progress.step < steps:
            stop = hooks.should_stop()
            timed = (hooks.checkpoint is not None and hooks.checkpoint_every_s > 0
                     and time.perf_counter() - last_save >= hooks.checkpoint_every_s)
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
            run.steps.append({**point, "train_loss": (loss_cum - prev_loss) / window, "train_acc": (hit_cum - prev_hits) / window})
            prev_loss, prev_hits, prev_images = loss_cum, hit_cum, point["images"]
    return {
        "train_loss": progress.loss_sum.item() / n,
        "train_acc": progress.hits.item() / n,
        "train_time_s": progress.wall_s,
        "timed_images": progress.timed_images,
        "timed_seconds": progress.timed_seconds,
        "images_seen": images_before + n,
    }


def save_checkpoint(run: Training, hooks: CellHooks, why: str, progress: _EpochProgress | None) -> None:
    """Checkpoint everything the rest of the run depends on (see :mod:`ablate.checkpoint`)."""
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


def _restore(run: Training, state: dict[str, Any], total_steps: int) -> _EpochProgress | None:
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
    return _EpochProgress(**progress) if progress is not None else None


def train_cell(
    cell: Cell,
    splits: ImageSplits,
    device: torch.device,
    observer: TrainObserver | None = None,
    hooks: CellHooks | None = None,
) -> dict[str, Any]:
    """Train ``cell`` on ``splits`` and return its record (status ``ok`` or ``diverged``).

    Exceptions (out of memory, a broken user-registered layer, ...) propagate; the runner turns
    them into ``failed`` records so that a sweep goes on. With ``hooks.checkpoint`` set, a
    checkpoint of this cell found there is resumed from (its record lists the resume under
    ``resumed``), and one is saved after every epoch and every ``hooks.checkpoint_every_s``.
    On the CPU a resumed cell trains with the thread count its checkpoint was saved with (one
    warning when that differs), and this process's count is restored afterwards.

    Throughput: the first :data:`WARMUP_STEPS` optimizer steps of the run (and of each resume)
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


def _train_cell(cell: Cell, splits: ImageSplits, device: torch.device, observer: TrainObserver,
                hooks: CellHooks) -> dict[str, Any]:
    train = cell.train
    run, progress = _resume(prepare(cell, splits, device), cell, splits, device, hooks)
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
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "lr": run.scheduler.get_last_lr()[0],
            "train_loss": done["train_loss"],
            "train_acc": done["train_acc"],
        }
        try:
            metrics.update(evaluate(run.step_model, run.val_batches, run.autocast, splits.num_classes))
            metrics.update(evaluate(run.step_model, run.train_eval_batches, run.autocast, splits.num_classes, "train_eval"))
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

    return {
        "format": FORMAT_VERSION,
        "run_id": cell.run_id,
        "experiment": cell.experiment,
        "variant": cell.variant.axes(),
        "slug": cell.variant.slug(),
        "seed": cell.seed,
        "status": status,
        "error": error,
        "config": cell.config(),
        "params": count_params(run.model),
        "data": {
            "classes": splits.classes,
            "train_images": splits.train_x.shape[0],
            "val_images": splits.val_x.shape[0],
            "input_size": splits.train_x.shape[-1],
            "mean": list(splits.mean),
            "std": list(splits.std),
            "info": splits.info,
            "resident_on_device": run.train_batches.resident,
        },
        "runtime": {
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
        },
        "epochs": run.epochs,
        "steps": run.steps,
        "resumed": run.resumed,
        "summary": summarize(run.epochs),
    }


def _resume(
    run: Training, cell: Cell, splits: ImageSplits, device: torch.device, hooks: CellHooks
) -> tuple[Training, _EpochProgress | None]:
    """Load this cell's checkpoint into ``run`` if there is a usable one; warn about one that is
    not and go on without it. Returns the run to train and its unfinished epoch, if any."""
    if hooks.checkpoint is None:
        return run, None
    try:
        state = checkpoint.load(hooks.checkpoint, cell.run_id, device)
        if state is None:
            return run, None
        progress = _restore(run, state, cell.train.epochs * len(run.train_batches))
        saved_threads = state.get("cpu_threads")
        if device.type == "cpu" and isinstance(saved_threads, int) and saved_threads != torch.get_num_threads():
            # Same thread count, same order of float sums: the resumed run stays bit-identical
            # to an uninterrupted one, and its record's cpu_threads is true of every step.
            (hooks.on_warning or (lambda m: warnings.warn(m, stacklevel=3)))(
                f"{hooks.checkpoint}: resuming with {saved_threads} CPU thread(s), as the checkpoint was saved with "
                f"(not {torch.get_num_threads()}): CPU results depend on the thread count")
            torch.set_num_threads(saved_threads)
    except (checkpoint.CheckpointError, KeyError, TypeError, ValueError, RuntimeError) as e:
        message = str(e) if isinstance(e, checkpoint.CheckpointError) else f"{hooks.checkpoint}: unusable checkpoint ({type(e).__name__}: {e})"
        (hooks.on_warning or (lambda m: warnings.warn(m, stacklevel=3)))(message.splitlines()[0] + "; training this cell from the start")
        # A half-restored run is not trustworthy: rebuild it from scratch (same seed, same start).
        return prepare(cell, splits, device), None
    run.resumed.append({
        "epoch": progress.epoch if progress is not None else (run.epochs[-1]["epoch"] + 1 if run.epochs else 1),
        "step_in_epoch": progress.step if progress is not None else 0,
        "done_steps": run.done_steps,
        "at": time.time(),
    })
    if hooks.on_resume:
        hooks.on_resume(run.resumed[-1])
    return run, progress


def summarize(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """Final and best numbers of a run, for tables (None where no epoch finished)."""
    if not epochs:
        return {}
    last = epochs[-1]
    return {
        "epochs_done": len(epochs),
        "final_val_acc": last["val_acc"],
        "best_val_acc": max(e["val_acc"] for e in epochs),
        "final_val_loss": last["val_loss"],
        "final_train_loss": last["train_loss"],
        "final_train_acc": last["train_acc"],
        "final_train_eval_acc": last["train_eval_acc"],
        "train_time_s": sum(e["train_time_s"] for e in epochs),
        "wall_time_s": sum(e["epoch_time_s"] for e in epochs),
    }

