"""What a sweep tells whoever watches it (the command line's progress display, a test): one observer
type for every executor, from the first dataset loaded to the last cell, and a batch scheduler's
submission. Every method is optional to override; the runner never prints."""

from __future__ import annotations

import sys
from typing import Any

from ablate.experiment.experiment import Cell
from ablate.store.record import RunRecord
from ablate.train.loop import TrainObserver


class RunObserver(TrainObserver):
    """Hooks for a whole experiment; every method is optional to override."""

    def on_data(self, dataset: str, input_size: int) -> None:
        """A dataset is about to be loaded or generated."""

    def on_start(self, todo: list[Cell], skipped: list[Cell]) -> None:
        """Training is about to start: ``todo`` will run, ``skipped`` are already finished."""

    def on_cell_start(self, slot: int, total: int, cell: Cell) -> None:
        """Worker ``slot`` (0 in-process) starts (or resumes) ``cell``; ``total`` cells to do."""

    def on_cell_end(self, slot: int, total: int, cell: Cell, record: RunRecord) -> None:
        pass

    def on_batch(self, epoch: int, step: int, steps: int) -> None:
        self.on_worker_batch(0, epoch, step, steps)

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        self.on_worker_epoch(0, metrics)

    def on_worker_batch(self, slot: int, epoch: int, step: int, steps: int) -> None:
        """Progress inside an epoch of the cell worker ``slot`` trains."""

    def on_worker_epoch(self, slot: int, metrics: dict[str, Any]) -> None:
        """Worker ``slot`` finished an epoch (its metrics)."""

    def on_warning(self, message: str) -> None:
        """Something the user should know that does not stop the run (one line)."""

    def on_resume(self, cell: Cell, resumed: dict[str, Any]) -> None:
        """A cell continues from its checkpoint."""

    def on_submit(self, submission: Any) -> None:
        """The sweep went to a batch scheduler as one job (Slurm: a ``Submission``, its id and logs)."""


class TaskLog(RunObserver):
    """The observer of a cell trained where no driver watches it live (a Slurm array task, a Ray
    task): each warning is one line on the process's stderr, which is the task's log (Slurm:
    ``results/<exp>/slurm/*_log.err``; Ray: its worker's log). Such a process has no command line
    to render for it, so this observer writes itself; the driver reads the same warnings back from
    events.jsonl (:func:`ablate.execute.runner.tell_new_warnings`)."""

    def on_warning(self, message: str) -> None:
        print(f"ablate warning: {message}", file=sys.stderr, flush=True)
