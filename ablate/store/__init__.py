"""The results folder, the only state that executors, reports and exports share.

Job: :mod:`.folder` (the layout of ``results/<experiment>/``, run files written atomically and
read through one check, the manifest, the event log), :mod:`.record` (the run record: one JSON
file per finished run, its types and validation), :mod:`.claims` (which worker trains which
cell), :mod:`.checkpoints` (an unfinished cell's state, saved atomically and loaded safely) and
:mod:`.leftovers` (what killed runs leave behind).

May import: the vocabulary (``ablate.config``) and torch (checkpoints only).
Exports: ``StoreError``, ``RunRecord``, ``run_path``, ``read_run``, ``write_run``, ``scan_runs``,
``iter_runs``, ``experiments``, ``read_events``, ``read_manifest``.
"""

from ablate.store.folder import (
    StoreError,
    experiments,
    iter_runs,
    read_events,
    read_manifest,
    read_run,
    run_path,
    scan_runs,
    write_run,
)
from ablate.store.record import RunRecord

__all__ = [
    "RunRecord",
    "StoreError",
    "experiments",
    "iter_runs",
    "read_events",
    "read_manifest",
    "read_run",
    "run_path",
    "scan_runs",
    "write_run",
]
