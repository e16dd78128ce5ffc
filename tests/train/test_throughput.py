"""The throughput stored in a run record agrees with an independent clock on the same steps.

The independent clock (:class:`ablate.bench.timing.HookClock`, also used by
``scripts/compare_loops.py``) sits in the observer hook the training loop calls after every
optimizer step: it starts at the end of the last warm-up step and stops at the end of the epoch's
last step, on training's clock (``StepTimer``: the device synchronized first) but with its marks
placed independently of the loop's own accounting. Timing the *same* steps of the *same* run,
not a second run, keeps the comparison meaningful on a shared, noisy CPU.

To show that warm-up and evaluation are really left out, the test makes both slow: the observer
sleeps during the warm-up steps (as if compiling or autotuning) and evaluation is slowed down.
A figure that included either would be off by far more than the 5% allowed.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

import ablate.train.loop as train_mod
from ablate.bench.timing import HookClock
from ablate.config import DataConfig, TrainConfig
from ablate.data import load_splits
from ablate.experiment.experiment import Cell
from ablate.train.loop import train_cell
from ablate.train.setup import WARMUP_STEPS
from ablate.variant import Variant

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")),
]


class SlowWarmupClock(HookClock):
    """The independent clock, with warm-up steps made slow (as if compiling or autotuning): each
    sleeps ``warmup_sleep`` or as long as the step itself took, whichever is longer, so that the
    trap below stays wide on a slow or busy machine too (a fixed sleep is lost in 1 s steps)."""

    def __init__(self, device: torch.device, warmup: int, batch_size: int, warmup_sleep: float) -> None:
        super().__init__(device, warmup, batch_size)
        self.warmup_sleep = warmup_sleep
        self._last = time.perf_counter()

    def on_batch(self, epoch: int, step: int, steps: int) -> None:
        if epoch == 1 and step <= self.warmup:
            time.sleep(max(self.warmup_sleep, time.perf_counter() - self._last))
        self._last = time.perf_counter()
        super().on_batch(epoch, step, steps)


@pytest.mark.parametrize("device", DEVICES)
def test_stored_throughput_matches_an_independent_clock_on_the_same_steps(device, monkeypatch):
    device = torch.device(device)
    batch, steps = (8, 10) if device.type == "cpu" else (64, 40)
    data = DataConfig(train_size=batch * steps, val_size=16)
    splits = load_splits(data, 65)
    train = TrainConfig(epochs=1, batch_size=batch, eval_batch_size=8, optimizer="sgd", lr=0.01)
    cell = Cell("throughput", Variant(), 0, data, train)

    real_evaluate = train_mod.evaluate
    eval_sleep = 1.0

    def slow_evaluate(*args: Any, **kwargs: Any) -> dict[str, float]:
        time.sleep(eval_sleep)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_mod, "evaluate", slow_evaluate)
    clock = SlowWarmupClock(device, WARMUP_STEPS, batch, warmup_sleep=0.3)
    record = train_cell(cell, splits, device, clock)

    assert record["status"] == "ok"
    assert clock.timer.images == (steps - WARMUP_STEPS) * batch
    independent = clock.images_per_s
    stored_run = record["runtime"]["train_images_per_s"]
    (epoch,) = record["epochs"]
    assert record["runtime"]["warmup_steps_untimed"] == WARMUP_STEPS
    assert record["runtime"]["timed_steps"] == epoch["timed_steps"] == steps - WARMUP_STEPS
    for stored in (stored_run, epoch["train_images_per_s"]):
        assert stored == pytest.approx(independent, rel=0.05), (stored, independent)
    # Sanity of the trap: counting the slow warm-up or the slowed evaluation would be far off.
    with_warmup = steps * batch / epoch["train_time_s"]
    assert with_warmup < 0.9 * stored_run
    assert epoch["epoch_time_s"] > epoch["train_time_s"] + eval_sleep * 0.9


def test_two_epochs_run_figure_is_the_images_weighted_mean_of_the_epochs():
    device = torch.device("cpu")
    data = DataConfig(train_size=40, val_size=8)
    splits = load_splits(data, 65)
    train = TrainConfig(epochs=2, batch_size=8, eval_batch_size=8, optimizer="adam", lr=3e-4)
    record = train_cell(Cell("throughput", Variant(), 0, data, train), splits, device)
    e1, e2 = record["epochs"]
    assert (e1["timed_steps"], e2["timed_steps"]) == (5 - WARMUP_STEPS, 5)
    images = [e["timed_steps"] * 8 for e in (e1, e2)]
    seconds = [n / e["train_images_per_s"] for n, e in zip(images, (e1, e2))]
    assert record["runtime"]["train_images_per_s"] == pytest.approx(sum(images) / sum(seconds), rel=1e-9)
    assert record["runtime"]["timed_steps"] == sum(e["timed_steps"] for e in (e1, e2))


def test_run_shorter_than_the_warmup_is_timed_whole():
    device = torch.device("cpu")
    data = DataConfig(train_size=16, val_size=8)
    splits = load_splits(data, 65)
    train = TrainConfig(epochs=1, batch_size=8, eval_batch_size=8)
    record = train_cell(Cell("throughput", Variant(), 0, data, train), splits, device)
    (epoch,) = record["epochs"]
    assert record["runtime"]["warmup_steps_untimed"] == 0
    assert epoch["timed_steps"] == 2 and record["runtime"]["timed_steps"] == 2
    assert epoch["train_images_per_s"] == pytest.approx(16 / epoch["train_time_s"], rel=0.02)
