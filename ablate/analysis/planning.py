"""Planning a study before it runs: what each planned comparison can detect, the seeds an effect
needs, and what the adaptive designs would be expected to spend, from a noise estimate.

The noise comes from finished runs (:func:`noise_from_data`: this experiment's or another's) or is
a stated guess (:func:`default_noise`). Everything is in percentage points of final validation
accuracy, the metric the report's verdicts are about, and uses the analysis the report will use:

Paired t (one-at-a-time designs and one-axis grids)
    each variant against the baseline on per-seed differences. The noise is the sd of those
    differences, per variant where the source has that variant, else pooled over the source's
    comparisons. The minimum detectable difference (MDD) at ``n`` seeds and the seeds an effect
    needs are :func:`ablate.analysis.stats.min_detectable_difference` and
    :func:`ablate.analysis.stats.seeds_needed` (80% power, two-sided alpha 0.05 per comparison,
    as the report's ``mdd`` column).
The factorial linear model (grids of two or more axes, :mod:`ablate.analysis.factorial`)
    ``y ~ C(seed) + (axes) ** 2`` over every run, HC2 errors with Bell–McCaffrey degrees of
    freedom, Holm per family. Hidden replication: each main effect is a contrast of all the runs.
    The noise is a variance per cell (variant): over the source's runs of that cell, the mean of
    ``e_i^2 / (1 - h_i)`` (the HC2 ingredient: residual squared over one minus leverage), and for
    cells the source does not have, its residual variance. A planned contrast with weights ``a``
    on the planned runs then has ``se^2 = sum_i a_i^2 var(cell of i)`` (the variance of ``a'y``),
    Bell–McCaffrey df of the planned design (cells whose source runs all repeat one value keep no
    spread, as in the report), and MDD :func:`ablate.analysis.stats.min_detectable_effect`. For the
    design the source ran, this is the MDD its report states (a complete grid weighs the runs of a
    cell equally). Seeds for an effect: ``se`` scales as ``1 / sqrt(seeds)`` in a complete grid; the
    df is scaled with the residual df.

A thin estimate (a source with fewer than 3 seeds) is given as a range: the 95% chi-square
interval of the sd on the estimate's degrees of freedom, ``sd * sqrt(df / chi2_{0.975, df})`` to
``sd * sqrt(df / chi2_{0.025, df})``, which carries over to the MDD (it is proportional to the sd).

Adaptive designs (each variant against the baseline, paired, whatever the grid):
``--until-decided``
    expected and 90th-percentile seeds per variant by simulating whole studies through the
    runner's rules (:func:`ablate.analysis.adaptive.run_sequential`), seeded: paired differences
    as in ``scripts/simulate_adaptive.py`` (a variant is the baseline plus its effect plus its own
    noise, so comparisons share the baseline's noise), every comparison at the effect, and again
    at no effect.
``--until-precise P`` (Stein)
    in closed form: with pilot ``n0``, ``N = max(n0, ceil((t_{0.975, n0-1} s0 / P)^2))`` capped at
    the maximum, and ``s0^2 ~ sd^2 chi2_{n0-1} / (n0 - 1)``, so
    ``P(N <= k) = F_chi2(k (n0 - 1) P^2 / (t^2 sd^2); n0 - 1)`` for ``n0 <= k < max``.

Numbers only: nothing here prints, trains or reads files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ablate.analysis import adaptive, stats
from ablate.analysis.effects import reference_level
from ablate.analysis.factorial import fit_design, grid_design, quiet_runs
from ablate.analysis.frames import ExperimentData
from ablate.analysis.summary import per_seed
from ablate.experiment.experiment import Experiment

PAIRED = "paired t"
FACTORIAL = "factorial linear model"
METRIC = "final_val_acc"
METRIC_TEXT = "final validation accuracy"
# The guess when no finished runs are given: the sd of a paired difference that the simulations in
# docs/statistics.md assume (a run's own noise sqrt(2) points on each side of the pair).
DEFAULT_PAIRED_SD = 2.0
DEFAULT_EFFECT = 1.0  # points, as `ablate report` without --effect
THIN_SEEDS = 3  # a source with fewer seeds gives ranges, not numbers
SIMULATED_STUDIES = 2000
SIMULATION_SEED = 26
PERCENTILE = 90


class PlanError(ValueError):
    """A plan that cannot be made from what was given; ``str()`` is one line for the user."""


# --- the noise ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Noise:
    """How much final validation accuracy varies from seed to seed, in points, and where that
    estimate comes from."""

    source: str  # the results folder it was estimated from, or "default"
    guess: bool  # True: a stated default, not an estimate
    analysis: str  # PAIRED or FACTORIAL: the analysis of the source's design
    dataset: str | None  # what the source's accuracy was measured on
    seeds: int  # seeds in the source (0 for the default)
    # Paired: variant slug -> (sd of its paired differences with the baseline, df); and pooled.
    paired: dict[str, tuple[float, int]] = field(default_factory=dict)
    pooled_sd: float = DEFAULT_PAIRED_SD
    pooled_df: float = math.inf
    # Factorial: variant slug -> variance of one run about the model (points^2); cells that have no
    # spread; the residual variance for cells the source lacks; each source contrast's df.
    cells: dict[str, float] = field(default_factory=dict)
    quiet: frozenset[str] = frozenset()
    resid_var: float = DEFAULT_PAIRED_SD**2 / 2.0
    resid_df: float = math.inf
    contrast_df: dict[tuple[str, str, str], float] = field(default_factory=dict)

    @property
    def thin(self) -> bool:
        return not self.guess and self.seeds < THIN_SEEDS

    def describe(self) -> str:
        if self.guess:
            return (
                f"default guess: sd of a paired difference {DEFAULT_PAIRED_SD:g} points (run-to-run sd "
                f"{math.sqrt(self.resid_var):.2f} points), as the simulations of docs/statistics.md assume"
            )
        what = (
            f"residual sd {math.sqrt(self.resid_var):.2f} points on {self.resid_df:g} df (factorial model)"
            if self.analysis == FACTORIAL
            else f"pooled sd of paired differences {self.pooled_sd:.2f} points on {self.pooled_df:g} df"
        )
        return f"{self.source}: {self.seeds} seed(s), {what}"

    def record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "guess": self.guess,
            "analysis": self.analysis,
            "dataset": self.dataset,
            "seeds": self.seeds,
            "thin": self.thin,
            "paired_sd": {k: {"sd": sd, "df": df} for k, (sd, df) in self.paired.items()},
            "pooled_sd": self.pooled_sd,
            "pooled_df": self.pooled_df,
            "cell_var": dict(self.cells),
            "quiet_cells": sorted(self.quiet),
            "resid_sd": math.sqrt(self.resid_var),
            "resid_df": self.resid_df,
        }


def analysis_of(design: str, varying_axes: int) -> str:
    """The analysis the report runs: the factorial model for grids of two or more varying axes,
    paired t otherwise."""
    return FACTORIAL if design == "grid" and varying_axes >= 2 else PAIRED


def experiment_analysis(exp: Experiment) -> str:
    return analysis_of(exp.design, len(_varying_axes(exp)))


def _varying_axes(exp: Experiment) -> dict[str, list[Any]]:
    """Axes with two or more values that differ between the variants (as ``ExperimentData``)."""
    variants = exp.variants()
    out = {}
    for axis, values in exp.axes.items():
        seen = {repr(getattr(v, axis)) for v in variants}
        if len(values) >= 2 and len(seen) >= 2:
            out[axis] = list(values)
    return out


def default_noise(analysis: str) -> Noise:
    """The stated guess used without ``--noise-from``."""
    return Noise(source="default", guess=True, analysis=analysis, dataset=None, seeds=0)


def noise_from_data(data: ExperimentData, source: str) -> Noise:
    """The noise of finished runs: paired differences per variant, and for grids of two or more
    axes the factorial model's per-cell variances (see the module docstring)."""
    values = per_seed(data, METRIC)
    ok_seeds = sorted({s for v in values.values() for s in v})
    if not ok_seeds:
        raise PlanError(f"--noise-from {source}: no ok run with a {METRIC_TEXT}; nothing to estimate noise from")
    paired: dict[str, tuple[float, int]] = {}
    for v in data.variants:
        if v == data.baseline:
            continue
        _, diffs = stats.paired_differences(values[v], values[data.baseline])
        if len(diffs) >= 2:
            paired[v] = (float(np.std(np.asarray(diffs) * 100.0, ddof=1)), len(diffs) - 1)
    dfs = sum(df for _, df in paired.values())
    pooled_sd = math.sqrt(sum(df * sd**2 for sd, df in paired.values()) / dfs) if dfs else math.nan
    manifest_data = (data.manifest or {}).get("data") or {}
    dataset = manifest_data.get("dataset") if isinstance(manifest_data, dict) else None
    if dataset is None and data.records:
        dataset = ((data.records[0].get("config") or {}).get("data") or {}).get("dataset")
    grid = data.varying_axes()
    analysis = analysis_of(data.design, len(grid))
    noise = Noise(
        source=source,
        guess=False,
        analysis=analysis,
        dataset=dataset,
        seeds=len(ok_seeds),
        paired=paired,
        pooled_sd=pooled_sd,
        pooled_df=float(dfs),
    )
    if analysis == PAIRED:
        if not paired:
            raise PlanError(
                f"--noise-from {source}: no variant has 2 or more seeds paired with its baseline; "
                "the sd of paired differences cannot be estimated"
            )
        return noise
    return _with_factorial_noise(noise, data, grid)


def _with_factorial_noise(noise: Noise, data: ExperimentData, grid: dict[str, list[Any]]) -> Noise:
    ok = data.ok_runs
    y = pd.to_numeric(ok[METRIC], errors="coerce").to_numpy(dtype=float) * 100.0
    keep = np.isfinite(y)
    runs = pd.DataFrame({"seed": ok["seed"].astype(int).to_numpy()[keep], "y": y[keep]})
    slugs = ok["variant"].to_numpy()[keep]
    for a in grid:
        runs[a] = [data.variant_axes[v].get(a) for v in slugs]
    design = grid_design(runs, grid, {a: reference_level(data, a) for a in grid}, "y")
    errors = design.error_model()
    if errors.resid_df < 1:
        raise PlanError(
            f"--noise-from {noise.source}: its factorial model has no residual degrees of freedom; "
            "nothing to estimate noise from"
        )
    resid = errors.residual_maker @ runs["y"].to_numpy()
    per_run = resid**2 / np.maximum(1.0 - errors.leverage, 1e-12)
    still = quiet_runs(design.cell, runs["y"].to_numpy())
    cells, quiet = {}, set()
    for slug in dict.fromkeys(slugs):
        mine = slugs == slug
        cells[str(slug)] = float(per_run[mine].mean())
        if still[mine].all():  # no spread of its own: fewer df, as in the report (its residuals still count)
            quiet.add(str(slug))
    fit = fit_design(design)
    contrast_df = {
        (r["kind"], r["axes"], r["level"]): float(r["df"]) for r in fit.table.to_dict("records") if r["estimable"]
    }
    return Noise(
        **{
            **noise.__dict__,
            "cells": cells,
            "quiet": frozenset(quiet),
            "resid_var": float(resid @ resid / errors.resid_df),
            "resid_df": float(errors.resid_df),
            "contrast_df": contrast_df,
        }
    )


def check_noise(noise: Noise, exp: Experiment) -> None:
    """Refuse a noise source that measured something else: another dataset's accuracy (another
    metric), or a design analysed by another model."""
    if noise.guess:
        return
    if noise.dataset is not None and noise.dataset != exp.data.dataset:
        raise PlanError(
            f"--noise-from {noise.source} measured {METRIC_TEXT} on {noise.dataset}, this plan's metric is "
            f"{METRIC_TEXT} on {exp.data.dataset}: give finished runs on {exp.data.dataset}"
        )
    analysis = experiment_analysis(exp)
    if noise.analysis != analysis:
        raise PlanError(
            f"--noise-from {noise.source} is analysed by the {noise.analysis}, this plan by the {analysis}: "
            "the noise of one model does not carry over to the other; give finished runs of the same design"
        )


def sd_range(sd: float, df: float, confidence: float = stats.CONFIDENCE) -> tuple[float, float]:
    """The chi-square interval of an sd estimated on ``df`` degrees of freedom (NaN without df)."""
    if not (df >= 1) or not math.isfinite(sd):
        return (math.nan, math.nan)
    if math.isinf(df):
        return (sd, sd)
    q = (1.0 - confidence) / 2.0
    return (sd * math.sqrt(df / sps.chi2.isf(q, df)), sd * math.sqrt(df / sps.chi2.ppf(q, df)))


# --- the planned comparisons ------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """One planned comparison: what it can detect at the planned seeds, and what the effect needs."""

    kind: str  # "variant" (paired t) | "main" | "interaction" (factorial model)
    name: str  # variant slug, or "norm=batchnorm", "activation x norm=sigmoid x batchnorm"
    se: float  # standard error of the estimate at the planned seeds (points)
    df: float
    mdd: float  # 80% power, two-sided alpha 0.05 (points)
    mdd_low: float  # the MDD's range from the noise estimate's 95% interval (equal to mdd for a guess)
    mdd_high: float
    power: float  # at the effect
    seeds_needed: float  # for the effect (inf: more than the limit)
    noise: str  # "source" (this comparison's own) | "pooled" | "default"

    def record(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan_paired(
    noise: Noise, variants: Sequence[str], seeds: int, effect: float, max_seeds: int = adaptive.MAX_SEEDS_LIMIT
) -> list[Comparison]:
    """Each variant against the baseline by paired t over ``seeds`` seeds."""
    out = []
    for v in variants:
        sd, df, which = _paired_sd(noise, v)
        mdd = stats.min_detectable_difference(sd, seeds)
        low, high = sd_range(sd, df)
        need = stats.seeds_needed(effect, sd, max_n=max_seeds)
        out.append(
            Comparison(
                kind="variant",
                name=v,
                se=sd / math.sqrt(seeds) if seeds >= 1 else math.nan,
                df=float(seeds - 1),
                mdd=mdd,
                mdd_low=mdd * low / sd if noise.thin else mdd,
                mdd_high=mdd * high / sd if noise.thin else mdd,
                power=stats.paired_power(effect, sd, seeds),
                seeds_needed=need,
                noise=which,
            )
        )
    return out


def _paired_sd(noise: Noise, variant: str) -> tuple[float, float, str]:
    """(sd of the paired differences, its df, which estimate) for one variant."""
    if noise.guess:
        return noise.pooled_sd, math.inf, "default"
    if variant in noise.paired:
        sd, df = noise.paired[variant]
        return sd, float(df), "source"
    return noise.pooled_sd, noise.pooled_df, "pooled"


@dataclass(frozen=True)
class _GridPlan:
    """The planned grid's contrasts at the planned seeds, and what scales them to other seeds."""

    contrasts: list[Any]  # factorial.EffectContrast
    se: np.ndarray
    df: np.ndarray
    resid_df: float
    rank_cells: float  # rank of the design without the seed block
    cells: int
    seeds: int


def _grid_plan(noise: Noise, exp: Experiment, seeds: int) -> _GridPlan:
    grid = _varying_axes(exp)
    reference = {a: getattr(exp.baseline, a) if getattr(exp.baseline, a) in v else v[0] for a, v in grid.items()}
    variants = exp.variants()
    rows = [
        {"seed": s, "y": 0.0, "slug": v.slug(), **{a: getattr(v, a) for a in grid}}
        for s in range(seeds)
        for v in variants
    ]
    runs = pd.DataFrame(rows)
    design = grid_design(runs, grid, reference, "y")
    errors = design.error_model()
    var = np.array([noise.cells.get(s, noise.resid_var) for s in runs["slug"]])
    quiet = np.array([s in noise.quiet for s in runs["slug"]])
    weights = np.nan_to_num(errors.weights)
    se = np.sqrt(weights**2 @ var)
    df = errors.df_without_spread(quiet) if quiet.any() else errors.df
    return _GridPlan(
        design.contrasts,
        se,
        np.asarray(df, dtype=float),
        errors.resid_df,
        len(runs) - errors.resid_df - (seeds - 1),
        len(variants),
        seeds,
    )


def plan_factorial(
    noise: Noise, exp: Experiment, seeds: int, effect: float, max_seeds: int = adaptive.MAX_SEEDS_LIMIT
) -> list[Comparison]:
    """Every main effect and two-way interaction of the grid's linear model at ``seeds`` seeds."""
    plan = _grid_plan(noise, exp, seeds)
    out = []
    for k, c in enumerate(plan.contrasts):
        se, df = float(plan.se[k]), float(plan.df[k])
        mdd = stats.min_detectable_effect(se, df)
        name = f"{c.axes}={c.level}"
        src_df = noise.contrast_df.get((c.kind, c.axes, c.level), noise.resid_df)
        low, high = sd_range(1.0, src_df)
        out.append(
            Comparison(
                kind=c.kind,
                name=name,
                se=se,
                df=df,
                mdd=mdd,
                mdd_low=mdd * low if noise.thin else mdd,
                mdd_high=mdd * high if noise.thin else mdd,
                power=stats.t_power(effect / se, df) if se > 0 and df >= 1 else math.nan,
                seeds_needed=_grid_seeds_needed(plan, k, effect, max_seeds),
                noise="default" if noise.guess else "source",
            )
        )
    return out


def _grid_mdd(plan: _GridPlan, k: int, n: int) -> float:
    """MDD of contrast ``k`` at ``n`` seeds: se scaled as 1/sqrt(n) (a complete grid), df scaled
    with the residual df."""
    resid = n * plan.cells - (n - 1) - plan.rank_cells
    if resid < 1 or plan.resid_df < 1:
        return math.nan
    se = plan.se[k] * math.sqrt(plan.seeds / n)
    df = plan.df[k] * resid / plan.resid_df
    return stats.min_detectable_effect(float(se), float(max(df, 1.0)))


def _grid_seeds_needed(plan: _GridPlan, k: int, effect: float, max_seeds: int) -> float:
    if not (plan.se[k] > 0) or not np.isfinite(plan.df[k]):
        return math.nan
    n = next((n for n in (1, 2) if not math.isnan(_grid_mdd(plan, k, n))), None)
    if n is None:
        return math.nan
    if _grid_mdd(plan, k, n) <= effect:
        return float(n)
    lo, hi = n, n * 2
    while _grid_mdd(plan, k, hi) > effect:  # MDD falls with the seeds
        lo, hi = hi, hi * 2
        if lo > max_seeds:
            return math.inf
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _grid_mdd(plan, k, mid) <= effect else (mid, hi)
    return float(hi) if hi <= max_seeds else math.inf


# --- adaptive designs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdaptiveCost:
    """Seeds an adaptive design is expected to spend per variant: mean and 90th percentile."""

    design: str  # adaptive.GROUP_SEQUENTIAL | adaptive.STEIN
    settings: dict[str, Any]
    effect: float  # the true difference assumed for every comparison (points)
    expected: dict[str, float]  # variant slug -> mean seeds
    p90: dict[str, float]
    baseline_expected: float  # the baseline gets the most any comparison uses
    baseline_p90: float
    method: str  # how it was computed

    @property
    def expected_cells(self) -> float:
        return self.baseline_expected + sum(self.expected.values())

    def record(self) -> dict[str, Any]:
        return {**self.__dict__, "expected_cells": self.expected_cells}


def paired_sds(noise: Noise, variants: Sequence[str]) -> list[float]:
    return [_paired_sd(noise, v)[0] for v in variants]


def until_decided_cost(
    variants: Sequence[str],
    sds: Sequence[float],
    effect: float,
    looks: tuple[int, ...],
    sims: int = SIMULATED_STUDIES,
    seed: int = SIMULATION_SEED,
) -> AdaptiveCost:
    """``--until-decided``: whole studies simulated through the runner's rules, every comparison at
    ``effect`` (points) with its own sd of paired differences."""
    m = len(variants)
    if m == 0:
        return AdaptiveCost(
            adaptive.GROUP_SEQUENTIAL, {"looks": list(looks)}, effect, {}, {}, 0.0, 0.0, "nothing to compare"
        )
    design = adaptive.SequentialDesign(looks=tuple(looks), m=m)
    rng = np.random.default_rng(seed)
    sd = np.asarray(sds, dtype=float)
    # A variant is the baseline plus its effect plus its own noise: the baseline's share is the same
    # for every comparison (half the smallest variance), each variant's own share makes up its sd.
    base_sd = math.sqrt(float(np.min(sd**2)) / 2.0)
    own_sd = np.sqrt(np.maximum(sd**2 - base_sd**2, 0.0))
    base = rng.standard_normal((sims, 1, design.max_seeds)) * base_sd
    mine = rng.standard_normal((sims, m, design.max_seeds)) * own_sd[None, :, None] + effect
    result = adaptive.run_sequential(mine - base, design)
    used = result["seeds"].astype(float)  # (sims, m)
    baseline = used.max(axis=1)
    return AdaptiveCost(
        design=adaptive.GROUP_SEQUENTIAL,
        settings={"looks": list(looks), "max_seeds": design.max_seeds, "comparisons": m, "studies": sims, "seed": seed},
        effect=effect,
        expected={v: float(used[:, i].mean()) for i, v in enumerate(variants)},
        p90={v: float(np.percentile(used[:, i], PERCENTILE)) for i, v in enumerate(variants)},
        baseline_expected=float(baseline.mean()),
        baseline_p90=float(np.percentile(baseline, PERCENTILE)),
        method=f"{sims:,} simulated studies (seed {seed}) through ablate.analysis.adaptive.run_sequential",
    )


def stein_distribution(sd: float, precision: float, pilot: int, max_seeds: int) -> np.ndarray:
    """``P(N = k)`` for ``k = 0..max_seeds`` under Stein's rule (closed form, module docstring)."""
    k = np.arange(max_seeds + 1)
    tq = float(sps.t.ppf(0.5 + adaptive.CONFIDENCE / 2.0, max(pilot - 1, 1)))
    if pilot < 2 or not (sd > 0):
        cdf = (k >= max_seeds).astype(float)
    else:
        scale = (pilot - 1) * precision**2 / (tq**2 * sd**2)
        cdf = sps.chi2.cdf(k * scale, pilot - 1)  # P(ceil(c s0^2) <= k) = P(c s0^2 <= k)
        cdf = np.where(k < pilot, 0.0, np.where(k >= max_seeds, 1.0, cdf))
    return np.diff(np.concatenate([[0.0], cdf]))


def until_precise_cost(
    variants: Sequence[str], sds: Sequence[float], precision: float, pilot: int, max_seeds: int
) -> AdaptiveCost:
    """``--until-precise P`` (Stein): each variant's seed count in closed form; the baseline's is the
    largest of them, here by simulating the independent pilot sds (it does not depend on the effect)."""
    expected, p90, dists = {}, {}, []
    k = np.arange(max_seeds + 1)
    for v, sd in zip(variants, sds):
        p = stein_distribution(sd, precision, pilot, max_seeds)
        dists.append(p)
        expected[v] = float(p @ k)
        p90[v] = float(k[np.searchsorted(np.cumsum(p), PERCENTILE / 100.0 - 1e-12)])
    # The maximum of independent counts: P(max <= k) = prod P(N_i <= k) (pilot sds treated as independent).
    if dists:
        cdf_max = np.prod([np.cumsum(p) for p in dists], axis=0)
        p_max = np.diff(np.concatenate([[0.0], cdf_max]))
        base_e = float(p_max @ k)
        base_90 = float(k[np.searchsorted(cdf_max, PERCENTILE / 100.0 - 1e-12)])
    else:
        base_e = base_90 = float(pilot)
    return AdaptiveCost(
        design=adaptive.STEIN,
        settings={"precision": precision, "pilot": pilot, "max_seeds": max_seeds},
        effect=math.nan,
        expected=expected,
        p90=p90,
        baseline_expected=base_e,
        baseline_p90=base_90,
        method="closed form: s0^2 ~ sd^2 chi2(n0-1)/(n0-1) (the baseline: pilot sds taken as independent)",
    )


# --- the whole plan ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Detection:
    """What the planned study can detect, and what the adaptive designs would spend."""

    analysis: str
    model: str  # one sentence: the model and its error model
    seeds: int
    runs: int
    effect: float
    effect_source: str
    noise: Noise
    comparisons: list[Comparison]
    adaptive: list[AdaptiveCost]
    notes: list[str] = field(default_factory=list)

    def main(self) -> list[Comparison]:
        """The comparisons the design is built to answer: main effects, or variants against the baseline."""
        return [c for c in self.comparisons if c.kind != "interaction"]

    def record(self) -> dict[str, Any]:
        return {
            "metric": METRIC,
            "analysis": self.analysis,
            "model": self.model,
            "seeds": self.seeds,
            "runs": self.runs,
            "effect": self.effect,
            "effect_source": self.effect_source,
            "power": stats.POWER,
            "alpha": stats.ALPHA,
            "noise": self.noise.record(),
            "comparisons": [c.record() for c in self.comparisons],
            "adaptive": [a.record() for a in self.adaptive],
            "notes": list(self.notes),
        }


def check_effect(points: float) -> None:
    if not (math.isfinite(points) and 0 < points < 100):
        raise PlanError(f"--effect {points:g}: expected percentage points between 0 and 100 (not 0), e.g. --effect 0.5")


def plan_detection(
    exp: Experiment,
    noise: Noise,
    effect: float | None = None,
    *,
    looks: tuple[int, ...] | None = None,
    stein: tuple[float | None, int, int] | None = None,
    sims: int = SIMULATED_STUDIES,
) -> Detection:
    """The statistics of a plan for ``exp`` as it would run now (its seeds, its design).

    ``looks``: the looks ``--until-decided`` would take (None: the experiment lists fewer than 3
    seeds, the design is left out with a note); ``stein``: ``(precision, pilot, max_seeds)`` of
    ``--until-precise`` (precision None: the effect)."""
    if effect is not None:
        check_effect(effect)
    check_noise(noise, exp)
    size = float(effect) if effect is not None else DEFAULT_EFFECT
    source = f"--effect {effect:g}" if effect is not None else f"default: {DEFAULT_EFFECT:g} point (give --effect)"
    analysis = experiment_analysis(exp)
    seeds = len(exp.seeds)
    variants = [v.slug() for v in exp.variants()]
    others = [v for v in variants if v != exp.baseline.slug()]
    runs = len(variants) * seeds
    notes = []
    if analysis == FACTORIAL:
        comparisons = plan_factorial(noise, exp, seeds, size)
        model = (
            f"one linear model over all {runs} runs (seed block, main effects, two-way interactions; HC2 errors, "
            "Bell–McCaffrey df; Holm within main effects and within interactions): hidden replication, every "
            f"main effect uses all {runs} runs"
        )
    else:
        comparisons = plan_paired(noise, others, seeds, size)
        model = f"paired t of each variant against the baseline over {seeds} seeds (Holm over {len(others)})"
        if seeds < 2:
            notes.append(f"{seeds} seed: a paired t needs at least 2; nothing can be tested")
    sds = paired_sds(noise, others)
    costs = []
    if others and looks is not None:
        costs.append(until_decided_cost(others, sds, size, looks, sims))
        costs.append(until_decided_cost(others, sds, 0.0, looks, sims))
    elif others:
        notes.append(f"--until-decided needs at least 3 seeds for its first look (the experiment lists {seeds})")
    if others and stein is not None:
        precision, pilot, max_seeds = stein
        costs.append(until_precise_cost(others, sds, precision if precision is not None else size, pilot, max_seeds))
    if noise.thin:
        notes.append(
            f"the noise comes from {noise.seeds} seed(s), too few to pin it down: MDDs are given as the range of "
            "the sd's 95% chi-square interval"
        )
    return Detection(analysis, model, seeds, runs, size, source, noise, comparisons, costs, notes)


# --- the plan against what happened ------------------------------------------------------------------
@dataclass(frozen=True)
class PlanCheck:
    """``plan.json`` against the finished runs: cell time predicted and measured, MDD planned and achieved."""

    created: str
    cells: int  # finished cells timed from the events
    predicted_s: float  # the plan's seconds for those cells (and each process's data load)
    measured_s: float
    planned_mdd: list[float]
    achieved_mdd: list[float]

    @property
    def time_error(self) -> float:
        return (self.predicted_s - self.measured_s) / self.measured_s if self.measured_s > 0 else math.nan


def cell_seconds(events: list[dict[str, Any]]) -> tuple[dict[str, float], int]:
    """Seconds each run id's training took, from ``events.jsonl``: every ``start`` to the next
    ``finish`` (or stop) of the same run in the same process; and how many processes loaded data
    (distinct processes that started a cell)."""
    open_at: dict[tuple[Any, Any], float] = {}
    spent: dict[str, float] = {}
    finished: set[str] = set()
    pids = set()
    for e in events:
        key, t = (e.get("run_id"), e.get("pid")), e.get("time")
        if not isinstance(t, (int, float)):
            continue
        if e.get("event") == "start":
            open_at[key] = float(t)
            pids.add((e.get("host"), e.get("pid")))
        elif e.get("event") in ("finish", "interrupted", "lost-claim") and key in open_at:
            spent[str(key[0])] = spent.get(str(key[0]), 0.0) + float(t) - open_at.pop(key)
            if e.get("event") == "finish":
                finished.add(str(key[0]))
    return {k: v for k, v in spent.items() if k in finished}, len(pids)


def check_plan(
    plan: dict[str, Any], data: ExperimentData, events: list[dict[str, Any]], mdd: dict[str, float]
) -> PlanCheck | None:
    """Compare ``plan`` (a ``plan.json``) with the runs of ``data`` and their events; ``mdd``: the
    achieved MDD (points) of each comparison the report tested, by the plan's names (variant slug,
    or ``axis=level`` for a main effect). None when the plan says nothing about these runs."""
    per_variant = ((plan.get("time") or {}).get("per_variant")) or {}
    probe = (plan.get("time") or {}).get("probe") or {}
    spent, processes = cell_seconds(events)
    slug_of = dict(zip(data.runs["run_id"], data.runs["variant"]))
    timed = {rid: s for rid, s in spent.items() if rid in slug_of and slug_of[rid] in per_variant}
    if not timed:
        return None
    loads = sum(float(d.get("seconds") or 0.0) for d in (probe.get("data") or {}).values())
    predicted = sum(float(per_variant[slug_of[rid]]["seconds"]) for rid in timed) + processes * loads
    planned = {c["name"]: c.get("mdd") for c in (plan.get("detect") or {}).get("comparisons", [])}
    pairs = [
        (float(planned[k]), float(v))
        for k, v in mdd.items()
        if isinstance(planned.get(k), (int, float)) and math.isfinite(v)
    ]
    return PlanCheck(
        created=str(plan.get("created", "")),
        cells=len(timed),
        predicted_s=predicted,
        measured_s=float(sum(timed.values())),
        planned_mdd=[p for p, _ in pairs],
        achieved_mdd=[a for _, a in pairs],
    )


def achieved_mdd(comparisons: pd.DataFrame, effects: pd.DataFrame) -> dict[str, float]:
    """The MDD (points) the report states for each comparison on the plan's metric, by the plan's
    names: a grid's main effects (``axis=level``), else each variant against the baseline."""
    if not effects.empty:
        main = effects[(effects["metric"] == METRIC) & (effects["kind"] == "main")]
        if not main.empty:
            return {f"{a}={lv}": 100.0 * float(m) for a, lv, m in zip(main["axes"], main["level"], main["mdd"])}
    mine = comparisons[comparisons["metric"] == METRIC] if not comparisons.empty else comparisons
    return {str(v): 100.0 * float(m) for v, m in zip(mine.get("variant", []), mine.get("mdd", []))}
