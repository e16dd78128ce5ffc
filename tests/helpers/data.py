"""Helpers for the data tests (no tests here): tiny dataset files in every supported format,
and a fixture that points the cache at a temporary folder so no test writes to ~/.cache.

Images carry their class in their pixels (a class-specific grey level or colour), so tests can
check that labels and images stay paired through decoding, caching, subsetting and batching.
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Fashion-MNIST-like test files: 10 classes, class k has grey level LEVELS[k] plus small noise.
LEVELS = [10 + 24 * k for k in range(10)]
# Image-folder classes and their colours (distinct in every channel, robust to JPEG).
FOLDER_CLASSES = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200)}


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cache in tmp_path/cache; no $ABLATE_DATA or $XDG_CACHE_HOME from the user's shell."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ABLATE_CACHE", str(cache))
    monkeypatch.delenv("ABLATE_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return cache


def count_calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    """Wrap ``module.name`` so that each call appends to the returned list."""
    calls: list[int] = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: 0, 0, 0x08, ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fashion_arrays(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """``n`` grey images (class k near LEVELS[k]) and labels cycling through the 10 classes."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10)[rng.permutation(n)].astype(np.uint8)
    images = np.array([LEVELS[k] for k in labels], dtype=np.int16)[:, None, None] + rng.integers(-3, 4, (n, size, size))
    return images.clip(0, 255).astype(np.uint8), labels


def write_fashion(
    folder: Path, n_train: int = 40, n_test: int = 20, gz: bool = True, size: int = 28
) -> dict[str, np.ndarray]:
    """The four Fashion-MNIST IDX files in ``folder``; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = fashion_arrays(n_train, 1, size)
    test_x, test_y = fashion_arrays(n_test, 2, size)
    files = {
        "train-images-idx3-ubyte": train_x,
        "train-labels-idx1-ubyte": train_y,
        "t10k-images-idx3-ubyte": test_x,
        "t10k-labels-idx1-ubyte": test_y,
    }
    for name, array in files.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def cifar_batch(n: int, seed: int) -> dict:
    """One batch as the real files hold it: N x 3072 uint8 rows (R, G, B planes), label list."""
    rng = np.random.default_rng(seed)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"batch_label": b"test batch", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}


def write_cifar(root: Path, per_batch: int = 6) -> dict[str, np.ndarray]:
    """``root/cifar-10-batches-py`` with five training batches and a test batch (pickle protocol 2,
    like the originals); returns the concatenated arrays."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train = [cifar_batch(per_batch, i) for i in range(1, 6)]
    test = cifar_batch(per_batch, 9)
    for i, batch in enumerate(train, 1):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2))
    return {
        "train_x": np.concatenate([b[b"data"] for b in train]).reshape(-1, 3, 32, 32),
        "train_y": np.concatenate([b[b"labels"] for b in train]),
        "test_x": test[b"data"].reshape(-1, 3, 32, 32),
        "test_y": np.array(test[b"labels"]),
    }


def class_image(colour: tuple[int, int, int], size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = np.array(colour, dtype=np.int16)[None, None, :] + rng.integers(-4, 5, (size[1], size[0], 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def write_class_images(folder: Path, colour: tuple[int, int, int], count: int, seed: int) -> list[Path]:
    """``count`` images of one class, alternating JPEG, PNG, grey PNG and RGBA PNG, of various
    (non-square) sizes; grey images use the mean of the colour."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        img = class_image(colour, (40 + 9 * i, 30 + 5 * (i % 3)), seed * 100 + i)
        kind = i % 4
        if kind == 0:
            path = folder / f"img{i}.jpg"
            img.save(path, quality=95)
        elif kind == 1:
            path = folder / f"img{i}.PNG"  # upper-case extension: still an image
            img.save(path)
        elif kind == 2:
            path = folder / f"img{i}.png"
            img.convert("L").save(path)
        else:
            path = folder / f"img{i}.png"
            img.convert("RGBA").save(path)
        paths.append(path)
    return paths


def corrupt_jpeg(path: Path) -> Path:
    """A JPEG cut off in the middle of its data: Pillow opens it, then fails to decode it."""
    buf = io.BytesIO()
    class_image((128, 128, 128), (64, 64), 0).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def write_imagefolder(root: Path, per_class: int = 8, classes: dict | None = None) -> Path:
    """One class-per-folder tree (no train/val split), plus files that must be ignored."""
    for k, (name, colour) in enumerate((classes or FOLDER_CLASSES).items()):
        write_class_images(root / name, colour, per_class, k)
    (root / "README.txt").write_text("not an image, not a class")
    (root / "cat" / "notes.txt").write_text("ignored: not an image file")
    (root / "cat" / ".hidden.jpg").write_bytes(b"ignored: hidden")
    nested = root / "dog" / "more"
    write_class_images(nested, FOLDER_CLASSES["dog"], 1, 7)  # nested folders belong to their class
    return root
