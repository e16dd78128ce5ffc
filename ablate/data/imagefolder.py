"""``imagefolder``: any class-per-folder tree of images (JPEG, PNG, BMP, WebP) under ``data.root``.

Two layouts:

- ``root/train/<class>/...`` beside ``root/val/<class>/...`` (or ``root/test/``): the given split;
- ``root/<class>/...`` (or a lone ``root/train/<class>/...``): one tree, split per class by a seeded
  draw of ``data.val_fraction`` of its images for validation.

Class names are the folder names in sorted order; label i is ``classes[i]`` (stored with every
run). Images are read with Pillow, turned upright by their EXIF orientation, converted to 8-bit
RGB (see :func:`to_rgb8`: grey is repeated, alpha dropped, 16-bit and float pixels scaled), the
central square is cut out and resized to the input size (the paper's "shorter side, then central
crop"). Unreadable files stop the load with their name, or are skipped and counted with
``skip_bad_images = true``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from ablate.config import DataConfig
from ablate.data import DataError, ImageSplits
from ablate.data.cache import CacheKey, file_identity, load_or_build
from ablate.data.common import assemble, one_line, split_stats
from ablate.registry import register_dataset

NAME = "imagefolder"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Files named in an error or a run record: enough to find the problem, bounded for huge trees.
_LISTED = 20
# Pillow releases the GIL while decoding, so threads decode in parallel without processes.
_WORKERS = min(8, os.cpu_count() or 1)
# Part of the cache key of decoded trees: bump when decoding changes (2: wide modes scaled, EXIF
# orientation applied), so that entries decoded the old way are not reused.
DECODER_VERSION = 2


def to_rgb8(img: Image.Image) -> Image.Image:
    """Any Pillow mode an image file can hold -> 8-bit RGB with the intended values.

    Pillow's own ``convert("RGB")`` clips wide pixels to 255 (a 16-bit grey of 30000/65535 comes
    out white), so those are scaled here: 16-bit modes (``I;16*``) and 32-bit integers (``I``,
    what 16-bit PNGs decode to in some Pillow versions) are read on the 0..65535 scale, floats
    (``F``) on the 0..1 scale. Values outside that scale, or not finite, raise ``ValueError``
    rather than be clipped into a wrong image. Palette images go through RGBA (the route Pillow
    recommends when a palette has transparency); alpha is dropped; 1, L, LA, CMYK, YCbCr, ... use
    Pillow's conversions.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "I" or mode.startswith("I;16"):
        pixels = np.asarray(img)
        lo, hi = (int(pixels.min()), int(pixels.max())) if pixels.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"{mode} image with pixel values {lo}..{hi}; integer images are read as 16-bit (0..65535)")
        return Image.fromarray((pixels.astype(np.float64) * (255 / 65535)).round().astype(np.uint8)).convert("RGB")
    if mode == "F":
        pixels = np.asarray(img, dtype=np.float64)
        if not np.isfinite(pixels).all():
            raise ValueError("float (F) image with nan or inf pixels")
        lo, hi = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
        if lo < 0 or hi > 1:
            raise ValueError(
                f"float (F) image with pixel values {lo:g}..{hi:g}; float images are read on the 0..1 scale"
            )
        return Image.fromarray((pixels * 255).round().astype(np.uint8)).convert("RGB")
    if mode in ("P", "PA"):
        img = img.convert("RGBA")
    return img.convert("RGB")


def decode_image(path: Path, size: int) -> torch.Tensor:
    """One image file -> 3 x size x size uint8: central square of the image, resized bilinearly."""
    with Image.open(path) as img:
        # JPEG only: decode directly at a reduced scale that stays >= size on both sides (much
        # faster for photos several times larger than the input size; no effect on other formats).
        img.draft("RGB", (size, size))
        # Cameras store portrait photos as landscape pixels plus an EXIF orientation tag.
        img = to_rgb8(ImageOps.exif_transpose(img))
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        # Crop first, then resize: resizing with a ``box`` would blend in pixels from outside it.
        img = img.crop((left, top, left + side, top + side))
        img = img.resize((size, size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous()


def _decode_or_reason(path: Path, size: int) -> torch.Tensor | str:
    try:
        return decode_image(path, size)
    except Exception as e:  # noqa: BLE001 - whatever a hostile file makes a decoder raise, it is unreadable
        return one_line(e)


def _is_image(entry: os.DirEntry) -> bool:
    return not entry.name.startswith(".") and entry.name.lower().endswith(IMAGE_EXTENSIONS) and entry.is_file()


def _images_under(folder: Path) -> list[Path]:
    """Image files anywhere below ``folder`` (nested folders included), hidden ones left out, sorted.
    Linked folders are followed once: a link back up the tree would otherwise be walked forever."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        st = current.stat()
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(current) as it:
            for entry in it:
                if entry.is_dir() and not entry.name.startswith("."):
                    stack.append(Path(entry.path))
                elif _is_image(entry):
                    found.append(Path(entry.path))
    return sorted(found)


def class_folders(tree: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(tree) if e.is_dir() and not e.name.startswith("."))


def list_tree(tree: Path, classes: list[str] | None = None) -> tuple[list[str], list[Path], torch.Tensor]:
    """(class names, image files, labels) of one class-per-folder tree. With ``classes`` given
    (a validation tree), labels follow that list and unknown class folders are an error."""
    found = class_folders(tree)
    if classes is None:
        if len(found) < 2:
            names = f" ({', '.join(found)})" if found else ""
            raise DataError(
                f"{NAME}: {tree} has {len(found)} class folder(s){names}; a classifier needs at least 2 "
                "(one subfolder per class, images inside)"
            )
        classes = found
    else:
        unknown = [c for c in found if c not in classes]
        if unknown:
            raise DataError(f"{NAME}: {tree} has class folder(s) {', '.join(unknown)} that the training folder lacks")
    index = {c: i for i, c in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for name in found:
        images = _images_under(tree / name)
        if not images:
            raise DataError(f"{NAME}: class folder {tree / name} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        files += images
        labels += [index[name]] * len(images)
    return classes, files, torch.tensor(labels, dtype=torch.int64)


def decode_tree(files: list[Path], labels: torch.Tensor, size: int, tree: Path) -> dict[str, Any]:
    """Decode every file (in parallel threads). Unreadable files are left out and listed in
    ``bad`` as ``[relative path, reason]``; whether that is allowed is decided by the caller, so
    the same cache entry serves runs with and without ``skip_bad_images``."""
    images = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
    good: list[int] = []
    bad: list[list[str]] = []
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        # decode_image is looked up at call time, so tests can count decodes with monkeypatch.
        for i, result in enumerate(pool.map(lambda p: _decode_or_reason(p, size), files)):
            if isinstance(result, str):
                bad.append([str(files[i].relative_to(tree)), result])
            else:
                images[i] = result
                good.append(i)
    keep = torch.tensor(good, dtype=torch.int64)
    if bad:
        images, labels = images.index_select(0, keep), labels.index_select(0, keep)
    return {"images": images, "labels": labels, "bad": bad}


def _check_bad(entry: dict[str, Any], tree: Path, cfg: DataConfig, classes: list[str]) -> None:
    bad = entry["bad"]
    if bad and not cfg.skip_bad_images:
        path, reason = bad[0]
        more = f" (and {len(bad) - 1} more unreadable file(s))" if len(bad) > 1 else ""
        raise DataError(
            f"{NAME}: cannot read image {tree / path}: {reason}{more}; "
            "fix or remove it, or set data.skip_bad_images = true to skip unreadable images"
        )
    counts = torch.bincount(entry["labels"], minlength=len(classes))
    empty = [
        classes[i]
        for i in range(len(classes))
        if counts[i] == 0 and any(Path(p).parts[0] == classes[i] for p, _ in bad)
    ]
    if empty:
        raise DataError(
            f"{NAME}: class folder {tree / empty[0]} has no readable images (all were skipped as unreadable)"
        )


def load_tree(
    tree: Path, split: str, size: int, cfg: DataConfig, classes: list[str] | None = None
) -> tuple[list[str], dict[str, Any], str, CacheKey]:
    """List, decode (or take from the cache) and check one tree: (classes, entry, cache status, key)."""
    classes, files, labels = list_tree(tree, classes)
    sources = {
        "tree": str(tree.resolve()),
        "classes": classes,
        "files": file_identity(files, relative_to=tree),
        "decoder": DECODER_VERSION,
    }

    def build() -> dict[str, Any]:
        entry = decode_tree(files, labels, size, tree)
        if split == "train":
            entry.update(split_stats(entry["images"]))
        return entry

    key = CacheKey(NAME, split, size, sources)
    entry, status = load_or_build(key, build)
    _check_bad(entry, tree, cfg, classes)
    return classes, entry, status, key


def split_by_fraction(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, val indices), sorted: ``fraction`` of every class (rounded, at least one
    image on each side for classes of two or more) drawn with a generator seeded by ``seed``."""
    g = torch.Generator()
    g.manual_seed(seed)
    train_parts, val_parts = [], []
    for k in labels.unique().tolist():
        members = (labels == k).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=g)]
        n_val = min(max(round(fraction * len(members)), 1), len(members) - 1) if len(members) >= 2 else 0
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    return torch.cat(train_parts).sort().values, torch.cat(val_parts).sort().values


def _layout(root: Path) -> tuple[Path, Path | None]:
    """(training tree, validation tree or None when it is to be split off by val_fraction)."""
    train = root / "train"
    if train.is_dir():
        val = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
        return train, val
    return root, None


def _skipped_info(*named: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """Count and name (the first few) skipped files, as paths relative to ``data.root``."""
    skipped = [f"{prefix}{path}: {reason}" for prefix, entry in named for path, reason in entry["bad"]]
    return {"skipped_bad_images": len(skipped), "skipped_files": skipped[:_LISTED]}


@register_dataset(NAME)
def imagefolder(cfg: DataConfig, input_size: int) -> ImageSplits:
    """Your own images, one subfolder per class (JPEG/PNG/...) under data.root; train/+val/ or a
    seeded val_fraction split."""
    if not cfg.root:
        raise DataError(f"{NAME}: data.root is not set; point it at a folder with one subfolder of images per class")
    if cfg.download:
        raise DataError(f"{NAME}: data.download = true is not possible: an image folder is your own data; remove it")
    if not 0 < cfg.val_fraction < 1:
        raise DataError(f"{NAME}: data.val_fraction = {cfg.val_fraction} must lie strictly between 0 and 1")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"{NAME}: data.root {root} is not a folder")
    train_tree, val_tree = _layout(root)
    try:
        classes, train, train_cache, train_key = load_tree(train_tree, "train" if val_tree else "all", input_size, cfg)
        if val_tree is not None:
            _, val, val_cache, _ = load_tree(val_tree, val_tree.name, input_size, cfg, classes)
            layout = f"{train_tree.name}/ + {val_tree.name}/"
            skipped = _skipped_info((f"{train_tree.name}/", train), (f"{val_tree.name}/", val))
        else:
            train, val = _split(train, train_key, cfg)
            val_cache = train_cache
            layout = f"one tree, val_fraction = {cfg.val_fraction} (seed {cfg.seed})"
            skipped = _skipped_info(("" if train_tree == root else f"{train_tree.name}/", train))
    except OSError as e:  # listing or stat-ing the tree (a file removed meanwhile, no permission, ...)
        raise DataError(f"{NAME}: cannot read {e.filename or root}: {e.strerror or e}") from None
    if val["labels"].numel() == 0:
        raise DataError(f"{NAME}: the validation split of {root} is empty; every class needs at least 2 images")
    info = {
        "source": str(root.resolve()),
        "layout": layout,
        "class_to_index": {c: i for i, c in enumerate(classes)},
        "train_per_class": torch.bincount(train["labels"], minlength=len(classes)).tolist(),
        "val_per_class": torch.bincount(val["labels"], minlength=len(classes)).tolist(),
        **skipped,
        "cache": {"train": train_cache, "val": val_cache},
    }
    return assemble(NAME, train, val, classes, cfg, info)


def _split(entry: dict[str, Any], tree_key: CacheKey, cfg: DataConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split one decoded tree into train and val by ``val_fraction``. The training part's
    statistics are cached too, keyed by the tree's own key plus the seed and the fraction."""
    train_idx, val_idx = split_by_fraction(entry["labels"], cfg.val_fraction, cfg.seed)
    train = {k: entry[k].index_select(0, train_idx) for k in ("images", "labels")}
    val = {k: entry[k].index_select(0, val_idx) for k in ("images", "labels")}
    key = CacheKey(
        NAME,
        "train-stats",
        tree_key.size,
        tree_key.as_json(),
        extra={"val_fraction": cfg.val_fraction, "seed": cfg.seed},
    )
    stats, _ = load_or_build(key, lambda: split_stats(train["images"]))
    train.update(stats)
    train["bad"] = val["bad"] = entry["bad"]
    return train, val
