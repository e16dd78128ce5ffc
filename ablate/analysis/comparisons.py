"""Paired comparisons of every variant with the baseline: intervals, tests, power, and the notes
that reconcile intervals with verdicts. The formulas are in :mod:`ablate.analysis.stats`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ablate.analysis import stats
from ablate.analysis.errors import ReportError
from ablate.analysis.frames import ALL_EQUAL_NOTE, NOT_REACHED, ExperimentData
from ablate.analysis.metrics import TARGET_METRICS, Metric, metrics_for
from ablate.analysis.summary import per_seed

# The columns of one tested estimate, in both comparisons.csv and effects.csv (defined once: they are
# what :func:`interval_note` reads, whichever of the two tables the row comes from): its 95% interval,
# t test, Holm-adjusted p, verdict and the simultaneous interval over the m tests of its family.
TEST_COLUMNS = [
    "ci_low",
    "ci_high",
    "t",
    "df",
    "p",
    "p_holm",
    "verdict",
    "note",
    "m",
    "sim_level",
    "sim_low",
    "sim_high",
]
COMPARISON_COLUMNS = [
    "variant",
    "baseline",
    "metric",
    "higher_is_better",
    "n",
    "seeds",
    "baseline_mean",
    "variant_mean",
    "diff",
    "sd_diff",
    *TEST_COLUMNS,
    "ci_method",
    "boot_low",
    "boot_high",
    "p_improve",
    "p_improve_low",
    "p_improve_high",
    "mdd",
    "effect",
    "effect_source",
    "power_at_effect",
    "seeds_needed",
    "interval_note",
]
CI_METHODS = ("t", "bootstrap")
DEFAULT_EFFECT = 0.01  # one percentage point, for accuracy-like metrics without a paper's number


@dataclass(frozen=True)
class Effect:
    """The difference a comparison should be able to detect, in the metric's units (fractions
    for percent metrics), and where the number comes from."""

    size: float
    source: str


def compare_to_baseline(
    data: ExperimentData,
    metrics: Sequence[Metric] | None = None,
    *,
    ci: str = "t",
    effects: dict[tuple[str, str], Effect] | None = None,
    default_effect: Effect | None = None,
) -> pd.DataFrame:
    """One row per (variant other than the baseline) x metric: ``diff = variant - baseline``
    paired by seed over seeds where both runs are ok, its 95% t interval, paired t-test p-value,
    Holm-adjusted p over the variants for that metric (one family per metric) and the verdict.

    Also per row: the Bonferroni simultaneous interval over the ``m`` comparisons of the family
    (``sim_*``, at level ``sim_level``), which excludes 0 only when Holm rejects; with
    ``ci="bootstrap"`` the BCa paired bootstrap interval (``boot_*``); the probability that the
    variant beats the baseline on a seed pair (``p_improve*``); the minimum detectable difference
    at 80% power and alpha 0.05 (``mdd``); and, for percent metrics, the seeds needed to detect
    ``effect`` (``effects[(variant, metric)]``, else ``default_effect``, else 1 point).
    ``interval_note`` explains every interval shown that seems to disagree with the verdict.
    """
    if ci not in CI_METHODS:
        raise ReportError(f"--ci {ci!r}: expected one of {', '.join(CI_METHODS)}")
    metrics = list(metrics) if metrics is not None else metrics_for(data.targets)
    effects = effects or {}
    default_effect = default_effect or Effect(DEFAULT_EFFECT, "default: 1 point")
    rows: list[dict[str, Any]] = []
    for metric in metrics:
        values = per_seed(data, metric.name)
        base = values[data.baseline]
        reached_col = TARGET_METRICS.get(metric.name)
        block: list[dict[str, Any]] = []
        diffs_of: list[list[float]] = []
        for v in data.variants:
            if v == data.baseline:
                continue
            note = ""
            if reached_col is not None:
                # Time to target is censored for runs that never reached it: only compare when
                # every paired run reached it, and say how many did otherwise.
                seeds_ok = _paired_ok_seeds(data, v)
                rb, rv = _reached(data, data.baseline, seeds_ok, reached_col), _reached(data, v, seeds_ok, reached_col)
                if seeds_ok and (rb < len(seeds_ok) or rv < len(seeds_ok)):
                    note = (
                        f"target reached by {rv}/{len(seeds_ok)} {v} and {rb}/{len(seeds_ok)} baseline runs "
                        f"of the paired seeds; not compared"
                    )
                    block.append(_comparison_row(data, v, metric, [], [], base, values[v], note, censored=True))
                    diffs_of.append([])
                    continue
            seeds, diffs = stats.paired_differences(values[v], base)
            if stats.paired_test(diffs).all_equal:
                note = ALL_EQUAL_NOTE
            if not seeds:
                note = "no seed with an ok run of both variant and baseline"
            elif len(seeds) < 2:
                note = f"only seed {seeds[0]} has ok runs of both: no interval can be given"
            block.append(_comparison_row(data, v, metric, seeds, diffs, base, values[v], note))
            diffs_of.append(diffs)
        adjusted = stats.holm([r["p"] for r in block])
        m = sum(1 for r in block if not _nan(r["p"]))
        level = stats.simultaneous_confidence(m)
        for r, p_adj, diffs in zip(block, adjusted, diffs_of):
            r["p_holm"] = p_adj
            if r["verdict"] is None:
                r["verdict"] = stats.verdict(r["diff"], p_adj, r["n"], metric.higher_is_better)
            effect = effects.get((r["variant"], metric.name), default_effect) if metric.percent else None
            r.update(_power_columns(diffs, metric, m, level, ci, effect))
            r["interval_note"] = interval_note(r, scale=100.0 if metric.percent else 1.0)
        rows.extend(block)
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    order = {v: i for i, v in enumerate(data.variants)}
    morder = {m.name: i for i, m in enumerate(metrics)}
    frame = frame.assign(_v=frame["variant"].map(order), _m=frame["metric"].map(morder))
    frame = frame.sort_values(["_v", "_m"], kind="stable").drop(columns=["_v", "_m"]).reset_index(drop=True)
    frame["n"] = frame["n"].astype(int)
    frame["df"] = frame["df"].astype("Int64")
    frame["m"] = frame["m"].astype("Int64")
    return frame


def _nan(x: Any) -> bool:
    try:
        return x is None or x is pd.NA or math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def _power_columns(
    diffs: list[float], metric: Metric, m: int, level: float, ci: str, effect: Effect | None
) -> dict[str, Any]:
    """Simultaneous and bootstrap intervals, probability of improvement and power of one comparison."""
    test = stats.paired_test(diffs)
    wide = stats.paired_test(diffs, level) if diffs else test
    boot = stats.bootstrap_interval(diffs) if ci == "bootstrap" else (math.nan, math.nan)
    imp = stats.probability_of_improvement(diffs, metric.higher_is_better)
    mdd = stats.min_detectable_difference(test.sd, test.n) if test.n >= 2 else math.nan
    out: dict[str, Any] = {
        "m": m,
        "sim_level": level,
        "sim_low": wide.ci_low if test.n >= 2 else math.nan,
        "sim_high": wide.ci_high if test.n >= 2 else math.nan,
        "ci_method": ci,
        "boot_low": boot[0],
        "boot_high": boot[1],
        "p_improve": imp.p,
        "p_improve_low": imp.ci_low,
        "p_improve_high": imp.ci_high,
        "mdd": mdd,
        "effect": math.nan,
        "effect_source": "",
        "power_at_effect": math.nan,
        "seeds_needed": math.nan,
    }
    if effect is not None and test.n >= 2:
        out.update(
            effect=effect.size,
            effect_source=effect.source,
            power_at_effect=stats.paired_power(effect.size, test.sd, test.n),
            seeds_needed=stats.seeds_needed(effect.size, test.sd),
        )
    elif effect is not None:
        out.update(effect=effect.size, effect_source=effect.source)
    return out


def _excludes_zero(low: Any, high: Any) -> bool:
    return not _nan(low) and not _nan(high) and (float(low) > 0 or float(high) < 0)


def interval_note(row: dict[str, Any], scale: float = 1.0) -> str:
    """Why an interval of this comparison seems to disagree with its verdict ("" when none does).

    The verdict comes from the Holm-adjusted paired t-test; the unadjusted 95% interval, the
    bootstrap interval and a zero-width interval over constant differences can exclude 0 without
    that test rejecting, and Holm can reject while the (Bonferroni) simultaneous interval holds 0.
    """
    verdict, n = row.get("verdict"), int(row.get("n") or 0)
    if n < 2 or verdict not in (stats.BETTER, stats.WORSE, stats.NO_DIFFERENCE):
        return ""
    notes = []
    rejected = verdict != stats.NO_DIFFERENCE
    if _excludes_zero(row["ci_low"], row["ci_high"]) and not rejected:
        if row.get("sd_diff") == 0:
            notes.append(
                f"every paired difference is the same, so the interval has zero width and says nothing "
                f"about uncertainty; the verdict uses the exact sign-flip p-value 2^(1-{n}) = {2.0 ** (1 - n):.3g}"
            )
        elif not _excludes_zero(row["sim_low"], row["sim_high"]):
            family = {"main": "main effects", "interaction": "interactions"}.get(str(row.get("kind")))
            tested = (
                f"{row['m']} {family} are tested as one family"
                if family
                else (f"{row['m']} comparisons are tested on this metric")
            )
            notes.append(
                f"the unadjusted 95% interval excludes 0, but {tested}: "
                f"Holm-adjusted p = {float(row['p_holm']):.3g} >= 0.05, and the simultaneous "
                f"{100 * float(row['sim_level']):.4g}% interval [{float(row['sim_low']) * scale:+.4g}, "
                f"{float(row['sim_high']) * scale:+.4g}] contains 0"
            )
    if _excludes_zero(row.get("boot_low"), row.get("boot_high")) and not rejected and row.get("sd_diff") != 0:
        notes.append(
            "the bootstrap interval excludes 0, but the verdict comes from the Holm-adjusted paired t-test, "
            "which does not reject; with few seeds a bootstrap interval is too narrow (it cannot reach "
            "beyond the observed differences)"
        )
    if rejected and not _excludes_zero(row["sim_low"], row["sim_high"]) and row.get("sd_diff") != 0:
        notes.append(
            f"Holm rejects (p_holm = {float(row['p_holm']):.3g}) although the simultaneous (Bonferroni) "
            "interval contains 0: Holm's step-down test is more powerful than Bonferroni's intervals"
        )
    if rejected and not _nan(row.get("boot_low")) and not _excludes_zero(row.get("boot_low"), row.get("boot_high")):
        notes.append("the bootstrap interval contains 0; the verdict comes from the Holm-adjusted paired t-test")
    return "; ".join(notes)


def _paired_ok_seeds(data: ExperimentData, variant: str) -> list[int]:
    ok = data.ok_runs
    a = set(ok.loc[ok["variant"] == variant, "seed"].astype(int))
    b = set(ok.loc[ok["variant"] == data.baseline, "seed"].astype(int))
    return sorted(a & b)


def _reached(data: ExperimentData, variant: str, seeds: Iterable[int], column: str) -> int:
    ok = data.ok_runs
    mine = ok[(ok["variant"] == variant) & ok["seed"].isin(list(seeds))]
    return int(mine[column].fillna(False).astype(bool).sum())


def _comparison_row(
    data: ExperimentData,
    variant: str,
    metric: Metric,
    seeds: list[int],
    diffs: list[float],
    base: dict[int, float],
    mine: dict[int, float],
    note: str,
    censored: bool = False,
) -> dict[str, Any]:
    test = stats.paired_test(diffs)
    return {
        "variant": variant,
        "baseline": data.baseline,
        "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
        "n": test.n,
        "seeds": " ".join(str(s) for s in seeds),
        "baseline_mean": float(np.mean([base[s] for s in seeds])) if seeds else math.nan,
        "variant_mean": float(np.mean([mine[s] for s in seeds])) if seeds else math.nan,
        "diff": test.diff,
        "sd_diff": test.sd,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "t": test.t,
        "df": test.df if test.n >= 2 else pd.NA,
        "p": test.p,
        "p_holm": math.nan,
        "verdict": NOT_REACHED if censored else None,
        "note": note,
    }
