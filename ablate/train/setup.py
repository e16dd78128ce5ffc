"""Set up one cell's training: seed, backend flags, model, optimizer and schedule, device-resident
batches (:func:`prepare` → :class:`Training`), and the state of an epoch in progress
(:class:`EpochProgress`, what a mid-epoch checkpoint holds). :func:`build_for_device` is the one
way training and ``ablate bench`` put a model on a device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ablate.config import TrainConfig
from ablate.data import ImageSplits
from ablate.data.loader import DeviceBatches
from ablate.experiment.experiment import Cell
from ablate.models.alexnet import build_model
from ablate.runtime.clock import StepTimer
from ablate.runtime.device import apply_speed_settings, resolve_precision
from ablate.runtime.memory import reset_peak_memory
from ablate.runtime.precision import autocast_for
from ablate.runtime.seeding import seed_everything
from ablate.train.optim import lr_factor, make_optimizer
from ablate.variant import Variant

# Steps at the start of a run (and after each resume) left out of the throughput figure: they
# include cuDNN autotuning, torch.compile and allocator warm-up, which say nothing about
# steady-state speed.
WARMUP_STEPS = 3
# Step-level points per epoch when [train] log_every is left out.
LOG_POINTS_PER_EPOCH = 20


def train_eval_subset(splits: ImageSplits, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed sample of training images, as many as the validation split has, chosen by the data
    seed only: the same images for every variant and run seed. Evaluated in eval mode after each
    epoch, it gives a training accuracy free of dropout and augmentation, so that the
    generalization gap compares like with like."""
    n = min(splits.train_x.shape[0], splits.val_x.shape[0])
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(splits.train_x.shape[0], generator=g)[:n].sort().values
    return splits.train_x[idx], splits.train_y[idx]


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
        splits.train_x,
        splits.train_y,
        splits.mean,
        splits.std,
        device,
        train.batch_size,
        shuffle=True,
        drop_last=True,
        seed=cell.seed,
        augment=cell.data.augment,
        channels_last=train.channels_last,
    )
    val_batches = DeviceBatches(
        splits.val_x,
        splits.val_y,
        splits.mean,
        splits.std,
        device,
        train.eval_batch_size,
        channels_last=train.channels_last,
    )
    train_eval_batches = DeviceBatches(
        *train_eval_subset(splits, cell.data.seed),
        splits.mean,
        splits.std,
        device,
        train.eval_batch_size,
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
class EpochProgress:
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


def new_progress(run: Training, epoch: int) -> EpochProgress:
    """A fresh epoch's progress: the generators as they are now, zeroed sums on the device."""
    device, steps = run.device, len(run.train_batches)
    points = -(-steps // run.log_every) if run.log_every else 0
    return EpochProgress(
        epoch=epoch,
        order_state=run.train_batches.order_gen.get_state(),
        aug_state=run.train_batches.aug_gen.get_state(),
        loss_sum=torch.zeros((), device=device, dtype=torch.float64),
        hits=torch.zeros((), device=device, dtype=torch.int64),
        log_loss=torch.zeros(points, device=device, dtype=torch.float64) if points else None,
        log_hits=torch.zeros(points, device=device, dtype=torch.int64) if points else None,
    )
