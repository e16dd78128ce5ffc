"""The figures of grid designs and effects: the forest plot of the Answer (one row per effect or
variant, its 95% interval coloured by verdict) and the interaction heatmaps (mean final validation
accuracy over each pair of a grid's axes), as PNG files.

Built like :mod:`ablate.report.plots` (``Figure`` objects, never ``pyplot``; saved by :mod:`ablate.report.figures`).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ablate.analysis import ExperimentData, cell_means
from ablate.report.figures import STYLE, legend_below, save


def interaction_heatmaps(data: ExperimentData, path: Path, metric: str = "final_val_acc") -> Path | None:
    """For grid designs with two or more varying axes: mean final validation accuracy (%) over
    each pair of axes, averaged over the other axes. None when the design has no such pair."""
    grid = data.varying_axes()
    if data.design != "grid" or len(grid) < 2:
        return None
    pairs = list(itertools.combinations(list(grid), 2))
    cols = min(3, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    tables = [100.0 * cell_means(data, metric, a, b) for a, b in pairs]
    finite = [t.to_numpy(dtype=float) for t in tables]
    values = np.concatenate([f[np.isfinite(f)] for f in finite]) if finite else np.array([])
    vmin, vmax = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    with sns.axes_style("white"):
        fig = Figure(figsize=(4.8 * cols + 1.2, 4.0 * rows), layout="constrained")
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        for ax, table, (a, b) in zip(axes, tables, pairs):
            sns.heatmap(
                table.astype(float),
                annot=True,
                fmt=".1f",
                cmap="viridis",
                vmin=vmin,
                vmax=vmax,
                ax=ax,
                cbar=ax is axes[len(pairs) - 1],
                cbar_kws={"label": "mean final validation accuracy (%)"},
                linewidths=0.5,
                linecolor="white",
                square=False,
            )
            ax.set(xlabel=b, ylabel=a, title=f"{a} x {b}")
            ax.tick_params(axis="y", rotation=0)
            base = data.variant_axes[data.baseline]
            ra, rb = str(base.get(a)), str(base.get(b))
            if ra in list(table.index) and rb in list(table.columns):
                i, j = list(table.index).index(ra), list(table.columns).index(rb)
                ax.add_patch(_rect(j, i))
        for ax in axes[len(pairs) :]:
            ax.set_visible(False)
        fig.suptitle(
            f"{data.name}: mean final validation accuracy (%), averaged over seeds and the other axes "
            "(red box: baseline's levels)",
            fontsize=11,
        )
        return save(fig, path)


def _rect(x: int, y: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, fill=False, edgecolor="red", linewidth=2.5)


# Verdict -> colour of the forest plot (good direction green, bad red, nothing detected grey).
VERDICT_COLORS = {
    "better": "#1a9850",
    "positive interaction": "#1a9850",
    "worse": "#d73027",
    "negative interaction": "#d73027",
}
NEUTRAL = "0.55"


def forest(rows: pd.DataFrame, path: Path, xlabel: str, title: str) -> Path | None:
    """Forest plot: one row per effect (``label``, ``estimate``, ``ci_low``, ``ci_high``, ``verdict``,
    in the units to draw), top to bottom in the frame's order, its 95% interval as a bar, coloured
    by verdict; a line at 0. None when no row has an estimate."""
    rows = rows[rows["estimate"].notna()].reset_index(drop=True)
    if rows.empty:
        return None
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(8.0, 1.2 + 0.32 * len(rows)), layout="constrained")
        ax = fig.add_subplot()
        for i, r in rows.iterrows():
            color = VERDICT_COLORS.get(str(r["verdict"]), NEUTRAL)
            if not (pd.isna(r["ci_low"]) or pd.isna(r["ci_high"])):
                ax.plot(
                    [r["ci_low"], r["ci_high"]], [i, i], color=color, linewidth=2.4, solid_capstyle="butt", zorder=2
                )
            ax.scatter([r["estimate"]], [i], s=40, color=color, edgecolors="black", linewidths=0.6, zorder=3)
        ax.axvline(0.0, color="0.25", linewidth=1, zorder=1)
        ax.set_yticks(range(len(rows)), list(rows["label"]), fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set(xlabel=xlabel, title=title)
        seen = list(dict.fromkeys(str(v) for v in rows["verdict"]))
        handles = [
            ax.scatter([], [], s=40, color=VERDICT_COLORS.get(v, NEUTRAL), edgecolors="black", linewidths=0.6)
            for v in seen
        ]
        legend_below(fig, handles, seen)
        return save(fig, path)
