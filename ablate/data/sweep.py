"""The decoded splits a sweep trains on: each dataset loaded once per process (by data settings
and input size), a cell's training subset redrawn with its seed when ``data.resample`` is on, and
the batch size checked against the training set before any model trains."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from ablate.data import DataError, ImageSplits, load_splits
from ablate.data.common import as_rgb, balanced_subset
from ablate.data.loader import storage_view
from ablate.experiment.experiment import Cell
from ablate.models.alexnet import arch_spec


class DataObserver(Protocol):
    """Who hears that a dataset is being loaded (the run display: a line while it decodes)."""

    def on_data(self, dataset: str, input_size: int) -> None: ...


def data_key(cell: Cell) -> tuple:
    return (cell.data, arch_spec(cell.variant.arch).input_size)


class Datasets:
    """The datasets cells need, each loaded once per process (by data settings and input size)
    and checked against the cell's batch size. Call it with a cell to get its splits.

    With ``data.resample = true`` a cell's training subset is drawn from the full training set
    with the run seed (class-balanced, as ``data.train_size`` subsets are): the full set is loaded
    once, and only the latest draw is kept, so a sweep's memory does not grow with its seeds."""

    def __init__(self, observer: DataObserver | None = None, use_cache: bool = True) -> None:
        self.observer, self.use_cache = observer, use_cache
        self._loaded: dict[tuple, ImageSplits] = {}
        self._drawn: tuple[tuple, ImageSplits] | None = None

    def _load(self, cfg: Any, input_size: int) -> ImageSplits:
        key = (cfg, input_size)
        if key not in self._loaded:
            if self.observer:
                self.observer.on_data(cfg.dataset, input_size)
            self._loaded[key] = load_splits(cfg, input_size, use_cache=self.use_cache)
        return self._loaded[key]

    def __call__(self, cell: Cell) -> ImageSplits:
        input_size = data_key(cell)[1]
        if not cell.data.resample:
            splits = self._load(cell.data, input_size)
        else:
            key = (cell.data, input_size, cell.seed)
            if self._drawn is None or self._drawn[0] != key:
                full = self._load(dataclasses.replace(cell.data, train_size=None), input_size)
                self._drawn = (key, resample(full, cell.data.train_size, cell.seed, cell.data.dataset))
            splits = self._drawn[1]
        check_batch_size(cell, splits)
        return splits

    def preload(self, cells: list[Cell]) -> None:
        """Load every dataset ``cells`` need now, so that missing files, bad images or a batch
        larger than the training set stop the run before any model trains."""
        for cell in cells:
            self(cell)


def resample(full: ImageSplits, size: int | None, seed: int, dataset: str) -> ImageSplits:
    """A class-balanced draw of ``size`` training images from ``full``, seeded by the run seed;
    the validation split and the normalization statistics (of the full training set) unchanged."""
    n = full.train_x.shape[0]
    if size is None or size >= n:
        raise DataError(
            f"data.resample = true draws data.train_size images from the {n} training images of {dataset}; "
            f"set data.train_size below {n} (it is {size if size is not None else 'unset: all of them'})"
        )
    idx = balanced_subset(full.train_y, size, seed, "resample")
    stored = storage_view(full.train_x)  # grey splits: gather the 1 stored channel, not 3
    return ImageSplits(
        as_rgb(stored.index_select(0, idx)),
        full.train_y.index_select(0, idx),
        full.val_x,
        full.val_y,
        full.classes,
        full.mean,
        full.std,
        info={**full.info, "resampled": {"seed": seed, "train_size": size, "from": n}},
    )


def check_batch_size(cell: Cell, splits: ImageSplits) -> None:
    """Refuse a batch larger than the training set (it would train one short batch per epoch
    and record a batch size that was never in force)."""
    n = splits.train_x.shape[0]
    if cell.train.batch_size > n:
        raise DataError(
            f"train.batch_size = {cell.train.batch_size} is larger than the training set ({n} images of "
            f"{cell.data.dataset}); use train.batch_size <= {n} or a larger data.train_size"
        )
