"""Adaptive replication: designs that choose how many seeds each variant gets, planned before any
difference is seen so that their error rates hold.

Two designs, each a set of pure, vectorised rules on arrays of paired differences (variant minus
baseline, per seed, in percentage points; NaN where a pair is not ok). The runner
(:func:`ablate.execute.adaptive.run_adaptively`) and the simulations (``scripts/simulate_adaptive.py``,
``tests/analysis/test_adaptive.py``) call the same functions, so the simulations test the production rules.

Seeds are one common list: the experiment's seeds, then the next unused integers above the
largest. Every variant uses a prefix of that list (its own length), and the baseline the longest
prefix, so every comparison stays paired by seed.

``--until-precise P``: Stein's two-stage procedure (Stein 1945)
    Pilot: the first ``n0`` seeds for every variant. For each variant, ``s0`` = sd of its ``n0``
    paired differences, and it gets ``N = max(n0, ceil((t_{0.975, n0-1} * s0 / P)^2))`` seeds in
    all (at most ``max_seeds``). Its interval is ``mean_N ± t_{0.975, n0-1} * s0 / sqrt(N)``: the
    mean of its first ``N`` differences, with the pilot's sd and degrees of freedom. For normal
    differences this has exactly 95% coverage whatever ``N`` came out, because ``mean_N`` given
    ``s0`` is still normal around the true difference (``N`` depends only on ``s0``, which is
    independent of the means), and its half-width is at most ``P`` unless ``N`` was capped. ``N``
    depends on the spread only, never on the size of the effect: a -20 point effect costs what a
    null effect costs. The pilot has to be large enough for ``s0`` to be usable: with 3 seeds,
    ``t_{0.975,2} = 4.30`` makes ``N`` about 4 times the fixed-sample need; with 10 it is about 1.2
    times (``docs/statistics.md``).

``--until-decided``: group-sequential tests (Lan–DeMets alpha spending, Pocock-type)
    Planned looks ``n_1 < ... < n_K = M`` seeds. At each look every undecided comparison gets the
    paired t-test on its first ``n_k`` seeds and is compared with the t boundary of
    :mod:`ablate.analysis.sequential` for that look (exact for normal differences; through its p-value where
    failed runs leave it fewer degrees of freedom). Several comparisons: Holm's procedure
    made sequentially rejective (Maurer & Bretz 2013): with ``r`` comparisons already decided, the
    others are tested at level ``alpha / (m - r)``, with boundaries computed for that level, and
    the look is tested again while new comparisons are decided. A decided comparison ("better" or
    "worse" by the sign of the mean) stops getting seeds (efficacy). An undecided one stops for
    futility when its conditional power, the chance of crossing the final boundary at ``M`` if the
    mean and sd estimated so far were the truth, is below 5%. Futility stops are non-binding:
    the boundaries were computed as if no comparison ever stopped for futility, and stopping one
    can only remove chances to cross, so it can only lower the false-positive rate. At ``M``
    whatever is undecided stops: no detectable difference.

    Why Pocock-type spending: with 2-4 degrees of freedom at the first looks, the spending function
    decides what can stop early. O'Brien–Fleming-type spending puts a z boundary of about 5.1 at 3
    of 20 seeds (a t boundary near 1,500 with 2 degrees of freedom): nothing stops there, however
    large. The Pocock-type function spends almost a quarter of alpha by 3 of 20 seeds, so a large
    effect (sigmoid's -20 points at an sd of 2) stops at the first look, at the price of a final
    boundary a little above the fixed-sample one (2.26 instead of 1.96 on the z scale with looks at
    3, 6, 12 and 20 seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ablate.analysis import sequential, stats

PRIMARY_METRIC = "final_val_acc"
CONFIDENCE = stats.CONFIDENCE
DEFAULT_MAX_SEEDS = 20
DEFAULT_PILOT = 10
# The most seeds a variant may get: beyond it a study is a typo, and every seed is a training run.
MAX_SEEDS_LIMIT = 1000
FUTILITY_POWER = 0.05

STEIN = "stein"
GROUP_SEQUENTIAL = "group-sequential"

# Status of a comparison in the group-sequential design. NO_PAIRS: no ok pair at a look (every run
# of the variant or of the baseline failed or diverged): it stops, with no verdict. TOO_FEW: fewer
# than 2 ok pairs at the last look: no test, so no verdict either.
ACTIVE, BETTER, WORSE, FUTILITY, MAX_SEEDS, NO_PAIRS, TOO_FEW = 0, 1, -1, 2, 3, 4, 5
STATUS_TEXT = {
    BETTER: "better",
    WORSE: "worse",
    FUTILITY: "futility",
    MAX_SEEDS: "max seeds",
    ACTIVE: "undecided",
    NO_PAIRS: "no pairs",
    TOO_FEW: "too few pairs",
}


# --- seeds -----------------------------------------------------------------------------------------
def seed_list(seeds: Sequence[int], total: int) -> list[int]:
    """The common seed list: ``seeds``, then the next unused integers above the largest, ``total``
    in all (or just ``seeds`` when it is already that long)."""
    seeds = [int(s) for s in seeds]
    start = max(seeds) + 1 if seeds else 0
    return seeds + list(range(start, start + max(0, total - len(seeds))))


def seed_overflow(seeds: Sequence[int], total: int, seed_max: int) -> str:
    """A one-line reason why ``total`` seeds cannot be reached without passing ``seed_max``, or ""."""
    extra = max(0, total - len(seeds))
    if extra and max(seeds) + extra > seed_max:
        return (
            f"adding {extra} seed(s) after seed {max(seeds)} would pass the largest seed {seed_max}; "
            f"list smaller seeds in the experiment file or lower --max-seeds"
        )
    return ""


def paired_matrix(
    runs: pd.DataFrame,
    baseline: str,
    variants: Sequence[str],
    seeds: Sequence[int],
    metric: str = PRIMARY_METRIC,
    scale: float = 100.0,
) -> np.ndarray:
    """Paired differences ``(variant - baseline) * scale``, shape ``(len(variants), len(seeds))``,
    NaN where either run of the pair is missing or not ok."""
    ok = runs[(runs["status"] == "ok")] if "status" in runs and metric in runs else runs.iloc[0:0]
    value = {
        (str(v), int(s)): float(x) * scale
        for v, s, x in zip(ok.get("variant", []), ok.get("seed", []), ok.get(metric, []))
        if x is not None and not pd.isna(x)
    }
    out = np.full((len(variants), len(seeds)), np.nan)
    for i, v in enumerate(variants):
        for j, s in enumerate(seeds):
            if (v, s) in value and (baseline, s) in value:
                out[i, j] = value[(v, s)] - value[(baseline, s)]
    return out


def _moments(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, mean, sd) over the last axis, NaN left out; mean NaN where n = 0, sd NaN where n < 2."""
    ok = np.isfinite(d)
    n = ok.sum(axis=-1)
    x = np.where(ok, d, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.sum(axis=-1) / n
        ss = np.where(ok, (d - mean[..., None]) ** 2, 0.0).sum(axis=-1)
        sd = np.sqrt(ss / (n - 1))
    return n, np.where(n >= 1, mean, np.nan), np.where(n >= 2, sd, np.nan)


# --- Stein's two-stage procedure --------------------------------------------------------------------
def stein_seeds(
    s0: np.ndarray,
    n0: np.ndarray | int,
    precision: float,
    max_seeds: int,
    confidence: float = CONFIDENCE,
    pilot: int | None = None,
) -> np.ndarray:
    """``N = max(pilot, ceil((t_{q, n0-1} * s0 / P)^2))``, at most ``max_seeds``; ``max_seeds`` where
    ``s0`` is unknown (fewer than 2 pilot pairs). ``n0`` is the number of ok pilot pairs, ``pilot``
    the pilot's seeds (default ``n0``): a variant never gets fewer seeds than the pilot trained,
    whatever failed in it (its later ok runs would otherwise fall outside its seeds)."""
    s0 = np.asarray(s0, dtype=float)
    n0 = np.asarray(n0)
    tq = sps.t.ppf(0.5 + confidence / 2.0, np.maximum(n0 - 1, 1))
    with np.errstate(invalid="ignore", over="ignore"):
        need = np.ceil(np.minimum((tq * s0 / precision) ** 2, float(max_seeds)) - 1e-9)
    need = np.where(np.isfinite(s0) & (n0 >= 2), need, max_seeds)
    floor = np.maximum(n0, pilot) if pilot is not None else n0
    return np.minimum(np.maximum(need, floor), max_seeds).astype(int)


def stein_plan(
    pilot: np.ndarray, precision: float, max_seeds: int, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From the pilot's paired differences (shape ``(..., m, n0)``, NaN for pairs that are not ok):
    ``(n0_ok, s0, N)`` per comparison, ``N`` at least the pilot's seeds."""
    pilot = np.asarray(pilot, dtype=float)
    n, _, s0 = _moments(pilot)
    return n, s0, stein_seeds(s0, n, precision, max_seeds, confidence, pilot=pilot.shape[-1])


def stein_interval(
    d: np.ndarray, seeds: np.ndarray, s0: np.ndarray, n0: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stein's interval per comparison: ``(mean, half_width, n)`` over the first ``seeds`` paired
    differences of ``d`` (shape ``(..., m, S)``), half-width ``t_{q, n0-1} * s0 / sqrt(n)`` with
    ``n`` the ok pairs among them (``seeds`` unless a run failed). No interval (mean and half-width
    NaN) where fewer than 2 pairs are ok, or the pilot had fewer than 2 (no ``s0``)."""
    d = np.asarray(d, dtype=float)
    used = np.arange(d.shape[-1]) < np.asarray(seeds)[..., None]
    n, mean, _ = _moments(np.where(used, d, np.nan))
    tq = sps.t.ppf(0.5 + confidence / 2.0, np.maximum(np.asarray(n0) - 1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        half = np.where((np.asarray(n0) >= 2) & (n >= 2), tq * s0 / np.sqrt(n), np.nan)
    return np.where(n >= 2, mean, np.nan), half, n


# --- group-sequential tests ---------------------------------------------------------------------------
def default_looks(first: int, max_seeds: int) -> tuple[int, ...]:
    """``first``, doubling, the last look ``max_seeds`` (3, 6, 12, 20 for 3 and 20)."""
    looks = [first]
    while looks[-1] * 2 < max_seeds:
        looks.append(looks[-1] * 2)
    if looks[-1] < max_seeds:
        looks.append(max_seeds)
    return tuple(looks)


@dataclass(frozen=True)
class SequentialDesign:
    """Planned looks (seeds per comparison at each look; the last is the maximum), two-sided
    family-wise ``alpha``, ``m`` comparisons (Holm levels ``alpha / j`` for ``j = 1..m``)."""

    looks: tuple[int, ...]
    m: int
    alpha: float = round(1.0 - CONFIDENCE, 12)  # 0.05, without the float noise of 1 - 0.95
    futility: float = FUTILITY_POWER

    def __post_init__(self) -> None:
        if len(self.looks) < 1 or any(b <= a for a, b in zip(self.looks, self.looks[1:])) or self.looks[0] < 3:
            raise ValueError(f"looks must increase from at least 3 seeds, got {list(self.looks)}")
        if self.m < 1:
            raise ValueError(f"need at least one comparison, got m = {self.m}")

    @property
    def max_seeds(self) -> int:
        return self.looks[-1]

    @property
    def fractions(self) -> np.ndarray:
        return np.asarray(self.looks, dtype=float) / self.max_seeds

    @cached_property
    def z(self) -> np.ndarray:
        """Normal-theory z boundaries, shape ``(m, K)``: row ``j - 1`` for level ``alpha / j``
        (recursive numerical integration; used for conditional power and reported)."""
        return np.array([sequential.z_boundaries(self.fractions, self.alpha / j) for j in range(1, self.m + 1)])

    @cached_property
    def t_table(self) -> np.ndarray:
        """The t boundaries the tests use, shape ``(m, K)``: exact for normal differences with
        ``n_k - 1`` degrees of freedom (:func:`ablate.analysis.sequential.exact_t_boundaries`)."""
        return np.array([sequential.exact_t_boundaries(self.looks, self.alpha / j) for j in range(1, self.m + 1)])

    @cached_property
    def z_test(self) -> np.ndarray:
        """The t boundaries as z values of equal two-sided p: the tests compare each comparison's
        p-value (at its own degrees of freedom, lower where a run failed) with the boundary's."""
        return sps.norm.isf(sps.t.sf(self.t_table, np.asarray(self.looks) - 1))

    def t(self, j: int) -> np.ndarray:
        """t boundaries at level ``alpha / j`` with ``n_k - 1`` degrees of freedom per look."""
        return self.t_table[j - 1]

    def record(self) -> dict[str, Any]:
        """The plan as JSON-able data for the manifest: looks, spending, and boundaries per level."""
        return {
            "design": GROUP_SEQUENTIAL,
            "spending": sequential.SPENDING,
            "alpha": self.alpha,
            "looks": list(self.looks),
            "max_seeds": self.max_seeds,
            "futility": f"non-binding: stop when conditional power < {self.futility:g}",
            "holm": "sequentially rejective (Maurer & Bretz 2013): level alpha/(m - r) after r decisions",
            "t_scale": "exact for normal differences (null t paths, ablate.analysis.sequential.exact_t_boundaries)",
            "boundaries": [
                {
                    "level": self.alpha / j,
                    "z": [round(float(x), 4) for x in self.z[j - 1]],
                    "t": [round(float(x), 4) for x in self.t(j)],
                }
                for j in range(1, self.m + 1)
            ],
        }


def _z_equivalent(n: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, z with the same two-sided p) of the paired t-test. All differences equal (sd 0): the
    exact sign-flip p ``2^(1-n)`` (1 when they are 0), as :func:`ablate.analysis.stats.paired_test` does."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t = mean / (sd / np.sqrt(n))
        p = 2.0 * sps.t.sf(np.abs(t), np.maximum(n - 1, 1))
    p = np.where(sd == 0, np.where(mean == 0, 1.0, np.minimum(1.0, 2.0 ** (1.0 - n))), p)
    p = np.where(n >= 2, p, np.nan)
    return t, sps.norm.isf(p / 2.0)


def conditional_power(
    n: np.ndarray, mean: np.ndarray, sd: np.ndarray, c_final: np.ndarray, max_seeds: int
) -> np.ndarray:
    """Chance that ``|Z|`` at ``max_seeds`` crosses ``c_final`` if ``mean`` and ``sd`` were the truth,
    given the ``n`` differences seen (their sum is ``n * mean``): ``Z_M`` is normal with mean
    ``sqrt(M) * mean / sd`` and variance ``(M - n) / M``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = math.sqrt(max_seeds) * mean / sd
        s = np.sqrt(np.maximum(max_seeds - n, 0) / max_seeds)
        cp = sps.norm.sf((c_final - mu) / s) + sps.norm.cdf((-c_final - mu) / s)
    return np.where(sd == 0, np.where(mean == 0, 0.0, 1.0), cp)


def sequential_look(
    d: np.ndarray, k: int, design: SequentialDesign, status: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One planned look. ``d``: paired differences on the first ``looks[k]`` seeds, shape
    ``(..., m, n_k)``, NaN for pairs that are not ok; ``status``: shape ``(..., m)``, each
    comparison's status before the look (:data:`ACTIVE`, :data:`BETTER`, ...). Returns the new
    status and, per comparison, ``n``, ``mean``, ``sd``, ``t``, the z- and t-boundary it was
    last tested against, the Holm level's ``j`` (level ``alpha / j``) and the conditional power.
    """
    d = np.asarray(d, dtype=float)
    status = np.array(status, dtype=int, copy=True)
    n, mean, sd = _moments(d)
    t, zeq = _z_equivalent(n, mean, sd)
    active = status == ACTIVE
    zb = np.full(status.shape, np.nan)
    level = np.zeros(status.shape, dtype=int)
    m = design.m
    for _ in range(m):  # Holm: test again while the last pass decided something
        decided = (status == BETTER) | (status == WORSE)
        j = m - decided.sum(axis=-1, keepdims=True)  # comparisons not yet decided -> level alpha / j
        j = np.broadcast_to(np.maximum(j, 1), status.shape)
        c = design.z_test[j - 1, k]
        zb = np.where(active, c, zb)
        level = np.where(active, j, level)
        new = active & (zeq >= c)
        if not new.any():
            break
        status = np.where(new, np.where(mean > 0, BETTER, WORSE), status)
        active = active & ~new
    last = k == len(design.looks) - 1
    c_final = design.z[np.maximum(level, 1) - 1, -1]
    cp = conditional_power(n, mean, sd, c_final, design.max_seeds)
    # No verdict from no data: a comparison without an ok pair stops (its runs fail or diverge), and
    # one with fewer than 2 at the last look has no test.
    none = active & (n == 0)
    status, active = np.where(none, NO_PAIRS, status), active & ~none
    if last:
        status = np.where(active & (n < 2), TOO_FEW, np.where(active, MAX_SEEDS, status))
    else:
        status = np.where(active & (cp < design.futility), FUTILITY, status)
    with np.errstate(invalid="ignore"):
        tb = sps.t.ppf(sps.norm.cdf(zb), np.maximum(n - 1, 1))
    return status, {
        "n": n,
        "mean": mean,
        "sd": sd,
        "t": t,
        "z_boundary": zb,
        "t_boundary": tb,
        "level_j": level,
        "conditional_power": cp,
    }


def run_sequential(d: np.ndarray, design: SequentialDesign) -> dict[str, np.ndarray]:
    """Every look of ``design`` on full paired differences ``d`` (shape ``(..., m, M)``): what the
    runner does look by look, for simulations. Returns per comparison the final ``status``, the
    index of the ``stop_look``, the ``seeds`` it used, and at its stopping look the ``mean``, ``sd``,
    ``n`` and ``t_boundary`` (for the repeated confidence interval ``mean ± t_boundary * sd / sqrt n``)."""
    d = np.asarray(d, dtype=float)
    status = np.full(d.shape[:-1], ACTIVE)
    stop_look = np.full(d.shape[:-1], -1)
    keep = {key: np.full(d.shape[:-1], np.nan) for key in ("mean", "sd", "n", "t_boundary")}
    for k, n_k in enumerate(design.looks):
        before = status == ACTIVE
        if not before.any():
            break
        status, info = sequential_look(d[..., :n_k], k, design, status)
        now = before & (status != ACTIVE)
        stop_look = np.where(now, k, stop_look)
        for key in keep:
            keep[key] = np.where(now, info[key], keep[key])
    seeds = np.asarray(design.looks)[stop_look]
    return {"status": status, "stop_look": stop_look, "seeds": seeds, **keep}


def repeated_interval(mean: float, sd: float, n: float, t_boundary: float) -> tuple[float, float]:
    """The repeated confidence interval at a stopping look: ``mean ± t_boundary * sd / sqrt(n)``."""
    if not (n >= 2 and math.isfinite(sd) and math.isfinite(t_boundary)):
        return math.nan, math.nan
    half = t_boundary * sd / math.sqrt(n)
    return mean - half, mean + half


# --- the manifest's record, as sentences -------------------------------------------------------------
def describe(adaptive: dict[str, Any]) -> list[str]:
    """The report's adaptive section, from the manifest's ``"adaptive"`` entry (markdown lines)."""
    design = adaptive.get("design")
    variants = adaptive.get("variants") or {}
    if design == STEIN:
        n0, p = adaptive.get("pilot"), float(adaptive.get("precision", math.nan))
        out = [
            f"Seeds were chosen by **Stein's two-stage procedure** for a 95% interval of at most ±{p:g} points on "
            f"final validation accuracy: a pilot of {n0} seeds for every variant; then each variant got "
            f"N = max({n0}, ceil((t(0.975, n0-1) * s0 / {p:g})^2)) seeds in all (at most {adaptive.get('max_seeds')}), "
            "s0 being the sd of its pilot's paired differences; the baseline got the most. Its interval is the mean of "
            "its N paired differences ± t(0.975, n0-1) * s0 / sqrt(N), exact 95% coverage for normal differences "
            "whatever N came out (N depends on the pilot's spread, never on the size of the effect).",
            "",
        ]
        rows = []
        for slug, v in variants.items():
            rows.append(
                f"| `{slug}` | {_num(v.get('s0'))} | {v.get('seeds')} | {_signed(v.get('mean'))} ± "
                f"{_num(v.get('half_width'))} "
                f"| {v.get('stopped', '')} |"
            )
        if rows:
            out += [
                "| variant | pilot sd s0 (points) | seeds | Stein interval (points) | stopped |",
                "|---|---:|---:|---|---|",
                *rows,
            ]
        return out
    if design == GROUP_SEQUENTIAL:
        looks = adaptive.get("looks") or []
        out = [
            f"Seeds were chosen by **group-sequential tests**: looks at {', '.join(str(x) for x in looks)} seeds; at "
            "each "
            f"look every undecided comparison with the baseline (paired t on final validation accuracy) is compared "
            "with a "
            f"boundary from alpha spending ({adaptive.get('spending', sequential.SPENDING)}; two-sided alpha "
            f"{adaptive.get('alpha', 0.05):g}; "
            "z boundaries by recursive numerical integration, t boundaries exact for normal differences), "
            "Holm across comparisons made sequentially rejective (after r decisions the rest are tested at alpha/(m - "
            "r)). "
            "A decided comparison stops getting seeds; an undecided one stops for futility when its conditional power "
            "to "
            f"cross the last boundary is below {FUTILITY_POWER:g} (non-binding, which can only lower the "
            "false-positive "
            "rate). Verdicts below come from these tests; each interval is the repeated confidence interval at the "
            "stopping look (mean ± the look's t boundary × se), which holds whatever the stopping.",
            "",
        ]
        bounds = adaptive.get("boundaries") or []
        if bounds:
            head = "| level | " + " | ".join(f"{x} seeds" for x in looks) + " |"
            out += [head, "|---|" + "---:|" * len(looks)]
            for b in bounds:
                out.append(
                    f"| {float(b['level']):.4g} | "
                    + " | ".join(f"t {t:.2f} (z {z:.2f})" for t, z in zip(b["t"], b["z"]))
                    + " |"
                )
            out.append("")
        rows = []
        for slug, v in variants.items():
            ts = ", ".join(_signed(x, 1) for x in v.get("t_by_look") or [])
            rows.append(
                f"| `{slug}` | {v.get('seeds')} | {v.get('stopped', '')} | **{v.get('verdict', '')}** | "
                f"{_signed(v.get('mean'))} [{_signed(v.get('rci_low'))}, {_signed(v.get('rci_high'))}] | {ts} |"
            )
        if rows:
            out += [
                "| variant | seeds | stopped | verdict | difference, repeated CI (points) | t at each look |",
                "|---|---:|---|---|---|---|",
                *rows,
            ]
        return out
    return [f"Seeds were chosen adaptively ({adaptive.get('stopped', 'design not recorded')}).", ""]


def _num(x: Any, digits: int = 2) -> str:
    return f"{float(x):.{digits}f}" if isinstance(x, (int, float)) and math.isfinite(float(x)) else "-"


def _signed(x: Any, digits: int = 2) -> str:
    return f"{float(x):+.{digits}f}" if isinstance(x, (int, float)) and math.isfinite(float(x)) else "-"
