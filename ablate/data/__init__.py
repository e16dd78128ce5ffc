"""Datasets and the device-resident batch pipeline.

Every dataset is a registered function ``(DataConfig, input_size) -> ImageSplits``: uint8 images
already at the model's input size, integer labels, class names and the training set's
per-channel statistics. Normalization and augmentation happen later, on the training device
(:mod:`ablate.data.loader`), so a dataset never does per-batch work. :mod:`ablate.data.sweep`
holds the decoded splits a sweep trains on, each dataset loaded once per process.

May import: ``store`` (the decode cache's place), ``models`` (a preset's input size), ``experiment``
and the vocabulary.
Exports: ``ImageSplits``, ``DataError``, ``load_splits`` and the registered datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ablate.config import DataConfig
from ablate.registry import DATASETS


class DataError(RuntimeError):
    """The data cannot be loaded (missing files, bad images, impossible sizes); one line for users."""

    def __init__(self, message: str) -> None:
        # File and folder names may hold newlines or control characters: escape them, so that
        # the message stays one line.
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message)))


@dataclass
class ImageSplits:
    # uint8 images, N x 3 x S x S, S = the model's input size.
    train_x: torch.Tensor
    # int64 labels in [0, len(classes)).
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    # Class names, index = label.
    classes: list[str]
    # Per-channel mean and std of the training images, on the 0..1 scale.
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # Anything worth keeping with the results (source path, skipped images, cache hits, ...).
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __post_init__(self) -> None:
        for name in ("train", "val"):
            x, y = getattr(self, f"{name}_x"), getattr(self, f"{name}_y")
            if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3 or x.shape[0] != y.shape[0]:
                raise DataError(
                    f"{name} split must be N x 3 x S x S uint8 with N labels; got {tuple(x.shape)} {x.dtype}"
                )


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images on the 0..1 scale, in chunks to bound memory."""
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    for i in range(0, x.shape[0], chunk):
        part = x[i : i + chunk].to(torch.float64) / 255.0
        total += part.sum(dim=(0, 2, 3))
        total_sq += (part * part).sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / n
    std = (total_sq / n - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def load_splits(cfg: DataConfig, input_size: int, use_cache: bool = True) -> ImageSplits:
    """Build the dataset named by ``cfg.dataset`` at ``input_size`` x ``input_size``.

    ``use_cache=False`` neither reads nor writes the on-disk cache of decoded splits
    (:mod:`ablate.data.cache`): everything is decoded from the source files again.
    """
    from ablate.data.cache import caching

    with caching(use_cache):
        return DATASETS.get(cfg.dataset)(cfg, input_size)


# Register the built-in datasets (each module calls @register_dataset at import).
from ablate.data import cifar10 as _cifar10  # noqa: E402,F401
from ablate.data import fashion_mnist as _fashion_mnist  # noqa: E402,F401
from ablate.data import imagefolder as _imagefolder  # noqa: E402,F401
from ablate.data import shapes as _shapes  # noqa: E402,F401
