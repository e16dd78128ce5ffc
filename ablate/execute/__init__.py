"""Run a sweep: claim each cell, train it, store it; the executor table decides where.

Job: :mod:`.runner` (``train_claimed``, the one way a cell gets trained, and the in-process
sweep), :mod:`.executors` (the table: one row per executor), one module per backend —
:mod:`.local` (worker processes), :mod:`.ray` (Ray tasks), :mod:`.slurm` (a Slurm job array through
submitit) — their shared :mod:`.options`, :mod:`.observer` and :mod:`.errors`, :mod:`.adaptive` (the
adaptive designs, which decide between sweeps how many seeds each variant gets) and :mod:`.designs`
(which design a results folder holds, and whether a run may replace it).

May import: everything below it (``train``, ``data``, ``analysis`` for the adaptive designs'
decisions, ``store``, ``runtime``, ``experiment``, the vocabulary); never ``report`` or ``cli``.
Exports: ``run_experiment``, ``train_claimed``, ``RunObserver``, ``RunSummary``, ``SweepOptions``,
``ExecutorError``.
"""

from ablate.execute.errors import ExecutorError
from ablate.execute.options import SweepOptions
from ablate.execute.runner import RunObserver, RunSummary, run_experiment, train_claimed

__all__ = ["ExecutorError", "RunObserver", "RunSummary", "SweepOptions", "run_experiment", "train_claimed"]
