"""Seaborn figures of a report's runs per variant, written as PNG files: learning curves, final
accuracy and generalization gap, speed. The grid and effects figures (forest plot, interaction
heatmaps) are in :mod:`ablate.report.effect_plots`.

Figures are built on :class:`matplotlib.figure.Figure` objects (rendered by the Agg canvas), never
through ``pyplot``: no global figure state, no GUI backend, safe to call from any process. Styling
is applied inside a seaborn ``axes_style`` context so it does not leak into the caller's settings.

Every figure colours a variant the same way (:func:`variant_colors`, in the experiment's order,
baseline first), marks the baseline, and puts legends outside the data. Intervals are the same
95% t intervals over seeds as in the tables (:func:`ablate.analysis.stats.t_interval_bounds`). Learning
curves use the runs' step logs (x = training images seen) when the records have them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ablate.analysis import ExperimentData, stats
from ablate.report.figures import STYLE, legend_below, save

BASELINE_MARK = " (baseline)"


def variant_colors(variants: Sequence[str]) -> dict[str, Any]:
    """Variant -> RGB colour, fixed by the variant's position in the experiment (baseline first)."""
    n = len(variants)
    palette = sns.color_palette("tab10", n) if n <= 10 else sns.color_palette("husl", n)
    return {v: palette[i] for i, v in enumerate(variants)}


def _label(data: ExperimentData, variant: str) -> str:
    return variant + (BASELINE_MARK if variant == data.baseline else "")


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.35", wrap=True)


OVERLAY_MAX = 6  # more variants than this: one small panel per variant instead of one crowded panel
CURVES = (
    ("val_acc_pct", "validation accuracy (%)", "Validation accuracy"),
    ("train_loss", "training loss (cross-entropy)", "Training loss"),
)
IMAGES = "training images seen"


def _curve_panels(data: ExperimentData) -> list[tuple[pd.DataFrame, str, str, str, str]]:
    """(frame, x column, y column, y label, title) per panel. With step logs x is training images
    seen: validation accuracy at each epoch's end, training loss and error at each log point;
    without them (older records) x is the epoch."""
    ep = data.epochs[data.epochs["status"] == "ok"].copy()
    ep["val_acc_pct"] = 100.0 * ep["val_acc"]
    st = data.steps[data.steps["status"] == "ok"].copy() if not data.steps.empty else data.steps
    if st.empty or set(ep["run_id"]) - set(st["run_id"]):  # some runs (older records) have no step logs
        return [(ep, "epoch", y, label, title) for y, label, title in CURVES]
    per_epoch = dict(
        zip(data.runs["run_id"], data.runs.get("images_per_epoch", pd.Series(math.nan, index=data.runs.index)))
    )
    ep[IMAGES] = [e * per_epoch.get(r, math.nan) for r, e in zip(ep["run_id"], ep["epoch"])]
    ep = ep[ep[IMAGES].notna()]
    st[IMAGES] = st["images"]
    st["train_error_pct"] = 100.0 * st["train_error"]
    return [
        (ep, IMAGES, "val_acc_pct", "validation accuracy (%)", "Validation accuracy (end of each epoch)"),
        (st, IMAGES, "train_loss", "training loss (cross-entropy)", "Training loss"),
        (st, IMAGES, "train_error_pct", "training error (%)", "Training error"),
    ]


def learning_curves(data: ExperimentData, colors: dict[str, Any], path: Path) -> Path:
    """Learning curves, mean line and 95% CI band over seeds: against training images seen when
    the runs log steps (validation accuracy, training loss, training error with the target as a
    dashed line), else against the epoch (validation accuracy, training loss).

    Up to :data:`OVERLAY_MAX` variants share one panel per metric; with more, each variant gets
    its own small panel (same axes), with the baseline's mean curve as a dashed grey reference.
    """
    panels = _curve_panels(data)
    ep = panels[0][0]
    everything = pd.concat([f[["variant", "seed"]] for f, *_ in panels]) if panels else ep
    present = [v for v in data.variants if v in set(everything["variant"])]
    n = everything.groupby("variant")["seed"].nunique() if not everything.empty else pd.Series(dtype=int)
    seeds = (
        f"{int(n.min())}-{int(n.max())}" if len(n) and n.min() != n.max() else (f"{int(n.max())}" if len(n) else "0")
    )
    title = f"{data.name}: learning curves (mean and 95% CI over {seeds} seed(s), ok runs)"
    target = data.targets.train_error
    with sns.axes_style(STYLE):
        if len(present) <= OVERLAY_MAX:
            fig = Figure(
                figsize=(5.5 * len(panels), 4.6 + 0.25 * math.ceil(max(len(present), 1) / 3)), layout="constrained"
            )
            axes = fig.subplots(1, len(panels), sharex=True)  # one x axis: images seen (or epochs) in every panel
            for ax, (frame, x, y, ylabel, panel_title) in zip(axes, panels):
                if frame.empty:
                    _no_data(ax, "no finished runs")
                # baseline last, so that it is drawn on top
                for v in [v for v in present if v != data.baseline] + [v for v in present if v == data.baseline]:
                    _curve(ax, frame[frame["variant"] == v], x, y, colors[v], thick=v == data.baseline)
                if y == "train_error_pct" and target is not None:
                    ax.axhline(100 * target, color="0.3", linestyle="--", linewidth=1)
                ax.set(xlabel=x, ylabel=ylabel, title=panel_title)
            markers = ep[panels[0][1]].nunique() <= 12 if not ep.empty else True
            handles = [_line_handle(colors[v], v == data.baseline, markers) for v in present]
            legend_below(fig, handles, [_label(data, v) for v in present])
            fig.suptitle(title, fontsize=12)
        else:
            fig = _variant_panels(data, colors, present, panels, title)
        return save(fig, path)


PANEL_W, PANEL_H, HEADER_H = 3.3, 2.5, 1.1  # inches: one variant's panel; each metric's title and x label


def _variant_panels(
    data: ExperimentData,
    colors: dict[str, Any],
    present: list[str],
    panels: list[tuple[pd.DataFrame, str, str, str, str]],
    title: str,
) -> Figure:
    """Learning curves of many variants: per metric a block of small panels, one per variant, with
    the baseline's mean curve as a dashed grey reference. Laid out on a fixed grid with limits set
    per block rather than through constrained layout and shared axes: both cost time that grew
    faster than the number of panels (a 36-variant report spent most of its time here)."""
    cols = 4
    rows = math.ceil(len(present) / cols)
    block = PANEL_H * rows + HEADER_H  # inches per metric
    top = 0.8  # inches for the figure's title
    fig = Figure(figsize=(PANEL_W * cols, block * len(panels) + top))
    height = fig.get_figheight()
    fig.suptitle(title, fontsize=12, y=1 - 0.25 / height, va="top")
    for k, (frame, x, y, ylabel, panel_title) in enumerate(panels):
        upper = height - top - k * block  # this block's top edge, inches from the bottom
        grid = fig.add_gridspec(
            rows,
            cols,
            left=0.7 / fig.get_figwidth(),
            right=0.98,
            top=(upper - 0.55) / height,
            bottom=(upper - block + 0.55) / height,
            hspace=0.45,
            wspace=0.12,
        )
        base = frame[frame["variant"] == data.baseline].groupby(x)[y].mean()
        axes = [fig.add_subplot(grid[i // cols, i % cols]) for i in range(len(present))]
        for i, (ax, v) in enumerate(zip(axes, present)):
            if v != data.baseline and not base.empty:
                ax.plot(base.index, base.to_numpy(), color="0.45", linestyle="--", linewidth=1.2)
            _panel_curve(ax, frame[frame["variant"] == v], x, y, colors[v], thick=v == data.baseline)
            ax.set_title(
                _label(data, v), fontsize=8.5, color=colors[v], fontweight="bold" if v == data.baseline else "normal"
            )
            # Tick labels on the outer panels only, as shared axes would show them.
            ax.tick_params(labelbottom=i + cols >= len(present), labelleft=i % cols == 0, labelsize=8)
        _same_limits(axes)
        fig.text(
            0.5,
            (upper - 0.05) / height,
            f"{panel_title} (dashed grey: baseline mean)",
            ha="center",
            va="top",
            fontsize=11,
        )
        fig.text(0.5, (upper - block + 0.05) / height, x, ha="center", va="bottom", fontsize=10)
        fig.text(0.01, (upper - block / 2) / height, ylabel, rotation=90, ha="left", va="center", fontsize=10)
    return fig


def _same_limits(axes: list[Axes]) -> None:
    """One x and one y range for all ``axes`` (the union of their data, with matplotlib's margins), as
    ``sharex``/``sharey`` would give, without linking the axes."""
    boxes = [ax.dataLim for ax in axes if ax.has_data()]
    if not boxes:
        return
    x0, x1 = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
    y0, y1 = min(b.y0 for b in boxes), max(b.y1 for b in boxes)
    dx, dy = (x1 - x0) * 0.05 or 0.5, (y1 - y0) * 0.05 or 0.5
    for ax in axes:
        ax.set_xlim(x0 - dx, x1 + dx)
        ax.set_ylim(y0 - dy, y1 + dy)


def _curve(ax: Axes, frame: pd.DataFrame, x: str, y: str, color: Any, thick: bool) -> None:
    """One variant's curve in the shared panels (at most :data:`OVERLAY_MAX` variants): seaborn's
    mean line with its 95% t band, as the published reports draw it."""
    if frame.empty:
        return
    few = frame[x].nunique() <= 12
    sns.lineplot(
        data=frame,
        x=x,
        y=y,
        color=color,
        ax=ax,
        errorbar=stats.t_interval_bounds,
        marker="o" if few else None,
        markersize=4,
        linewidth=2.6 if thick else 1.6,
        legend=False,
        err_kws={"alpha": 0.18},
    )
    if x == "epoch":
        ax.xaxis.get_major_locator().set_params(integer=True)


def _panel_curve(ax: Axes, frame: pd.DataFrame, x: str, y: str, color: Any, thick: bool) -> None:
    """One variant's curve in its own small panel: the mean over seeds at each ``x`` as a line and
    its 95% t interval as a band, the numbers seaborn's ``lineplot(errorbar=t_interval_bounds)``
    gives, computed in one pass (through seaborn each of a 36-variant report's 72 panels cost about
    0.16 s, most of the report's time)."""
    points = frame[[x, y]].dropna()
    if points.empty:
        return
    xs, means, low, high = [], [], [], []
    for at, values in points.groupby(x, sort=True)[y]:
        iv = stats.mean_interval(values)
        xs.append(at)
        means.append(iv.mean)
        low.append(iv.ci_low if iv.has_interval else iv.mean)
        high.append(iv.ci_high if iv.has_interval else iv.mean)
    ax.plot(
        xs,
        means,
        color=color,
        marker="o" if len(xs) <= 12 else None,
        markersize=4,
        markeredgecolor="w",
        markeredgewidth=0.75,
        linewidth=2.6 if thick else 1.6,
    )
    ax.fill_between(xs, low, high, color=color, alpha=0.18, linewidth=0)
    if x == "epoch":
        ax.xaxis.get_major_locator().set_params(integer=True)


def _line_handle(color: Any, baseline: bool, marker: bool = True) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, marker="o" if marker else None, linewidth=2.6 if baseline else 1.6, markersize=5)


def _interval_panel(
    ax: Axes,
    data: ExperimentData,
    colors: dict[str, Any],
    order: list[str],
    column: str,
    scale: float,
    xlabel: str,
    title: str,
    reference: bool = True,
    annotate: dict[str, str] | None = None,
    empty_text: str = "no ok runs with this number",
    bounds: tuple[float | None, float | None] = (None, None),
) -> None:
    """Horizontal per-variant panel: each ok run as a dot, mean with its 95% t interval as a bar."""
    ok = data.ok_runs
    ypos = {v: i for i, v in enumerate(order)}
    any_data = False
    for v in order:
        vals = [float(x) * scale for x in ok.loc[ok["variant"] == v, column] if not pd.isna(x)] if column in ok else []
        y = ypos[v]
        if vals:
            any_data = True
            jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else np.zeros(1)
            ax.scatter(vals, y + jitter, s=14, color=colors[v], alpha=0.45, zorder=2, linewidths=0)
            iv = stats.mean_interval(vals)
            if iv.has_interval:
                ax.errorbar(
                    iv.mean,
                    y,
                    xerr=[[iv.mean - iv.ci_low], [iv.ci_high - iv.mean]],
                    fmt="none",
                    ecolor=colors[v],
                    elinewidth=2.2,
                    capsize=4,
                    zorder=3,
                )
            ax.scatter(
                [iv.mean],
                [y],
                s=70 if v == data.baseline else 48,
                color=colors[v],
                zorder=4,
                marker="D" if v == data.baseline else "o",
                edgecolors="black",
                linewidths=0.8,
            )
    if reference and any_data:
        base = (
            [float(x) * scale for x in ok.loc[ok["variant"] == data.baseline, column] if not pd.isna(x)]
            if column in ok
            else []
        )
        if base:
            ax.axvline(float(np.mean(base)), color="0.3", linestyle="--", linewidth=1, zorder=1, label="baseline mean")
    if any_data:
        for v in order:
            note = (annotate or {}).get(v)
            if note:
                ax.annotate(
                    note,
                    xy=(1.0, ypos[v]),
                    xycoords=("axes fraction", "data"),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    color="0.3",
                    annotation_clip=False,
                )
    else:
        _no_data(ax, empty_text)
    if any_data:
        # A t interval over few seeds can reach impossible values (negative images/s): cut the axis
        # at the quantity's natural bounds instead of drawing them.
        lo, hi = ax.get_xlim()
        ax.set_xlim(
            max(lo, bounds[0]) if bounds[0] is not None else lo, min(hi, bounds[1]) if bounds[1] is not None else hi
        )
    ax.set_yticks(range(len(order)), [_label(data, v) for v in order])
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set(xlabel=xlabel, title=title)
    for tick, v in zip(ax.get_yticklabels(), order):
        tick.set_color(colors[v])
        if v == data.baseline:
            tick.set_fontweight("bold")


def _status_notes(data: ExperimentData) -> dict[str, str]:
    """Variant -> "n=3, 1 failed, 1 missing" for the right margin of per-variant panels."""
    out = {}
    for v in data.variants:
        mine = data.runs[data.runs["variant"] == v]["status"].value_counts()
        parts = [f"n={int(mine.get('ok', 0))}"]
        parts += [f"{int(mine[s])} {s}" for s in sorted(mine.index) if s != "ok"]
        out[v] = ", ".join(parts)
    return out


def final_accuracy(data: ExperimentData, colors: dict[str, Any], path: Path) -> Path:
    """Final validation accuracy per variant (sorted, best on top) with 95% CIs, and the
    generalization gap in the same order; the baseline is bold, diamond-marked and dashed."""
    ok = data.ok_runs
    means = ok.groupby("variant")["final_val_acc"].mean() if not ok.empty else pd.Series(dtype=float)
    order = sorted(
        data.variants,
        key=lambda v: (
            -(means.get(v, -math.inf)) if not pd.isna(means.get(v, math.nan)) else math.inf,
            data.variants.index(v),
        ),
    )
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(12, 1.6 + 0.45 * len(order)), layout="constrained")
        ax_acc, ax_gap = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
        _interval_panel(
            ax_acc,
            data,
            colors,
            order,
            "final_val_acc",
            100.0,
            "final validation accuracy (%)",
            "Final validation accuracy",
            bounds=(0.0, 100.0),
        )
        _interval_panel(
            ax_gap,
            data,
            colors,
            order,
            "gen_gap",
            100.0,
            "train - val accuracy (points)",
            "Generalization gap (lower = less overfitting)",
            annotate=_status_notes(data),
        )
        fig.suptitle(
            f"{data.name}: per variant, mean with 95% CI over seeds (dots: single runs; dashed: baseline mean)",
            fontsize=12,
        )
        return save(fig, path)


def throughput(data: ExperimentData, colors: dict[str, Any], path: Path) -> Path:
    """Training images/s per variant, and wall time to reach each target (runs that reached it)."""
    order = list(data.variants)
    targets = []
    if data.targets.train_error is not None:
        targets.append(
            ("time_to_train_target_s", "reached_train_target", f"training error <= {data.targets.train_error:.0%}")
        )
    if data.targets.val_acc is not None:
        targets.append(
            ("time_to_val_target_s", "reached_val_target", f"validation accuracy >= {data.targets.val_acc:.0%}")
        )
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(6 + 4.5 * len(targets), 1.6 + 0.45 * len(order)), layout="constrained")
        axes = fig.subplots(1, 1 + len(targets), sharey=True, squeeze=False)[0]
        _interval_panel(
            axes[0],
            data,
            colors,
            order,
            "train_images_per_s",
            1.0,
            "training throughput (images/s)",
            "Training throughput",
            reference=True,
            bounds=(0.0, None),
        )
        ok = data.ok_runs
        for ax, (column, flag, what) in zip(axes[1:], targets):
            notes = {}
            for v in order:
                mine = ok[ok["variant"] == v]
                reached = int(mine[flag].fillna(False).astype(bool).sum()) if len(mine) else 0
                notes[v] = f"reached {reached}/{len(mine)}"
            _interval_panel(
                ax,
                data,
                colors,
                order,
                column,
                1.0,
                "wall time to reach it (s)",
                f"Time to {what}",
                annotate=notes,
                empty_text=f"no run reached {what}\nwithin its epochs",
                bounds=(0.0, None),
            )
        device = _device(data)
        fig.suptitle(f"{data.name}: speed per variant, mean with 95% CI over seeds{device}", fontsize=12)
        return save(fig, path)


def _device(data: ExperimentData) -> str:
    """ " on <device>" when every ok run reports the same device; a warning when they differ."""
    names = sorted({str(d) for d in data.ok_runs.get("device", pd.Series(dtype=str)).dropna() if d})
    if len(names) == 1:
        return f" on {names[0]}"
    return " (runs on several devices: speeds do not compare)" if names else ""
