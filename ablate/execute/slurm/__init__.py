"""The Slurm executor: one job array through submitit whose tasks are workers.

Job: :mod:`.cluster` (what ``--slurm`` asks of Slurm, checked before anything is submitted) and
:mod:`.array` (the array's tasks, submission and waiting).

May import: what :mod:`ablate.execute` may; submitit is imported when a sweep asks for it.
Exports: ``SlurmOptions``, ``SlurmError`` (the sweep itself: :func:`ablate.execute.slurm.array.run_slurm`).
"""

from ablate.execute.slurm.cluster import SlurmError, SlurmOptions

__all__ = ["SlurmError", "SlurmOptions"]
