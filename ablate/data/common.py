"""What every file-based dataset shares: where files are looked for, resizing, seeded
class-balanced subsets, and assembling cached splits into :class:`~ablate.data.ImageSplits`.

Cached splits are dictionaries ``{"images": N x C x S x S uint8, "labels": N int64}``, the
training split also holding ``"mean"`` and ``"std"`` (C values on the 0..1 scale, over the whole
training split). Grey sets keep C = 1 on disk and in memory; they become 3 channels as a
broadcast view (no copy), which :class:`~ablate.data.loader.DeviceBatches` recognises.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
import torch.nn.functional as F

from ablate.config import DataConfig
from ablate.data import DataError, ImageSplits, channel_stats
from ablate.runtime.seeding import named_generator

T = TypeVar("T")

DATA_ENV = "ABLATE_DATA"
# Pixels resized at once: bounds the working set to ~16 MB whatever the input size.
_RESIZE_ELEMENTS = 2**24


def one_line(error: BaseException) -> str:
    """An exception's message on one line (library messages sometimes carry newlines)."""
    return " ".join(str(error).split()) or type(error).__name__


def search_dirs(cfg: DataConfig, name: str, system_dir: Path | None = None) -> list[Path]:
    """Folders to look in, in order: ``data.root`` alone when given; else ``$ABLATE_DATA/<name>``
    (when set) and the system location (when the dataset has one)."""
    if cfg.root:
        return [Path(cfg.root).expanduser()]
    dirs = []
    if os.environ.get(DATA_ENV):
        dirs.append(Path(os.environ[DATA_ENV]).expanduser() / name)
    if system_dir is not None:
        dirs.append(system_dir)
    return dirs


def download_dir(cfg: DataConfig, name: str) -> Path:
    """Where ``download = true`` puts the files: ``data.root``, else ``$ABLATE_DATA/<name>``.
    There is no silent default: a download needs a place the user chose."""
    if cfg.root:
        return Path(cfg.root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser() / name
    raise DataError(f"{name}: data.download = true needs a place to put the files: set data.root or ${DATA_ENV}")


def find_or_download(
    cfg: DataConfig,
    name: str,
    find: Callable[[list[Path]], T | None],
    download: Callable[[Path], None],
    system_dir: Path | None = None,
) -> tuple[T | None, list[Path]]:
    """Look for a dataset's files with ``find`` in :func:`search_dirs`; when they are missing and
    ``data.download`` is true, fetch them into :func:`download_dir` and look there. Returns what
    ``find`` found (None: not found) and where it looked, for the error message."""
    dirs = search_dirs(cfg, name, system_dir)
    found = find(dirs)
    if found is None and cfg.download:
        target = download_dir(cfg, name)
        download(target)
        found = find([target])
    return found, dirs


def looked_in(dirs: list[Path]) -> str:
    return ", ".join(str(d) for d in dirs) if dirs else "nowhere (no data.root, no $ABLATE_DATA)"


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of square uint8 images (N x C x h x h) to N x C x size x size, in chunks.
    Antialiased, so shrinking (e.g. 32 -> 16) averages instead of aliasing; enlarging (28 -> 65)
    is plain bilinear, like torchvision's ``Resize`` on a PIL image."""
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images.contiguous()
    out = torch.empty(n, c, size, size, dtype=torch.uint8)
    chunk = max(1, _RESIZE_ELEMENTS // (c * max(size * size, h * w)))
    for i in range(0, n, chunk):
        # uint8 in, uint8 out: PyTorch's integer kernel rounds like Pillow and is ~3x faster than
        # going through float32 (60000 Fashion-MNIST images to 65x65 in under a second).
        out[i : i + chunk] = F.interpolate(
            images[i : i + chunk], size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return out


def balanced_subset(labels: torch.Tensor, n: int, seed: int, split: str) -> torch.Tensor:
    """Indices (sorted) of ``n`` images drawn per class as evenly as the class sizes allow.

    Each class gets ``n // classes`` images, or all it has when fewer; what a small class cannot
    give is shared among the others; a remainder goes one image each to classes in a seeded
    order. Which images a class gives is a seeded draw too. Same labels, ``n``, seed and split
    -> same indices, on every machine.
    """
    total = labels.shape[0]
    if n > total:
        raise ValueError(f"asked for {n} of {total} images")
    # Seed and split hashed together: train and val subsets are independent draws.
    g = named_generator(f"ablate/subset/{seed}/{split}")
    present = labels.unique()
    counts = {int(k): int((labels == k).sum()) for k in present}
    order = [int(present[i]) for i in torch.randperm(len(present), generator=g)]
    quota = dict.fromkeys(order, 0)
    remaining, active = n, list(order)
    while remaining > 0:
        share = remaining // len(active)
        if share == 0:  # fewer images left than classes: one each, in the seeded order
            for k in active[:remaining]:
                quota[k] += 1
            break
        for k in active:
            take = min(share, counts[k] - quota[k])
            quota[k] += take
            remaining -= take
        active = [k for k in active if quota[k] < counts[k]]
    picked = []
    for k in sorted(quota):
        members = (labels == k).nonzero().squeeze(1)
        picked.append(members[torch.randperm(len(members), generator=g)[: quota[k]]])
    return torch.cat(picked).sort().values


def split_stats(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-channel mean and std (0..1 scale) of a split, as tensors for a cache entry."""
    mean, std = channel_stats(images)
    return {"mean": torch.tensor(mean, dtype=torch.float64), "std": torch.tensor(std, dtype=torch.float64)}


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    """Grey (C = 1) images as 3 channels without copying: a broadcast view with channel stride 0."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def _rgb_stat(values: torch.Tensor) -> tuple[float, float, float]:
    vals = [float(v) for v in values.tolist()]
    return (vals[0],) * 3 if len(vals) == 1 else (vals[0], vals[1], vals[2])


def take(
    split: dict[str, torch.Tensor], size: int | None, seed: int, split_name: str, dataset: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's images and labels, or a seeded class-balanced subset of ``size`` of them."""
    images, labels = split["images"], split["labels"]
    if size is None or size == labels.shape[0]:
        return images, labels
    if size > labels.shape[0]:
        key = "train_size" if split_name == "train" else "val_size"
        raise DataError(
            f"{dataset}: data.{key} = {size} is more than the {labels.shape[0]} {split_name} images available"
        )
    idx = balanced_subset(labels, size, seed, split_name)
    return images.index_select(0, idx), labels.index_select(0, idx)


def assemble(
    dataset: str,
    train: dict[str, torch.Tensor],
    val: dict[str, torch.Tensor],
    classes: list[str],
    cfg: DataConfig,
    info: dict[str, Any],
) -> ImageSplits:
    """Subset, widen grey to RGB and wrap two cached splits. Normalization statistics are those of
    the whole training split, so a quick run on a subset normalizes exactly like the full study."""
    train_x, train_y = take(train, cfg.train_size, cfg.seed, "train", dataset)
    val_x, val_y = take(val, cfg.val_size, cfg.seed, "val", dataset)
    info = {
        **info,
        "train_available": int(train["labels"].shape[0]),
        "val_available": int(val["labels"].shape[0]),
        "subset_seed": cfg.seed,
        "stored_channels": int(train["images"].shape[1]),
        "normalization": "per-channel mean/std of the whole training split at this size",
    }
    return ImageSplits(
        as_rgb(train_x),
        train_y,
        as_rgb(val_x),
        val_y,
        list(classes),
        _rgb_stat(train["mean"]),
        _rgb_stat(train["std"]),
        info=info,
    )


def available_memory() -> int | None:
    """Bytes of memory available to allocate now (Linux: MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
