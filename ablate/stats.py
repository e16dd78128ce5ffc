"""Statistics for reports: intervals over seeds, paired comparisons, multiple testing, verdicts.

Everything a report says about uncertainty comes from this module. Pure numpy + ``math``; no
scipy, because all that is needed is Student's t distribution, which is a few lines below and
checked against scipy in the tests when scipy is installed.

Notation: ``x_1..x_n`` are the values of one variant over ``n`` seeds; for a paired comparison
``d_i = v_i - b_i`` is the variant's value minus the baseline's for seed ``i`` (same seed = same
data order, augmentation and, where shapes match, initial weights, so ``d_i`` cancels most of
the seed-to-seed noise).

Formulas
--------
Mean and spread
    ``mean = sum(x_i) / n``, ``sd = sqrt(sum((x_i - mean)^2) / (n - 1))`` (sample standard
    deviation, ``n >= 2``), ``se = sd / sqrt(n)``.
t interval (95% by default)
    ``mean ± t_{1-alpha/2, n-1} * se``. Exact when the values are normal; with the 3-10 seeds of
    an ablation a bootstrap interval would be too narrow (a percentile bootstrap of 3 values
    cannot be wider than their range), so none is used. With ``n < 2`` there is no interval:
    functions return NaN and :func:`verdict` says so.
Paired t-test
    ``t = mean(d) / (sd(d) / sqrt(n))`` with ``n - 1`` degrees of freedom; two-sided
    ``p = 2 * (1 - F_t(|t|; n - 1))``. When every ``d_i`` is equal (``sd(d) = 0``, which happens
    with quantized metrics such as accuracy on a small validation set, or epochs to a target) the
    t statistic is infinite and says nothing; the p-value is then the exact two-sided sign-flip
    (randomization) p-value ``2^(1-n)`` if the common value is non-zero, and 1 if it is zero. The
    interval is the degenerate ``[d, d]``.
Student's t distribution
    ``F_t(t; v) = 1 - I_x(v/2, 1/2) / 2`` for ``t >= 0`` with ``x = v / (v + t^2)``, where ``I`` is
    the regularized incomplete beta function (continued fraction, Numerical Recipes 6.4);
    the quantile ``t_q`` inverts ``F_t`` by bisection.
Holm correction (step-down, controls the family-wise error rate)
    sort the ``m`` p-values ``p_(1) <= ... <= p_(m)``; ``p_holm_(k) = max_{j<=k} min(1, (m - j + 1) p_(j))``.
    NaN p-values (comparisons that could not be tested) are not counted in ``m``.
Ratios (e.g. "reaches the target six times faster")
    per seed ``r_i = a_i / b_i``; interval on ``log r``: ``exp(mean(log r) ± t * se(log r))``,
    i.e. the geometric-mean ratio with a 95% interval.
Verdict
    ``n < 2``: "not enough seeds"; else with ``alpha = 0.05``: Holm-adjusted ``p < alpha`` and the
    difference in the metric's good direction -> "better", in the other -> "worse"; otherwise
    "no detectable difference". Since ``p_holm >= p``, a "better"/"worse" verdict always comes
    with a 95% interval that excludes zero.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no detectable difference"
NOT_ENOUGH_SEEDS = "not enough seeds"
NO_PAIRS = "no paired runs"


# --- Student's t distribution ---------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz, Numerical Recipes 6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0`` and ``0 <= x <= 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df > 0`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t >= 0 else tail


def t_sf_two_sided(t: float, df: float) -> float:
    """Two-sided p-value ``P(|T| >= |t|)``; computed from the tail directly (no ``1 - cdf`` loss)."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


@functools.lru_cache(maxsize=1024)
def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t: the ``t`` with ``t_cdf(t, df) = q`` (bisection to full precision)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# --- one sample: mean, spread, interval --------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with its sample sd and a t interval (NaN where ``n`` is too small)."""

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2.0

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.ci_low)


def _clean(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray([float(v) for v in values if v is not None], dtype=float)
    return arr[np.isfinite(arr)]


def mean_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean, sample sd and t interval of the finite values (NaN and None are left out)."""
    x = _clean(values)
    n = int(x.size)
    if n == 0:
        return Interval(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Interval(1, mean, math.nan, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    half = t_ppf(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return Interval(n, mean, sd, mean - half, mean + half)


def t_interval_bounds(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """``(low, high)`` of the t interval of the mean; for seaborn's ``errorbar=`` callable."""
    iv = mean_interval(values, confidence)
    if not iv.has_interval:
        return (iv.mean, iv.mean)
    return (iv.ci_low, iv.ci_high)


# --- paired comparisons -------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedTest:
    """Paired difference ``variant - baseline`` over ``n`` seeds: mean, sd, t interval, t-test."""

    n: int
    diff: float
    sd: float
    ci_low: float
    ci_high: float
    t: float
    df: int
    p: float

    @property
    def all_equal(self) -> bool:
        """Every difference the same (sd 0): zero-width interval, sign-flip p-value."""
        return self.n >= 2 and self.sd == 0.0


def paired_test(differences: Iterable[float], confidence: float = CONFIDENCE) -> PairedTest:
    """One-sample t interval and two-sided t-test (H0: mean 0) on per-seed differences."""
    d = _clean(differences)
    iv = mean_interval(d, confidence)
    if iv.n < 2:
        return PairedTest(iv.n, iv.mean, math.nan, math.nan, math.nan, math.nan, max(iv.n - 1, 0), math.nan)
    if iv.sd == 0.0 or np.all(d == d[0]):
        t = 0.0 if iv.mean == 0.0 else math.copysign(math.inf, iv.mean)
        p = 1.0 if iv.mean == 0.0 else 2.0 ** (1 - iv.n)  # exact sign-flip p-value
        return PairedTest(iv.n, iv.mean, 0.0, iv.mean, iv.mean, t, iv.n - 1, p)
    t = iv.mean / (iv.sd / math.sqrt(iv.n))
    return PairedTest(iv.n, iv.mean, iv.sd, iv.ci_low, iv.ci_high, t, iv.n - 1, t_sf_two_sided(t, iv.n - 1))


def paired_differences(variant: dict[int, float], baseline: dict[int, float]) -> tuple[list[int], list[float]]:
    """Seeds present (with a finite value) in both, sorted, and ``variant - baseline`` per seed."""
    seeds = sorted(
        s for s in set(variant) & set(baseline)
        if variant[s] is not None and baseline[s] is not None and math.isfinite(variant[s]) and math.isfinite(baseline[s])
    )
    return seeds, [variant[s] - baseline[s] for s in seeds]


@dataclass(frozen=True)
class RatioInterval:
    """Geometric-mean ratio ``a / b`` over ``n`` paired seeds with a t interval on the log scale."""

    n: int
    ratio: float
    ci_low: float
    ci_high: float
    p: float  # two-sided paired t-test of mean log ratio = 0 (ratio = 1)


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float], confidence: float = CONFIDENCE) -> RatioInterval:
    """Per-seed ratios ``numerators[i] / denominators[i]`` (all > 0) summarised on the log scale."""
    if len(numerators) != len(denominators):
        raise ValueError("numerators and denominators must pair up")
    logs = [math.log(a / b) for a, b in zip(numerators, denominators) if a > 0 and b > 0]
    test = paired_test(logs, confidence)
    if test.n == 0:
        return RatioInterval(0, math.nan, math.nan, math.nan, math.nan)
    return RatioInterval(test.n, math.exp(test.diff), math.exp(test.ci_low), math.exp(test.ci_high), test.p)


# --- multiple testing and verdicts --------------------------------------------------------------
def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order; NaN stays NaN and does not count in ``m``."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for k, idx in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[idx]))
        out[idx] = running
    return out.tolist()


def verdict(diff: float, p_adjusted: float, n: int, higher_is_better: bool, alpha: float = ALPHA) -> str:
    """Plain-words outcome of one comparison (see the module docstring for the rule)."""
    if n == 0:
        return NO_PAIRS
    if n < 2 or math.isnan(p_adjusted):
        return NOT_ENOUGH_SEEDS
    if p_adjusted < alpha and diff != 0:
        return BETTER if (diff > 0) == higher_is_better else WORSE
    return NO_DIFFERENCE
