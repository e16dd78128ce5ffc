"""Train one cell (variant x seed x settings) and return its result record.

The loop follows airbench: data already on the device, batches from a seeded permutation, no
host synchronization inside the epoch (losses and hit counts accumulate on the device and are
read once per epoch). Throughput is timed around training steps only, with the device
synchronized before each clock read; evaluation is timed separately.
"""

from __future__ import annotations

import math
import resource
import time
from contextlib import nullcontext
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated by tensors, or on the CPU the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@torch.no_grad()
def evaluate(model: nn.Module, batches: DeviceBatches, autocast: Any, num_classes: int) -> dict[str, float]:
    """Mean cross-entropy, top-1 and (with more than 5 classes) top-5 accuracy over a split."""
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
    metrics = {"val_loss": loss_sum.item() / n, "val_acc": top1.item() / n}
    if num_classes > 5:
        metrics["val_top5"] = top5.item() / n
    return metrics


def train_cell(
    cell: Cell, splits: ImageSplits, device: torch.device, observer: TrainObserver | None = None
) -> dict[str, Any]:
    """Train ``cell`` on ``splits`` and return its record (status ``ok`` or ``diverged``).

    Exceptions (out of memory, a broken user-registered layer, ...) propagate; the runner turns
    them into ``failed`` records so that a sweep goes on.
    """
    observer = observer or _Silent()
    train = cell.train
    seed_everything(cell.seed, train.deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = train.cudnn_benchmark and not train.deterministic
        torch.cuda.reset_peak_memory_stats(device)
    precision = resolve_precision(train, device)
    channels_last = train.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    model = build_model(cell.variant, splits.num_classes).to(device=device, memory_format=memory_format)
    params = count_params(model)
    step_model = model if train.compile == "off" else torch.compile(model, mode=None if train.compile == "default" else train.compile)
    optimizer = make_optimizer(model, train)
    train_batches = DeviceBatches(
        splits.train_x, splits.train_y, splits.mean, splits.std, device, train.batch_size,
        shuffle=True, drop_last=True, seed=cell.seed, augment=cell.data.augment, channels_last=channels_last,
    )
    val_batches = DeviceBatches(
        splits.val_x, splits.val_y, splits.mean, splits.std, device, train.eval_batch_size, channels_last=channels_last
    )
    steps = len(train_batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(train, steps))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    epochs: list[dict[str, Any]] = []
    status, error = "ok", None
    timed_images, timed_seconds = 0, 0.0
    for epoch in range(1, train.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        hits = torch.zeros((), device=device, dtype=torch.int64)
        # Leave the first steps of the run out of the timing, unless that would leave too few.
        skip = WARMUP_STEPS if epoch == 1 and steps > 2 * WARMUP_STEPS else 0
        _sync(device)
        clock = time.perf_counter()
        for step, (x, y) in enumerate(train_batches):
            if step == skip and skip:
                _sync(device)
                clock = time.perf_counter()
            with autocast():
                out = step_model(x)
                loss = F.cross_entropy(out.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.detach() * y.shape[0]
            hits += (out.detach().argmax(1) == y).sum()
            observer.on_batch(epoch, step + 1, steps)
        _sync(device)
        train_seconds = time.perf_counter() - clock
        timed = (steps - skip) * train.batch_size
        timed_images, timed_seconds = timed_images + timed, timed_seconds + train_seconds

        n = train_batches.images_per_epoch
        train_loss = loss_sum.item() / n
        if not math.isfinite(train_loss):
            status, error = "diverged", f"non-finite training loss in epoch {epoch}"
            break
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "lr": scheduler.get_last_lr()[0],
            "train_loss": train_loss,
            "train_acc": hits.item() / n,
        }
        metrics.update(evaluate(step_model, val_batches, autocast, splits.num_classes))
        if not math.isfinite(metrics["val_loss"]):
            status, error = "diverged", f"non-finite validation loss in epoch {epoch}"
            break
        metrics["epoch_time_s"] = time.perf_counter() - epoch_start
        metrics["train_time_s"] = train_seconds
        metrics["train_images_per_s"] = timed / train_seconds
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
        "params": params,
        "data": {
            "classes": splits.classes,
            "train_images": splits.train_x.shape[0],
            "val_images": splits.val_x.shape[0],
            "input_size": splits.train_x.shape[-1],
            "mean": list(splits.mean),
            "std": list(splits.std),
            "info": splits.info,
            "resident_on_device": train_batches.resident,
        },
        "runtime": {
            "precision": precision,
            "channels_last": channels_last,
            "compile": train.compile,
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if device.type == "cuda" else None,
            "deterministic": train.deterministic,
            "warmup_steps_untimed": WARMUP_STEPS if steps > 2 * WARMUP_STEPS else 0,
            "train_images_per_s": timed_images / timed_seconds if timed_seconds > 0 else None,
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
        "train_time_s": sum(e["train_time_s"] for e in epochs),
        "wall_time_s": sum(e["epoch_time_s"] for e in epochs),
    }

