"""Grid designs analysed by one linear model: every run informs every main effect and interaction.

A full factorial's strength is hidden replication: the main effect of one axis is estimated from
every run of the grid, not from a handful of per-seed means. :func:`fit_grid` fits, with
statsmodels' formula API,

    y ~ C(seed) + (C(axis_1) + ... + C(axis_k)) ** 2

to the ok runs of one metric (seed as a block, all main effects and all two-way interactions; the
three-way and higher interactions are left in the residual, which is what gives the model its
residual degrees of freedom), with **HC3 heteroscedasticity-robust standard errors** (cells at
chance have zero spread while others vary by points, so a pooled variance would be wrong) and
t tests on the residual degrees of freedom.

Each effect is a contrast of the model's cell means, averaged over the whole grid:

* main effect of ``axis = level``: the mean over every combination of the other axes of
  ``mu(level, others) - mu(reference, others)``;
* interaction of ``A = a`` with ``B = b``: the mean over the remaining axes of
  ``mu(a, b) - mu(a0, b) - mu(a, b0) + mu(a0, b0)``.

With every cell present these equal the raw marginal mean differences (the model contains every
main effect and two-way term, so its fitted margins are the data's margins); with cells missing
they are the least-squares means of the grid, and a contrast that the remaining cells cannot
identify is reported as not estimable instead of being guessed. A level without any ok run is
left out of the averages of the other axes' effects (the note says so).

Holm (:func:`ablate.stats.holm`, equal to statsmodels' ``multipletests(method="holm")``) runs over
the family of one metric's main effects and interactions. The model states what it checked: the
residual degrees of freedom, a Breusch–Pagan test of unequal variances (residuals against the
model's terms), which covariance was used, and the runs and cells that went in.

Numbers only: nothing here prints or reads files.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ablate import stats

ROBUST = "HC3"
FALLBACK = "HC1"  # where an observation has leverage 1 (HC3 divides by 1 - h): only with heavy missingness


@dataclass(frozen=True)
class EffectContrast:
    """One tested contrast of the grid's cell means."""

    kind: str  # "main" | "interaction"
    axes: str  # "norm" or "activation x norm"
    level: str
    reference: str
    vector: np.ndarray  # weights on the model's parameters


@dataclass
class GridDesign:
    """The model's design for one set of runs: formula, design matrix and the contrasts to test.

    Built once per metric by :func:`grid_design`; :func:`fit_design` then fits any response on it
    (the report fits the runs, the simulations in the tests fit thousands of simulated responses
    through the same code)."""

    formula: str
    frame: pd.DataFrame  # one row per run used: seed, the axis columns, y
    exog: np.ndarray
    exog_names: list[str]
    contrasts: list[EffectContrast]
    estimable: np.ndarray  # bool per contrast
    cells_total: int
    cells_used: int
    model: Any = None  # the statsmodels formula model of the runs
    levels_missing: list[str] = field(default_factory=list)  # "axis=level" without any run


@dataclass
class GridFit:
    """Tested contrasts of one fitted model, with what the model checked."""

    table: pd.DataFrame  # one row per contrast: estimate, se, t, df, p, ci, p_holm, sim interval
    resid_df: float
    resid_sd: float
    het_p: float  # Breusch–Pagan p-value (NaN where it cannot be computed)
    cov_type: str
    n_runs: int
    cells_used: int
    cells_total: int
    levels_missing: list[str] = field(default_factory=list)


def _column(i: int) -> str:
    return f"a{i}"


def grid_design(
    runs: pd.DataFrame,
    grid: dict[str, list[Any]],
    reference: dict[str, Any],
    value: str = "y",
) -> GridDesign:
    """The design for the runs in ``runs`` (columns ``seed``, one per axis of ``grid`` holding the
    level, and ``value``); ``reference``: each axis' reference level. Levels are compared by their
    ``repr`` so that ``True`` and ``"True"`` stay apart."""
    import statsmodels.formula.api as smf

    axes = list(grid)
    codes = {a: {repr(level): f"L{j}" for j, level in enumerate(grid[a])} for a in axes}
    frame = pd.DataFrame({"seed": [f"s{int(s)}" for s in runs["seed"]]})
    for i, a in enumerate(axes):
        frame[_column(i)] = [codes[a][repr(x)] for x in runs[a]]
    frame["y"] = runs[value].to_numpy(dtype=float)
    terms = [f"C({_column(i)}, Treatment('{codes[a][repr(reference[a])]}'))" for i, a in enumerate(axes)]
    seed_term = "C(seed) + " if frame["seed"].nunique() > 1 else ""
    formula = f"y ~ {seed_term}({' + '.join(terms)})" + (" ** 2" if len(axes) > 1 else "")
    # Every cell of the grid at one seed level (the seed block cancels in every contrast), encoded by
    # the same formula together with the runs, so that both share one set of columns even when a
    # level has no ok run (its column is then zero in the runs' rows: not estimable, see below).
    cells = list(itertools.product(*(grid[a] for a in axes)))
    cell_frame = pd.DataFrame({"seed": [frame["seed"].iloc[0]] * len(cells)})
    for i, a in enumerate(axes):
        cell_frame[_column(i)] = [codes[a][repr(c[i])] for c in cells]
    cell_frame["y"] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank deficiency with missing cells: estimability is checked below
        both = smf.ols(formula, pd.concat([frame, cell_frame], ignore_index=True))
        model = smf.ols(formula, frame) if len(frame) else None
    exog_all = np.asarray(both.exog, dtype=float)
    exog, x_cells = exog_all[: len(frame)], exog_all[len(frame) :]

    # A level without any ok run cannot be averaged over: effects of the other axes are averaged
    # over the levels that have runs (and say so), effects of that level are not estimable.
    seen = {a: {repr(x) for x in runs[a]} for a in axes}
    observed = [all(repr(c[i]) in seen[a] for i, a in enumerate(axes)) for c in cells]

    def rows(**fixed: Any) -> np.ndarray:
        keep = [obs or any(repr(c[axes.index(a)]) not in seen[a] for a in fixed) for c, obs in zip(cells, observed)]
        keep = [k and all(repr(c[axes.index(a)]) == repr(v) for a, v in fixed.items()) for c, k in zip(cells, keep)]
        return x_cells[np.asarray(keep)].mean(axis=0) if any(keep) else np.full(x_cells.shape[1], np.nan)

    contrasts: list[EffectContrast] = []
    for a in axes:
        ref = reference[a]
        for level in grid[a]:
            if repr(level) != repr(ref):
                contrasts.append(EffectContrast("main", a, str(level), str(ref), rows(**{a: level}) - rows(**{a: ref})))
    for a, b in itertools.combinations(axes, 2):
        a0, b0 = reference[a], reference[b]
        for la in grid[a]:
            for lb in grid[b]:
                if repr(la) == repr(a0) or repr(lb) == repr(b0):
                    continue
                vec = rows(**{a: la, b: lb}) - rows(**{a: a0, b: lb}) - rows(**{a: la, b: b0}) + rows(**{a: a0, b: b0})
                contrasts.append(EffectContrast("interaction", f"{a} x {b}", f"{la} x {lb}", f"{a0} x {b0}", vec))

    # A contrast is estimable when it lies in the row space of the design (L = L X^+ X).
    projector = np.linalg.pinv(exog) @ exog if exog.size else np.zeros((x_cells.shape[1],) * 2)
    estimable = np.array(
        [
            bool(np.all(np.isfinite(c.vector)))
            and np.linalg.norm(c.vector - c.vector @ projector) <= 1e-8 * max(1.0, np.linalg.norm(c.vector))
            for c in contrasts
        ],
        dtype=bool,
    )
    levels_missing = [f"{a}={level}" for a in axes for level in grid[a] if repr(level) not in seen[a]]
    used = {tuple(frame.loc[i, _column(j)] for j in range(len(axes))) for i in frame.index}
    return GridDesign(
        formula, frame, exog, list(both.exog_names), contrasts, estimable, len(cells), len(used), model, levels_missing
    )


def fit_design(design: GridDesign, y: np.ndarray | None = None, *, alpha: float = stats.ALPHA) -> GridFit:
    """OLS with HC3 errors on ``design`` (its own response, or ``y``), every contrast tested,
    Holm over the family."""
    import statsmodels.api as sm
    from statsmodels.stats.diagnostic import het_breuschpagan
    from statsmodels.tools.sm_exceptions import SingularMatrixWarning

    y = design.frame["y"].to_numpy(dtype=float) if y is None else np.asarray(y, dtype=float)
    X = design.exog
    n, rank = X.shape[0], int(np.linalg.matrix_rank(X)) if X.size else 0
    resid_df = float(n - rank)
    rows: list[dict[str, Any]] = []
    cov_type, resid_sd, het_p = ROBUST, math.nan, math.nan
    if resid_df >= 1:
        ols = sm.OLS(y, X)
        # A grid with missing cells has a rank-deficient design: statsmodels says so in a warning
        # (printed by the CLI), but only the estimable contrasts are tested, each checked above.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularMatrixWarning)
            plain = ols.fit()
            leverage = np.einsum("ij,ji->i", X, np.linalg.pinv(X))  # diagonal of the hat matrix
            cov_type = ROBUST if np.all(leverage < 1 - 1e-8) else FALLBACK
            res = ols.fit(cov_type=cov_type, use_t=True)
        resid_sd = float(math.sqrt(max(plain.ssr, 0.0) / resid_df))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                het_p = float(het_breuschpagan(plain.resid, X)[1]) if plain.ssr > 0 else math.nan
            except (ValueError, np.linalg.LinAlgError):
                het_p = math.nan
        tq = stats.t_ppf(1 - alpha / 2, resid_df)
        estimates, ses = np.full(len(design.contrasts), np.nan), np.full(len(design.contrasts), np.nan)
        if design.estimable.any():
            test = res.t_test(np.vstack([c.vector for c in design.contrasts])[design.estimable])
            estimates[design.estimable] = np.ravel(test.effect)
            ses[design.estimable] = np.ravel(test.sd)
        if plain.ssr <= 1e-24 * max(1.0, float(y @ y)):  # an exact fit: no spread, only rounding noise
            ses[design.estimable] = 0.0
        for c, ok, est, se in zip(design.contrasts, design.estimable, estimates, ses):
            rows.append(_row(c, float(est), float(se), resid_df, tq, bool(ok)))
    else:
        rows = [_row(c, math.nan, math.nan, resid_df, math.nan, False) for c in design.contrasts]
    table = pd.DataFrame(rows)
    p = table["p"].to_numpy(dtype=float) if not table.empty else np.array([])
    tested = ~np.isnan(p)
    # stats.holm equals statsmodels' multipletests(method="holm") (a test holds them equal); it is
    # used because multipletests runs gc.collect() on every call (0.2 s with torch loaded), which
    # the thousands of simulated fits in the tests cannot afford.
    p_holm = np.asarray(stats.holm(p.tolist()), dtype=float)
    m = int(tested.sum())
    level = stats.simultaneous_confidence(m)
    wide = stats.t_ppf(0.5 + level / 2, resid_df) if resid_df >= 1 else math.nan
    if not table.empty:
        table["p_holm"] = p_holm
        table["m"] = m
        table["sim_level"] = level
        table["sim_low"] = table["estimate"] - wide * table["se"]
        table["sim_high"] = table["estimate"] + wide * table["se"]
    return GridFit(
        table, resid_df, resid_sd, het_p, cov_type, n, design.cells_used, design.cells_total, design.levels_missing
    )


def _row(c: EffectContrast, est: float, se: float, df: float, tq: float, estimable: bool) -> dict[str, Any]:
    if not estimable or not math.isfinite(se):
        t = p = low = high = math.nan
    elif se == 0.0:  # an exactly fitted contrast: no spread to test with
        t, p, low, high = math.nan, math.nan, est, est
    else:
        t = est / se
        p = stats.t_sf_two_sided(t, df)
        low, high = est - tq * se, est + tq * se
    return {
        "kind": c.kind,
        "axes": c.axes,
        "level": c.level,
        "reference": c.reference,
        "estimate": est,
        "se": se,
        "ci_low": low,
        "ci_high": high,
        "t": t,
        "df": df,
        "p": p,
        "estimable": bool(estimable),
    }


def fit_grid(runs: pd.DataFrame, grid: dict[str, list[Any]], reference: dict[str, Any], value: str) -> GridFit:
    """:func:`grid_design` then :func:`fit_design` on the rows of ``runs`` with a finite ``value``."""
    finite = runs[np.isfinite(pd.to_numeric(runs[value], errors="coerce").to_numpy(dtype=float))]
    return fit_design(grid_design(finite, grid, reference, value))


def design_for_simulation(grid: dict[str, Sequence[Any]], seeds: Sequence[int]) -> GridDesign:
    """The design of a complete grid (every cell x every seed), references at each axis' first
    level, with a zero response: for simulations that call :func:`fit_design` with their own y."""
    grid = {a: list(v) for a, v in grid.items()}
    cells = list(itertools.product(*grid.values()))
    runs = pd.DataFrame([{"seed": s, **dict(zip(grid, c)), "y": 0.0} for s in seeds for c in cells])
    return grid_design(runs, grid, {a: v[0] for a, v in grid.items()})
