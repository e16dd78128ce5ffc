"""How things are timed outside a training run, on the clock training uses (:class:`ablate.runtime.clock.StepTimer`).

* :func:`time_steps`: seconds per call over repeated stretches of calls (``ablate bench``);
* :func:`seconds`: one call, between device-synchronized clock reads;
* :func:`interleave`: several measurements taking turns, round after round (the comparison
  scripts and the benchmark suite);
* :class:`HookClock`: a run's timed steps clocked again from the training loop's progress hook
  (the stored-throughput check of the tests and ``scripts/compare_loops.py``).

Everything here reads the clock through ``StepTimer``, so a number from ``ablate bench``, a
comparison script and a stored run all start and stop the same way: after a device
synchronization.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ablate.runtime.clock import StepTimer


def time_steps(fn: Callable[[], Any], device: torch.device, warmup: int, steps: int, repeats: int) -> list[float]:
    """Seconds per call of ``fn`` in each of ``repeats`` stretches of ``steps`` calls, after
    ``warmup`` untimed calls; the device is synchronized before every clock read."""
    for _ in range(warmup):
        fn()
    timer = StepTimer(device)
    per_step = []
    for _ in range(repeats):
        timer.start()
        for _ in range(steps):
            fn()
            timer.count(1)
        calls, elapsed = timer.stop()
        per_step.append(elapsed / calls)
    return per_step


def seconds(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of one call of ``fn``, the device synchronized before both clock reads."""
    timer = StepTimer(device)
    timer.start()
    fn()
    timer.count(1)
    return timer.stop()[1]


def interleave(
    measurements: Mapping[str, Callable[[], float]],
    rounds: int,
    on_value: Callable[[int, str, float], None] | None = None,
) -> dict[str, list[float]]:
    """Call each measurement once per round, in the given order in even rounds and reversed in
    odd ones (A B C, C B A, A B C, ...); returns every value per name, in round order.

    Taking turns spreads load from other processes (and slow drifts such as thermal throttling)
    over all sides alike, and reversing the order keeps any "first after a switch" cost from
    always falling on the same side. Ratios within a round compare values measured back to back.
    ``on_value(round_index, name, value)`` is called after each measurement (progress lines)."""
    out: dict[str, list[float]] = {name: [] for name in measurements}
    order = list(measurements)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            value = measurements[name]()
            out[name].append(value)
            if on_value:
                on_value(r, name, value)
    return out


class HookClock:
    """An independent check of a run's stored throughput: a training observer
    (:class:`ablate.train.loop.TrainObserver`) that times steps ``warmup + 1 .. last`` of epoch 1 from
    the loop's progress hook, with a ``StepTimer`` of its own.

    Its marks sit where the hook is called (after each optimizer step), not where the training
    loop starts and stops its own timer, so the two agree only if the loop's accounting (warm-up
    left out, evaluation outside) is right."""

    def __init__(self, device: torch.device, warmup: int, batch_size: int) -> None:
        self.warmup, self.batch_size = warmup, batch_size
        self.timer = StepTimer(device)

    def on_batch(self, epoch: int, step: int, steps: int) -> None:
        if epoch != 1:
            return
        if step == self.warmup:
            self.timer.start()
        elif step == steps:
            self.timer.count((steps - self.warmup) * self.batch_size)
            self.timer.stop()

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        pass

    @property
    def images_per_s(self) -> float | None:
        return self.timer.images_per_s
