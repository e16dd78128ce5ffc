"""``ablate export``: results to other tools, one subcommand per tool (TensorBoard)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ablate.cli.console import console, fail
from ablate.cli.options import (
    ResultsOption,
)
from ablate.cli.report_options import (
    ExportNames,
    ExportOutOption,
    check_out,
)

app = typer.Typer(help="Export results to other tools (TensorBoard).", no_args_is_help=True)


@app.command("tensorboard")
def export_tensorboard_command(
    names: ExportNames = None,
    results: ResultsOption = Path("results"),
    out: ExportOutOption = ...,
) -> None:
    """TensorBoard event files from the run files: curves per epoch and step, HParams by axis
    (needs ablate[tensorboard])."""
    from ablate.report.tensorboard import ExportError, export_tensorboard

    check_out(out)

    try:
        done = export_tensorboard(results, out, names or None)
    except ExportError as e:
        raise fail(str(e)) from None
    for name, count in sorted(done.stale.items()):
        console.print(
            f"  [yellow]note[/]: {escape(name)}: {count} run(s) from an older configuration left out",
            highlight=False,
            soft_wrap=True,
        )
    steps = sum(r.steps for r in done.runs)
    console.print(
        f"{len(done.runs)} run(s) exported to {escape(str(out))} ({sum(r.epochs for r in done.runs)} epochs"
        + (f", {steps} steps" if steps else "")
        + f"); view with: tensorboard --logdir {escape(str(out))}",
        highlight=False,
        soft_wrap=True,
    )
