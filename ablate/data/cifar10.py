"""``cifar10``: 32x32 colour images in 10 classes (50000 train, 10000 test), torchvision's
``cifar-10-batches-py`` format (pickled batches ``data_batch_1`` .. ``data_batch_5`` and
``test_batch``).

Looked for under ``data.root``, else ``$ABLATE_DATA/cifar10`` (either folder may hold
``cifar-10-batches-py`` or be it). The test set is the validation split. The batches are pickles;
they are read with an unpickler that only builds NumPy arrays and plain containers, so a tampered
file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.config import DataConfig
from ablate.data import DataError, ImageSplits
from ablate.data.cache import CacheKey, file_identity, load_or_build
from ablate.data.common import assemble, find_or_download, looked_in, one_line, resize_square, split_stats
from ablate.registry import register_dataset

NAME = "cifar10"
FOLDER = "cifar-10-batches-py"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
HOW_TO_GET = (
    "set data.download = true (with data.root or $ABLATE_DATA) to fetch it with torchvision, "
    f"or point data.root at a folder holding {FOLDER} (from https://www.cs.toronto.edu/~kriz/cifar.html)"
)

# What a CIFAR batch pickle may construct: NumPy arrays (module names of NumPy 1 and 2), and the
# bytes of protocol-2 pickles written by Python 3 (``_codecs.encode``). Nothing that runs code.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core") and hasattr(np, "_core"):  # NumPy 2 renamed numpy.core
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch -> (N x 3 x 32 x 32 uint8 images, N int64 labels)."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"cannot read {path} as a CIFAR batch: {one_line(e)}; replace it with a fresh copy") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR batch (expected a dict with 'data' and 'labels')")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must be an N x 3072 uint8 array")
    if labels is None or len(labels) != data.shape[0]:
        raise DataError(f"{path}: expected {data.shape[0]} labels, found {0 if labels is None else len(labels)}")
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(CLASSES)):
        raise DataError(f"{path}: labels must lie in 0..{len(CLASSES) - 1}")
    return torch.from_numpy(np.ascontiguousarray(data)).view(-1, 3, 32, 32), y


def find_folder(dirs: list[Path]) -> Path | None:
    """The first ``cifar-10-batches-py`` folder (inside or equal to a searched folder) that holds
    every batch file."""
    for d in dirs:
        for folder in (d / FOLDER, d):
            if all((folder / f).is_file() for names in FILES.values() for f in names):
                return folder
    return None


def download(target: Path) -> None:
    """Fetch and unpack the archive with torchvision's downloader into ``target``."""
    from torchvision.datasets import CIFAR10

    try:
        CIFAR10(str(target), train=True, download=True)
    except Exception as e:  # noqa: BLE001 - network, disk and checksum errors all mean "no data"
        raise DataError(f"{NAME}: download into {target} failed: {one_line(e)}") from None


def decode_split(paths: list[Path], size: int) -> dict[str, torch.Tensor]:
    parts = [read_batch(p) for p in paths]
    images = torch.cat([x for x, _ in parts])
    return {"images": resize_square(images, size), "labels": torch.cat([y for _, y in parts])}


def _load_split(split: str, folder: Path, size: int) -> tuple[dict[str, torch.Tensor], str]:
    paths = [folder / f for f in FILES[split]]

    def build() -> dict[str, torch.Tensor]:
        out = decode_split(paths, size)
        if split == "train":
            out.update(split_stats(out["images"]))
        return out

    return load_or_build(CacheKey(NAME, split, size, file_identity(paths)), build)


@register_dataset(NAME)
def cifar10(cfg: DataConfig, input_size: int) -> ImageSplits:
    """CIFAR-10: 32x32 colour images, 10 classes (50000 train / 10000 test as val); torchvision's pickles."""
    folder, dirs = find_or_download(cfg, NAME, find_folder, download)
    if folder is None:
        raise DataError(
            f"{NAME}: {FOLDER} (data_batch_1..5, test_batch) not found; looked in {looked_in(dirs)}; to get it, "
            f"{HOW_TO_GET}"
        )
    train, train_cache = _load_split("train", folder, input_size)
    val, val_cache = _load_split("test", folder, input_size)
    info = {"source": str(folder), "val_split": "test", "cache": {"train": train_cache, "val": val_cache}}
    return assemble(NAME, train, val, CLASSES, cfg, info)
