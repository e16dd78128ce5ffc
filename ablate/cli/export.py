"""``ablate export``: results to the trackers researchers already use, one subcommand per row of
the exporter table (TensorBoard, MLflow, W&B). Each subcommand only turns its options into the
row's target; reading the run files, matching runs, ``--follow`` and the lines printed are shared."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ablate.cli.console import announce_stop, console, err, fail, interrupted, progress_bar
from ablate.cli.options import ResultsOption
from ablate.cli.report_options import (
    ExportNames,
    ExportOutOption,
    FollowOption,
    IntervalOption,
    ModeOption,
    ProjectOption,
    ReportsOption,
    TrackingUriOption,
    WandbDirOption,
    check_out,
)

app = typer.Typer(help="Export results to other tools (TensorBoard, MLflow, Weights & Biases).", no_args_is_help=True)


@app.command("tensorboard")
def export_tensorboard_command(
    names: ExportNames = None,
    results: ResultsOption = Path("results"),
    out: ExportOutOption = ...,
    follow: FollowOption = False,
    interval: IntervalOption = 5.0,
) -> None:
    """TensorBoard event files from the run files: curves per epoch and step, HParams by axis
    (needs ablate[tensorboard])."""
    from ablate.report.export.tensorboard import TensorBoardTarget

    check_out(out)
    _export("tensorboard", TensorBoardTarget(out), names, results, follow, interval)


@app.command("mlflow")
def export_mlflow_command(
    names: ExportNames = None,
    results: ResultsOption = Path("results"),
    tracking_uri: TrackingUriOption = "sqlite:///mlflow.db",
    reports: ReportsOption = Path("reports"),
    follow: FollowOption = False,
    interval: IntervalOption = 5.0,
) -> None:
    """MLflow runs from the run files: an MLflow experiment per experiment, a parent run per variant
    (mean and 95% CI over seeds, verdict against the baseline) with a nested run per seed, metrics
    per epoch and step (needs ablate[mlflow])."""
    from ablate.report.export.mlflow import MlflowTarget

    _export("mlflow", MlflowTarget(tracking_uri, reports), names, results, follow, interval)


@app.command("wandb")
def export_wandb_command(
    names: ExportNames = None,
    results: ResultsOption = Path("results"),
    project: ProjectOption = "ablate",
    mode: ModeOption = None,
    dir: WandbDirOption = Path("."),
    follow: FollowOption = False,
    interval: IntervalOption = 5.0,
) -> None:
    """Weights & Biases runs from the run files: one W&B run per run, grouped by variant, job type
    = experiment, history per epoch and step (needs ablate[wandb])."""
    from ablate.report.export.walk import ExportError
    from ablate.report.export.wandb import WandbTarget, default_mode

    try:
        target = WandbTarget(project, mode or default_mode(), dir)
    except ExportError as e:
        raise fail(str(e)) from None
    _export("wandb", target, names, results, follow, interval)


def _export(name: str, target: Any, names: list[str] | None, results: Path, follow: bool, interval: float) -> None:
    """One row of the exporter table, once or with ``--follow``; errors as one line, exit 2."""
    from ablate.report.export.exporters import EXPORTERS, export
    from ablate.report.export.walk import ExportError

    exporter = EXPORTERS[name]
    try:
        if follow:
            _follow(exporter, target, names, results, interval)
            return
        with progress_bar() if console.is_terminal else nullcontext() as bar:  # a bar only where one is seen
            task = bar.add_task(f"exporting to {escape(exporter.describe(target))}", total=None) if bar else None

            def on_run(run: Any, i: int, n: int) -> None:
                if bar is not None and task is not None:
                    bar.update(task, total=n, completed=i)

            done = export(exporter, target, results, names or None, on_run=on_run)
    except ExportError as e:
        raise fail(str(e)) from None
    _notes(done.stale, done.warnings)
    epochs, steps = sum(r.epochs for r in done.runs), sum(r.steps for r in done.runs)
    console.print(
        f"{len(done.runs)} run(s) exported to {escape(exporter.describe(target))} ({epochs} epochs"
        + (f", {steps} steps" if steps else "")
        + f"; {done.created} new, {done.points} metric points added); view with: {escape(exporter.view(target))}",
        highlight=False,
        soft_wrap=True,
    )


def _follow(exporter: Any, target: Any, names: list[str] | None, results: Path, interval: float) -> None:
    from ablate.report.export.exporters import follow
    from ablate.runtime.stop_signal import StopOnSignal

    waited: set[str] = set()

    def on_look(look: Any, runs: list[Any]) -> None:
        for line in look.warnings:
            err.print(f"[yellow]warning[/]: {escape(line)}", highlight=False, soft_wrap=True)
        for name in look.waiting:
            if name not in waited:
                waited.add(name)
                console.print(f"  waiting for run files of {escape(name)}", highlight=False, soft_wrap=True)
        for run in runs:
            if run.created or run.points:
                what = "new run" if run.created else f"{run.points} new points"
                console.print(
                    f"  {escape(run.experiment)} {escape(run.name)}: {run.status}, {run.epochs} epochs ({what})",
                    highlight=False,
                    soft_wrap=True,
                )

    console.print(
        f"following {escape(str(results))} into {escape(exporter.describe(target))}; Ctrl-C stops",
        highlight=False,
        soft_wrap=True,
    )
    stopping = "finishing the run being written (Ctrl-C again to quit now)"
    try:
        with StopOnSignal(lambda: announce_stop(stopping)) as stop:
            done = follow(
                exporter, target, results, names or None, interval=interval, should_stop=stop, on_look=on_look
            )
    except KeyboardInterrupt:
        raise interrupted("interrupted", "the runs exported so far are kept; run the command again to go on") from None
    _notes(done.stale, [])
    mirrored = [r for r in done.runs if r.created or r.points]
    console.print(
        f"stopped following: {len(mirrored)} run(s) mirrored, {done.created} new, {done.points} metric points added; "
        f"view with: {escape(exporter.view(target))}",
        highlight=False,
        soft_wrap=True,
    )


def _notes(stale: dict[str, int], warnings: list[str]) -> None:
    for line in warnings:
        err.print(f"[yellow]warning[/]: {escape(line)}", highlight=False, soft_wrap=True)
    for name, count in sorted(stale.items()):
        console.print(
            f"  [yellow]note[/]: {escape(name)}: {count} run(s) from an older configuration left out",
            highlight=False,
            soft_wrap=True,
        )
