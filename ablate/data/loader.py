"""Device-resident batching (airbench style): no DataLoader, no workers, no per-image Python.

A split is moved to the training device once, as uint8. Each epoch draws a permutation from a
private seeded generator, so batch order depends only on the run seed, never on the variant.
Conversion to float, normalization and augmentation run on the device, one batch at a time. When
a split does not fit in device memory it stays in pinned host memory and each batch is copied
with a non-blocking transfer instead.
"""

from __future__ import annotations

from typing import Iterator

import torch

from ablate.seeding import generator

# Keep this share of free device memory for the model, activations and optimizer state.
DEVICE_MEMORY_SHARE = 0.5


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_MEMORY_SHARE * free


def augment_paper(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random translations and horizontal flips, per image, on whatever device ``x`` is on.

    The paper trains on random 224-pixel crops of 256-pixel images plus their mirror images. Here
    images are already at the model's input size, so the crop is taken from the image padded by
    1/16 of its side on each edge (reflection padding: no black borders), which gives the same
    kind of shift at any input size without resizing.
    """
    b, _c, h, w = x.shape
    pad = max(1, round(h / 16))
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=g, device=g.device).to(x.device)
    flips = (torch.rand(b, generator=g, device=g.device) < 0.5).to(x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # b x h
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # b x w
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


class DeviceBatches:
    """Iterate over (normalized float images, labels) batches of one split on ``device``."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        augment: str = "none",
        channels_last: bool = False,
    ) -> None:
        self.device, self.batch_size = device, batch_size
        self.shuffle, self.augment, self.channels_last = shuffle, augment, channels_last
        self.resident = fits_on_device(images.numel(), device)
        if self.resident:
            self.images, self.labels = images.to(device), labels.to(device)
        else:  # pinned host memory: batches travel with non-blocking copies
            self.images, self.labels = images.pin_memory(), labels.pin_memory()
        self.n = images.shape[0]
        # Training drops the ragged last batch (BatchNorm cannot train on one image), unless the
        # whole split is smaller than a batch.
        self.drop_last = drop_last and self.n >= batch_size
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.inv_std = 1 / (torch.tensor(std, device=device).view(1, -1, 1, 1) * 255)
        # Order and augmentation come from private generators: same seed -> same batches.
        self.order_gen = generator(seed)
        self.aug_gen = generator(seed + 1, device if device.type == "cuda" else "cpu")

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    @property
    def images_per_epoch(self) -> int:
        return len(self) * self.batch_size if self.drop_last else self.n

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(self.n, generator=self.order_gen) if self.shuffle else None
        for i in range(len(self)):
            window = slice(i * self.batch_size, (i + 1) * self.batch_size)
            if order is None:
                x, y = self.images[window], self.labels[window]
            else:
                idx = order[window].to(self.images.device, non_blocking=True)
                x, y = self.images[idx], self.labels[idx]
            if not self.resident:  # gathered rows are not pinned; pin, then copy asynchronously
                x = x.pin_memory().to(self.device, non_blocking=True)
                y = y.pin_memory().to(self.device, non_blocking=True)
            if self.augment == "paper":
                x = augment_paper(x, self.aug_gen)
            x = (x.float() - self.mean) * self.inv_std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y
