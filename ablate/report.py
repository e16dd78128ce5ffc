"""Assemble one experiment's report: ``<out>/<experiment>/README.md`` with CSV tables and PNG plots.

:func:`build_report` reads the results (:mod:`ablate.analysis`), computes the tables (statistics
in :mod:`ablate.stats`, the paper's claims in :mod:`ablate.claims`), draws the figures
(:mod:`ablate.plots`) and writes everything into one folder. Nothing is printed; the caller gets
a :class:`Report` back. Output is deterministic: the same result files give byte-identical CSVs
and README (no timestamps, stable ordering, fixed float formatting).

Files written (those that do not apply to the experiment are not written, and removed if an
earlier report left them):

* ``README.md``: the report;
* ``summary.csv``: one row per variant; ``comparisons.csv``: one row per variant x metric against
  the baseline; ``effects.csv``: main effects and interactions (grid designs with >= 2 axes);
  ``claims.csv``: the paper's claims; ``runs.csv``: one row per cell including missing, failed and
  diverged runs; ``epochs.csv``: one row per run x epoch;
* ``learning_curves.png``, ``final_val_acc.png``, ``throughput.png``, ``interaction.png`` (grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ablate import plots
from ablate.analysis import (
    ExperimentData,
    Metric,
    Targets,
    compare_to_baseline,
    grid_effects,
    load_experiment_data,
    metrics_for,
    status_counts,
    summary_table,
    ALL_EQUAL_NOTE,
    NOT_REACHED,
)
from ablate.claims import check_claims

CSV_FLOAT = "%.10g"
OWNED_FILES = (
    "README.md", "summary.csv", "comparisons.csv", "effects.csv", "claims.csv", "runs.csv", "epochs.csv",
    "learning_curves.png", "final_val_acc.png", "throughput.png", "interaction.png",
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


def build_report(
    results: str | Path,
    experiment: str,
    out: str | Path = "reports",
    baseline: str | None = None,
    targets: Targets | None = None,
) -> Report:
    """Write the report of ``experiment`` (from ``results``) into ``out/<experiment>/``.

    Raises :class:`ablate.analysis.ReportError` for problems a user can fix.
    """
    data = load_experiment_data(results, experiment, baseline=baseline, targets=targets or Targets())
    folder = Path(out) / experiment
    folder.mkdir(parents=True, exist_ok=True)

    summary = summary_table(data)
    metrics = metrics_for(data.targets)
    comparisons = compare_to_baseline(data, metrics)
    effects = grid_effects(data)
    claims = check_claims(data)

    written: list[Path] = []
    tables: dict[str, pd.DataFrame] = {
        "summary.csv": summary, "comparisons.csv": comparisons, "runs.csv": data.runs, "epochs.csv": data.epochs,
    }
    if not effects.empty:
        tables["effects.csv"] = effects
    if not claims.empty:
        tables["claims.csv"] = claims
    for name, frame in tables.items():
        written.append(write_csv(frame, folder / name))

    colors = plots.variant_colors(data.variants)
    figures = {
        "learning_curves.png": plots.learning_curves(data, colors, folder / "learning_curves.png"),
        "final_val_acc.png": plots.final_accuracy(data, colors, folder / "final_val_acc.png"),
        "throughput.png": plots.throughput(data, colors, folder / "throughput.png"),
        "interaction.png": plots.interaction_heatmaps(data, folder / "interaction.png"),
    }
    written += [p for p in figures.values() if p is not None]

    text = render_markdown(data, summary, comparisons, effects, claims, metrics,
                           figures=[name for name, p in figures.items() if p is not None],
                           tables=list(tables))
    readme = folder / "README.md"
    readme.write_text(text, encoding="utf-8")
    written.insert(0, readme)

    names = {p.name for p in written}
    for stale in OWNED_FILES:
        if stale not in names:
            (folder / stale).unlink(missing_ok=True)
    return Report(data, folder, readme, summary, comparisons, effects, claims, written)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """CSV with a fixed float format and ``\\n`` line ends, so equal tables give equal bytes."""
    frame.to_csv(path, index=False, float_format=CSV_FLOAT, lineterminator="\n")
    return path


# --- formatting ---------------------------------------------------------------------------------
def _isnan(x: Any) -> bool:
    try:
        return x is None or x is pd.NA or math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, digits: int = 2, signed: bool = False) -> str:
    if _isnan(x):
        return "-"
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def fmt_p(p: Any) -> str:
    if _isnan(p):
        return "-"
    p = float(p)
    if p < 1e-4:
        return "<0.0001"
    return f"{p:.4f}" if p < 0.1 else f"{p:.3f}".rstrip("0").rstrip(".") if p < 1 else "1"


def fmt_pm(mean: Any, low: Any, high: Any, n: int, scale: float = 1.0, digits: int = 2, signed: bool = False) -> str:
    """``"mean ±half"`` of a symmetric interval (compact, for terminals); ``"mean (n=1)"`` without one."""
    if _isnan(mean):
        return "-"
    head = fmt(float(mean) * scale, digits, signed)
    if n < 2 or _isnan(low):
        return f"{head} (n={n})"
    return f"{head} ±{fmt((float(high) - float(low)) / 2 * scale, digits)}"


def fmt_ci(mean: Any, low: Any, high: Any, n: int, scale: float = 1.0, digits: int = 2, signed: bool = False) -> str:
    """``"mean [low, high]"``; with fewer than two values, the mean and "no CI (n=1)"."""
    if _isnan(mean):
        return "-"
    head = fmt(float(mean) * scale, digits, signed)
    if n < 2 or _isnan(low):
        return f"{head} (no CI, n={n})"
    return f"{head} [{fmt(float(low) * scale, digits, signed)}, {fmt(float(high) * scale, digits, signed)}]"


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured markdown table; ``align`` per column: "l" or "r"."""
    align = list(align or ["l"] + ["r"] * (len(headers) - 1))
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |",
             "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
    return "\n".join(lines)


def _code(v: str) -> str:
    return f"`{v}`"


def _scale(metric: Metric) -> float:
    return 100.0 if metric.percent else 1.0


def _digits(metric: Metric) -> int:
    if metric.unit == "images/s":
        return 1
    if metric.unit in ("s", "epochs"):
        return 1
    return 2 if metric.percent else 3


def _unit(metric: Metric) -> str:
    return "points" if metric.percent else metric.unit


# --- markdown -----------------------------------------------------------------------------------
def render_markdown(
    data: ExperimentData, summary: pd.DataFrame, comparisons: pd.DataFrame, effects: pd.DataFrame,
    claims: pd.DataFrame, metrics: Sequence[Metric], figures: Sequence[str], tables: Sequence[str],
) -> str:
    """The report's README.md text."""
    parts = [f"# Ablation report: {data.name}", ""]
    if data.description:
        parts += [data.description, ""]
    parts += [_overview(data), ""]
    if data.notes:
        parts += ["> **Notes**", *[f"> - {n}" for n in data.notes], ""]
    parts += _headline(data, comparisons)
    parts += _not_ok(data)
    parts += _summary_section(data, summary)
    parts += _comparison_section(data, comparisons, metrics)
    if not effects.empty:
        parts += _effects_section(data, effects)
    if not claims.empty:
        parts += _claims_section(claims)
    parts += _plots_section(data, figures)
    parts += _method_section(data)
    parts += ["## Files", "", *[f"- [`{t}`]({t})" + _TABLE_NOTES.get(t, "") for t in tables], ""]
    return "\n".join(parts).rstrip() + "\n"


_TABLE_NOTES = {
    "summary.csv": ": one row per variant (counts; mean, sd and 95% CI over ok runs)",
    "comparisons.csv": ": one row per variant x metric, paired against the baseline (diff, ci_low, ci_high, p, p_holm, verdict)",
    "effects.csv": ": main effects and two-way interactions of the grid's axes",
    "claims.csv": ": the 2012 paper's claims checked against this experiment",
    "runs.csv": ": one row per cell (variant x seed) with its status, including missing, failed and diverged runs",
    "epochs.csv": ": one row per run x finished epoch",
}


def _overview(data: ExperimentData) -> str:
    counts = status_counts(data)
    n_cells = int(counts["n_cells"].sum())
    tot = {c: int(counts[c].sum()) for c in ("n_ok", "n_diverged", "n_failed", "n_missing", "n_other")}
    m = data.manifest or {}
    axes = ", ".join(f"{a} ({', '.join(str(x) for x in v)})" for a, v in data.axes.items()) or "-"
    seeds = ", ".join(str(s) for s in data.seeds)
    rows = [
        ("design", f"{data.design} over {axes}: {len(data.variants)} variants x {len(data.seeds)} seeds ({seeds})"),
        ("baseline", _code(data.baseline) + (" (the experiment's [model])" if m.get("baseline_slug") == data.baseline
                                              else " (chosen with --baseline)" if m else "")),
    ]
    d, t = m.get("data") or {}, m.get("train") or {}
    if d:
        rows.append(("data", f"{d.get('dataset')}: {d.get('train_size') or 'all'} training / "
                             f"{d.get('val_size') or 'all'} validation images, augmentation {d.get('augment', 'none')}"))
    if t:
        rows.append(("training", f"{t.get('epochs')} epochs, {t.get('optimizer')} lr {t.get('lr')}, batch "
                                 f"{t.get('batch_size')}, weight decay {t.get('weight_decay')}, schedule {t.get('schedule')}, "
                                 f"precision {t.get('precision')}"))
    devices = sorted({str(x) for x in data.runs.get("device", pd.Series(dtype=str)).dropna() if x})
    if devices:
        rows.append(("device", ", ".join(devices)))
    rows.append(("runs", f"{n_cells} cells: {tot['n_ok']} ok, {tot['n_diverged']} diverged, {tot['n_failed']} failed, "
                         f"{tot['n_missing']} missing" + (f", {tot['n_other']} other" if tot["n_other"] else "")
                         + (f"; {data.stale_runs} stale run(s) from an older configuration ignored" if data.stale_runs else "")))
    if data.targets.describe():
        rows.append(("time-to-target", " and ".join(data.targets.describe())))
    return md_table(["", ""], rows, ["l", "l"])


def _headline(data: ExperimentData, comparisons: pd.DataFrame) -> list[str]:
    primary = comparisons[comparisons["metric"] == "final_val_acc"]
    if primary.empty:
        return []
    out = ["## Answer", "", f"Final validation accuracy of each variant against the baseline `{data.baseline}` "
           "(difference in percentage points, 95% CI over seeds paired by seed, Holm-adjusted p):", ""]
    for r in primary.itertuples():
        note = f" ({r.note})" if r.note else ""
        if not r.n:
            out.append(f"- `{r.variant}`: **{r.verdict}**{note}")
            continue
        ci = fmt_ci(r.diff, r.ci_low, r.ci_high, r.n, 100.0, 2, signed=True)
        p = f", p_holm {fmt_p(r.p_holm)}" if not _isnan(r.p_holm) else ""
        out.append(f"- `{r.variant}`: {ci} points{p}: **{r.verdict}**{note}")
    return out + [""]


def _not_ok(data: ExperimentData) -> list[str]:
    bad = data.runs[data.runs["status"] != "ok"]
    if bad.empty:
        return []
    rows = [(_code(r.variant), r.seed, r.status, r.epochs_done, r.run_id, r.error or "-") for r in bad.itertuples()]
    return ["## Runs that are not ok", "",
            f"{len(bad)} of {len(data.runs)} cells have no usable result. They are left out of means and comparisons "
            "(comparisons pair only seeds where both runs are ok) and counted per variant below.", "",
            md_table(["variant", "seed", "status", "epochs done", "run id", "error"], rows, ["l", "r", "l", "r", "l", "l"]), ""]


def _summary_section(data: ExperimentData, summary: pd.DataFrame) -> list[str]:
    headers = ["variant", "n ok", "final val acc % [95% CI]", "best val acc %", "final val loss", "final train loss",
               "gap (points)"]
    has_train = "train_target_reached" in summary
    has_val = "val_target_reached" in summary
    if has_train:
        headers += [f"epochs to {data.targets.train_error:.0%} train err (reached)"]
    if has_val:
        headers += [f"epochs to {data.targets.val_acc:.0%} val acc (reached)"]
    headers += ["train img/s", "params", "not ok"]
    rows = []
    for r in summary.to_dict("records"):
        n = int(r["n"])
        bad = ", ".join(f"{int(r[c])} {c[2:]}" for c in ("n_diverged", "n_failed", "n_missing", "n_other") if r[c])
        row = [
            _code(r["variant"]) + (" (baseline)" if r["baseline"] else ""),
            f"{n}/{int(r['n_cells'])}",
            fmt_ci(r["final_val_acc_mean"], r["final_val_acc_ci_low"], r["final_val_acc_ci_high"], n, 100.0),
            _mean_sd(r["best_val_acc_mean"], r["best_val_acc_sd"], 100.0, 2),
            _mean_sd(r["final_val_loss_mean"], r["final_val_loss_sd"], 1.0, 3),
            _mean_sd(r["final_train_loss_mean"], r["final_train_loss_sd"], 1.0, 3),
            fmt_ci(r["gen_gap_mean"], r["gen_gap_ci_low"], r["gen_gap_ci_high"], n, 100.0, signed=True),
        ]
        if has_train:
            row.append(_target_cell(r, "train", n))
        if has_val:
            row.append(_target_cell(r, "val", n))
        row += [_mean_sd(r["train_images_per_s_mean"], r["train_images_per_s_sd"], 1.0, 0),
                f"{int(r['params']):,}" if not _isnan(r["params"]) else "-", bad or "-"]
        rows.append(row)
    return ["## Summary per variant", "",
            "Over the ok runs of each variant: mean [95% t interval] or mean ± sd. Gap = final training accuracy "
            "(eval mode, on a fixed training sample; `gap_source` in runs.csv) - final validation accuracy. Epochs to target: mean over the runs that reached it (how many in brackets).", "",
            md_table(headers, rows), ""]


def _mean_sd(mean: Any, sd: Any, scale: float, digits: int) -> str:
    if _isnan(mean):
        return "-"
    if _isnan(sd):
        return fmt(float(mean) * scale, digits)
    return f"{fmt(float(mean) * scale, digits)} ± {fmt(float(sd) * scale, digits)}"


def _target_cell(r: dict[str, Any], kind: str, n: int) -> str:
    reached = int(r.get(f"{kind}_target_reached", 0) or 0)
    if reached == 0:
        return f"not reached (0/{n})"
    return f"{_mean_sd(r[f'epochs_to_{kind}_target_mean'], r[f'epochs_to_{kind}_target_sd'], 1.0, 1)} ({reached}/{n})"


def _comparison_section(data: ExperimentData, comparisons: pd.DataFrame, metrics: Sequence[Metric]) -> list[str]:
    out = ["## Paired comparisons against the baseline", ""]
    if comparisons.empty:
        return out + ["The experiment has a single variant: nothing to compare.", ""]
    out += [f"`diff` = variant - baseline `{data.baseline}`, computed per seed over the seeds where both runs are ok, "
            "then averaged; 95% t interval over those seeds; two-sided paired t-test; p_holm: Holm-corrected over "
            "the variants compared on the same metric. Verdict: better / worse when p_holm < 0.05 (in the metric's "
            "good direction or not), else no detectable difference; fewer than 2 paired seeds give no interval.", ""]
    by_name = {m.name: m for m in metrics}
    primary = comparisons[comparisons["metric"] == metrics[0].name]
    m0 = metrics[0]
    rows = []
    for r in primary.itertuples():
        rows.append([
            _code(r.variant), r.n, r.seeds or "-", fmt(r.baseline_mean * 100.0 if not _isnan(r.baseline_mean) else math.nan),
            fmt(r.variant_mean * 100.0 if not _isnan(r.variant_mean) else math.nan),
            fmt_ci(r.diff, r.ci_low, r.ci_high, r.n, 100.0, 2, signed=True) if r.n else "-",
            fmt_p(r.p), fmt_p(r.p_holm), f"**{r.verdict}**" + (f" ({r.note})" if r.note else ""),
        ])
    out += [f"### {m0.label[0].upper() + m0.label[1:]} (%)", "",
            md_table(["variant", "n", "seeds", "baseline", "variant", "diff [95% CI] (points)", "p", "p_holm", "verdict"],
                     rows, ["l", "r", "l", "r", "r", "r", "r", "r", "l"]), ""]

    others = [m for m in metrics[1:] if m.name in set(comparisons["metric"])]
    if others:
        headers = ["variant"] + [f"{m.label}" + (f" ({_unit(m)})" if _unit(m) else "") + (" ↑" if m.higher_is_better else " ↓")
                                 for m in others]
        rows = []
        for v in [v for v in data.variants if v != data.baseline]:
            mine = comparisons[comparisons["variant"] == v].set_index("metric")
            row = [_code(v)]
            for m in others:
                if m.name not in mine.index:
                    row.append("-")
                    continue
                r = mine.loc[m.name]
                if r["verdict"] == NOT_REACHED:
                    row.append("target not reached by every run")
                    continue
                cell = fmt_ci(r["diff"], r["ci_low"], r["ci_high"], int(r["n"]), _scale(m), _digits(m), signed=True)
                mark = " †" if r["note"] == ALL_EQUAL_NOTE else ""
                row.append(f"{cell} {_SHORT.get(r['verdict'], r['verdict'])}{mark}" if int(r["n"]) else "-")
            rows.append(row)
        out += ["### Other metrics", "",
                "diff [95% CI] and verdict per metric (↑ higher is better, ↓ lower is better; n.s.: no detectable "
                "difference; †: every paired difference is the same, so the interval has zero width and p is the "
                "exact sign-flip p-value). p-values, seeds and notes are in `comparisons.csv`.", "",
                md_table(headers, rows), ""]
    return out


_SHORT = {"better": "**better**", "worse": "**worse**", "no detectable difference": "n.s.",
          "not enough seeds": "(no CI)", "no paired runs": "(no pairs)"}


def _effects_section(data: ExperimentData, effects: pd.DataFrame) -> list[str]:
    rows = []
    for r in effects.itertuples():
        note = f"; {r.note}" if isinstance(r.note, str) and r.note else ""
        rows.append([r.kind, r.axes, f"{r.level} (vs {r.reference})", r.n,
                     fmt_ci(r.estimate, r.ci_low, r.ci_high, r.n, 100.0, 2, signed=True), fmt_p(r.p), fmt_p(r.p_holm),
                     r.verdict + note])
    return ["## Main effects and interactions", "",
            "On final validation accuracy, in percentage points, relative to the baseline's level of each axis. "
            "Main effect of a level: per seed, the mean over every combination of the other axes of "
            "(accuracy at that level - accuracy at the reference level). Interaction of two levels a, b: per seed, "
            "the mean over the remaining axes of y(a,b) - y(a0,b) - y(a,b0) + y(a0,b0), i.e. how much the effect of "
            "a changes when the other axis moves from its reference to b (0 = the effects add up). 95% t interval "
            "over the seeds with every cell ok; Holm over all effects listed.", "",
            md_table(["kind", "axes", "level", "n", "estimate [95% CI] (points)", "p", "p_holm", "verdict"], rows,
                     ["l", "l", "l", "r", "r", "r", "r", "l"]), ""]


def _claims_section(claims: pd.DataFrame) -> list[str]:
    rows = []
    for r in claims.itertuples():
        ratio = r.quantity.startswith("ratio")
        ours = fmt_ci(r.estimate, r.ci_low, r.ci_high, r.n, 1.0, 2, signed=not ratio) + ("x" if ratio and not _isnan(r.estimate) else "")
        rows.append([r.claim, r.compared, r.paper, r.quantity, ours, r.n, f"**{r.verdict}**", r.detail])
    return ["## Claims of the 2012 AlexNet paper", "",
            "Krizhevsky, Sutskever & Hinton (2012), checked on this experiment's data. Supported / contradicted: the "
            "95% interval over seeds lies entirely on the claimed / the opposite side (for the paper's factors: "
            "contains / excludes it); inconclusive otherwise. The paper's numbers come from CIFAR-10 and ImageNet "
            "with its own networks; on other data only the direction is tested, the size is shown for context.", "",
            md_table(["claim", "compared", "paper", "quantity", "ours [95% CI]", "n", "verdict", "why"], rows,
                     ["l", "l", "l", "l", "r", "r", "l", "l"]), ""]


_PLOT_CAPTIONS = {
    "learning_curves.png": ("Learning curves", "Validation accuracy and training loss per epoch: mean over the ok "
                            "runs of each variant, band = 95% t interval over seeds."),
    "final_val_acc.png": ("Final validation accuracy and generalization gap", "Variants sorted by mean final "
                          "validation accuracy; dots are single runs, bars 95% CIs; the baseline is bold with a "
                          "diamond and a dashed line at its mean. The right margin counts runs per status."),
    "throughput.png": ("Speed", "Training images per second (warm-up steps excluded) and wall time (training + "
                       "evaluation) to reach the target, over the runs that reached it."),
    "interaction.png": ("Interactions", "Mean final validation accuracy over each pair of axes, averaged over "
                        "seeds and the other axes; red box: the baseline's levels."),
}


def _plots_section(data: ExperimentData, figures: Sequence[str]) -> list[str]:
    out = ["## Plots", ""]
    for name in figures:
        title, caption = _PLOT_CAPTIONS[name]
        out += [f"### {title}", "", f"![{title}]({name})", "", caption, ""]
    return out


def _method_section(data: ExperimentData) -> list[str]:
    return ["## Method", "",
            "- Seeds pair the runs: with seed s every variant sees the same data order, augmentation and (where "
            "shapes match) initial weights, so comparisons use per-seed differences d_s = variant_s - baseline_s.",
            "- 95% interval: mean ± t(0.975, n-1) · sd / sqrt(n) (Student's t; no interval with n < 2).",
            "- Paired t-test: t = mean(d) / (sd(d) / sqrt(n)), n - 1 degrees of freedom, two-sided.",
            "- Holm: p-values of one family sorted ascending, p_(k) · (m - k + 1), made monotone, capped at 1.",
            "- Only runs with status ok enter the statistics; diverged, failed and missing cells are listed and counted.",
            "- Final validation accuracy is the primary metric. Best validation accuracy is the maximum over epochs on "
            "the same validation set, so it is optimistic.",
            "- Time to target: the first epoch whose recorded training error (1 - training accuracy, measured during "
            "the epoch) or validation accuracy meets the target; runs that never get there are counted, not averaged.",
            "- Statistics code: `ablate/stats.py` (formulas in its docstring).", ""]
