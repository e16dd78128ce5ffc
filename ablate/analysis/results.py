"""Results as pandas DataFrames, for notebooks: :func:`load_results`.

The frames are the ones ``ablate report`` computes its tables and plots from (they come from
:func:`ablate.analysis.load_experiment_data`, so the two never disagree), stacked over
experiments with an ``experiment`` column in front:

* ``runs``: one row per cell (variant x seed), including cells without a result file (status
  ``missing``), failed and diverged runs; the variant's axes as columns, its final numbers
  (``final_val_acc``, ``gen_gap``, ``train_images_per_s``, ``wall_time_s``, ...);
* ``epochs``: one row per run x finished epoch (``lr``, ``train_loss``, ``val_acc``, ...);
* ``steps``: one row per logged training step, for records that log steps (empty otherwise).

``epochs`` and ``steps`` also carry the variant's axes, so that a notebook can group or colour
them by an axis without a merge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ablate.analysis.errors import ReportError
from ablate.analysis.frames import ExperimentData, available_experiments, current_and_extra, load_experiment_data
from ablate.analysis.metrics import Targets
from ablate.analysis.rows import STEP_COLUMNS
from ablate.store.folder import iter_runs, read_manifest
from ablate.store.record import RunRecord

_ID_COLUMNS = ["experiment", "run_id", "variant", "seed", "status"]


@dataclass(frozen=True)
class Results:
    """Tidy frames of one or more experiments (see the module docstring for their rows)."""

    runs: pd.DataFrame
    epochs: pd.DataFrame
    steps: pd.DataFrame
    # Experiments loaded, in the order asked for (all: sorted by name), and their baselines.
    experiments: list[str] = field(default_factory=list)
    baselines: dict[str, str] = field(default_factory=dict)
    # Experiment -> what the report would say about its data (stale runs, missing manifest, ...).
    notes: dict[str, list[str]] = field(default_factory=dict)
    # Experiments found under the root but left out (no run records yet) when none were named.
    skipped: dict[str, str] = field(default_factory=dict)


def load_results(
    root: str | Path = "results",
    experiments: str | Iterable[str] | None = None,
    *,
    baseline: str | None = None,
    targets: Targets | None = None,
) -> Results:
    """Read ``root/<experiment>/`` result folders into :class:`Results`.

    ``experiments``: a name, several names, or None for every experiment under ``root`` (those
    without run records are then skipped and listed in ``Results.skipped``). ``baseline`` and
    ``targets`` mean what ``ablate report --baseline/--target-*`` mean (they decide the variant
    order and the time-to-target columns). Raises :class:`ablate.analysis.ReportError` (a
    ``ValueError``) for a ``root`` that is not a folder, an unknown experiment, a named
    experiment without run records, or an unknown baseline.
    """
    if not Path(root).is_dir():  # not an empty answer: a mistyped path would look like "no results yet"
        what = "is not a folder" if Path(root).exists() else "does not exist"
        raise ReportError(f"results folder {root} {what}; pass the folder 'ablate run --results' wrote to")
    named = [experiments] if isinstance(experiments, str) else (list(experiments) if experiments is not None else None)
    names = named if named is not None else available_experiments(root)
    loaded: list[ExperimentData] = []
    skipped: dict[str, str] = {}
    for name in dict.fromkeys(names):
        try:
            loaded.append(load_experiment_data(root, name, baseline=baseline, targets=targets or Targets()))
        except ReportError as e:
            if named is not None:
                raise
            skipped[name] = str(e)
    if named is not None and not loaded:
        raise ReportError("no experiment named: pass one or more names, or None for all")
    runs = _stack([_with_experiment(d.name, d.runs) for d in loaded], _ID_COLUMNS)
    epochs = _stack([_with_axes(d, d.epochs) for d in loaded], [*_ID_COLUMNS, "epoch"])
    steps = _stack([_with_axes(d, d.steps) for d in loaded], [*_ID_COLUMNS, *STEP_COLUMNS])
    return Results(
        runs=runs,
        epochs=epochs,
        steps=steps,
        experiments=[d.name for d in loaded],
        baselines={d.name: d.baseline for d in loaded},
        notes={d.name: list(d.notes) for d in loaded},
        skipped=skipped,
    )


def current_records(root: str | Path, experiment: str) -> tuple[list[RunRecord], int]:
    """Run records of the experiment's current configuration, chosen as the report chooses them
    (:func:`ablate.analysis.frames.current_and_extra`), and how many other records the folder holds (older
    configurations)."""
    records = list(iter_runs(root, experiment))
    current, _ = current_and_extra(records, read_manifest(root, experiment))
    return current, len(records) - len(current)


def _with_experiment(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.insert(0, "experiment", name)
    return out


def _with_axes(data: ExperimentData, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (rows keyed by ``variant``) with an ``experiment`` column and the variant's axes."""
    out = _with_experiment(data.name, frame)
    for axis in dict.fromkeys(k for axes in data.variant_axes.values() for k in axes):
        if axis not in out:
            out[axis] = [data.variant_axes.get(v, {}).get(axis) for v in out["variant"]]
    return out


def _stack(frames: Sequence[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """Concatenate per-experiment frames; an empty frame keeps the identifying columns."""
    full = [f for f in frames if not f.empty]
    if not full:
        return frames[0].iloc[0:0].reset_index(drop=True) if frames else pd.DataFrame(columns=columns)
    return pd.concat(full, ignore_index=True, sort=False)
