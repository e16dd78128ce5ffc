"""Where the command line writes: the rich consoles (results to stdout, errors and warnings to
stderr), its progress bar, and the one-line error that ends a command.

Shared by the commands and the modules that print for them (``progress``), so that every line goes
through the same two consoles.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ablate.store.folder import RunScan, scan_runs

console = Console()
err = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    # One line, whatever the message holds (a plugin's exception text may span several).
    message = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def warn_unreadable(results: str | Path, name: str) -> RunScan:
    """One warning line per run file that is not a valid record (never a traceback); returns
    the scan, for callers that show the cells."""
    scan = scan_runs(results, name)
    for line in scan.warnings():
        err.print(f"[yellow]warning[/]: {escape(line)}", highlight=False, soft_wrap=True)
    return scan


def announce_stop(what: str) -> None:
    err.print(f"[yellow]stopping[/]: {what}", soft_wrap=True)


def interrupted(head: str, text: str) -> typer.Exit:
    err.print(f"[yellow]{head}[/]: {text}", soft_wrap=True)
    return typer.Exit(130)
