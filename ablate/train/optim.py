"""The optimizer a ``[train]`` section asks for, and its learning-rate schedule (warm-up x step or
cosine decay), as a factor of the peak rate per optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ablate.config import TrainConfig


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
