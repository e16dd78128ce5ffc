"""The markdown of one experiment's report (its ``README.md``) put together: the overview, then one
section each for runs that are not ok, the per-variant summary, the statistical sections, the
figures and the method, and the list of files.

Every function turns tables already computed (by :mod:`ablate.report.build`, from :mod:`ablate.analysis`)
into text with :mod:`ablate.report.text`. Two blocks of lines are handed in by :mod:`ablate.report.build`
rather than imported, so this module stays on the same import layer as they do: the Answer at the
top (:mod:`ablate.report.answer`) and the statistical sections, comparisons, effects and claims
(:mod:`ablate.report.statistics`).
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from ablate.analysis import ExperimentData, status_counts, variation_sources
from ablate.report.text import _isnan, code, fmt_ci, fmt_sd, md_table


# --- markdown -----------------------------------------------------------------------------------
def render_markdown(
    data: ExperimentData,
    summary: pd.DataFrame,
    figures: Sequence[str],
    tables: Sequence[str],
    answer: Sequence[str],
    statistics: Sequence[str],
) -> str:
    """The report's README.md text; ``answer``: the lines of the Answer (and adaptive seeds)
    sections, from :mod:`ablate.report.answer`, which go right after the overview; ``statistics``: the
    comparisons, effects and claims sections, from :mod:`ablate.report.statistics`, which go
    after the summary."""
    parts = [f"# Ablation report: {data.name}", ""]
    if data.description:
        parts += [data.description, ""]
    parts += [_overview(data), ""]
    if data.notes:
        parts += ["> **Notes**", *[f"> - {n}" for n in data.notes], ""]
    parts += answer
    parts += _not_ok(data)
    parts += _summary_section(data, summary)
    parts += statistics
    parts += _plots_section(data, figures)
    parts += _method_section(data)
    parts += ["## Files", "", *[f"- [`{t}`]({t})" + _TABLE_NOTES.get(t, "") for t in tables], ""]
    return "\n".join(parts).rstrip() + "\n"


_TABLE_NOTES = {
    "summary.csv": ": one row per variant (counts; mean, sd and 95% CI over ok runs)",
    "comparisons.csv": (
        ": one row per variant x metric, paired against the baseline (diff, ci_low, ci_high, sim_low, sim_high, p, "
        "p_holm, verdict, mdd, seeds_needed, p_improve, interval_note)"
    ),
    "effects.csv": ": main effects and two-way interactions of the grid's axes",
    "claims.csv": ": the 2012 paper's claims checked against this experiment",
    "runs.csv": ": one row per cell (variant x seed) with its status, including missing, failed and diverged runs",
    "epochs.csv": ": one row per run x finished epoch",
    "steps.csv": ": one row per run x step log point (images seen, lr, training loss and accuracy, elapsed seconds)",
}


def _seed_count(manifest: dict, data: ExperimentData) -> str:
    """ "5 seeds"; with seeds chosen per variant (adaptive designs), the range the variants used."""
    per_variant = manifest.get("variant_seeds")
    per_variant = per_variant if isinstance(per_variant, dict) else {}
    counts = sorted({len(v) for v in per_variant.values() if isinstance(v, list)})
    if len(counts) > 1:
        return f"{counts[0]} to {counts[-1]} seeds, chosen per variant"
    return f"{len(data.seeds)} seeds"


def _overview(data: ExperimentData) -> str:
    counts = status_counts(data)
    n_cells = int(counts["n_cells"].sum())
    tot = {c: int(counts[c].sum()) for c in ("n_ok", "n_diverged", "n_failed", "n_missing", "n_other")}
    m = data.manifest or {}
    axes = ", ".join(f"{a} ({', '.join(str(x) for x in v)})" for a, v in data.axes.items()) or "-"
    seeds = ", ".join(str(s) for s in data.seeds)
    rows = [
        ("design", f"{data.design} over {axes}: {len(data.variants)} variants x {_seed_count(m, data)} ({seeds})"),
        (
            "baseline",
            code(data.baseline)
            + (
                " (the experiment's [model])"
                if m.get("baseline_slug") == data.baseline
                else " (chosen with --baseline)"
                if m
                else ""
            ),
        ),
    ]
    d, t = m.get("data") or {}, m.get("train") or {}
    if d:
        rows.append(
            (
                "data",
                f"{d.get('dataset')}: {d.get('train_size') or 'all'} training / "
                f"{d.get('val_size') or 'all'} validation images, augmentation {d.get('augment', 'none')}",
            )
        )
    if t:
        rows.append(
            (
                "training",
                f"{t.get('epochs')} epochs, {t.get('optimizer')} lr {t.get('lr')}, batch "
                f"{t.get('batch_size')}, weight decay {t.get('weight_decay')}, schedule {t.get('schedule')}, "
                f"precision {t.get('precision')}",
            )
        )
    devices = sorted({str(x) for x in data.runs.get("device", pd.Series(dtype=str)).dropna() if x})
    if devices:
        rows.append(("device", ", ".join(devices)))
    rows.append(
        (
            "runs",
            f"{n_cells} cells: {tot['n_ok']} ok, {tot['n_diverged']} diverged, {tot['n_failed']} failed, "
            f"{tot['n_missing']} missing"
            + (f", {tot['n_other']} other" if tot["n_other"] else "")
            + (f"; {data.stale_runs} stale run(s) from an older configuration ignored" if data.stale_runs else ""),
        )
    )
    if data.targets.describe():
        rows.append(("time-to-target", " and ".join(data.targets.describe())))
    return md_table(["", ""], rows, ["l", "l"])


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _not_ok(data: ExperimentData) -> list[str]:
    bad = data.runs[data.runs["status"] != "ok"]
    if bad.empty:
        return []
    rows = [(code(r.variant), r.seed, r.status, r.epochs_done, r.run_id, r.error or "-") for r in bad.itertuples()]
    return [
        "## Runs that are not ok",
        "",
        f"{len(bad)} of {len(data.runs)} cells have no usable result. They are left out of means and comparisons "
        "(comparisons pair only seeds where both runs are ok) and counted per variant below.",
        "",
        md_table(
            ["variant", "seed", "status", "epochs done (epochs)", "run id", "error"],
            rows,
            ["l", "r", "l", "r", "l", "l"],
        ),
        "",
    ]


def _summary_section(data: ExperimentData, summary: pd.DataFrame) -> list[str]:
    headers = [
        "variant",
        "ok runs",
        "final val acc (%) [95% CI]",
        "best val acc (%)",
        "final val loss (nats)",
        "final train loss (nats)",
        "gap (points) [95% CI]",
    ]
    has_train = "train_target_reached" in summary
    has_val = "val_target_reached" in summary
    if has_train:
        headers += [f"epochs to {data.targets.train_error:.0%} train err (epochs; runs reached)"]
    if has_val:
        headers += [f"epochs to {data.targets.val_acc:.0%} val acc (epochs; runs reached)"]
    headers += ["train throughput (images/s)", "params (count)", "not ok (runs)"]
    rows = []
    for r in summary.to_dict("records"):
        n = int(r["n"])
        bad = ", ".join(f"{int(r[c])} {c[2:]}" for c in ("n_diverged", "n_failed", "n_missing", "n_other") if r[c])
        row = [
            code(r["variant"]) + (" (baseline)" if r["baseline"] else ""),
            f"{n}/{int(r['n_cells'])}",
            fmt_ci(r["final_val_acc_mean"], r["final_val_acc_ci_low"], r["final_val_acc_ci_high"], n, 100.0),
            fmt_sd(r["best_val_acc_mean"], r["best_val_acc_sd"], 100.0, 2),
            fmt_sd(r["final_val_loss_mean"], r["final_val_loss_sd"], 1.0, 3),
            fmt_sd(r["final_train_loss_mean"], r["final_train_loss_sd"], 1.0, 3),
            fmt_ci(r["gen_gap_mean"], r["gen_gap_ci_low"], r["gen_gap_ci_high"], n, 100.0, signed=True),
        ]
        if has_train:
            row.append(_target_cell(r, "train", n))
        if has_val:
            row.append(_target_cell(r, "val", n))
        row += [
            fmt_sd(r["train_images_per_s_mean"], r["train_images_per_s_sd"], 1.0, 0),
            f"{int(r['params']):,}" if not _isnan(r["params"]) else "-",
            bad or "-",
        ]
        rows.append(row)
    return [
        "## Summary per variant",
        "",
        "Over the ok runs of each variant: mean [95% t interval] or mean ± sd. Gap = final training accuracy "
        "(eval mode, on a fixed training sample; `gap_source` in runs.csv) - final validation accuracy. Epochs to "
        "target: mean over the runs that reached it (how many in brackets).",
        "",
        md_table(headers, rows),
        "",
    ]


def _target_cell(r: dict[str, Any], kind: str, n: int) -> str:
    reached = int(r.get(f"{kind}_target_reached", 0) or 0)
    if reached == 0:
        return f"not reached (0/{n})"
    return f"{fmt_sd(r[f'epochs_to_{kind}_target_mean'], r[f'epochs_to_{kind}_target_sd'], 1.0, 1)} ({reached}/{n})"


# (how to read it). ``{x}`` in the learning curves' texts: what the x axis counts.
_PLOT_TEXTS = {
    "learning_curves.png": (
        "Learning curves",
        "Line charts, one line per variant: validation accuracy (%), training loss and, with step logs, training "
        "error (%) against {x}, each with a shaded 95% band over seeds",
        "Figure {i}: learning curves against {x}: mean over the ok runs of each variant, band = 95% t interval over "
        "seeds.{extra}",
    ),
    "final_val_acc.png": (
        "Final validation accuracy and generalization gap",
        "Dot plots, one row per variant sorted by mean final validation accuracy (%): single runs as dots, the mean "
        "with its 95% interval as a bar; beside it the train - val accuracy gap (points) in the same order",
        "Figure {i}: variants sorted by mean final validation accuracy; dots are single runs, bars 95% CIs; the "
        "baseline is bold with a diamond and a dashed line at its mean. The right margin counts runs per status.",
    ),
    "throughput.png": (
        "Speed",
        "Dot plots, one row per variant: training throughput (images/s) and time to the training target (s), single "
        "runs as dots and the mean with its 95% interval",
        "Figure {i}: training images per second (warm-up steps excluded) and time to reach the target, over the runs "
        "that reached it (wall time to the end of the epoch, or elapsed training time at the step log point when "
        "runs log steps).",
    ),
    "interaction.png": (
        "Interactions",
        "Heatmaps of mean final validation accuracy (%) for each pair of axes, one cell per pair of levels, the "
        "baseline's cell outlined in red",
        "Figure {i}: mean final validation accuracy over each pair of axes, averaged over seeds and the other axes; "
        "red box: the baseline's levels.",
    ),
}


def _plots_section(data: ExperimentData, figures: Sequence[str]) -> list[str]:
    out = ["## Plots", ""]
    ok_epochs, ok_steps = data.epochs[data.epochs["status"] == "ok"], data.steps[data.steps["status"] == "ok"]
    steps = not ok_steps.empty and not set(ok_epochs["run_id"]) - set(ok_steps["run_id"])  # as plots.learning_curves
    x = "training images seen" if steps else "epochs"
    extra = (
        f" Training curves use the step log points (mean over the steps since the previous point); validation "
        f"accuracy is measured at the end of each epoch. Dashed line: the {data.targets.train_error:.0%} training-"
        "error target."
        if steps and data.targets.train_error is not None
        else " Old records without step logs: one point per epoch."
        if not steps
        else ""
    )
    for i, name in enumerate([f for f in figures if f in _PLOT_TEXTS], start=1):  # the forest plot is in the Answer
        title, alt, caption = _PLOT_TEXTS[name]
        out += [
            f"### {title}",
            "",
            f"![{alt.format(x=x)}]({name})",
            "",
            f"*{caption.format(i=i, x=x, extra=extra)}*",
            "",
        ]
    return out


def _method_section(data: ExperimentData) -> list[str]:
    covered, fixed = variation_sources(data)
    return [
        "## Method",
        "",
        "- Seeds pair the runs: with seed s every variant sees the same data order, augmentation and (where "
        "shapes match) initial weights, so comparisons use per-seed differences d_s = variant_s - baseline_s.",
        f"- Sources of variation the intervals cover: {_join(covered)}"
        + (f"; held fixed, so not covered: {_join(fixed)}." if fixed else "."),
        "- 95% interval: mean ± t(0.975, n-1) · sd / sqrt(n) (Student's t; no interval with n < 2).",
        "- Paired t-test: t = mean(d) / (sd(d) / sqrt(n)), n - 1 degrees of freedom, two-sided.",
        "- Holm: p-values of one family sorted ascending, p_(k) · (m - k + 1), made monotone, capped at 1. The "
        "simultaneous interval is Bonferroni's (level 1 - 0.05/m): it excludes 0 only when Holm rejects; the "
        "unadjusted 95% interval can exclude 0 when Holm does not, and the report then says so.",
        "- Power: minimum detectable difference = the true difference a two-sided paired t-test at alpha 0.05 "
        "detects with 80% probability with n seeds, from the noncentral t distribution with the observed sd of "
        "the differences; seeds needed = the smallest n reaching 80% for the effect asked for (`--effect`, else "
        "the paper's effect where a comparison matches one of its claims, else 1 point).",
        "- `--ci bootstrap`: BCa bootstrap of the mean paired difference (9999 resamples, fixed generator); "
        "for metrics far from normal (time to target, throughput). It is shown, never used for the verdict.",
        "- P(better): probability that the variant beats the baseline on a seed pair (Bouthillier et al. 2021), "
        "ties count half, 95% Wilson interval.",
        "- Only runs with status ok enter the statistics; diverged, failed and missing cells are listed and counted.",
        "- Final validation accuracy is the primary metric. Best validation accuracy is the maximum over epochs on "
        "the same validation set, so it is optimistic.",
        "- Time to target: with step logs (`[train] log_every`), the first log point whose training error "
        "(1 - mean training accuracy since the previous point) meets the target, in images seen, fractional "
        "epochs and elapsed training seconds; without them, the first epoch whose recorded training error or "
        "validation accuracy meets it. Runs that never get there are counted, not averaged.",
        "- Grids of two or more axes: main effects and interactions from one linear model over every ok run "
        "(`ablate/analysis/factorial.py`, least squares with HC2 errors and Bell–McCaffrey degrees of freedom; see "
        "*Main effects and interactions*): a full factorial estimates each main effect from all of its runs, not "
        "from per-seed means. Holm runs within the main effects (the primary family) and, separately, within the "
        "interactions (the secondary family).",
        "- Statistics code: `ablate/analysis/stats.py` (formulas in its docstring) and `ablate/analysis/factorial.py`; "
        "distributions from `scipy.stats`, the grid model's design matrix and Breusch–Pagan test from `statsmodels`.",
        "",
    ]
