"""Results -> tidy frames -> statistics: the analysis API in one place, for reports, the CLI and notebooks.

Job: :mod:`.frames` (result files -> :class:`ExperimentData`), :mod:`.rows` (a run record -> rows
and the derived per-run numbers), :mod:`.metrics` (what is compared, targets), :mod:`.summary`
(per-variant frames over the ok runs), :mod:`.stats` (intervals, tests, power, Holm, verdicts),
:mod:`.comparisons` (paired comparisons with the baseline), :mod:`.effects` and :mod:`.factorial`
(grid designs as one linear model), :mod:`.sequential` and :mod:`.adaptive` (the adaptive seed
designs' boundaries and rules), :mod:`.paper_claims` (the 2012 paper's claims) and
:mod:`.results` (``load_results``: DataFrames for notebooks).

May import: ``store``, ``experiment`` and the vocabulary; never ``train``, ``execute``, ``data``
or ``models`` (an analysis never needs torch code).
Exports: the names below (this module re-exports only).
"""

from __future__ import annotations

from ablate.analysis.comparisons import (
    CI_METHODS,
    COMPARISON_COLUMNS,
    DEFAULT_EFFECT,
    Effect,
    compare_to_baseline,
    interval_note,
)
from ablate.analysis.effects import (
    EFFECT_COLUMNS,
    Contrast,
    balanced_contrast,
    cell_means,
    grid_effects,
    matched_pairs,
    reference_level,
)
from ablate.analysis.errors import ReportError
from ablate.analysis.frames import (
    ALL_EQUAL_NOTE,
    NOT_REACHED,
    STATUS_MISSING,
    STATUS_OK,
    VARIATION_SOURCES,
    ExperimentData,
    available_experiments,
    current_and_extra,
    differing_settings,
    load_experiment_data,
    variation_sources,
)
from ablate.analysis.metrics import TARGET_METRICS, Metric, Targets, metrics_for
from ablate.analysis.rows import EPOCH_COLUMNS, STEP_COLUMNS, STEP_FRAME_COLUMNS, epoch_rows, run_row, step_rows
from ablate.analysis.stats import NEGATIVE_INTERACTION, NO_INTERACTION, POSITIVE_INTERACTION
from ablate.analysis.summary import SUMMARY_INTERVALS, SUMMARY_SPREADS, per_seed, status_counts, summary_frame

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
    "current_and_extra",
    "differing_settings",
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
    "summary_frame",
    "variation_sources",
]
