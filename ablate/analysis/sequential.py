"""Group-sequential boundaries: Lan–DeMets alpha spending and the recursive numerical integration
that turns spent alpha into z boundaries (numbers only, like :mod:`ablate.analysis.stats`).

Setting: a paired comparison is looked at after ``n_1 < n_2 < ... < n_K = M`` seeds. Its z
statistics ``Z_k`` at the looks behave like a Brownian motion read at the information fractions
``t_k = n_k / M``: ``Z_k = W(t_k) / sqrt(t_k)``, so ``Z_k`` given ``Z_{k-1} = u`` is normal with mean
``u * sqrt(t_{k-1} / t_k)`` and variance ``(t_k - t_{k-1}) / t_k``.

Spending function (two-sided, Pocock-type, Lan & DeMets 1983)
    ``alpha(t) = alpha * ln(1 + (e - 1) * t)``: by fraction ``t`` of the seeds, ``alpha(t)`` of the
    false-positive budget may have been used; ``alpha(1) = alpha``. It spends a sizeable share at
    the first look (almost a quarter of alpha at ``t = 0.15``), so a large effect can stop there.
    The O'Brien–Fleming-type function ``2 - 2 Phi(z_{alpha/2} / sqrt t)`` spends almost nothing
    early: with 3 seeds of 20 its first z boundary is about 5.1, about 1,500 on the t scale with 2
    degrees of freedom, so nothing could ever stop at the first look.

Boundaries (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19)
    symmetric ``c_1..c_K`` with ``P(|Z_1| >= c_1) = alpha(t_1)`` and, for ``k >= 2``,
    ``P(|Z_j| < c_j for j < k, |Z_k| >= c_k) = alpha(t_k) - alpha(t_{k-1})`` under no effect. The
    density of ``Z_k`` on the continuation region ``(-c_k, c_k)`` is carried from look to look on
    a grid (Simpson's rule), and each ``c_k`` is the root of the exit probability.

t scale
    with ``n_k`` seeds the paired t statistic has ``n_k - 1`` degrees of freedom. Matching nominal
    p-values (Jennison & Turnbull's "significance level approach", ``c_t = t_{n_k-1}^{-1}(Phi(c_z))``,
    :func:`t_boundaries`) is exact at the first look but not jointly: with 2-5 degrees of freedom
    the t statistics at successive looks are less correlated than the z statistics (each look has
    its own sd), so more paths cross somewhere. Simulated, it gave a false-positive rate of
    5.4% ± 0.14% for one comparison with looks at 3, 6 and 10 seeds. :func:`exact_t_boundaries`
    removes that: for normal differences the joint null distribution of the t statistics at the
    looks does not depend on the sd (each is scale-free), so the t boundary at each look can be set
    to spend exactly ``alpha(t_k) - alpha(t_{k-1})``, computed from simulated null paths (the sums
    and within-look sums of squares are drawn directly, two numbers per path and look; a fixed
    seed makes every run get the same boundaries). The first look's boundary is exact in closed
    form: ``t_{n_1 - 1}^{-1}(1 - alpha(t_1) / 2)``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import optimize
from scipy import stats as sps

SPENDING = "Lan-DeMets Pocock-type: alpha(t) = alpha * ln(1 + (e - 1) t)"
EXACT_SIMS = 400_000  # null paths for exact_t_boundaries: the spent alpha to about +-0.0003 per look
EXACT_SEED = 20_13  # fixed: the same boundaries on every machine and every rerun
GRID_POINTS = 1001  # odd, for Simpson's rule; the boundaries agree with 501 and 2001 points to 1e-8


def pocock_spending(t: np.ndarray | Sequence[float] | float, alpha: float) -> np.ndarray:
    """Two-sided alpha spent by information fraction ``t`` (0..1)."""
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    return alpha * np.log1p((math.e - 1.0) * t)


def obrien_fleming_spending(t: np.ndarray | Sequence[float] | float, alpha: float) -> np.ndarray:
    """Two-sided O'Brien–Fleming-type spending ``2 - 2 Phi(z_{alpha/2} / sqrt t)`` (for comparison
    in the docs and tests; the design uses :func:`pocock_spending`)."""
    t = np.clip(np.asarray(t, dtype=float), 1e-12, 1.0)
    return 2.0 * sps.norm.sf(sps.norm.isf(alpha / 2.0) / np.sqrt(t))


def _simpson(points: int) -> np.ndarray:
    w = np.ones(points)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w / 3.0


def z_boundaries(fractions: Sequence[float], alpha: float, spending: str = "pocock") -> np.ndarray:
    """Two-sided z boundaries ``c_1..c_K`` at information fractions ``fractions`` (increasing,
    last 1) for overall two-sided level ``alpha`` under the spending function named."""
    return np.array(_z_boundaries(tuple(float(f) for f in fractions), float(alpha), spending))


@lru_cache(maxsize=256)
def _z_boundaries(fractions: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    t = np.asarray(fractions, dtype=float)
    if t.size == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0 or t[-1] > 1 + 1e-12:
        raise ValueError(f"information fractions must increase within (0, 1], got {list(fractions)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    spend = {"pocock": pocock_spending, "obrien-fleming": obrien_fleming_spending}[spending](t, alpha)
    inc = np.diff(np.concatenate([[0.0], spend]))
    w = _simpson(GRID_POINTS)
    c = [float(sps.norm.isf(inc[0] / 2.0))]
    z = np.linspace(-c[0], c[0], GRID_POINTS)
    # Density of Z_1 on the continuation region, times the quadrature weights (h * Simpson).
    mass = sps.norm.pdf(z) * w * (z[1] - z[0])
    for k in range(1, t.size):
        r, s = math.sqrt(t[k - 1] / t[k]), math.sqrt((t[k] - t[k - 1]) / t[k])
        mean = z * r

        # Bound as defaults: the root finding below uses this look's values, not the loop's later ones.
        def exit_probability(ck: float, mass: np.ndarray = mass, mean: np.ndarray = mean, s: float = s) -> float:
            return float(mass @ (sps.norm.sf((ck - mean) / s) + sps.norm.cdf((-ck - mean) / s)))

        left = float(mass.sum())  # probability of reaching look k at all
        if inc[k] <= 0 or inc[k] >= left:
            ck = math.inf if inc[k] <= 0 else 0.0
        else:
            ck = float(optimize.brentq(lambda x, k=k: exit_probability(x) - inc[k], 1e-6, 40.0, xtol=1e-10))
        c.append(ck)
        if k + 1 < t.size:
            znew = np.linspace(-ck, ck, GRID_POINTS)
            dens = mass @ (sps.norm.pdf((znew[None, :] - mean[:, None]) / s) / s)
            z, mass = znew, dens * w * (znew[1] - znew[0])
    return tuple(c)


def t_boundaries(z: np.ndarray | Sequence[float], dfs: np.ndarray | Sequence[int]) -> np.ndarray:
    """The z boundaries on the t scale with ``dfs`` degrees of freedom, by equal nominal p-value."""
    return sps.t.ppf(sps.norm.cdf(np.asarray(z, dtype=float)), np.asarray(dfs, dtype=float))


def exact_t_boundaries(
    looks: Sequence[int], alpha: float, spending: str = "pocock", sims: int = EXACT_SIMS, seed: int = EXACT_SEED
) -> np.ndarray:
    """Two-sided t boundaries at ``looks`` (seeds, increasing, the last one the maximum) that spend
    ``alpha`` by the named function exactly for normal paired differences (see the module doc)."""
    return np.array(_exact_t(tuple(int(n) for n in looks), float(alpha), spending, int(sims), int(seed)))


@lru_cache(maxsize=4)  # 400,000 x looks floats each: keep only the designs in use
def _null_t_paths(looks: tuple[int, ...], sims: int, seed: int) -> np.ndarray:
    """|t| of the paired t statistic at each look, shape ``(sims, K)``, for null normal differences."""
    rng = np.random.default_rng(seed)
    out = np.empty((sims, len(looks)))
    prev, mean, ss = 0, np.zeros(sims), np.zeros(sims)
    for k, n in enumerate(looks):
        dn = n - prev
        mean_b = rng.standard_normal(sims) / math.sqrt(dn)  # mean of the new seeds' differences (sd 1)
        ss_b = rng.chisquare(dn - 1, sims) if dn > 1 else np.zeros(sims)  # their sum of squares about it
        ss = ss + ss_b + (prev * dn / n) * (mean - mean_b) ** 2  # pooled sum of squares about the new mean
        mean = (prev * mean + dn * mean_b) / n
        prev = n
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, k] = np.abs(mean) / np.sqrt(ss / (n - 1) / n)
    return out


@lru_cache(maxsize=512)
def _exact_t(looks: tuple[int, ...], alpha: float, spending: str, sims: int, seed: int) -> tuple[float, ...]:
    if len(looks) == 0 or looks[0] < 2 or any(b <= a for a, b in zip(looks, looks[1:])):
        raise ValueError(f"looks must increase from at least 2 seeds, got {list(looks)}")
    t = np.asarray(looks, dtype=float) / looks[-1]
    spend = {"pocock": pocock_spending, "obrien-fleming": obrien_fleming_spending}[spending](t, alpha)
    inc = np.diff(np.concatenate([[0.0], spend]))
    c = [float(sps.t.isf(inc[0] / 2.0, looks[0] - 1))]
    if len(looks) == 1:
        return tuple(c)
    paths = _null_t_paths(looks, sims, seed)
    alive = paths[:, 0] < c[0]
    for k in range(1, len(looks)):
        x = np.sort(paths[alive, k])[::-1]  # survivors' |t| at look k, largest first
        r = int(round(inc[k] * sims))
        if r <= 0:
            ck = math.inf
        elif r >= x.size:
            ck = 0.0
        else:
            ck = float((x[r - 1] + x[r]) / 2.0)
        c.append(ck)
        alive &= paths[:, k] < ck
    return tuple(c)


def crossing_probabilities(
    boundaries: Sequence[float], fractions: Sequence[float], sims: int = 200_000, seed: int = 0, drift: float = 0.0
) -> np.ndarray:
    """Brute-force check by simulation: the probability of first crossing ``|Z_k| >= c_k`` at each
    look, for a Brownian motion with ``drift`` (per unit information, on the z scale at ``t = 1``)."""
    t = np.asarray(fractions, dtype=float)
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal((sims, t.size)) * np.sqrt(np.diff(np.concatenate([[0.0], t])))
    w = np.cumsum(steps, axis=1) + drift * t
    z = w / np.sqrt(t)
    cross = np.abs(z) >= np.asarray(boundaries)
    first = np.where(cross.any(axis=1), np.argmax(cross, axis=1), -1)
    return np.array([(first == k).mean() for k in range(t.size)])
