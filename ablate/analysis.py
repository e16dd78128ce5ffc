"""Result files -> tidy pandas frames, and the tables of a report built from them.

Reads what ``ablate run`` wrote (``results/<experiment>/experiment.json`` and ``runs/*.json``,
through :mod:`ablate.store`) and never imports training code. Two frames per experiment:

* ``runs``: one row per cell of the experiment (variant x seed), including cells with no result
  file yet (status ``missing``), failed and diverged runs, with the run's final numbers;
* ``epochs``: one row per run x finished epoch.

Only runs with status ``ok`` enter means, intervals and comparisons; the others are counted per
variant and listed, never silently dropped. Runs in the folder that belong to an older
configuration of the experiment (run ids not in the manifest) are left out and counted.

Derived per-run numbers:

* ``gen_gap`` = final training accuracy - final validation accuracy, both in eval mode: the
  training accuracy is ``train_eval_acc``, measured after the epoch on a fixed training sample
  of the validation split's size (no dropout, no augmentation). Records without it fall back to
  ``train_acc``, measured during the epoch in training mode (dropout on), which understates the
  fit of dropout variants; ``gap_source`` says which one a run used.
* ``epochs_to_train_target``: the first epoch whose training error (1 - training accuracy)
  is at or below the target (the paper's Figure 1 uses 25%); ``time_to_train_target_s`` the
  wall time (training + evaluation) up to the end of that epoch. NaN when the run never got
  there (``reached_train_target`` False). Likewise for an optional validation-accuracy target.

The statistics themselves (intervals, tests, Holm, verdicts) live in :mod:`ablate.stats`.

This module gathers the analysis API in one place; the code lives along its seams:
:mod:`ablate.frames` (result files -> frames), :mod:`ablate.tables` (per-variant tables),
:mod:`ablate.comparisons` (paired comparisons, power, interval notes) and :mod:`ablate.effects`
(grid effects, balanced contrasts, matched pairs).
"""

from __future__ import annotations

from ablate.comparisons import (
    CI_METHODS,
    COMPARISON_COLUMNS,
    DEFAULT_EFFECT,
    Effect,
    compare_to_baseline,
    interval_note,
)
from ablate.effects import (
    EFFECT_COLUMNS,
    NEGATIVE_INTERACTION,
    NO_INTERACTION,
    POSITIVE_INTERACTION,
    Contrast,
    balanced_contrast,
    cell_means,
    grid_effects,
    matched_pairs,
    reference_level,
)
from ablate.frames import (
    ALL_EQUAL_NOTE,
    EPOCH_COLUMNS,
    NOT_REACHED,
    STATUS_MISSING,
    STATUS_OK,
    STEP_COLUMNS,
    STEP_FRAME_COLUMNS,
    TARGET_METRICS,
    VARIATION_SOURCES,
    ExperimentData,
    Metric,
    ReportError,
    Targets,
    available_experiments,
    epoch_rows,
    load_experiment_data,
    metrics_for,
    run_row,
    step_rows,
    variation_sources,
)
from ablate.tables import SUMMARY_INTERVALS, SUMMARY_SPREADS, per_seed, status_counts, summary_table

__all__ = [
    "ALL_EQUAL_NOTE",
    "CI_METHODS",
    "COMPARISON_COLUMNS",
    "Contrast",
    "DEFAULT_EFFECT",
    "EFFECT_COLUMNS",
    "EPOCH_COLUMNS",
    "Effect",
    "ExperimentData",
    "Metric",
    "NEGATIVE_INTERACTION",
    "NOT_REACHED",
    "NO_INTERACTION",
    "POSITIVE_INTERACTION",
    "ReportError",
    "STATUS_MISSING",
    "STATUS_OK",
    "STEP_COLUMNS",
    "STEP_FRAME_COLUMNS",
    "SUMMARY_INTERVALS",
    "SUMMARY_SPREADS",
    "TARGET_METRICS",
    "Targets",
    "VARIATION_SOURCES",
    "available_experiments",
    "balanced_contrast",
    "cell_means",
    "compare_to_baseline",
    "epoch_rows",
    "grid_effects",
    "interval_note",
    "load_experiment_data",
    "matched_pairs",
    "metrics_for",
    "per_seed",
    "reference_level",
    "run_row",
    "status_counts",
    "step_rows",
    "summary_table",
    "variation_sources",
]
