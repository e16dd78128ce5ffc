"""The error every executor raises for a sweep it cannot run (bad worker settings, Ray or Slurm missing
or refusing), and the import of an executor's optional extra that raises it."""

from __future__ import annotations

from typing import Any


class ExecutorError(Exception):
    """An executor cannot run the sweep (bad worker settings, Ray or Slurm missing or refusing);
    ``str()`` is one line for the user."""


def import_extra(module: str, error: type[ExecutorError], needs: str, extra: str) -> Any:
    """The module of an optional extra (``ray``, ``submitit``), imported when a sweep asks for it;
    missing, ``error`` says in one line how to install it (``needs``: "--ray needs Ray")."""
    try:
        return __import__(module)  # through builtins.__import__, which tests replace to hide a module
    except ImportError:
        raise error(f"{needs}, which is not installed: pip install 'ablate[{extra}]'") from None
