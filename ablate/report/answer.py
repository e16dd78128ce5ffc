"""The report's Answer: the verdicts on one screen, and the rows of its forest plot.

A reader opens a report to learn which components matter. The Answer gives, in at most
:data:`MAX_LINES` lines of markdown, one table row per main effect (grids of two or more axes) or
per variant against the baseline, each with its estimate, 95% interval, Holm-adjusted p, minimum
detectable effect and verdict; the interactions detected in one line; then the forest plot
(``effects.png``). Power per comparison, seeds needed, P(better), simultaneous intervals and the
notes that explain an interval next to a verdict are columns of the tables further down and of the
CSVs, not sentences here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from ablate.analysis import (
    ALL_EQUAL_NOTE,
    NEGATIVE_INTERACTION,
    POSITIVE_INTERACTION,
    ExperimentData,
    variation_sources,
)
from ablate.analysis.adaptive import GROUP_SEQUENTIAL, STEIN
from ablate.analysis.adaptive import describe as describe_adaptive
from ablate.report.text import _isnan, fmt, fmt_ci, fmt_p, level_text, md_table

MAX_LINES = 40
VARIANTS_IN_ANSWER = 12  # more variants than this (a large grid): counted in the Answer, listed further down
PRIMARY = "final_val_acc"
INTERVAL_NOTE = (
    "an interval seems to disagree with the verdict (e.g. the unadjusted 95% interval excludes 0 but Holm "
    "does not reject);"
)
FOREST = "effects.png"
FOREST_TEXT = (
    "Estimates with their 95% intervals",
    "Forest plot: one row per effect, its estimate in percentage points as a dot and its 95% interval as a bar, "
    "green for better (or a positive interaction), red for worse (or a negative one), grey for no detectable "
    "difference",
)


def answer(data: ExperimentData, comparisons: pd.DataFrame, effects: pd.DataFrame, forest: bool) -> list[str]:
    """The ``## Answer`` section's lines (``forest``: whether ``effects.png`` was drawn)."""
    primary = comparisons[comparisons["metric"] == PRIMARY] if not comparisons.empty else comparisons
    mine = effects[effects["metric"] == PRIMARY] if not effects.empty else effects
    main = mine[mine["kind"] == "main"] if not mine.empty else mine
    if primary.empty and main.empty:
        return []
    out = ["## Answer", ""]
    if not main.empty:
        out += _main_effects(main, mine[mine["kind"] == "interaction"])
    if not primary.empty:
        sequential = _adaptive(data).get("design") == GROUP_SEQUENTIAL and bool(_split_adaptive(_adaptive(data))[1])
        if sequential and (main.empty or len(primary) <= VARIANTS_IN_ANSWER):
            out += _sequential_variants(data)
        elif main.empty or len(primary) <= VARIANTS_IN_ANSWER:
            out += _variants(data, primary)
        else:
            out += [_variant_counts(data, primary), ""]
    if forest:
        kind = "main effects and interactions" if not main.empty else "each variant against the baseline"
        out += [
            f"![{FOREST_TEXT[1]}]({FOREST})",
            "",
            f"*{FOREST_TEXT[0]}: {kind}, final validation accuracy in percentage points.*",
            "",
        ]
    out += _sources_sentence(data) + _adaptive_sentence(data) + design_changes_sentence(data)
    return out


def design_changes_sentence(data: ExperimentData) -> list[str]:
    """What the manifest says about designs replaced on these results (``ablate run --new-design``):
    the seeds one design chose were reused by another, so neither design's error rate holds."""
    changes = [c for c in (data.manifest or {}).get("design_changes") or [] if isinstance(c, dict)]
    if not changes:
        return []
    steps = "; then ".join(
        f"{c.get('from', '?')} ({c.get('stopped', 'not decided')}) was replaced by {c.get('to', '?')}" for c in changes
    )
    return [
        f"**The design changed** on these results (`--new-design`): {steps}. Seeds chosen under one design were "
        "reused by the next, so the error rates the designs promise (95% coverage, 5% false positives across the "
        "comparisons) no longer hold for these numbers.",
        "",
    ]


def _model_sentence(r: dict[str, Any], m: int) -> str:
    errors = (
        "HC2 robust errors with Bell–McCaffrey df"
        if r["cov_type"] == "HC2"
        else f"{r['cov_type']} robust errors on the residual df"
    )
    return (
        f"one linear model over the {int(r['runs_used'])} ok runs (seed as a block, main effects and two-way "
        f"interactions, {errors}, {fmt(r['resid_df'], 0)} residual df), Holm over its {m} main effects "
        "(the interactions are a family of their own)"
    )


def _main_effects(main: pd.DataFrame, inter: pd.DataFrame) -> list[str]:
    first = main.iloc[0].to_dict()
    m = int(first["m"]) if not _isnan(first["m"]) else len(main)
    out = [
        f"**Main effects** on final validation accuracy: each level against the baseline's level of its axis, "
        f"averaged over every combination of the other axes; {_model_sentence(first, m)}. MDD: the smallest "
        "effect this model detects with 80% power (alpha 0.05, before Holm). Checks and interactions under "
        "*Main effects and interactions*.",
        "",
    ]
    rows = []
    for r in main.to_dict("records"):
        mark = " ‡" if isinstance(r["interval_note"], str) and r["interval_note"] else ""
        rows.append(
            [
                f"`{r['axes']}={level_text(r['level'])}` vs `{level_text(r['reference'])}`",
                fmt_ci(r["estimate"], r["ci_low"], r["ci_high"], 2 if r["n"] else 0, 100.0, 2, signed=True)
                if r["n"]
                else "-",
                fmt_p(r["p_holm"]),
                fmt(r["mdd"] * 100, 2) if not _isnan(r["mdd"]) else "-",
                f"**{r['verdict']}**{mark}",
            ]
        )
    out += [
        md_table(
            ["effect", "estimate [95% CI] (points)", "p_holm", "MDD (points)", "verdict"],
            rows,
            ["l", "r", "r", "r", "l"],
        ),
        "",
    ]
    if any(row[-1].endswith("‡") for row in rows):
        out += [f"‡ {INTERVAL_NOTE} *Main effects and interactions* says why.", ""]
    if not inter.empty:
        found = inter[inter["verdict"].isin([POSITIVE_INTERACTION, NEGATIVE_INTERACTION])]
        text = f"**Interactions detected**: {len(found)} of {len(inter)}"
        if not found.empty:
            text += ": " + "; ".join(
                f"`{level_text(r['level'])}` ({r['axes']}) {fmt(r['estimate'] * 100, 2, True)} points"
                for r in found.to_dict("records")
            )
        untestable = int((inter["n"] < 2).sum())
        if untestable:
            text += f" ({untestable} not estimable: cells they need have no ok run)"
        out += [text + ".", ""]
    return out


def _variants(data: ExperimentData, primary: pd.DataFrame) -> list[str]:
    boot = bool((primary["ci_method"] == "bootstrap").any())
    label = "95% BCa bootstrap CI" if boot else "95% CI"
    m = int(primary["m"].dropna().max()) if primary["m"].notna().any() else len(primary)
    out = [
        f"**Each variant against the baseline** `{data.baseline}`: final validation accuracy, difference in "
        f"percentage points over the seeds where both runs are ok (paired by seed), Holm over {m} comparison(s). "
        "MDD: the smallest difference these seeds detect with 80% power. Power, seeds needed, P(better) and the "
        "simultaneous intervals under *Paired comparisons*.",
        "",
    ]
    rows, marked = [], False
    for r in primary.to_dict("records"):
        n = int(r["n"])
        low, high = (r["boot_low"], r["boot_high"]) if boot else (r["ci_low"], r["ci_high"])
        mark = ""
        if isinstance(r["interval_note"], str) and r["interval_note"]:
            mark, marked = " ‡", True
        note = f" ({r['note']})" if r["note"] and r["note"] != ALL_EQUAL_NOTE else ""
        rows.append(
            [
                f"`{r['variant']}`",
                str(n),
                fmt_ci(r["diff"], low, high, n, 100.0, 2, signed=True) if n else "-",
                fmt_p(r["p_holm"]),
                fmt(r["mdd"] * 100, 2) if not _isnan(r["mdd"]) else "-",
                f"**{r['verdict']}**{note}{mark}",
            ]
        )
    out += [
        md_table(
            ["variant", "n (seeds)", f"diff [{label}] (points)", "p_holm", "MDD (points)", "verdict"],
            rows,
            ["l", "r", "r", "r", "r", "l"],
        ),
        "",
    ]
    if marked:
        out += [f"‡ {INTERVAL_NOTE} *Paired comparisons* says why.", ""]
    return out


def _variant_counts(data: ExperimentData, primary: pd.DataFrame) -> str:
    counts = Counter(primary["verdict"])
    parts = [f"{n} {v}" for v, n in counts.most_common()]
    best = primary[primary["verdict"] == "better"].sort_values("diff", ascending=False)
    named = (
        "; better: "
        + ", ".join(f"`{r['variant']}` {fmt(r['diff'] * 100, 2, True)}" for r in best.head(3).to_dict("records"))
        if not best.empty
        else ""
    )
    return (
        f"**Each variant against the baseline** `{data.baseline}` ({len(primary)} variants, paired by seed, Holm "
        f"over them): {', '.join(parts)}{named}. The table is under *Paired comparisons*."
    )


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sources_sentence(data: ExperimentData) -> list[str]:
    covered, fixed = variation_sources(data)
    why = {
        "augmentation": "augmentation is off (data.augment = none)",
        "data sampling": "every run trains and validates on the same images (they depend on data.seed only)",
    }
    text = f"**What the intervals cover.** Seed-to-seed variation from {_join(covered)}, which change with the run seed"
    if fixed:
        text += f"; not from {' or '.join(fixed)}: " + "; ".join(why.get(f, f) for f in fixed)
        text += (
            ". A difference that depends on which images were drawn is not measured" if "data sampling" in fixed else ""
        )
    return [text + ".", ""]


def _sentence(text: str) -> str:
    text = str(text).strip()
    return (text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else ""


def _adaptive(data: ExperimentData) -> dict[str, Any]:
    adaptive = (data.manifest or {}).get("adaptive")
    return adaptive if isinstance(adaptive, dict) else {}


def _split_adaptive(adaptive: dict[str, Any]) -> tuple[list[str], list[str]]:
    """:func:`ablate.analysis.adaptive.describe` in two: (the method and boundaries, the per-variant table)."""
    lines = describe_adaptive(adaptive)
    at = next((i for i, line in enumerate(lines) if line.startswith("| variant |")), len(lines))
    return lines[:at], lines[at:]


def _adaptive_sentence(data: ExperimentData) -> list[str]:
    adaptive = _adaptive(data)
    if not adaptive:
        return []
    name = {GROUP_SEQUENTIAL: "group-sequential tests", STEIN: "Stein's two-stage procedure"}.get(
        adaptive.get("design"), str(adaptive.get("design") or "a rule")
    )
    return [
        f"**Seeds chosen adaptively** by {name}: the rule, the seeds each variant used and why it stopped are "
        "under *Adaptive seeds*.",
        "",
    ]


def _sequential_variants(data: ExperimentData) -> list[str]:
    """Each variant's verdict from the group-sequential tests (not from a fixed-n t over the seeds
    it happened to get), with its repeated confidence interval."""
    _, table = _split_adaptive(_adaptive(data))
    return [
        f"**Each variant against the baseline** `{data.baseline}`: verdicts of the group-sequential tests on final "
        "validation accuracy (paired by seed), difference in percentage points with the repeated confidence "
        "interval at the look where the variant stopped.",
        "",
        *table,
        "",
    ]


def adaptive_section(data: ExperimentData) -> list[str]:
    """``## Adaptive seeds``: the rule, its looks and boundaries, and (Stein) each variant's interval."""
    adaptive = _adaptive(data)
    if not adaptive:
        return []
    method, table = _split_adaptive(adaptive)
    shown_in_answer = adaptive.get("design") == GROUP_SEQUENTIAL and bool(table)
    stopped = f"Stopped: {adaptive['stopped']}." if adaptive.get("stopped") else ""
    return ["## Adaptive seeds", "", *method, *([] if shown_in_answer else table), "", stopped, ""]


def forest_rows(comparisons: pd.DataFrame, effects: pd.DataFrame) -> pd.DataFrame:
    """The forest plot's rows, in percentage points: a grid's main effects and interactions, else
    each variant against the baseline (primary metric)."""
    mine = effects[effects["metric"] == PRIMARY] if not effects.empty else effects
    if not mine.empty:
        label = [
            f"{a}={level_text(lv)}" if k == "main" else f"{level_text(lv)} ({a})"
            for k, a, lv in zip(mine["kind"], mine["axes"], mine["level"])
        ]
        frame = pd.DataFrame(
            {
                "label": label,
                "estimate": mine["estimate"],
                "ci_low": mine["ci_low"],
                "ci_high": mine["ci_high"],
                "verdict": mine["verdict"],
            }
        )
    else:
        primary = comparisons[comparisons["metric"] == PRIMARY] if not comparisons.empty else comparisons
        if primary.empty:
            return pd.DataFrame(columns=["label", "estimate", "ci_low", "ci_high", "verdict"])
        boot = primary["ci_method"] == "bootstrap"
        frame = pd.DataFrame(
            {
                "label": primary["variant"],
                "estimate": primary["diff"],
                "ci_low": primary["boot_low"].where(boot, primary["ci_low"]),
                "ci_high": primary["boot_high"].where(boot, primary["ci_high"]),
                "verdict": primary["verdict"],
            }
        )
    for c in ("estimate", "ci_low", "ci_high"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce") * 100.0
    return frame.reset_index(drop=True)
