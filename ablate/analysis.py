"""The analysis API in one place, for the report, the CLI and notebooks: re-exports only.

The code lives along its seams, each module's docstring saying what it does:
:mod:`ablate.metrics` (what is compared, targets), :mod:`ablate.rows` (a run record -> rows and
the derived per-run numbers), :mod:`ablate.frames` (result files -> :class:`ExperimentData`),
:mod:`ablate.tables` (per-variant tables), :mod:`ablate.comparisons` (paired comparisons, power,
interval notes) and :mod:`ablate.effects` (grid effects, balanced contrasts, matched pairs). The
statistics themselves (intervals, tests, Holm, verdicts) live in :mod:`ablate.stats`.
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
    Contrast,
    balanced_contrast,
    cell_means,
    grid_effects,
    matched_pairs,
    reference_level,
)
from ablate.frames import (
    ALL_EQUAL_NOTE,
    NOT_REACHED,
    STATUS_MISSING,
    STATUS_OK,
    VARIATION_SOURCES,
    ExperimentData,
    ReportError,
    available_experiments,
    current_and_extra,
    load_experiment_data,
    variation_sources,
)
from ablate.metrics import TARGET_METRICS, Metric, Targets, metrics_for
from ablate.stats import NEGATIVE_INTERACTION, NO_INTERACTION, POSITIVE_INTERACTION
from ablate.rows import EPOCH_COLUMNS, STEP_COLUMNS, STEP_FRAME_COLUMNS, epoch_rows, run_row, step_rows
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
    "current_and_extra",
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
