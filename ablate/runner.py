"""Run many cells: skip finished ones, load each dataset once, survive failing cells.

The runner never prints: it reports through a :class:`RunObserver` (the CLI draws progress bars
from it) and returns a :class:`RunSummary`.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ablate.data import ImageSplits, load_splits
from ablate.env import environment
from ablate.experiment import Cell, Experiment
from ablate.models import arch_spec
from ablate.store import finished_run_ids, write_manifest, write_run
from ablate.train import TrainObserver, train_cell


class RunObserver(TrainObserver):
    """Hooks for a whole experiment; every method is optional to override."""

    def on_data(self, dataset: str, input_size: int) -> None:
        """A dataset is about to be loaded or generated."""

    def on_start(self, todo: list[Cell], skipped: list[Cell]) -> None:
        """Training is about to start: ``todo`` will run, ``skipped`` are already finished."""

    def on_cell_start(self, index: int, total: int, cell: Cell) -> None:
        pass

    def on_cell_end(self, index: int, total: int, cell: Cell, record: dict[str, Any]) -> None:
        pass

    def on_batch(self, epoch: int, step: int, steps: int) -> None:
        pass

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        pass


@dataclass
class RunSummary:
    experiment: str
    records: list[dict[str, Any]] = field(default_factory=list)  # runs done in this invocation
    skipped: list[Cell] = field(default_factory=list)  # already finished before
    remaining: list[Cell] = field(default_factory=list)  # left for later (--limit)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def plan(exp: Experiment, results: str | Path, force: bool = False) -> tuple[list[Cell], list[Cell]]:
    """Split the experiment's cells into (to run, already finished)."""
    done = set() if force else finished_run_ids(results, exp.name)
    cells = exp.cells()
    return [c for c in cells if c.run_id not in done], [c for c in cells if c.run_id in done]


def load_data(
    cells: list[Cell], observer: RunObserver | None = None, use_cache: bool = True
) -> dict[tuple, ImageSplits]:
    """Load every dataset the cells need, once per (data settings, input size), before training,
    so that missing files or bad images stop the run before any model trains. ``use_cache=False``
    decodes from the source files without reading or writing the on-disk cache."""
    data: dict[tuple, ImageSplits] = {}
    for cell in cells:
        key = _data_key(cell)
        if key not in data:
            if observer:
                observer.on_data(cell.data.dataset, key[1])
            data[key] = load_splits(cell.data, key[1], use_cache=use_cache)
    return data


def _data_key(cell: Cell) -> tuple:
    return (cell.data, arch_spec(cell.variant.arch).input_size)


def run_cell(cell: Cell, splits: ImageSplits, device: torch.device, observer: TrainObserver | None = None) -> dict[str, Any]:
    """Train one cell and wrap any failure into a ``failed`` record instead of raising."""
    started = now()
    try:
        record = train_cell(cell, splits, device, observer)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - one bad cell must not end the sweep
        record = {
            "run_id": cell.run_id, "experiment": cell.experiment, "variant": cell.variant.axes(),
            "slug": cell.variant.slug(), "seed": cell.seed, "status": "failed",
            "error": f"{type(e).__name__}: {e}".splitlines()[0], "traceback": traceback.format_exc(),
            "config": cell.config(), "params": None, "epochs": [], "summary": {},
        }
        if device.type == "cuda":
            torch.cuda.empty_cache()
    record["env"] = {**environment(device), "started": started, "finished": now()}
    return record


def run_experiment(
    exp: Experiment,
    device: torch.device,
    results: str | Path = "results",
    *,
    force: bool = False,
    limit: int | None = None,
    observer: RunObserver | None = None,
    use_cache: bool = True,
) -> RunSummary:
    """Train every unfinished cell of ``exp`` (at most ``limit`` of them) and store each result.
    ``use_cache=False`` bypasses the on-disk cache of decoded datasets."""
    observer = observer or RunObserver()
    todo, skipped = plan(exp, results, force)
    remaining = todo[limit:] if limit is not None else []
    todo = todo[:limit] if limit is not None else todo
    data = load_data(todo, observer, use_cache)
    write_manifest(results, {**exp.manifest(), "updated": now()})
    observer.on_start(todo, skipped)
    summary = RunSummary(exp.name, skipped=skipped, remaining=remaining)
    for i, cell in enumerate(todo):
        observer.on_cell_start(i, len(todo), cell)
        record = run_cell(cell, data[_data_key(cell)], device, observer)
        write_run(results, record)
        summary.records.append(record)
        observer.on_cell_end(i, len(todo), cell, record)
    return summary
