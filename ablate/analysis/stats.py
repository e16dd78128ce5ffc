"""Statistics for reports: intervals over seeds, paired comparisons, power, multiple testing, verdicts.

Everything a report says about uncertainty comes from this module. Distributions come from
``scipy.stats`` (Student's t, noncentral t, normal, the BCa bootstrap); the formulas below say
what is computed with them.

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
    ``mean ± t_{1-alpha/2, n-1} * se``. Exact when the values are normal. With ``n < 2`` there
    is no interval: functions return NaN and :func:`verdict` says so.
Paired t-test
    ``t = mean(d) / (sd(d) / sqrt(n))`` with ``n - 1`` degrees of freedom; two-sided
    ``p = 2 * P(T > |t|)``. When every ``d_i`` is equal (``sd(d) = 0``, which happens with
    quantized metrics such as accuracy on a small validation set, or epochs to a target) the t
    statistic is infinite and says nothing; the p-value is then the exact two-sided sign-flip
    (randomization) p-value ``2^(1-n)`` if the common value is non-zero, and 1 if it is zero. The
    interval is the degenerate ``[d, d]``.
Simultaneous (Bonferroni) intervals
    for a family of ``m`` comparisons, the t interval at level ``1 - alpha / m``. All ``m`` hold
    together with probability >= 95%. Such an interval excludes 0 only when ``m * p < alpha``,
    and the Holm-adjusted p is never above ``m * p``, so an interval that excludes 0 always comes
    with a "better"/"worse" verdict (Holm can still reject when it contains 0: Holm is the more
    powerful of the two). The unadjusted 95% interval can exclude 0 while Holm does not reject;
    reports then say so.
Power of a t-test (noncentral t)
    a statistic ``estimate / se`` with ``df`` degrees of freedom follows a noncentral t with
    noncentrality ``delta / se`` for a true effect ``delta``; power and the minimum detectable
    effect of a linear model's contrast (grid designs) come from that.
Power of the paired t-test (noncentral t)
    for a true mean difference ``delta``, sd of the differences ``sigma`` and ``n`` seeds the
    statistic follows a noncentral t with ``n - 1`` degrees of freedom and noncentrality
    ``lambda = delta * sqrt(n) / sigma``; two-sided power
    ``= P(T' > t_c) + P(T' < -t_c)``, ``t_c = t_{1-alpha/2, n-1}``. The minimum detectable
    difference is the ``delta`` with power 80% (alpha 0.05), solved by root finding; the seeds
    needed for an effect are the smallest ``n >= 2`` reaching that power. Both use the observed
    sd as if it were the true one (the usual planning assumption).
Paired bootstrap interval (BCa)
    resample the per-seed differences (pairs stay together) 9999 times with a fixed generator,
    bias-corrected and accelerated percentile interval of the mean (``scipy.stats.bootstrap``).
    For metrics far from normal (time to target, throughput). With 3-5 seeds it is narrower
    than the t interval (the bootstrap cannot see beyond the observed values), so it is shown
    beside the t-test, never used for the verdict.
Probability of improvement (Bouthillier et al. 2021)
    ``P = (wins + ties / 2) / n`` over the ``n`` seed pairs, a win being a difference in the
    metric's good direction; 95% Wilson score interval for a proportion. (A percentile
    bootstrap of a proportion over 3-10 pairs collapses to ``[1, 1]`` when every pair wins,
    which is why Wilson is used.)
Holm correction (step-down, controls the family-wise error rate)
    sort the ``m`` p-values ``p_(1) <= ... <= p_(m)``; ``p_holm_(k) = max_{j<=k} min(1, (m - j + 1) p_(j))``.
    NaN p-values (comparisons that could not be tested) are not counted in ``m``.
Ratios (e.g. "reaches the target six times faster")
    per seed ``r_i = a_i / b_i``; interval on ``log r``: ``exp(mean(log r) ± t * se(log r))``,
    i.e. the geometric-mean ratio with a 95% interval.
Verdict
    ``n < 2``: "not enough seeds"; else with ``alpha = 0.05``: Holm-adjusted ``p < alpha`` and the
    difference in the metric's good direction -> "better", in the other -> "worse"; otherwise
    "no detectable difference".
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import optimize
from scipy import stats as sps

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.80
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 20210301  # fixed: the same results give the same bootstrap interval

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no detectable difference"
NOT_ENOUGH_SEEDS = "not enough seeds"
NO_PAIRS = "no paired runs"
# A grid's main effects can also be these (ablate.analysis.effects); its interactions are one of the last three.
NOT_ESTIMABLE = "not estimable"
NO_SPREAD = "no spread to test with"
POSITIVE_INTERACTION = "positive interaction"
NEGATIVE_INTERACTION = "negative interaction"
NO_INTERACTION = "no detectable interaction"


# --- Student's t distribution ---------------------------------------------------------------------
def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df > 0`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isnan(t):
        return math.nan
    return float(sps.t.cdf(t, df))


def t_sf_two_sided(t: float, df: float) -> float:
    """Two-sided p-value ``P(|T| >= |t|)``, from the upper tail (no ``1 - cdf`` loss)."""
    if math.isnan(t):
        return math.nan
    return float(min(1.0, 2.0 * sps.t.sf(abs(t), df)))


def t_sf_two_sided_array(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """:func:`t_sf_two_sided` elementwise (NaN in, NaN out): for the many contrasts of one model."""
    t, df = np.asarray(t, dtype=float), np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.minimum(1.0, 2.0 * sps.t.sf(np.abs(t), df))


def t_ppf_array(q: float, df: np.ndarray) -> np.ndarray:
    """:func:`t_ppf` at one level for many degrees of freedom (NaN df gives NaN)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    return np.asarray(sps.t.ppf(q, np.asarray(df, dtype=float)), dtype=float)


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t: the ``t`` with ``t_cdf(t, df) = q``."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    return float(sps.t.ppf(q, df))


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
        s
        for s in set(variant) & set(baseline)
        if variant[s] is not None
        and baseline[s] is not None
        and math.isfinite(variant[s])
        and math.isfinite(baseline[s])
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


def ratio_interval(
    numerators: Sequence[float], denominators: Sequence[float], confidence: float = CONFIDENCE
) -> RatioInterval:
    """Per-seed ratios ``numerators[i] / denominators[i]`` (all > 0) summarised on the log scale."""
    if len(numerators) != len(denominators):
        raise ValueError("numerators and denominators must pair up")
    return ratio_from_logs([math.log(a / b) for a, b in zip(numerators, denominators) if a > 0 and b > 0], confidence)


def ratio_from_logs(log_ratios: Sequence[float], confidence: float = CONFIDENCE) -> RatioInterval:
    """Geometric-mean ratio and interval from per-seed log ratios (t interval on the log scale)."""
    test = paired_test(log_ratios, confidence)
    if test.n == 0:
        return RatioInterval(0, math.nan, math.nan, math.nan, math.nan)
    if test.n < 2:
        return RatioInterval(1, math.exp(test.diff), math.nan, math.nan, math.nan)
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


def simultaneous_confidence(m: int, confidence: float = CONFIDENCE) -> float:
    """Bonferroni level for ``m`` intervals that hold together with probability ``confidence``."""
    return 1.0 - (1.0 - confidence) / max(int(m), 1)


# --- power of the paired t-test -------------------------------------------------------------------
def t_power(noncentrality: float, df: float, alpha: float = ALPHA) -> float:
    """Probability that a two-sided t-test at ``alpha`` with ``df`` degrees of freedom rejects when
    its statistic follows a noncentral t with ``noncentrality`` (true effect / standard error)."""
    crit = sps.t.ppf(1.0 - alpha / 2.0, df)
    nc = abs(noncentrality)
    # P(T' < -c) written as the upper tail with noncentrality -nc: scipy's lower tail gives NaN
    # far out (nct.cdf(-12.7, 1, 11.3)), its upper tail does not.
    return float(sps.nct.sf(crit, df, nc) + sps.nct.sf(crit, df, -nc))


def paired_power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Probability that a two-sided paired t-test at ``alpha`` over ``n`` seeds rejects when the
    true mean difference is ``effect`` and the differences have sd ``sd`` (noncentral t)."""
    if n < 2 or not (sd > 0) or not math.isfinite(effect) or not math.isfinite(sd):
        return math.nan
    return t_power(effect * math.sqrt(n) / sd, n - 1, alpha)


def min_detectable_effect(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true effect that a two-sided t-test with standard error ``se`` and ``df`` degrees of
    freedom detects with probability ``power`` at level ``alpha`` (e.g. a linear model's contrast).
    NaN for a zero or unknown ``se`` or ``df < 1``."""
    if not (se > 0) or not math.isfinite(se) or not df >= 1:
        return math.nan
    hi = 1.0
    while t_power(hi, df, alpha) < power:
        hi *= 2.0
    return float(optimize.brentq(lambda nc: t_power(nc, df, alpha) - power, 0.0, hi, xtol=1e-12) * se)


def min_detectable_difference(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true mean difference that a two-sided paired t-test over ``n`` seeds detects with
    probability ``power`` at level ``alpha``, if the sd of the differences is ``sd`` (in the
    units of ``sd``). NaN with fewer than 2 seeds or a zero / unknown sd."""
    if n < 2 or not (sd > 0) or not math.isfinite(sd):
        return math.nan
    hi = 1.0
    while paired_power(hi, 1.0, n, alpha) < power:  # effect in sd units
        hi *= 2.0
    es = optimize.brentq(lambda e: paired_power(e, 1.0, n, alpha) - power, 0.0, hi, xtol=1e-12)
    return float(es * sd)


def seeds_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER, max_n: int = 1_000_000) -> float:
    """Smallest number of seeds ``n >= 2`` whose paired t-test detects a true difference
    ``effect`` with probability ``power``, given the sd of the differences. NaN when the sd is
    zero or unknown; ``inf`` for a zero effect or beyond ``max_n``."""
    if not (sd > 0) or not math.isfinite(sd) or not math.isfinite(effect):
        return math.nan
    if effect == 0:
        return math.inf
    if paired_power(effect, sd, 2, alpha) >= power:
        return 2.0
    lo, hi = 2, 4
    while paired_power(effect, sd, hi, alpha) < power:  # power grows with n
        lo, hi = hi, hi * 2
        if hi > max_n:
            return math.inf
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if paired_power(effect, sd, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return float(hi)


# --- distribution-free summaries -------------------------------------------------------------------
def bootstrap_interval(differences: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """BCa bootstrap interval of the mean of per-seed differences (pairs resampled together).

    ``(d, d)`` when every difference is ``d``; NaNs with fewer than 2 values or when the bootstrap
    distribution is degenerate (scipy then warns and gives NaN)."""
    d = _clean(differences)
    if d.size < 2:
        return (math.nan, math.nan)
    if np.all(d == d[0]):
        return (float(d[0]), float(d[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate or too-few-values warnings: NaN says it
        res = sps.bootstrap(
            (d,),
            np.mean,
            confidence_level=confidence,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="BCa",
            **{_RNG_KEYWORD: np.random.default_rng(BOOTSTRAP_SEED)},
        )
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


# scipy >= 1.15 calls the generator argument ``rng`` (``random_state`` is on its way out).
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"


@dataclass(frozen=True)
class Improvement:
    """Probability that the variant beats the baseline on a seed pair, with a Wilson interval."""

    n: int
    p: float
    ci_low: float
    ci_high: float


def probability_of_improvement(
    differences: Iterable[float], higher_is_better: bool, confidence: float = CONFIDENCE
) -> Improvement:
    """``(wins + ties / 2) / n`` over the per-seed differences, a win being in the good direction."""
    d = _clean(differences)
    n = int(d.size)
    if n == 0:
        return Improvement(0, math.nan, math.nan, math.nan)
    good = d > 0 if higher_is_better else d < 0
    p = float((good.sum() + 0.5 * (d == 0).sum()) / n)
    z = float(sps.norm.ppf(0.5 + confidence / 2.0))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Improvement(n, p, max(0.0, centre - half), min(1.0, centre + half))
