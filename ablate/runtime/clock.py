"""The clock every throughput figure is read on: :class:`StepTimer` (stretches of training steps
between device-synchronized clock reads) and :func:`sync`. Training, ``ablate bench`` and the
measurement scripts all time through it, so that their numbers mean the same thing.
"""

from __future__ import annotations

import time

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it means what it says."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
