"""ablate.analysis.stats against hand-computed values, published t tables, scipy (when installed) and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ablate.analysis import stats

# Two-sided 95% critical values of Student's t (any statistics textbook table).
T_975 = {
    1: 12.7062047,
    2: 4.3026527,
    3: 3.1824463,
    4: 2.7764451,
    5: 2.5705818,
    9: 2.2621572,
    29: 2.0452296,
    1000: 1.9623391,
}


@pytest.mark.parametrize("df,expected", sorted(T_975.items()))
def test_t_quantile_matches_tables(df: int, expected: float) -> None:
    assert stats.t_ppf(0.975, df) == pytest.approx(expected, abs=5e-7)
    assert stats.t_ppf(0.025, df) == pytest.approx(-expected, abs=5e-7)


def test_t_cdf_closed_forms() -> None:
    for t in (-7.0, -1.0, 0.0, 0.3, 1.0, 12.7):
        assert stats.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)  # Cauchy
        assert stats.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert stats.t_cdf(math.inf, 3) == 1.0 and stats.t_cdf(-math.inf, 3) == 0.0
    assert stats.t_sf_two_sided(0.0, 4) == pytest.approx(1.0)


def test_t_distribution_matches_scipy() -> None:
    sp = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 6, 10, 40, 200):
        for q in (0.6, 0.9, 0.95, 0.975, 0.995, 0.9995):
            assert stats.t_ppf(q, df) == pytest.approx(sp.t.ppf(q, df), rel=1e-9)
        for t in (-20.0, -2.5, -0.4, 0.0, 0.7, 2.1, 4.3, 30.0):
            assert stats.t_cdf(t, df) == pytest.approx(sp.t.cdf(t, df), abs=1e-12)
            assert stats.t_sf_two_sided(t, df) == pytest.approx(2 * sp.t.sf(abs(t), df), rel=1e-9, abs=1e-300)


def test_mean_interval_by_hand() -> None:
    iv = stats.mean_interval([1, 2, 3, 4])
    sd = math.sqrt(5 / 3)
    half = T_975[3] * sd / 2
    assert (iv.n, iv.mean, iv.sd) == (4, 2.5, pytest.approx(sd))
    assert (iv.ci_low, iv.ci_high) == (pytest.approx(2.5 - half, abs=1e-6), pytest.approx(2.5 + half, abs=1e-6))
    assert iv.half_width == pytest.approx(half, abs=1e-6)


def test_mean_interval_needs_two_values_and_skips_missing() -> None:
    one = stats.mean_interval([0.7, None, float("nan")])
    assert one.n == 1 and one.mean == 0.7 and not one.has_interval and math.isnan(one.sd)
    none = stats.mean_interval([])
    assert none.n == 0 and math.isnan(none.mean)
    assert stats.t_interval_bounds([0.7]) == (0.7, 0.7)


def test_paired_test_by_hand() -> None:
    # d = 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 with 2 df;
    # for 2 df the two-sided p is 1 - t / sqrt(t^2 + 2) = 0.0741799.
    res = stats.paired_test([1.0, 2.0, 3.0])
    assert (res.n, res.df, res.diff, res.sd) == (3, 2, 2.0, pytest.approx(1.0))
    assert res.t == pytest.approx(2 * math.sqrt(3))
    assert res.p == pytest.approx(1 - res.t / math.sqrt(res.t**2 + 2), rel=1e-10)
    assert res.p == pytest.approx(0.0741799, abs=1e-7)
    half = T_975[2] / math.sqrt(3)
    assert (res.ci_low, res.ci_high) == (pytest.approx(2 - half, abs=1e-6), pytest.approx(2 + half, abs=1e-6))


def test_paired_differences_pair_by_seed() -> None:
    seeds, diffs = stats.paired_differences({0: 0.7, 1: 0.8, 3: 0.5}, {0: 0.6, 1: 0.6, 2: 0.9, 3: float("nan")})
    assert seeds == [0, 1]
    assert diffs == [pytest.approx(0.1), pytest.approx(0.2)]


def test_paired_test_constant_differences() -> None:
    same = stats.paired_test([0.05, 0.05, 0.05])
    # sd 0: no t-test; the exact sign-flip p-value of 3 equal positive differences is 2 / 2^3
    assert same.p == 0.25 and same.ci_low == same.ci_high == pytest.approx(0.05) and same.t == math.inf
    assert same.all_equal and stats.paired_test([-2.0] * 6).p == pytest.approx(1 / 32)
    zero = stats.paired_test([0.0, 0.0])
    assert zero.p == 1.0 and zero.diff == 0.0
    assert stats.verdict(zero.diff, zero.p, zero.n, True) == stats.NO_DIFFERENCE


def test_paired_test_single_seed_has_no_interval() -> None:
    res = stats.paired_test([0.04])
    assert res.n == 1 and res.diff == 0.04
    assert math.isnan(res.ci_low) and math.isnan(res.ci_high) and math.isnan(res.p)
    assert stats.verdict(res.diff, res.p, res.n, True) == stats.NOT_ENOUGH_SEEDS
    assert stats.verdict(math.nan, math.nan, 0, True) == stats.NO_PAIRS


def test_holm_by_hand() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = stats.holm([0.2, float("nan"), 0.01])  # NaN does not count: m = 2
    assert out[0] == pytest.approx(0.2) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_holm_is_monotone_and_never_below_p() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, size=15)
    adj = np.array(stats.holm(p))
    assert np.all(adj >= p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)


def test_verdict_direction() -> None:
    assert stats.verdict(0.03, 0.01, 5, higher_is_better=True) == stats.BETTER
    assert stats.verdict(-0.03, 0.01, 5, higher_is_better=True) == stats.WORSE
    assert stats.verdict(-0.2, 0.01, 5, higher_is_better=False) == stats.BETTER  # e.g. lower loss
    assert stats.verdict(0.03, 0.06, 5, higher_is_better=True) == stats.NO_DIFFERENCE


def test_ratio_interval_by_hand() -> None:
    # ratios 2 and 8: log mean = log 4, se of the logs = (log 8 - log 2) / sqrt 2 / sqrt 2 = log 2,
    # so the interval is 4 * 2^(-t) .. 4 * 2^t with t = t(0.975, 1).
    r = stats.ratio_interval([2.0, 8.0], [1.0, 1.0])
    assert r.n == 2 and r.ratio == pytest.approx(4.0)
    assert r.ci_low == pytest.approx(4 * 2 ** -T_975[1], rel=1e-6)
    assert r.ci_high == pytest.approx(4 * 2 ** T_975[1], rel=1e-6)


def test_t_interval_covers_the_mean_95_percent_of_the_time() -> None:
    """Simulation: the interval over 4 paired seeds holds the planted difference ~95% of the time,
    and the test rejects a true null ~5% of the time (4000 draws: +-0.014 is 4 standard errors)."""
    rng = np.random.default_rng(12345)
    true = 0.02
    cover = reject_null = 0
    draws = 4000
    for _ in range(draws):
        d = true + rng.normal(0, 0.01, size=4)
        res = stats.paired_test(d)
        cover += res.ci_low <= true <= res.ci_high
        reject_null += stats.paired_test(d - true).p < 0.05
    assert abs(cover / draws - 0.95) < 0.014
    assert abs(reject_null / draws - 0.05) < 0.014


# --- scipy-based functions against the hand-written Student-t code they replaced -------------------
# Values printed (repr) by the previous implementation (continued fraction + bisection, in
# ablate/analysis/stats.py up to commit 34ff4a2) on this file's test cases.
PREVIOUS = {
    "t_ppf_975": {
        1: 12.706204736174659,
        2: 4.302652729749456,
        3: 3.1824463052837046,
        4: 2.7764451051977908,
        5: 2.570581835636313,
        9: 2.2621571627982027,
        29: 2.0452296421327016,
        1000: 1.9623390808264358,
    },
    "sf": [
        ((3.4641016151377544, 2), 0.07417990022744857),
        ((2.1, 5), 0.08975324988459872),
        ((0.7, 10), 0.4998875701728843),
        ((4.3, 40), 0.00010658818917651847),
    ],
}


def test_scipy_values_equal_the_previous_implementation() -> None:
    for df, value in PREVIOUS["t_ppf_975"].items():
        assert abs(stats.t_ppf(0.975, df) - value) < 1e-10
    for (t, df), p in PREVIOUS["sf"]:
        assert abs(stats.t_sf_two_sided(t, df) - p) < 1e-10
    iv = stats.mean_interval([1, 2, 3, 4])
    assert abs(iv.ci_low - 0.4457397432394812) < 1e-10 and abs(iv.ci_high - 4.554260256760519) < 1e-10
    res = stats.paired_test([1.0, 2.0, 3.0])
    assert abs(res.ci_low - -0.48413771175032627) < 1e-10 and abs(res.ci_high - 4.484137711750327) < 1e-10
    assert abs(res.p - 0.07417990022744857) < 1e-10
    res = stats.paired_test([0.012, -0.004, 0.02, 0.007, 0.001])
    assert abs(res.ci_low - -0.004427969546957911) < 1e-10 and abs(res.ci_high - 0.018827969546957913) < 1e-10
    assert abs(res.p - 0.1607069187198077) < 1e-10
    r = stats.ratio_interval([2.0, 8.0], [1.0, 1.0])
    assert abs(r.ci_low - 0.0005985648842620116) < 1e-10 and abs(r.ci_high / 26730.602513922746 - 1) < 1e-10
    assert abs(r.p - 0.2951672353008663) < 1e-10


# --- power -----------------------------------------------------------------------------------------
def _simulated_power(effect: float, sd: float, n: int, draws: int = 20000, seed: int = 7) -> float:
    """Monte Carlo rejection rate of the two-sided paired t-test (vectorised; scipy's t quantile)."""
    from scipy import stats as sps

    d = np.random.default_rng(seed).normal(effect, sd, size=(draws, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    return float(np.mean(np.abs(t) > sps.t.ppf(0.975, n - 1)))


@pytest.mark.parametrize("n", [2, 3, 5, 10, 20])
def test_minimum_detectable_difference_matches_an_independent_power_calculation(n: int) -> None:
    sd = 0.7
    mdd = stats.min_detectable_difference(sd, n)
    assert stats.paired_power(mdd, sd, n) == pytest.approx(0.80, abs=1e-9)
    try:
        from statsmodels.stats.power import TTestPower
    except ImportError:  # no statsmodels: the simulation below is the independent check
        pass
    else:
        es = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
        assert mdd / sd == pytest.approx(es, rel=1e-5)
    # 20000 draws: the rejection rate's standard error is 0.003
    assert _simulated_power(mdd, sd, n) == pytest.approx(0.80, abs=0.012)


def test_minimum_detectable_difference_tends_to_the_normal_approximation() -> None:
    # With many seeds the t-test approaches the z-test: MDD -> (z_0.975 + z_0.8) sd / sqrt(n) =
    # 2.8016 sd / sqrt(n), from above (the t quantile and the noncentral t are wider).
    for n, slack in ((30, 1.05), (100, 1.015), (1000, 1.002)):
        assert 2.8016 / math.sqrt(n) < stats.min_detectable_difference(1.0, n) < slack * 2.8016 / math.sqrt(n)
    assert math.isnan(stats.min_detectable_difference(1.0, 1)) and math.isnan(stats.min_detectable_difference(0.0, 5))


@pytest.mark.parametrize("effect", [0.3, 0.5, 1.0, 2.0])
def test_seeds_needed_is_the_smallest_n_with_80_percent_power(effect: float) -> None:
    n = int(stats.seeds_needed(effect, 1.0))
    assert stats.paired_power(effect, 1.0, n) >= 0.8
    assert n == 2 or stats.paired_power(effect, 1.0, n - 1) < 0.8
    try:
        from statsmodels.stats.power import TTestPower
    except ImportError:
        return
    assert n == math.ceil(TTestPower().solve_power(effect_size=effect, alpha=0.05, power=0.8))


def test_seeds_needed_edge_cases() -> None:
    assert stats.seeds_needed(0.0, 1.0) == math.inf
    assert math.isnan(stats.seeds_needed(1.0, 0.0)) and math.isnan(stats.seeds_needed(1.0, math.nan))
    assert stats.seeds_needed(10.0, 0.1) == 2


# --- bootstrap, probability of improvement, simultaneous intervals -----------------------------------
def test_bootstrap_interval_is_deterministic_and_close_to_t_for_normal_data() -> None:
    d = np.random.default_rng(3).normal(1.0, 1.0, size=30)
    lo, hi = stats.bootstrap_interval(d)
    assert (lo, hi) == stats.bootstrap_interval(d)
    t = stats.paired_test(d)
    assert lo < d.mean() < hi
    assert (hi - lo) == pytest.approx(t.ci_high - t.ci_low, rel=0.15)


def test_bootstrap_interval_follows_skew_and_handles_degenerate_input() -> None:
    d = [1.0, 1.1, 0.9, 1.2, 1.0, 5.0, 1.05, 0.95]  # one slow seed: right-skewed
    lo, hi = stats.bootstrap_interval(d)
    mean = float(np.mean(d))
    assert hi - mean > mean - lo  # BCa is asymmetric where the data are
    assert stats.bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert all(math.isnan(x) for x in stats.bootstrap_interval([1.0]))


def test_probability_of_improvement_by_hand() -> None:
    res = stats.probability_of_improvement([1.0, -1.0, 0.0, 2.0], higher_is_better=True)
    assert res.n == 4 and res.p == pytest.approx(0.625)
    z, p = 1.959963984540054, 0.625  # n = 4 seed pairs
    centre = (p + z * z / 8) / (1 + z * z / 4)
    half = z * math.sqrt(p * (1 - p) / 4 + z * z / 64) / (1 + z * z / 4)
    assert (res.ci_low, res.ci_high) == (pytest.approx(centre - half), pytest.approx(centre + half))
    lower = stats.probability_of_improvement([-0.1, -0.2, -0.3], higher_is_better=False)
    assert lower.p == 1.0 and lower.ci_high == 1.0 and 0.4 < lower.ci_low < 0.45  # Wilson, 3 of 3
    assert math.isnan(stats.probability_of_improvement([], True).p)


def test_bonferroni_interval_excluding_zero_implies_holm_rejects() -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        m = int(rng.integers(1, 6))
        diffs = rng.normal(rng.normal(0, 1, size=(m, 1)), 1.0, size=(m, int(rng.integers(2, 8))))
        level = stats.simultaneous_confidence(m)
        tests = [stats.paired_test(d) for d in diffs]
        wide = [stats.paired_test(d, level) for d in diffs]
        for _t, w, p_holm in zip(tests, wide, stats.holm([t.p for t in tests])):
            if w.ci_low > 0 or w.ci_high < 0:
                assert p_holm < 0.05
    assert stats.simultaneous_confidence(4) == pytest.approx(1 - 0.0125)


def test_a_number_on_a_rounding_boundary_prints_the_same_whatever_its_last_bits() -> None:
    # Means of accuracies over a few seeds often sit exactly on a boundary (0.875 points): the two
    # floats below differ only in the order their sums were taken, and must print the same.
    from ablate.report.text import fmt, fmt_ci

    assert 0.00875 * 100 != 0.875 and round(0.00875 * 100, 9) == 0.875
    assert fmt(0.8749999999999999) == fmt(0.8750000000000001) == fmt(0.875) == "0.88"
    assert fmt_ci(0.00875, 0.0, 0.02, 3, 100.0, signed=True) == "+0.88 [+0.00, +2.00]"
    assert fmt(-0.0004, 2, signed=True) == "-0.00" and fmt(1e-12, 2, signed=True) == "+0.00"
