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
import resource
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ablate.config import TrainConfig
from ablate.data import ImageSplits
from ablate.data.loader import DeviceBatches
from ablate.experiment import Cell
from ablate.models import build_model, count_params
from ablate.seeding import seed_everything

# Steps at the start of a run left out of the throughput figure: they include cuDNN autotuning,
# torch.compile and allocator warm-up, which say nothing about steady-state speed.
WARMUP_STEPS = 3


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


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated by tensors, or on the CPU the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def autocast_for(precision: str, device: torch.device) -> Callable[[], Any]:
    """A zero-argument context factory: autocast to bf16/fp16, or nothing for fp32."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


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
    # Steps at the start of the run left out of the timing (0 when the run has no steps after them).
    warmup: int
    timer: StepTimer
    # Backend flags in force (cuDNN autotuning, TF32), for the record.
    backend: dict[str, Any]
    # Optimizer steps taken so far in the run.
    done_steps: int = 0


def prepare(cell: Cell, splits: ImageSplits, device: torch.device) -> Training:
    """Seed, set the speed flags, build the model, optimizer and batch iterators for ``cell``."""
    train = cell.train
    seed_everything(cell.seed, train.deterministic)
    backend = apply_speed_settings(train, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    precision = resolve_precision(train, device)
    memory_format = torch.channels_last if train.channels_last else torch.contiguous_format
    model = build_model(cell.variant, splits.num_classes).to(device=device, memory_format=memory_format)
    step_model = model if train.compile == "off" else torch.compile(model, mode=None if train.compile == "default" else train.compile)
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
    )


def train_epoch(run: Training, epoch: int, observer: TrainObserver | None = None) -> dict[str, Any]:
    """One pass over the training batches. Returns the epoch's training loss and accuracy, its
    wall time (``train_time_s``, warm-up included) and its timed part (``timed_images``,
    ``timed_seconds``: steps after the run's warm-up, between synchronized clock reads)."""
    observer = observer or _Silent()
    device, timer = run.device, run.timer
    run.model.train()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    hits = torch.zeros((), device=device, dtype=torch.int64)
    steps = len(run.train_batches)
    sync(device)
    start = time.perf_counter()
    if run.done_steps >= run.warmup:
        timer.start()
    for step, (x, y) in enumerate(run.train_batches):
        loss, out = train_step(run.step_model, run.optimizer, run.scaler, run.autocast, x, y)
        run.scheduler.step()
        # Running sums stay on the device: no host synchronization inside the epoch.
        loss_sum += loss.detach() * y.shape[0]
        hits += (out.detach().argmax(1) == y).sum()
        run.done_steps += 1
        if run.done_steps > run.warmup:
            timer.count(y.shape[0])
        observer.on_batch(epoch, step + 1, steps)
        if run.done_steps == run.warmup:  # end of the warm-up (its progress update included)
            timer.start()
    timed_images, timed_seconds = timer.stop()
    sync(device)
    seconds = time.perf_counter() - start
    n = run.train_batches.images_per_epoch
    return {
        "train_loss": loss_sum.item() / n,
        "train_acc": hits.item() / n,
        "train_time_s": seconds,
        "timed_images": timed_images,
        "timed_seconds": timed_seconds,
    }


def train_cell(
    cell: Cell, splits: ImageSplits, device: torch.device, observer: TrainObserver | None = None
) -> dict[str, Any]:
    """Train ``cell`` on ``splits`` and return its record (status ``ok`` or ``diverged``).

    Exceptions (out of memory, a broken user-registered layer, ...) propagate; the runner turns
    them into ``failed`` records so that a sweep goes on.

    Throughput: the first :data:`WARMUP_STEPS` optimizer steps of the run are not timed (when the
    run has more steps than that); every later training step is, between device-synchronized
    clock reads, from the end of the previous step (or the start of the epoch) to the end of the
    epoch's last step. Evaluation, the per-epoch ``.item()`` reads and model building are outside.
    """
    observer = observer or _Silent()
    train = cell.train
    run = prepare(cell, splits, device)
    steps = len(run.train_batches)
    epochs: list[dict[str, Any]] = []
    status, error = "ok", None
    for epoch in range(1, train.epochs + 1):
        epoch_start = time.perf_counter()
        done = train_epoch(run, epoch, observer)
        if not math.isfinite(done["train_loss"]):
            status, error = "diverged", f"non-finite training loss in epoch {epoch}"
            break
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "lr": run.scheduler.get_last_lr()[0],
            "train_loss": done["train_loss"],
            "train_acc": done["train_acc"],
        }
        metrics.update(evaluate(run.step_model, run.val_batches, run.autocast, splits.num_classes))
        metrics.update(evaluate(run.step_model, run.train_eval_batches, run.autocast, splits.num_classes, "train_eval"))
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
        metrics["peak_memory_mb"] = peak_memory_mb(device)
        epochs.append(metrics)
        observer.on_epoch(metrics)

    return {
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
            "warmup_steps_untimed": run.warmup,
            "timed_steps": run.timer.images // train.batch_size,
            "train_images_per_s": run.timer.images_per_s,
            "peak_memory_mb": peak_memory_mb(device),
            "peak_memory_kind": "cuda_allocated" if device.type == "cuda" else "host_max_rss",
        },
        "epochs": epochs,
        "summary": summarize(epochs),
    }


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

