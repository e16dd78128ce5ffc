"""Adaptive replication: after the listed seeds, whether to run more seeds, and which.

``ablate run FILE --precision POINTS [--max-seeds M]`` runs the experiment's seeds, then asks
:func:`decide_for_experiment` (or :func:`decide` on a runs frame) whether every comparison with the
baseline on the primary metric is precise enough; if not, it adds the seeds the decision names to
every variant (so pairing by seed holds), runs them and asks again.

The stopping rule looks only at the width of the intervals, never at a p-value or at the sign of
a difference: stopping "when it looks significant" inflates false positives (each look is another
chance for noise to cross the line). It is:

* stop, "precision reached", when for every variant other than the baseline the 95% interval of
  the paired difference (variant - baseline, over seeds where both runs are ok) is at most
  ``precision`` either side (in percentage points for accuracy-like metrics), measured by the
  bound ``t_{0.975, n-1} * r / sqrt(n)`` with ``r = sqrt(sum(d_i^2) / (n - 1))``;
* else stop, "max seeds reached", when the experiment already has ``max_seeds`` seeds;
* else add seeds: the next unused integers (above the largest seed used), to every variant. How
  many: enough that, if ``r`` stayed what it is, the widest bound would reach ``precision``, at
  least one more seed, at most twice the seeds so far (a spread from 3 seeds is rough, so never
  commit to more than a doubling on it) and never beyond ``max_seeds``.

Why ``r`` and not the sample sd ``s`` of the differences: ``(n - 1) s^2 = sum(d_i^2) - n mean^2``,
so ``s <= r`` and the usual t interval is never wider than the bound; at a stop every interval
is within ``precision``. But a rule on ``s`` stops preferentially when ``s`` happens to be small,
which is exactly when the t statistic ``mean / (s / sqrt n)`` is too large: with 3 starting seeds
and one comparison it called a planted null effect "better"/"worse" in 8.0% of 100,000 simulated
studies instead of 5% (5.1% with three variants and Holm). ``r`` depends on the sizes ``|d_i|``
only, not on their signs: under no effect the signs stay fair coin flips whatever the rule did,
and for normal differences the t statistic depends only on the direction of the vector ``d``,
which is independent of its length, so a rule on ``r`` at a single look leaves the test exact
(several looks see partial lengths too, a small dependence). The same simulations give 5.1%
(one comparison) and 4.5% (three, Holm). The price: ``r``
grows with the effect itself (``r^2`` estimates ``sd^2 + effect^2``), so a study whose effects are
large next to ``precision`` runs more seeds than a rule on ``s`` would (up to ``max_seeds``);
with effects small next to the seed noise, the usual case in ablations, the two agree.

A variant with fewer than two paired ok seeds has no interval (infinitely wide): more seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ablate import stats

PRECISION_REACHED = "precision reached"
MAX_SEEDS_REACHED = "max seeds reached"
DEFAULT_MAX_SEEDS = 20
PRIMARY_METRIC = "final_val_acc"

RULE = ("seeds were added (the next unused integers, to every variant) until every comparison with the "
        "baseline on {metric} had a 95% interval half-width at or below {precision:g} {unit} (bounded with the "
        "root mean square of the paired differences, which does not depend on their signs), or {max_seeds} "
        "seeds were reached; the rule looks only at interval widths, never at p-values or at the sign of a "
        "difference, so the tests keep their 5% false-positive rate")


@dataclass(frozen=True)
class Decision:
    """What to do after the seeds run so far."""

    stop: bool
    reason: str  # PRECISION_REACHED | MAX_SEEDS_REACHED | "" (not stopping)
    message: str  # one sentence for the command line and the manifest's "stopped"
    add_seeds: list[int]  # seeds to add to every variant next (empty when stopping)
    seeds: list[int]  # the experiment's seeds so far
    # Variant -> the rule's bound on the 95% half-width, and the t interval's own half-width, in ``unit``.
    half_widths: dict[str, float] = field(default_factory=dict)
    interval_half_widths: dict[str, float] = field(default_factory=dict)
    precision: float = math.nan
    max_seeds: int = DEFAULT_MAX_SEEDS
    unit: str = "points"


def bounds(differences: np.ndarray, n: np.ndarray | int, confidence: float = stats.CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """The rule's half-width bound ``t_{q, n-1} * r / sqrt(n)`` and ``r = sqrt(sum(d^2) / (n-1))``
    over the first ``n`` seeds of ``differences`` (shape ``(..., seeds)``; ``n`` broadcasts
    against the leading axes). ``inf`` / NaN where ``n < 2``."""
    d = np.asarray(differences, dtype=float)
    n = np.asarray(n, dtype=int)
    used = np.arange(d.shape[-1]) < n[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sqrt(np.where(used, d * d, 0.0).sum(axis=-1) / (n - 1))
        tq = sps.t.ppf(0.5 + confidence / 2.0, np.maximum(n - 1, 1))
        hw = tq * r / np.sqrt(n)
    return np.where(n >= 2, hw, np.inf), np.where(n >= 2, r, np.nan)


def half_width(differences: Sequence[float], confidence: float = stats.CONFIDENCE) -> tuple[float, float, int]:
    """``(bound, r, n)`` of :func:`bounds` for one list of per-seed differences (NaN left out)."""
    d = np.asarray([x for x in differences if x is not None and math.isfinite(x)], dtype=float)
    hw, r = bounds(d, d.size, confidence)
    return float(hw), float(r), int(d.size)


def rule(
    half_widths: np.ndarray, sds: np.ndarray, n: np.ndarray, precision: float, max_seeds: int,
    confidence: float = stats.CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    """The stopping rule on arrays, vectorised over leading axes (one row per experiment).

    ``half_widths`` and ``sds``: shape ``(..., variants)``, the bound and ``r`` of
    :func:`half_width` (``inf`` / NaN where a variant has no interval); ``n``: shape ``(...)``,
    seeds so far. Returns ``(stop, n_next)``: whether to stop,
    and the total number of seeds to have after the next round (equal to ``n`` when stopping).
    """
    hw = np.asarray(half_widths, dtype=float)
    sd = np.asarray(sds, dtype=float)
    n = np.asarray(n, dtype=int)
    precise = np.all(hw <= precision, axis=-1)
    stop = precise | (n >= max_seeds)
    # Projected seeds for each variant if its sd stayed the same: smallest m with hw(m) <= precision.
    m = np.arange(2, max(max_seeds, 2) + 1)
    tq = sps.t.ppf(0.5 + confidence / 2.0, m - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        proj_hw = tq * sd[..., None] / np.sqrt(m)  # (..., variants, m)
    ok = proj_hw <= precision
    first = np.where(ok.any(axis=-1), m[np.argmax(ok, axis=-1)], max_seeds)  # (..., variants)
    first = np.where(np.isfinite(sd), first, 0)  # no sd: no projection, one more seed at least
    wanted = first.max(axis=-1)
    n_next = np.clip(wanted, n + 1, np.maximum(np.minimum(2 * np.maximum(n, 1), max_seeds), n + 1))
    n_next = np.where(stop, n, n_next)
    return stop, n_next.astype(int)


def decide(
    runs: pd.DataFrame,
    baseline: str,
    seeds: Sequence[int],
    *,
    precision: float,
    max_seeds: int = DEFAULT_MAX_SEEDS,
    metric: str = PRIMARY_METRIC,
    scale: float = 100.0,
    unit: str = "points",
    variants: Sequence[str] | None = None,
) -> Decision:
    """Apply the stopping rule to a runs frame (one row per run: ``variant``, ``seed``,
    ``status``, ``metric``; e.g. :attr:`ablate.analysis.ExperimentData.runs`).

    ``seeds``: the experiment's seeds so far (listed and already added), whatever their runs'
    status; ``precision``: the largest acceptable half-width of each 95% interval, in ``unit``
    (the metric times ``scale``: percentage points for accuracy); ``variants``: those to compare
    with ``baseline`` (default: every variant in ``runs``).
    """
    if not precision > 0:
        raise ValueError(f"precision must be > 0, got {precision}")
    if max_seeds < 2:
        raise ValueError(f"max_seeds must be >= 2, got {max_seeds}")
    seeds = sorted({int(s) for s in seeds} | {int(s) for s in runs.get("seed", [])})
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs.iloc[0:0]
    values: dict[str, dict[int, float]] = {}
    if metric in ok:
        for v, s, x in zip(ok["variant"], ok["seed"], ok[metric]):
            if x is not None and not pd.isna(x):
                values.setdefault(str(v), {})[int(s)] = float(x) * scale
    names = [v for v in (variants if variants is not None else dict.fromkeys(runs.get("variant", []))) if v != baseline]
    hws, sds, widths = {}, [], {}
    for v in names:
        _, diffs = stats.paired_differences(values.get(v, {}), values.get(baseline, {}))
        hw, sd, _ = half_width(diffs)
        hws[v] = hw
        sds.append(sd)
        test = stats.paired_test(diffs)
        widths[v] = (test.ci_high - test.ci_low) / 2.0 if test.n >= 2 else math.inf
    n = len(seeds)
    stop, n_next = rule(np.array(list(hws.values()) or [0.0]), np.array(sds or [0.0]), np.array(n), precision, max_seeds)
    worst = max(hws, key=lambda v: hws[v]) if hws else ""
    bound, actual = hws.get(worst, 0.0), widths.get(worst, 0.0)
    widest = f"the widest 95% interval is ±{_fmt(actual)} {unit} ({worst}; the rule's bound ±{_fmt(bound)})"
    if not hws:
        reason, message = PRECISION_REACHED, "nothing to compare: the experiment has a single variant"
    elif stop and all(h <= precision for h in hws.values()):
        reason = PRECISION_REACHED
        message = f"precision reached with {n} seeds: every 95% interval is within ±{precision:g} {unit}; {widest}"
    elif stop:
        reason = MAX_SEEDS_REACHED
        message = f"max seeds reached ({n} of at most {max_seeds}) before ±{precision:g} {unit}: {widest}"
    else:
        reason = ""
        message = f"{int(n_next) - n} more seed(s): {widest}, above the requested ±{precision:g}"
    start = max(seeds) + 1 if seeds else 0
    add = [] if stop else list(range(start, start + int(n_next) - n))
    return Decision(bool(stop), reason, message, add, seeds, hws, widths, float(precision), int(max_seeds), unit)


def _fmt(x: float) -> str:
    return "inf (fewer than 2 paired ok seeds)" if math.isinf(x) else f"{x:.2f}"


def decide_for_experiment(
    root: str | Path,
    experiment: str,
    *,
    precision: float,
    max_seeds: int = DEFAULT_MAX_SEEDS,
    baseline: str | None = None,
    metric: str = PRIMARY_METRIC,
) -> Decision:
    """:func:`decide` on ``root/<experiment>/`` (manifest + run records, read by
    :func:`ablate.analysis.load_experiment_data`): the manifest's seeds and baseline, the
    primary metric (final validation accuracy, in percentage points)."""
    from ablate.analysis import load_experiment_data

    data = load_experiment_data(root, experiment, baseline=baseline)
    return decide(data.runs, data.baseline, data.seeds, precision=precision, max_seeds=max_seeds, metric=metric,
                  variants=data.variants)


def rule_text(adaptive: dict[str, Any], metric_label: str = "final validation accuracy") -> str:
    """The rule as a sentence, from the manifest's ``"adaptive"`` entry."""
    return RULE.format(metric=metric_label, precision=float(adaptive.get("precision", math.nan)), unit="points",
                       max_seeds=adaptive.get("max_seeds", DEFAULT_MAX_SEEDS))
