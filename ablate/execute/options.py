"""``SweepOptions``: what ``ablate run`` asks of a sweep, one type for every executor.

The in-process runner, the local pool, Ray and Slurm all take this object instead of each its own
list of keyword options, so an option added here reaches every executor. Where the cells run (a
device, worker slots, a Ray address, Slurm resources) is not here: it is the executor's own
argument (see ``executors.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
