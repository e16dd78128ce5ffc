"""Grid designs: main effects and two-way interactions from one linear model (:mod:`ablate.analysis.factorial`),
balanced per-seed contrasts (for claims on grids with missing runs), cell means for heatmaps, and
pairs of variants that differ in one axis (for claims)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ablate.analysis import stats
from ablate.analysis.comparisons import TEST_COLUMNS, interval_note
from ablate.analysis.factorial import GridFit, fit_grid
from ablate.analysis.frames import ExperimentData
from ablate.analysis.metrics import Metric, metrics_for

# --- grid designs: main effects and two-way interactions ---------------------------------------
EFFECT_COLUMNS = [
    "kind",
    "axes",
    "level",
    "reference",
    "metric",
    "n",
    "seeds",
    "estimate",
    "se",
    *TEST_COLUMNS,
    "interval_note",
    "mdd",
    "model",
    "cov_type",
    "resid_df",
    "resid_sd",
    "het_p",
    "runs_used",
    "cells_used",
    "cells_total",
]


def reference_level(data: ExperimentData, axis: str) -> Any:
    """The level effects are measured against: the baseline's value (else the axis' first value)."""
    values = data.axes.get(axis) or []
    base = data.variant_axes[data.baseline].get(axis)
    return base if base in values or not values else values[0]


@dataclass(frozen=True)
class Contrast:
    """Per-seed values of one contrast, and which seeds and combinations of other axes went in."""

    seeds: list[int]
    values: list[float]
    contexts_used: int
    contexts_total: int
    note: str = ""


def balanced_contrast(
    values: dict[str, dict[int, float]], contexts: Sequence[Sequence[tuple[float, str]]], seeds: Sequence[int]
) -> Contrast:
    """Per seed, the mean over ``contexts`` of ``sum(weight * values[variant][seed])``.

    Each context is a list of (weight, variant) terms, e.g. one combination of the other axes of a
    grid. Every seed must get the same linear combination for the t-test to be valid, so when runs
    are missing the contrast uses the largest block of seeds x contexts in which every run is ok:
    the set of seeds (at least two where possible) maximising seeds x contexts complete for all of
    them, preferring more contexts (the full contrast), then more seeds, then the lowest seeds.
    ``note`` says what was left out.
    """
    total = len(contexts)
    if total == 0:
        return Contrast([], [], 0, 0, "no such variants")
    complete = {s: [all(s in values.get(v, {}) for _, v in ctx) for ctx in contexts] for s in seeds}
    candidates = [s for s in seeds if any(complete[s])]
    best: tuple[tuple[bool, int, int, int], list[int], list[int]] = ((False, 0, 0, 0), [], [])
    if len(candidates) <= 12:  # exhaustive over seed subsets (at most 4096)
        subsets: Iterable[tuple[int, ...]] = (
            c for k in range(len(candidates), 0, -1) for c in itertools.combinations(candidates, k)
        )
    else:  # many seeds: all seeds, or those complete in every context
        subsets = [tuple(candidates), tuple(s for s in candidates if all(complete[s]))]
    for subset in subsets:
        ctx = [i for i in range(total) if all(complete[s][i] for s in subset)]
        if not ctx or not subset:
            continue
        score = (len(subset) >= 2, len(subset) * len(ctx), len(ctx), len(subset))
        if score > best[0]:
            best = (score, list(subset), ctx)
    _, kept_seeds, kept_ctx = best
    out = [float(np.mean([sum(w * values[v][s] for w, v in contexts[i]) for i in kept_ctx])) for s in kept_seeds]
    seen = [s for s in seeds if any(s in values.get(v, {}) for ctx in contexts for _, v in ctx)]
    dropped = [s for s in seen if s not in kept_seeds]
    notes = []
    if kept_seeds and len(kept_ctx) < total:
        notes.append(
            f"averaged over {len(kept_ctx)} of {total} combinations of the other axes, the others miss an ok run"
        )
    if dropped:
        notes.append(f"seed(s) {' '.join(map(str, dropped))} left out, a run in the contrast is not ok")
    return Contrast(kept_seeds, out, len(kept_ctx), total, "; ".join(notes))


def grid_effects(data: ExperimentData, metrics: Sequence[Metric] | None = None) -> pd.DataFrame:
    """Main effects and two-way interactions for grid designs with two or more varying axes,
    from one linear model per metric over every ok run (:mod:`ablate.analysis.factorial`: seed as a block,
    all main effects and two-way interactions, HC2 robust errors, t tests on each effect's
    Bell–McCaffrey degrees of freedom, Holm within the main effects and, separately, within the
    interactions).

    Main effect of ``axis = level``: the mean over every combination of the other axes of the
    difference between ``level`` and the reference level. Interaction of ``A = a`` with ``B = b``:
    the mean over the remaining axes of ``y(a, b) - y(a0, b) - y(a, b0) + y(a0, b0)`` (how much the
    effect of ``a`` changes when ``B`` goes from ``b0`` to ``b``). Missing or failed cells are left
    out of the fit (the ``note`` column says how many runs and cells went in); a contrast they make
    impossible to estimate gets no estimate. Empty for other designs.
    """
    metrics = list(metrics) if metrics is not None else [metrics_for(data.targets)[0]]
    grid = data.varying_axes()
    if data.design != "grid" or len(grid) < 2:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    axes = list(grid)
    reference = {a: reference_level(data, a) for a in axes}
    frames = []
    for metric in metrics:
        ok = data.ok_runs
        runs = pd.DataFrame({"seed": ok["seed"].astype(int), "y": pd.to_numeric(ok.get(metric.name), errors="coerce")})
        for a in axes:
            runs[a] = [data.variant_axes[v].get(a) for v in ok["variant"]]
        runs = runs[np.isfinite(runs["y"].to_numpy(dtype=float))]
        if runs.empty:
            continue
        fit = fit_grid(runs, grid, reference, "y")
        expected = int(data.runs["variant"].isin(data.variants).sum())
        frames.append(_effect_rows(fit, metric, sorted({int(s) for s in runs["seed"]}), expected))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EFFECT_COLUMNS)
    return frame[EFFECT_COLUMNS].reset_index(drop=True)


def _effect_rows(fit: GridFit, metric: Metric, seeds: list[int], expected_runs: int) -> pd.DataFrame:
    """effects.csv rows of one fitted model (``expected_runs``: cells x seeds of the experiment):
    verdicts, notes and what the model checked."""
    scale = 100.0 if metric.percent else 1.0
    missing = fit.cells_total - fit.cells_used
    coverage = ""
    if fit.n_runs < expected_runs or missing or fit.levels_missing:
        coverage = f"fit on the {fit.n_runs} of {expected_runs} runs that are ok"
        coverage += f", in {fit.cells_used} of {fit.cells_total} cells" if missing else ""
    if fit.levels_missing:
        coverage += f"; averaged without {', '.join(fit.levels_missing)} (no ok run)"
    rows = []
    for r in fit.table.to_dict("records"):
        n = fit.n_runs if r["estimable"] else 0
        note = [coverage] if coverage else []
        if not r["estimable"]:
            v = stats.NOT_ESTIMABLE
            note.append("not estimable: the cells it needs have no ok run")
        elif r["se"] == 0:
            v = stats.NO_SPREAD
            note.append("the model fits every run exactly: no spread to test with")
        else:
            v = stats.verdict(r["estimate"], r["p_holm"], n, metric.higher_is_better)
        row = {
            **r,
            "metric": metric.name,
            "n": n,
            "seeds": " ".join(map(str, seeds)),
            "verdict": v,
            "note": "; ".join(note),
            "sd_diff": r["se"],
        }
        row["interval_note"] = interval_note(row, scale=scale)
        if r["kind"] == "interaction" and v in (stats.BETTER, stats.WORSE):
            v = stats.POSITIVE_INTERACTION if r["estimate"] > 0 else stats.NEGATIVE_INTERACTION
        elif r["kind"] == "interaction" and v == stats.NO_DIFFERENCE:
            v = stats.NO_INTERACTION
        row["verdict"] = v
        row["mdd"] = stats.min_detectable_effect(r["se"], r["df"]) if r["estimable"] else math.nan
        row.update(
            model="ols: seed block + main effects + two-way interactions",
            cov_type=fit.cov_type,
            resid_df=fit.resid_df,
            resid_sd=fit.resid_sd,
            het_p=fit.het_p,
            runs_used=fit.n_runs,
            cells_used=fit.cells_used,
            cells_total=fit.cells_total,
        )
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["df"] = frame["df"].astype(float)
    return frame


def cell_means(data: ExperimentData, metric: str, row_axis: str, col_axis: str) -> pd.DataFrame:
    """Mean of ``metric`` over ok runs for each (row level, column level), averaged over the
    variants' other axes (for the interaction heatmap); NaN where no run is ok."""
    grid = data.varying_axes()
    ok = data.ok_runs
    means = ok.groupby("variant", sort=False)[metric].mean() if not ok.empty else pd.Series(dtype=float)
    table = pd.DataFrame(index=[str(x) for x in grid[row_axis]], columns=[str(x) for x in grid[col_axis]], dtype=float)
    for r in grid[row_axis]:
        for c in grid[col_axis]:
            vals = [
                means[v]
                for v in data.variants
                if repr(data.variant_axes[v].get(row_axis)) == repr(r)
                and repr(data.variant_axes[v].get(col_axis)) == repr(c)
                and v in means.index
                and not pd.isna(means[v])
            ]
            table.loc[str(r), str(c)] = float(np.mean(vals)) if vals else math.nan
    table.index.name, table.columns.name = row_axis, col_axis
    return table


# --- pairs of variants that differ in one axis (for claims) -----------------------------------------
def matched_pairs(data: ExperimentData, axis: str, level_a: Any, level_b: Any) -> list[tuple[str, str]]:
    """Pairs ``(variant with axis=level_a, variant with axis=level_b)`` equal on every other axis."""
    pairs = []
    for va in data.variants:
        ax = data.variant_axes[va]
        if ax.get(axis) != level_a or type(ax.get(axis)) is not type(level_a):
            continue
        for vb in data.variants:
            bx = data.variant_axes[vb]
            if (
                bx.get(axis) == level_b
                and type(bx.get(axis)) is type(level_b)
                and all(bx.get(k) == ax.get(k) for k in set(ax) | set(bx) if k != axis)
            ):
                pairs.append((va, vb))
    return pairs
