"""The ``ablate`` application: the typer app, its global options (``--version``, ``--plugin``) and its
commands, one module each in this package (``show``, ``plan``, ``run``, ``report``, ``bench``, ``export``;
``list`` is here). Errors a user can fix print one line to stderr and exit with code 2, never a traceback."""

from __future__ import annotations

from typing import List

import typer

from ablate._version import __version__
from ablate.cli import bench as bench_command
from ablate.cli import export, plan, report, run, show
from ablate.cli.console import console, fail
from ablate.cli.help import HelpGroup
from ablate.cli.options import PLUGINS
from ablate.cli.render import registry_tables
from ablate.plugins import PluginError, load_plugins

app = typer.Typer(
    name="ablate",
    help="Ablation studies of AlexNet-style CNNs: run experiments, list axes, report results.",
    cls=HelpGroup,
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


app.command()(show.show)
app.command()(plan.plan)
app.command()(run.run)


@app.command(name="list")
def list_() -> None:
    """Print the axes and their values, the architecture presets, init schemes and datasets."""
    for table in registry_tables():
        console.print(table)


def _print_version(value: bool) -> None:
    # An eager option callback runs while the arguments are parsed, before the check for a
    # command, so that `ablate --version` works on its own.
    if value:
        console.print(f"ablate {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
    plugin: List[str] = typer.Option(  # noqa: B008 - typer reads the option from its default
        [],
        "--plugin",
        "-p",
        metavar="MODULE",
        help="Import this module first (e.g. one that registers a new activation), from the working directory "
        "or installed; repeatable. Nothing else is imported from the working directory.",
    ),
) -> None:
    ctx.ensure_object(dict)[PLUGINS] = list(plugin)  # worker processes and Ray tasks import them too
    try:
        load_plugins(plugin)
    except PluginError as e:
        raise fail(str(e)) from None


app.command()(report.report)
app.command()(bench_command.bench)
app.add_typer(export.app, name="export")
