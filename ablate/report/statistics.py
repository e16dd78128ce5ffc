"""The statistical sections of a report's markdown: the paired comparisons with the baseline, the
grid's main effects and interactions (with the linear model's checks) and the 2012 paper's claims.

Like :mod:`ablate.report.sections`, which places these lines in the README, every function here turns
tables already computed (by :mod:`ablate.analysis` and :mod:`ablate.analysis.paper_claims`) into text with
:mod:`ablate.report.text`; no number is computed here.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from ablate.analysis import ALL_EQUAL_NOTE, NOT_REACHED, ExperimentData, Metric, stats
from ablate.report.text import _isnan, code, fmt, fmt_ci, fmt_p, md_table


def statistics_sections(
    data: ExperimentData,
    comparisons: pd.DataFrame,
    effects: pd.DataFrame,
    claims: pd.DataFrame,
    metrics: Sequence[Metric],
) -> list[str]:
    """The comparisons section, then (grids) effects and (when any claim applies) claims."""
    out = _comparison_section(data, comparisons, metrics)
    if not effects.empty:
        out += _effects_section(data, effects)
    if not claims.empty:
        out += _claims_section(claims)
    return out


# --- formatting ---------------------------------------------------------------------------------
def _scale(metric: Metric) -> float:
    return 100.0 if metric.percent else 1.0


def _digits(metric: Metric) -> int:
    if metric.unit == "images":
        return 0
    if metric.unit == "images/s":
        return 1
    if metric.unit in ("s", "epochs"):
        return 1
    return 2 if metric.percent else 3


def _unit(metric: Metric) -> str:
    return "points" if metric.percent else metric.unit


def _pct(level: Any) -> str:
    return f"{100 * float(level):.4g}%"


# --- sections -----------------------------------------------------------------------------------
def _comparison_section(data: ExperimentData, comparisons: pd.DataFrame, metrics: Sequence[Metric]) -> list[str]:
    out = ["## Paired comparisons against the baseline", ""]
    if comparisons.empty:
        return out + ["The experiment has a single variant: nothing to compare.", ""]
    boot = bool((comparisons["ci_method"] == "bootstrap").any())
    out += [
        f"`diff` = variant - baseline `{data.baseline}`, computed per seed over the seeds where both runs are ok, "
        "then averaged; 95% t interval over those seeds; two-sided paired t-test; p_holm: Holm-corrected over "
        "the variants compared on the same metric. Verdict: better / worse when p_holm < 0.05 (in the metric's "
        "good direction or not), else no detectable difference; fewer than 2 paired seeds give no interval. "
        "The simultaneous interval (Bonferroni, level 1 - 0.05/m over the m comparisons of the metric) is the "
        "one that matches the verdict: when it excludes 0 the verdict is better or worse. MDD: minimum detectable "
        "difference (80% power, alpha 0.05) with these seeds; seeds needed: to detect the effect in brackets "
        "with 80% power at the observed sd. P(better): share of seed pairs where the variant beats the baseline "
        "(ties count half), 95% Wilson interval."
        + (
            " With --ci bootstrap the first interval is a 95% BCa paired bootstrap interval; the verdict still "
            "comes from the t-test."
            if boot
            else ""
        ),
        "",
    ]
    primary = comparisons[comparisons["metric"] == metrics[0].name]
    m0 = metrics[0]
    rows = []
    for r in primary.to_dict("records"):
        n = int(r["n"])
        low, high = (r["boot_low"], r["boot_high"]) if boot else (r["ci_low"], r["ci_high"])
        sim = (
            f"[{fmt(r['sim_low'] * 100, 2, True)}, {fmt(r['sim_high'] * 100, 2, True)}] ({_pct(r['sim_level'])})"
            if n >= 2 and not _isnan(r["sim_low"])
            else "-"
        )
        need = (
            "-"
            if _isnan(r["seeds_needed"])
            else ("inf" if math.isinf(float(r["seeds_needed"])) else str(int(r["seeds_needed"])))
        )
        if need != "-" and not _isnan(r["effect"]):
            need += f" ({fmt(r['effect'] * 100, 2)} pts)"
        notes = "; ".join(x for x in (r["note"], r["interval_note"]) if isinstance(x, str) and x)
        rows.append(
            [
                code(r["variant"]),
                n,
                r["seeds"] or "-",
                fmt(r["baseline_mean"] * 100.0 if not _isnan(r["baseline_mean"]) else math.nan),
                fmt(r["variant_mean"] * 100.0 if not _isnan(r["variant_mean"]) else math.nan),
                fmt_ci(r["diff"], low, high, n, 100.0, 2, signed=True) if n else "-",
                sim,
                fmt_p(r["p"]),
                fmt_p(r["p_holm"]),
                fmt(r["mdd"] * 100, 2) if not _isnan(r["mdd"]) else "-",
                need,
                f"{fmt(r['p_improve'], 2)} [{fmt(r['p_improve_low'], 2)}, {fmt(r['p_improve_high'], 2)}]" if n else "-",
                f"**{r['verdict']}**" + (f" ({notes})" if notes else ""),
            ]
        )
    first = "diff [95% BCa bootstrap CI] (points)" if boot else "diff [95% CI] (points)"
    out += [
        f"### {m0.label[0].upper() + m0.label[1:]} (%)",
        "",
        md_table(
            [
                "variant",
                "n (seeds)",
                "seeds",
                "baseline (%)",
                "variant (%)",
                first,
                "simultaneous CI (points)",
                "p",
                "p_holm",
                "MDD (points)",
                "seeds needed (effect)",
                "P(better) [95% CI]",
                "verdict",
            ],
            rows,
            ["l", "r", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l"],
        ),
        "",
    ]

    others = [m for m in metrics[1:] if m.name in set(comparisons["metric"])]
    if others:
        headers = ["variant"] + [
            f"{m.label}" + (f" ({_unit(m)})" if _unit(m) else "") + (" ↑" if m.higher_is_better else " ↓")
            for m in others
        ]
        rows = []
        for v in [v for v in data.variants if v != data.baseline]:
            mine = comparisons[comparisons["variant"] == v].set_index("metric")
            row = [code(v)]
            for m in others:
                if m.name not in mine.index:
                    row.append("-")
                    continue
                r = mine.loc[m.name]
                if r["verdict"] == NOT_REACHED:
                    row.append("target not reached by every run")
                    continue
                boot = r["ci_method"] == "bootstrap"
                low, high = (r["boot_low"], r["boot_high"]) if boot else (r["ci_low"], r["ci_high"])
                cell = fmt_ci(r["diff"], low, high, int(r["n"]), _scale(m), _digits(m), signed=True)
                mark = " †" if r["note"] == ALL_EQUAL_NOTE else (" ‡" if r["interval_note"] else "")
                # fmt_ci already says "(no CI, n=1)": no second "(no CI)" from the verdict
                verdict = "" if r["verdict"] == stats.NOT_ENOUGH_SEEDS else f" {_SHORT.get(r['verdict'], r['verdict'])}"
                row.append(f"{cell}{verdict}{mark}" if int(r["n"]) else "-")
            rows.append(row)
        out += [
            "### Other metrics",
            "",
            "diff [95% CI] and verdict per metric (↑ higher is better, ↓ lower is better; n.s.: no detectable "
            "difference; †: every paired difference is the same, so the interval has zero width and p is the "
            "exact sign-flip p-value; ‡: an interval seems to disagree with the verdict, `interval_note` in "
            "`comparisons.csv` says why). p-values, seeds, simultaneous and bootstrap intervals, power and notes are "
            "in `comparisons.csv`."
            + (" Intervals: 95% BCa paired bootstrap." if (comparisons["ci_method"] == "bootstrap").any() else ""),
            "",
            md_table(headers, rows),
            "",
        ]
    return out


_SHORT = {
    "better": "**better**",
    "worse": "**worse**",
    "no detectable difference": "n.s.",
    "not enough seeds": "(no CI)",
    "no paired runs": "(no pairs)",
}


def _effects_section(data: ExperimentData, effects: pd.DataFrame) -> list[str]:
    rows = []
    for r in effects.itertuples():
        note = "".join(f"; {x}" for x in (r.note, r.interval_note) if isinstance(x, str) and x)
        sim = (
            f"[{fmt(r.sim_low * 100, 2, True)}, {fmt(r.sim_high * 100, 2, True)}] ({_pct(r.sim_level)})"
            if r.n >= 2 and not _isnan(r.sim_low)
            else "-"
        )
        rows.append(
            [
                r.kind,
                r.axes,
                f"{r.level} (vs {r.reference})",
                fmt_ci(r.estimate, r.ci_low, r.ci_high, 2 if r.n else 0, 100.0, 2, signed=True) if r.n else "-",
                fmt(r.se * 100, 2) if not _isnan(r.se) else "-",
                fmt(r.df, 1) if r.n and not _isnan(r.df) else "-",
                sim,
                fmt_p(r.p),
                fmt_p(r.p_holm),
                fmt(r.mdd * 100, 2) if not _isnan(r.mdd) else "-",
                r.verdict + note,
            ]
        )
    first = effects.iloc[0]
    het = (
        f"Breusch–Pagan test of unequal variances (residuals against the model's terms): p = {fmt_p(first['het_p'])}"
        + (", the spread differs between cells" if not _isnan(first["het_p"]) and first["het_p"] < 0.05 else "")
        if not _isnan(first["het_p"])
        else "Breusch–Pagan test: not computable (no residual spread)"
    )
    robust = (
        "HC2 heteroscedasticity-robust standard errors with Bell–McCaffrey degrees of freedom per effect (the df "
        "column; cells whose runs are all identical count as having no spread)"
        if first["cov_type"] == "HC2"
        else f"{first['cov_type']} robust standard errors on the residual degrees of freedom (HC2 cannot be used: "
        "a run has leverage 1)"
    )
    return [
        "## Main effects and interactions",
        "",
        "On final validation accuracy, in percentage points, relative to the baseline's level of each axis, from "
        "one linear model fitted to every ok run: `y ~ C(seed) + (C(axis_1) + ... + C(axis_k)) ** 2` (seed as a "
        "block, every main effect and two-way interaction; higher-order interactions stay in the residual). "
        "Main effect of a level: the mean over every combination of the other axes of (the model's cell mean at "
        "that level - at the reference level); with every cell present this is the raw marginal mean difference. "
        "Interaction of two levels a, b: the mean over the remaining axes of y(a,b) - y(a0,b) - y(a,b0) + "
        "y(a0,b0), i.e. how much the effect of a changes when the other axis moves from its reference to b "
        "(0 = the effects add up). Each effect's t test and interval use its HC2 standard error on its "
        "Bell–McCaffrey degrees of freedom (df). Holm runs within two families: the main effects (the questions "
        "the grid was built for) and, separately, the interactions; each family's simultaneous (Bonferroni) "
        "interval is the one that matches its verdicts; MDD: the smallest effect detected with 80% power at "
        "alpha 0.05 (noncentral t, the effect's standard error and df).",
        "",
        f"**Model checks.** {int(first['runs_used'])} ok runs in {int(first['cells_used'])} of "
        f"{int(first['cells_total'])} cells; {fmt(first['resid_df'], 0)} residual degrees of freedom; residual sd "
        f"{fmt(first['resid_sd'] * 100, 2)} points; {het}; {robust}.",
        "",
        md_table(
            [
                "kind",
                "axes",
                "level",
                "estimate [95% CI] (points)",
                "se (points)",
                "df",
                "simultaneous CI (points)",
                "p",
                "p_holm",
                "MDD (points)",
                "verdict",
            ],
            rows,
            ["l", "l", "l", "r", "r", "r", "r", "r", "r", "r", "l"],
        ),
        "",
    ]


def _claims_section(claims: pd.DataFrame) -> list[str]:
    rows = []
    for r in claims.itertuples():
        ratio = r.quantity.startswith("ratio")
        ours = fmt_ci(r.estimate, r.ci_low, r.ci_high, r.n, 1.0, 2, signed=not ratio) + (
            "x" if ratio and not _isnan(r.estimate) else ""
        )
        rows.append([r.claim, r.compared, r.paper, r.quantity, ours, r.n, f"**{r.verdict}**", r.detail])
    return [
        "## Claims of the 2012 AlexNet paper",
        "",
        "Krizhevsky, Sutskever & Hinton (2012), checked on this experiment's data. Supported / contradicted: the "
        "95% interval over seeds lies entirely on the claimed / the opposite side (for the paper's factors: "
        "contains / excludes it); inconclusive otherwise. The paper's numbers come from CIFAR-10 and ImageNet "
        "with its own networks; on other data only the direction is tested, the size is shown for context.",
        "",
        md_table(
            [
                "claim",
                "compared",
                "paper",
                "quantity (unit)",
                "ours [95% CI] (unit of the quantity)",
                "n (seeds)",
                "verdict",
                "why",
            ],
            rows,
            ["l", "l", "l", "l", "r", "r", "l", "l"],
        ),
        "",
    ]
