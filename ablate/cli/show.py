"""``ablate show FILE``: the experiment's cells (variant x seed): done, running, failed or to run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ablate.cli.console import console, warn_unreadable
from ablate.cli.load import load
from ablate.cli.options import (
    DeviceOption,
    ExperimentFile,
    MaxCellsOption,
    ResultsOption,
    SetOption,
)
from ablate.cli.render import cells_table
from ablate.execute.designs import as_recorded
from ablate.experiment.experiment import MAX_CELLS


def show(
    file: ExperimentFile,
    set_: SetOption = [],  # noqa: B006 - typer copies defaults
    device: DeviceOption = "auto",
    results: ResultsOption = Path("results"),
    clean: bool = typer.Option(
        False,
        "--clean",
        help="Remove what killed runs left: temporary files of killed writers, checkpoints and dead "
        "claims of finished cells (checkpoints kept with --keep-checkpoints stay).",
    ),
    max_cells: MaxCellsOption = MAX_CELLS,
) -> None:
    """Print the experiment's cells (variant x seed): done, running (where, since when), failed or to run."""
    from ablate.store.leftovers import checkpoint_disk, clean_leftovers, find_leftovers, megabytes

    exp, _ = load(file, set_, device, max_cells)
    exp = as_recorded(results, exp)  # with the seeds an adaptive design added
    if clean:
        removed = clean_leftovers(results, exp.name)
        console.print(
            f"removed {escape(removed.describe())}" if removed.paths() else "nothing to clean", highlight=False
        )
    console.print(cells_table(exp, results, warn_unreadable(results, exp.name)))
    files, size = checkpoint_disk(results, exp.name)
    if files:
        left = find_leftovers(results, exp.name)
        console.print(
            f"checkpoints: {files} file(s), {megabytes(size)}"
            + (f"; {escape(left.describe())} removable with 'ablate show --clean'" if left.paths() else ""),
            highlight=False,
            soft_wrap=True,
        )
