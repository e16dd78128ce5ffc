"""What ``ablate run`` asks of a sweep, one type for every executor, and how each cell is treated.

:class:`SweepOptions` is built once from the command line (or by :func:`ablate.execute.runner.
run_experiment`'s keywords) and handed to whichever executor runs the sweep, so an option added
here reaches every executor. Where the cells run (a device, worker slots, a Ray cluster, Slurm
resources) is not here: it is each executor's own typed argument (see ``executors.py``).
:meth:`SweepOptions.work` gives the :class:`WorkOptions` that
:func:`~ablate.execute.runner.train_claimed` applies to each cell.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SweepOptions:
    """The options of one sweep, the same whichever executor runs it."""

    device: str = "auto"  # as asked (auto | cpu | cuda | cuda:N); Ray and Slurm: "cpu" keeps tasks off GPUs
    force: bool = False  # retrain cells that already have a finished result
    limit: int | None = None  # train at most this many cells in this command (cells another worker holds are skipped)
    use_cache: bool = True  # read/write the on-disk cache of decoded datasets
    keep_checkpoints: bool = False  # keep a finished cell's last checkpoint
    max_retries: int = 2  # retries of a cell whose worker process died (local workers, Ray)
    threads: int | None = None  # torch threads per worker (None: the executor's default)
    plugins: tuple[str, ...] = ()  # --plugin modules, imported again by every worker process or task
    # Tags this command's warning events in events.jsonl, so that its driver finds those of its
    # cells wherever they ran (a Slurm or Ray task), and no one else's.
    sweep: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # Run ids this command has trained or tried already (the earlier stages of an adaptive design):
    # not trained again in it, whatever --force says, and a failed one not retried by a later stage.
    handled: frozenset[str] = frozenset()

    def work(self, started: float | None, worker: str = "") -> WorkOptions:
        """How each cell of this sweep is treated; ``started``: when the sweep began
        (``time.time()``), which ``--force`` needs to tell a cell retrained by a concurrent
        forced run from an old one (None: no such check; Slurm's array tasks tell this sweep's
        run files by a marker's time instead); ``worker``: who trains, for claims and records."""
        return WorkOptions(
            force=self.force,
            forced_since=started if self.force else None,
            keep_checkpoints=self.keep_checkpoints,
            use_cache=self.use_cache,
            worker=worker,
            sweep=self.sweep,
        )


@dataclass(frozen=True)
class WorkOptions:
    """How :func:`train_claimed` treats each cell (the same for every executor)."""

    force: bool = False  # retrain cells that already have a finished result
    # With force: when this sweep started (time.time()). A cell whose finished run file was
    # written since then was retrained by a concurrent --force run: done, not trained again.
    forced_since: float | None = None
    keep_checkpoints: bool = False  # keep a finished cell's checkpoint (its final state)
    use_cache: bool = True  # read/write the on-disk cache of decoded datasets
    worker: str = ""  # who trains, for claims and records ("cuda:1 #2", "ray", ...)
    sweep: str = ""  # the command's token on its warning events (SweepOptions.sweep)
