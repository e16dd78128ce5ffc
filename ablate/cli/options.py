"""The options several commands share, declared once (typer ``Annotated`` types), and what reads them.

A command's own options are declared in its module (``run_options`` for ``ablate run``, whose
checks are in ``run_checks``). A mistake raises :class:`OptionError`, whose ``str()`` is the one
line a command prints before exiting with 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List

import typer

from ablate.experiment.experiment import MAX_CELLS


class OptionError(ValueError):
    """Options that do not go together or do not parse; ``str()`` is one line for the user."""


# Where the app's callback keeps the --plugin modules in the click context: worker processes and
# Ray tasks import them too.
PLUGINS = "plugins"


def plugin_modules(ctx: typer.Context) -> list[str]:
    """The modules given with ``--plugin``, as the app's callback stored them."""
    obj = ctx.find_root().obj
    return list(obj.get(PLUGINS, [])) if isinstance(obj, dict) else []


# Options shared by several commands, declared once.
# Help texts are plain text (rich markup is off, see help.plain_help): write [gpu], not \\[gpu].
ExperimentFile = Annotated[Path, typer.Argument(metavar="FILE", help="Experiment file (TOML).")]


def set_option(panel: str | None = None) -> Any:
    return typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a key of the experiment file, e.g. --set train.epochs=2 (repeatable; the value is read as TOML; "
        "gpu.KEY edits the [gpu] table).",
        rich_help_panel=panel,
    )


def device_option(panel: str | None = None) -> Any:
    return typer.Option(
        metavar="DEVICE",
        help="auto (CUDA when present) | cpu | cuda | cuda:N; on CUDA the file's [gpu] overrides apply.",
        rich_help_panel=panel,
    )


def results_option(panel: str | None = None) -> Any:
    return typer.Option(metavar="DIR", help="Root folder of the results.", rich_help_panel=panel)


def max_cells_option(panel: str | None = None) -> Any:
    return typer.Option(
        "--max-cells",
        min=1,
        metavar="N",
        help=f"Refuse an experiment of more cells (variants x seeds) than this (default {MAX_CELLS:,}).",
        rich_help_panel=panel,
    )


# ``panel``: the group ``--help`` lists the option in (see help.py); None for commands without groups.
SetOption = Annotated[List[str], set_option()]
DeviceOption = Annotated[str, device_option()]
ResultsOption = Annotated[Path, results_option()]
MaxCellsOption = Annotated[int, max_cells_option()]


def split_list(values: list[str], name: str, kind: type = str) -> tuple[Any, ...] | None:
    """``["32,64", "128"]`` -> ``(32, 64, 128)``: repeatable options that also take comma lists."""
    items = [part.strip() for value in values for part in value.split(",") if part.strip()]
    try:
        return tuple(kind(i) for i in items) or None
    except ValueError:
        raise OptionError(f"{name} {', '.join(items)}: expected {kind.__name__} values, e.g. {name} 32,64") from None
