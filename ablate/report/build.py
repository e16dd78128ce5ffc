"""Assemble one experiment's report: ``<out>/<experiment>/README.md`` with CSV tables and PNG plots.

:func:`build_report` reads the results (:mod:`ablate.analysis`), computes the tables (statistics
in :mod:`ablate.analysis.stats`, the paper's claims in :mod:`ablate.analysis.paper_claims`), draws the figures
(:mod:`ablate.report.plots`), renders the markdown (:mod:`ablate.report.sections`) and writes
everything into one folder. Nothing is printed; the caller gets a :class:`Report` back. Output is
deterministic: the same result files give byte-identical CSVs and README (no timestamps, stable
ordering, fixed float formatting).

Files written (those that do not apply to the experiment are not written, and removed if an
earlier report left them):

* ``README.md``: the report;
* ``summary.csv``: one row per variant; ``comparisons.csv``: one row per variant x metric against
  the baseline; ``effects.csv``: main effects and interactions (grid designs with >= 2 axes);
  ``claims.csv``: the paper's claims; ``runs.csv``: one row per cell including missing, failed and
  diverged runs; ``epochs.csv``: one row per run x epoch; ``steps.csv``: one row per run x step
  log point (runs with ``[train] log_every``);
* ``effects.png`` (the forest plot of the Answer), ``learning_curves.png``, ``final_val_acc.png``,
  ``throughput.png``, ``interaction.png`` (grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ablate.analysis import (
    Effect,
    ExperimentData,
    Targets,
    compare_to_baseline,
    grid_effects,
    load_experiment_data,
    metrics_for,
    summary_frame,
)
from ablate.analysis.paper_claims import check_claims, paper_effects
from ablate.analysis.planning import PlanCheck, achieved_mdd, check_plan
from ablate.report import effect_plots, plots
from ablate.report.answer import FOREST, adaptive_section, answer, forest_rows
from ablate.report.options import check_report_options
from ablate.report.planned import plan_section
from ablate.report.sections import render_markdown
from ablate.report.statistics import statistics_sections
from ablate.store.folder import read_events, read_plan

CSV_FLOAT = "%.10g"
OWNED_FILES = (
    "README.md",
    "summary.csv",
    "comparisons.csv",
    "effects.csv",
    "claims.csv",
    "runs.csv",
    "epochs.csv",
    "steps.csv",
    "learning_curves.png",
    "final_val_acc.png",
    "throughput.png",
    "interaction.png",
    "effects.png",
)


@dataclass
class Report:
    """What :func:`build_report` wrote, with the tables it computed (for the CLI to render)."""

    data: ExperimentData
    folder: Path
    readme: Path
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    effects: pd.DataFrame
    claims: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    plan: PlanCheck | None = None  # plan.json against the runs, when ablate plan wrote one


def build_report(
    results: str | Path,
    experiment: str,
    out: str | Path = "reports",
    baseline: str | None = None,
    targets: Targets | None = None,
    *,
    ci: str = "t",
    effect_points: float | None = None,
) -> Report:
    """Write the report of ``experiment`` (from ``results``) into ``out/<experiment>/``.

    ``ci``: "t" (intervals of the t-test) or "bootstrap" (also a BCa paired bootstrap interval,
    shown instead of the t interval; the verdict stays the t-test's). ``effect_points``: the
    difference each comparison should detect, in percentage points, for power and seeds needed
    (default: the paper's effect where the comparison matches one of its claims, else 1 point).
    Raises :class:`ablate.analysis.ReportError` for problems a user can fix.
    """
    check_report_options(ci, effect_points)
    data = load_experiment_data(results, experiment, baseline=baseline, targets=targets or Targets())
    folder = Path(out) / experiment
    folder.mkdir(parents=True, exist_ok=True)

    summary = summary_frame(data)
    metrics = metrics_for(data.targets, steps=not data.steps.empty)
    if effect_points is not None:
        effects: dict[tuple[str, str], Effect] = {}
        default = Effect(effect_points / 100.0, f"--effect {effect_points:g}")
    else:
        effects, default = paper_effects(data), Effect(0.01, "default: 1 point")
    comparisons = compare_to_baseline(data, metrics, ci=ci, effects=effects, default_effect=default)
    effects = grid_effects(data)
    claims = check_claims(data)
    planned = read_plan(results, experiment)
    plan = (
        check_plan(planned, data, read_events(results, experiment), achieved_mdd(comparisons, effects))
        if planned
        else None
    )

    written: list[Path] = []
    tables: dict[str, pd.DataFrame] = {
        "summary.csv": summary,
        "comparisons.csv": comparisons,
        "runs.csv": data.runs,
        "epochs.csv": data.epochs,
    }
    if not data.steps.empty:
        tables["steps.csv"] = data.steps
    if not effects.empty:
        tables["effects.csv"] = effects
    if not claims.empty:
        tables["claims.csv"] = claims
    for name, frame in tables.items():
        written.append(write_csv(frame, folder / name))

    colors = plots.variant_colors(data.variants)
    figures = {
        FOREST: effect_plots.forest(
            forest_rows(comparisons, effects),
            folder / FOREST,
            "difference in final validation accuracy (percentage points, 95% CI)",
            "Effects on final validation accuracy",
        ),
        "learning_curves.png": plots.learning_curves(data, colors, folder / "learning_curves.png"),
        "final_val_acc.png": plots.final_accuracy(data, colors, folder / "final_val_acc.png"),
        "throughput.png": plots.throughput(data, colors, folder / "throughput.png"),
        "interaction.png": effect_plots.interaction_heatmaps(data, folder / "interaction.png"),
    }
    written += [p for p in figures.values() if p is not None]

    drawn = [name for name, p in figures.items() if p is not None]
    text = render_markdown(
        data,
        summary,
        figures=drawn,
        tables=list(tables),
        answer=answer(data, comparisons, effects, forest=FOREST in drawn) + adaptive_section(data) + plan_section(plan),
        statistics=statistics_sections(data, comparisons, effects, claims, metrics),
    )
    readme = folder / "README.md"
    readme.write_text(text, encoding="utf-8")
    written.insert(0, readme)

    names = {p.name for p in written}
    for stale in OWNED_FILES:
        if stale not in names:
            (folder / stale).unlink(missing_ok=True)
    return Report(data, folder, readme, summary, comparisons, effects, claims, written, plan)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """CSV with a fixed float format and ``\\n`` line ends, so equal tables give equal bytes."""
    frame.to_csv(path, index=False, float_format=CSV_FLOAT, lineterminator="\n")
    return path
