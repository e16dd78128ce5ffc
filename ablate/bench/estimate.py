"""The time a study will take, from a probe's measured costs (:mod:`ablate.bench.probe`): per cell,
per variant, and for the whole ``ablate run`` command with the executor it will use.

One cell, as :func:`ablate.execute.runner.train_claimed` trains it::

    build_s                                        prepare: model, optimizer, device batches
  + epochs * steps * step_s + warmup_extra_s       training (steps = train images // batch size)
  + epochs * eval images * eval_image_s            validation split + the training sample of its size
  + checkpoints * checkpoint_s                     one per epoch, and one every train.checkpoint_minutes
  + record_s                                       environment record, run file

The command (:func:`study_time`): a process starts (``start_s``) and loads every dataset once to
check it before any cell (``execute.runner.start_sweep``). In one process the cells then run one
after the other, and the first cell of each dataset loads it again (the sweep's own loader). With
local workers each worker is a fresh process (``start_s``) that loads each dataset on its first
cell of it, and takes the next unclaimed cell whenever it is free: the cells are scheduled in the
experiment's order onto whichever worker frees first. CPU workers split the cores (the probe ran
at a worker's thread count); workers that share one GPU are taken not to slow each other.

Nothing here measures or prints: it is arithmetic on the probe.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

from ablate.bench.probe import Probe, data_label
from ablate.experiment.experiment import Cell, Experiment


@dataclass(frozen=True)
class CellTime:
    """One cell's predicted seconds, by part."""

    slug: str
    seconds: float
    parts: dict[str, float]  # build, train, eval, checkpoints, bookkeeping
    train_images: int  # images trained on (all epochs)
    eval_images: int  # images evaluated (all epochs)
    checkpoints: int

    def record(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StudyTime:
    """The whole command's predicted wall time, and the device time its cells hold."""

    executor: str
    workers: int
    cells: int
    wall_s: float  # start of the command to its last cell's run file
    device_s: float  # sum of the cells' times (each holds one device or worker slot)
    start_s: float  # before the first cell: the process and the data check
    per_variant: dict[str, CellTime]
    notes: list[str] = field(default_factory=list)

    def mean_cell_s(self) -> float:
        return self.device_s / self.cells if self.cells else math.nan

    def record(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "per_variant"}
        out["per_variant"] = {k: v.record() for k, v in self.per_variant.items()}
        return out


def cell_time(cell: Cell, probe: Probe) -> CellTime:
    """Predicted seconds of one cell (module docstring)."""
    cost = probe.models[cell.variant.slug()]
    data = probe.data[data_label(cell)]
    train = cell.train
    n_train = data.train_images
    steps = n_train // train.batch_size if n_train >= train.batch_size else 1
    train_s = train.epochs * steps * cost.step_s + cost.warmup_extra_s
    eval_per_epoch = data.val_images + min(n_train, data.val_images)
    eval_s = train.epochs * eval_per_epoch * cost.eval_image_s
    checkpoints = train.epochs
    if train.checkpoint_minutes > 0:  # mid-epoch saves on the timer, within each epoch's training
        checkpoints += train.epochs * int(train_s / train.epochs // (train.checkpoint_minutes * 60))
    parts = {
        "build": cost.build_s,
        "train": train_s,
        "eval": eval_s,
        "checkpoints": checkpoints * cost.checkpoint_s,
        "bookkeeping": probe.record_s,
    }
    return CellTime(
        cell.variant.slug(),
        sum(parts.values()),
        parts,
        train.epochs * steps * train.batch_size,
        train.epochs * eval_per_epoch,
        checkpoints,
    )


def study_time(exp: Experiment, probe: Probe, workers: int = 1, executor: str = "") -> StudyTime:
    """Predicted wall time of ``ablate run`` on ``exp``: in one process (``workers`` 1) or with
    ``workers`` local worker processes (module docstring)."""
    cells = exp.cells()
    times = {c.variant.slug(): cell_time(c, probe) for c in cells}
    data_s = {label: d.seconds for label, d in probe.data.items()}
    preload = sum(data_s[label] for label in dict.fromkeys(data_label(c) for c in cells))
    start = probe.start_s + preload
    if workers <= 1:
        ready = [start]
    else:  # every worker is a new process, started once the parent has checked the data
        ready = [start + probe.start_s] * workers
    free = [(t, i) for i, t in enumerate(ready)]
    heapq.heapify(free)
    loaded: list[set[str]] = [set() for _ in ready]
    end = start
    for cell in cells:
        t, i = heapq.heappop(free)
        label = data_label(cell)
        if label not in loaded[i]:  # this process's first cell of that dataset loads it
            loaded[i].add(label)
            t += data_s[label]
        t += times[cell.variant.slug()].seconds
        end = max(end, t)
        heapq.heappush(free, (t, i))
    notes = []
    if workers > 1 and probe.device.startswith("cuda"):
        notes.append("workers sharing a GPU are taken not to slow each other")
    return StudyTime(
        executor=executor,
        workers=max(1, workers),
        cells=len(cells),
        wall_s=end,
        device_s=sum(times[c.variant.slug()].seconds for c in cells),
        start_s=start,
        per_variant=times,
        notes=notes,
    )
