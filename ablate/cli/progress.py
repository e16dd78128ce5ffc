"""What `ablate run` shows while it trains (one bar for the sweep, one per running cell), and the
outcome it prints once the sweep is over.

A :class:`~ablate.execute.runner.RunObserver` that draws with rich; the same for one process and for a
pool of workers (one line per worker slot), so the display does not depend on the executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import Progress, TaskID

from ablate.cli.console import console, err
from ablate.cli.render import run_outcome_table
from ablate.execute.observer import RunObserver
from ablate.execute.runner import RunSummary, is_finished
from ablate.experiment.experiment import Cell, Experiment
from ablate.store.record import RunRecord


class RunDisplay(RunObserver):
    """Draws the sweep's progress (cells done of cells to do) and each running cell's epoch; for
    a job handed to Slurm, where to follow it (``show``: the ``ablate show`` command of this
    sweep) and whether this command waits for it (``waits``)."""

    def __init__(
        self,
        progress: Progress,
        epochs: int,
        slots: dict[int, str] | None = None,
        *,
        show: str = "",
        waits: bool = False,
    ) -> None:
        self.progress, self.epochs = progress, epochs
        self.show, self.waits = show, waits
        self.cells = progress.add_task("cells", total=None)
        # slot -> label ("cpu #0"), shown in front of the cell when there are several workers.
        self.slots = slots or {0: ""}
        self.bars: dict[int, TaskID] = {}
        self.labels: dict[int, str] = {}

    def _bar(self, slot: int) -> TaskID:
        if slot not in self.bars:
            self.bars[slot] = self.progress.add_task("", total=None, visible=False)
        return self.bars[slot]

    def _prefix(self, slot: int) -> str:
        label = self.slots.get(slot, "")
        return f"[{escape(label)}] " if len(self.slots) > 1 and label else ""

    def on_data(self, dataset: str, input_size: int) -> None:
        self.progress.update(self.cells, description=f"loading {escape(dataset)} at {input_size}x{input_size}")

    def on_start(self, todo: list[Cell], skipped: list[Cell]) -> None:
        self.progress.update(self.cells, total=len(todo), description=f"cells ({len(skipped)} already done)")

    def on_cell_start(self, slot: int, total: int, cell: Cell) -> None:
        self.labels[slot] = f"{self._prefix(slot)}{escape(cell.variant.slug())} seed {cell.seed}"
        self.progress.update(self._bar(slot), visible=True, completed=0, total=None, description=self.labels[slot])

    def on_worker_batch(self, slot: int, epoch: int, step: int, steps: int) -> None:
        self.progress.update(
            self._bar(slot),
            completed=step,
            total=steps,
            description=f"{self.labels.get(slot, '')} · epoch {epoch}/{self.epochs}",
        )

    def on_worker_epoch(self, slot: int, metrics: dict[str, Any]) -> None:
        self.progress.console.print(
            f"  {self.labels.get(slot, '')} · epoch {int(metrics['epoch'])}: train loss {metrics['train_loss']:.3f}, "
            f"val acc {metrics['val_acc']:.3f}, {metrics['train_images_per_s']:.0f} img/s",
            highlight=False,
        )

    def on_cell_end(self, slot: int, total: int, cell: Cell, record: RunRecord) -> None:
        self.progress.advance(self.cells)
        if slot in self.bars:
            self.progress.update(self.bars[slot], visible=False)
        if record["status"] != "ok":
            label = f"{self._prefix(slot)}{escape(cell.variant.slug())} seed {cell.seed}"
            self.progress.console.print(
                f"  [yellow]{label}: {record['status']}[/]: {escape(str(record.get('error')))}", highlight=False
            )

    def on_resume(self, cell: Cell, resumed: dict[str, Any]) -> None:
        self.progress.console.print(
            f"  {escape(cell.variant.slug())} seed {cell.seed}: resumed from its checkpoint at epoch "
            f"{resumed['epoch']}, step {resumed['step_in_epoch']}",
            highlight=False,
        )

    def on_warning(self, message: str) -> None:
        self.progress.console.print(f"  [yellow]warning[/]: {escape(message)}", highlight=False, soft_wrap=True)

    def on_submit(self, submission: Any) -> None:
        sub = submission
        self.progress.console.print(
            f"submitted Slurm job {sub.job_id}: {sub.tasks} array task(s) for {sub.cells} cell(s); "
            f"logs in {sub.folder}/\n"
            f"  progress: {self.show}   cancel: scancel {sub.job_id}"
            + ("\n  waiting for the cells (Ctrl-C stops waiting; the job goes on)" if self.waits else ""),
            highlight=False,
            soft_wrap=True,
        )


def print_outcome(exp: Experiment, results: Path, summary: RunSummary) -> dict[str, int]:
    """What ``ablate run`` prints once the sweep is over: worker errors, each cell's outcome and one
    line of counts; returns the counts by status, from which the command's exit code follows."""
    # Cells busy elsewhere when this run reached them may have finished since: say what holds now.
    summary.busy = [c for c in summary.busy if not is_finished(results, c)]
    for line in summary.errors:
        err.print(f"[red]worker error[/]: {escape(line)}", highlight=False, soft_wrap=True)
    console.print(run_outcome_table(exp, results))
    counts = summary.counts()
    console.print(
        f"{len(summary.records)} run(s): {counts['ok']} ok, {counts['failed']} failed, {counts['diverged']} diverged; "
        f"{len(summary.skipped)} already done"
        + (f"; {len(summary.busy)} being trained by another worker (see 'ablate show')" if summary.busy else "")
        + (f"; {len(summary.remaining)} left for a later run (--limit)" if summary.remaining else "")
        + (f"; {len(summary.warnings)} warning(s) (above; also in events.jsonl)" if summary.warnings else "")
        + f"; results in {escape(str(results / exp.name / 'runs'))}",
        highlight=False,
        soft_wrap=True,
    )
    return counts
