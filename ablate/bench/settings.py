"""What one ``ablate bench`` sweep is asked to do: :class:`BenchSettings`, validated on creation,
and the per-device defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ablate.runtime.precision import PRECISION_DTYPES

MODES = ("train", "infer")
PRECISIONS = ("auto", *PRECISION_DTYPES)


class BenchError(ValueError):
    """A bench request that cannot be run (no variant matches, bad setting); one line for users."""


@dataclass(frozen=True)
class BenchSettings:
    # Batch sizes to time; each is a separate case.
    batch_sizes: tuple[int, ...] = (32,)
    # auto | fp32 | bf16 | fp16, resolved per device as in training (auto: bf16 on CUDA, else fp32).
    precisions: tuple[str, ...] = ("auto",)
    # train (forward + backward + optimizer step) and/or infer (forward under inference_mode).
    modes: tuple[str, ...] = MODES
    # Model and batch in NHWC layout, as training does by default.
    channels_last: bool = True
    # torch.compile mode: off | default | max-autotune (compilation falls in the warm-up).
    compile: str = "off"
    # Untimed steps before timing.
    warmup: int = 3
    # Steps per timed stretch, and stretches; the median stretch's step time is reported.
    steps: int = 5
    repeats: int = 3
    # Outputs of the last layer (10 like the built-in shapes set).
    num_classes: int = 10
    # Optimizer of the train step (fused, as in training).
    optimizer: str = "sgd"
    # Seeds trained as one fused model (ablate.models.fused): each K is a separate case, timed
    # as K models of the variant, each on its own batch of ``batch_size`` images.
    fuse: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        problems = []
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            problems.append(f"batch sizes must be integers >= 1, got {list(self.batch_sizes)}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            problems.append(f"precision {bad[0] if bad else '(none)'!r} is not one of {' | '.join(PRECISIONS)}")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            problems.append(f"mode {bad[0] if bad else '(none)'!r} is not one of {' | '.join(MODES)}")
        if self.compile not in ("off", "default", "max-autotune"):
            problems.append(f"compile {self.compile!r} is not one of off | default | max-autotune")
        if not self.fuse or any(k < 1 for k in self.fuse):
            problems.append(f"fuse: seeds per fused model must be integers >= 1, got {list(self.fuse)}")
        if self.warmup < 0 or self.steps < 1 or self.repeats < 1:
            problems.append("warmup must be >= 0, steps and repeats >= 1")
        if problems:
            raise BenchError("; ".join(problems))


def default_settings(device: torch.device, **changes: Any) -> BenchSettings:
    """Sizes that give a stable number in reasonable time: a GPU step takes milliseconds, a CPU
    step at batch 32 about a second. ``changes`` that are None keep the default."""
    if device.type == "cuda":
        base = BenchSettings(batch_sizes=(256,), warmup=10, steps=20, repeats=5)
    else:
        base = BenchSettings(batch_sizes=(32,), warmup=2, steps=3, repeats=3)
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})
