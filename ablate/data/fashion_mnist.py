"""``fashion-mnist``: Zalando's 28x28 grey clothing images in 10 classes (60000 train, 10000 test).

Reads the four standard IDX files (``train-images-idx3-ubyte.gz`` etc., gzipped or not) from
``data.root``; else ``$ABLATE_DATA/fashion-mnist``; else ``/usr/share/datasets/fashion-mnist``,
where Debian's ``dataset-fashion-mnist`` package installs them. torchvision's layout
(``<root>/FashionMNIST/raw``) is found too. The test set is the validation split.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import torch

from ablate.config import DataConfig
from ablate.data import DataError, ImageSplits
from ablate.data.cache import CacheKey, file_identity, load_or_build
from ablate.data.common import (
    assemble,
    available_memory,
    find_or_download,
    looked_in,
    one_line,
    resize_square,
    split_stats,
)
from ablate.registry import register_dataset

NAME = "fashion-mnist"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
HOW_TO_GET = (
    "install Debian's package (sudo apt-get install dataset-fashion-mnist), "
    "or set data.download = true (with data.root or $ABLATE_DATA), "
    "or point data.root at a folder holding the IDX files"
)


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file of unsigned bytes (the MNIST family's format), gzipped or not, as a uint8 tensor
    shaped by its header. Anything else is a :class:`DataError` naming the file.

    Reads no more than the header promises (plus one byte, to notice extra data), and refuses a
    header that promises more than the memory available: a small gzipped file can expand to far
    more than fits (a "zip bomb"), and reading it whole would end with the system killing the
    process rather than with a message.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
                raise DataError(
                    f"{path} is not an IDX file of unsigned bytes (bad header); replace it with a fresh copy"
                )
            ndim = head[3]
            sizes = f.read(4 * ndim)
            if ndim < 1 or len(sizes) < 4 * ndim:
                raise DataError(f"{path} is not a valid IDX file (truncated header); replace it with a fresh copy")
            dims = [int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(ndim)]
            promised = math.prod(dims)
            have = available_memory()
            if have is not None and promised > have:
                raise DataError(
                    f"{path}: its header promises {promised:,} bytes of images, more than the "
                    f"{have:,} bytes of memory available; replace it with a fresh copy"
                )
            payload = f.read(promised + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path}: {one_line(e)}") from None
    header = 4 + 4 * ndim
    if len(payload) != promised:
        got = header + len(payload) if len(payload) <= promised else f"more than {header + promised}"
        raise DataError(
            f"{path} holds {got} bytes but its header promises {header + promised}; replace it with a fresh copy"
        )
    return torch.frombuffer(bytearray(payload), dtype=torch.uint8).view(*dims)


def _find(folder: Path, stem: str) -> Path | None:
    for sub in (folder, folder / "FashionMNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (sub / name).is_file():
                return sub / name
    return None


def find_files(dirs: list[Path]) -> dict[str, tuple[Path, Path]] | None:
    """The first folder holding all four files, as {split: (images, labels)}, or None."""
    for folder in dirs:
        found = {split: (_find(folder, img), _find(folder, lbl)) for split, (img, lbl) in FILES.items()}
        if all(p is not None for pair in found.values() for p in pair):
            return found  # type: ignore[return-value]
    return None


def download(target: Path) -> None:
    """Fetch the files with torchvision's downloader into ``target/FashionMNIST/raw``."""
    from torchvision.datasets import FashionMNIST

    try:
        for train in (True, False):
            FashionMNIST(str(target), train=train, download=True)
    except Exception as e:  # noqa: BLE001 - network, disk and checksum errors all mean "no data"
        raise DataError(f"{NAME}: download into {target} failed: {one_line(e)}") from None


def decode_split(images_path: Path, labels_path: Path, size: int) -> dict[str, torch.Tensor]:
    """Read one split's IDX pair and resize it (grey, kept as 1 channel)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(
            f"{images_path} / {labels_path}: expected N x H x W images and N labels, got {tuple(images.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path} holds {images.shape[0]} images but {labels_path} {labels.shape[0]} labels")
    if labels.numel() and int(labels.max()) >= len(CLASSES):
        raise DataError(f"{labels_path}: label {int(labels.max())} is outside 0..{len(CLASSES) - 1}")
    return {"images": resize_square(images[:, None], size), "labels": labels.long()}


def _load_split(split: str, paths: tuple[Path, Path], size: int) -> tuple[dict[str, torch.Tensor], str]:
    def build() -> dict[str, torch.Tensor]:
        out = decode_split(*paths, size)
        if split == "train":
            out.update(split_stats(out["images"]))
        return out

    key = CacheKey(NAME, split, size, file_identity(paths))
    return load_or_build(key, build)


@register_dataset(NAME)
def fashion_mnist(cfg: DataConfig, input_size: int) -> ImageSplits:
    """Zalando's 28x28 grey clothing images, 10 classes (60000 train / 10000 test as val); IDX files."""
    files, dirs = find_or_download(cfg, NAME, find_files, download, SYSTEM_DIR)
    if files is None:
        wanted = ", ".join(name + ".gz" for pair in FILES.values() for name in pair)
        raise DataError(
            f"{NAME}: files not found ({wanted}, gzipped or not); looked in {looked_in(dirs)}; to get them, "
            f"{HOW_TO_GET}"
        )
    train, train_cache = _load_split("train", files["train"], input_size)
    val, val_cache = _load_split("test", files["test"], input_size)
    info = {
        "source": str(files["train"][0].parent),
        "val_split": "test",
        "cache": {"train": train_cache, "val": val_cache},
    }
    return assemble(NAME, train, val, CLASSES, cfg, info)
