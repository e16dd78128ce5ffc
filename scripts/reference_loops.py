"""Reference training loops that ablate's harness is measured against (maintainer tools, not
part of the installed package).

* :class:`HandLoop`: a loop written by hand in plain PyTorch with ablate's settings - the floor;
* :class:`BlogLoop`: the loop of a typical tutorial or blog post - what people start from;
* :class:`AblateLoop`: ablate's own epoch loop (:func:`ablate.train.loop.train_epoch` on a prepared
  cell), so that it can be timed beside the other two.

Each has ``timed_epoch()``: one epoch's images/s on training's clock (:class:`ablate.runtime.clock.StepTimer`),
which :func:`ablate.bench.timing.interleave` takes turns over. Used by ``scripts/compare_loops.py``
and the pytest-benchmark suite (``tests/benchmarks``, which puts this folder on ``sys.path``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ablate.config import DataConfig, TrainConfig
from ablate.data import ImageSplits, channel_stats
from ablate.experiment.experiment import Cell
from ablate.models.alexnet import build_model
from ablate.runtime.clock import StepTimer, sync
from ablate.runtime.precision import autocast_for
from ablate.train.loop import train_epoch
from ablate.train.optim import make_optimizer
from ablate.train.setup import WARMUP_STEPS, Training, prepare
from ablate.variant import Variant

# The optimizer all three loops train with (the blog loop builds its own, unfused, from the same numbers).
SGD = TrainConfig(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)


def random_splits(images: int, size: int = 65, classes: int = 10, seed: int = 0) -> ImageSplits:
    """Random uint8 images and labels: speed does not depend on pixel values, and making them is
    instant (rendering tens of thousands of ``shapes`` images is not)."""
    g = torch.Generator().manual_seed(seed)
    train_x = torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8, generator=g)
    mean, std = channel_stats(train_x[:512])
    return ImageSplits(
        train_x=train_x,
        train_y=torch.randint(0, classes, (images,), generator=g),
        val_x=torch.randint(0, 256, (64, 3, size, size), dtype=torch.uint8, generator=g),
        val_y=torch.randint(0, classes, (64,), generator=g),
        classes=[str(i) for i in range(classes)],
        mean=mean,
        std=std,
        info={"source": "random"},
    )


class _StepsLoop:
    """What the hand-written and blog-style loops share: ``run(steps)`` trains (ending with a
    device synchronization), ``timed_epoch`` clocks ``steps_per_epoch`` of them."""

    device: torch.device
    batch_size: int
    steps_per_epoch: int

    def run(self, steps: int) -> None:
        raise NotImplementedError

    def warm_up(self) -> None:
        """The untimed steps ablate also leaves out (allocator growth, kernel selection)."""
        self.run(WARMUP_STEPS)

    def timed_epoch(self) -> float:
        """Images/s over one epoch of ``steps_per_epoch`` steps."""
        timer = StepTimer(self.device)
        timer.start()
        self.run(self.steps_per_epoch)
        timer.count(self.steps_per_epoch * self.batch_size)
        images, seconds = timer.stop()
        return images / seconds


class HandLoop(_StepsLoop):
    """A training loop written by hand in plain PyTorch with ablate's settings: images resident on
    the device as uint8, a seeded permutation per epoch, normalization on the device, autocast,
    channels_last, fused SGD with momentum and weight decay. No progress hooks, no running
    metrics, no schedule: the floor ablate's harness is measured against."""

    def __init__(
        self,
        variant: Variant,
        splits: ImageSplits,
        device: torch.device,
        batch_size: int,
        precision: str = "fp32",
        channels_last: bool = True,
        seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        self.device, self.batch_size = device, batch_size
        self.steps_per_epoch = len(splits.train_y) // batch_size
        self.autocast = autocast_for(precision, device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = build_model(variant, splits.num_classes).to(device=device, memory_format=self.memory_format)
        self.model.train()
        self.optimizer = make_optimizer(self.model, SGD)
        self.images = splits.train_x.contiguous().to(device)
        self.labels = splits.train_y.to(device)
        self.mean = torch.tensor(splits.mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(splits.std, device=device).view(1, -1, 1, 1) * 255
        self.gen = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.randperm(len(self.labels), generator=self.gen).to(device), 0
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def run(self, steps: int) -> None:
        """``steps`` optimizer steps, then wait for the device."""
        n, b = len(self.labels), self.batch_size
        for _ in range(steps):
            if self.pos + b > n:
                self.order, self.pos = torch.randperm(n, generator=self.gen).to(self.device), 0
            idx = self.order[self.pos : self.pos + b]
            self.pos += b
            x = ((self.images[idx].float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)
            y = self.labels[idx]
            with self.autocast():
                loss = nn.functional.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        sync(self.device)


class _PerImage(torch.utils.data.Dataset):
    """What a tutorial's ``transforms.Compose([ToTensor(), Normalize(mean, std)])`` does, per image."""

    def __init__(self, splits: ImageSplits) -> None:
        self.images, self.labels = splits.train_x, splits.train_y
        self.mean = torch.tensor(splits.mean).view(-1, 1, 1)
        self.std = torch.tensor(splits.std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return (self.images[i].float().div(255) - self.mean) / self.std, int(self.labels[i])


class BlogLoop(_StepsLoop):
    """The loop of a typical tutorial or blog post: fp32, NCHW, images decoded per item in a
    ``DataLoader`` (shuffle, ``num_workers`` processes), each batch copied with ``.to(device)``,
    plain (for-each) SGD, ``nn.CrossEntropyLoss``, ``running_loss += loss.item()`` every step."""

    def __init__(
        self,
        variant: Variant,
        splits: ImageSplits,
        device: torch.device,
        batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        self.device, self.batch_size = device, batch_size
        self.steps_per_epoch = len(splits.train_y) // batch_size
        self.model = build_model(variant, splits.num_classes).to(device)
        self.model.train()
        self.criterion = nn.CrossEntropyLoss()
        # Deliberately not make_optimizer: a tutorial's optimizer is the unfused default.
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=SGD.lr, momentum=SGD.momentum, weight_decay=SGD.weight_decay
        )
        self.loader = torch.utils.data.DataLoader(
            _PerImage(splits),
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            generator=torch.Generator().manual_seed(seed),
        )
        self._batches: Iterator[Any] = iter(())
        self.running_loss = 0.0

    def _next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return next(self._batches)
        except StopIteration:
            self._batches = iter(self.loader)
            return next(self._batches)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            inputs, labels = self._next()
            inputs, labels = inputs.to(self.device), labels.to(self.device)
            self.optimizer.zero_grad()
            outputs = self.model(inputs)
            loss = self.criterion(outputs, labels)
            loss.backward()
            self.optimizer.step()
            self.running_loss += loss.item()
        sync(self.device)


class AblateLoop:
    """ablate's own training loop (:func:`ablate.train.loop.train_epoch` on a :func:`prepare`-d cell),
    one epoch = ``steps_per_epoch`` steps, so that it can be timed beside the reference loops."""

    def __init__(
        self,
        variant: Variant,
        splits: ImageSplits,
        device: torch.device,
        batch_size: int,
        precision: str = "fp32",
        channels_last: bool = True,
        seed: int = 0,
    ) -> None:
        train = TrainConfig(
            epochs=1,
            batch_size=batch_size,
            optimizer=SGD.optimizer,
            lr=SGD.lr,
            momentum=SGD.momentum,
            weight_decay=SGD.weight_decay,
            precision=precision,
            channels_last=channels_last,
        )
        cell = Cell("bench", variant, seed, DataConfig(), train)
        self.training: Training = prepare(cell, splits, device)
        self.epoch = 0

    @property
    def steps_per_epoch(self) -> int:
        return len(self.training.members[0].train_batches)

    def run_epoch(self) -> dict[str, Any]:
        self.epoch += 1
        return train_epoch(self.training, self.epoch)

    def warm_up(self) -> None:
        """One epoch: the first holds the run's untimed warm-up steps."""
        self.run_epoch()

    def timed_epoch(self) -> float:
        """Images/s of one epoch on ablate's own clock (what ``train_cell`` stores)."""
        done = self.run_epoch()
        return done["timed_images"] / done["timed_seconds"]


def warmed(loop: HandLoop | BlogLoop | AblateLoop) -> Callable[[], float]:
    """``loop.timed_epoch`` after its warm-up: a measurement for :func:`ablate.bench.timing.interleave`.
    The loop stays alive between calls, so rounds compare the loops, not model building."""
    loop.warm_up()
    return loop.timed_epoch
