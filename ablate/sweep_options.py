"""``SweepOptions``: what ``ablate run`` asks of a sweep, one type for every executor.

The in-process runner, the local pool, Ray and Slurm all take this object instead of each its own
list of keyword options, so an option added here reaches every executor. Where the cells run (a
device, worker slots, a Ray address, Slurm resources) is not here: it is the executor's own
argument (see ``executors.py``).

Also here: the error type of every executor and the import of an executor's optional extra. This
module imports nothing that trains (no ``ablate.runner``) so that the executors, which do, sit one
layer above the runner and not two: they turn :meth:`SweepOptions.work_fields` and
:meth:`SweepOptions.start_fields` into ``runner.WorkOptions(...)`` and ``runner.start_sweep(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class SweepOptions:
    """The options of one sweep, the same whichever executor runs it."""

    device: str = "auto"  # as asked (auto | cpu | cuda | cuda:N); Ray and Slurm: "cpu" keeps tasks off GPUs
    force: bool = False  # retrain cells that already have a finished result
    limit: int | None = None  # train at most this many cells now
    use_cache: bool = True  # read/write the on-disk cache of decoded datasets
    keep_checkpoints: bool = False  # keep a finished cell's last checkpoint
    max_retries: int = 2  # retries of a cell whose worker process died (pool, Ray)
    per_device: int = 1  # workers sharing each GPU (Ray: 1/K of a GPU per task)
    threads: int | None = None  # torch threads per worker (None: the executor's default)
    plugins: tuple[str, ...] = ()  # --plugin modules, imported again by every worker process or task

    def work_fields(self, started: float | None = None, worker: str = "") -> dict[str, Any]:
        """The keyword arguments of ``runner.WorkOptions``: how each cell is treated. ``started``:
        when this sweep began (``time.time()``), which ``--force`` needs to tell a cell retrained by
        a concurrent forced run from an old one."""
        return {
            "force": self.force,
            "forced_since": started if self.force else None,
            "keep_checkpoints": self.keep_checkpoints,
            "use_cache": self.use_cache,
            "worker": worker,
        }

    def start_fields(self) -> dict[str, Any]:
        """The keyword arguments of ``runner.start_sweep`` besides the experiment, the results folder
        and the observer: which cells to train now."""
        return {"force": self.force, "limit": self.limit, "use_cache": self.use_cache}
