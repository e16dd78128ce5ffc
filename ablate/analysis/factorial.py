"""Grid designs analysed by one linear model: every run informs every main effect and interaction.

A full factorial's strength is hidden replication: the main effect of one axis is estimated from
every run of the grid, not from a handful of per-seed means. :func:`fit_grid` fits, with
statsmodels' formula API for the design,

    y ~ C(seed) + (C(axis_1) + ... + C(axis_k)) ** 2

to the ok runs of one metric (seed as a block, all main effects and all two-way interactions; the
three-way and higher interactions are left in the residual, which is what gives the model its
residual degrees of freedom).

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

Error model: **HC2 standard errors with Bell–McCaffrey degrees of freedom**, per contrast (Bell &
McCaffrey 2002; Imbens & Kolesár 2016, "Robust Standard Errors in Small Samples: Some Practical
Advice"). A contrast's estimate is ``a'y`` with weights ``a = X^+' L`` on the runs; with ``h`` the
diagonal of the hat matrix ``H = X X^+``, ``e`` the residuals and ``M = I - H``:

* ``se^2 = sum_i a_i^2 e_i^2 / (1 - h_i)``: robust to cells that differ in spread (cells at chance
  have none while others vary by points), and unbiased when they do not, where it equals the
  classical OLS variance in a balanced design. HC3 (divide by ``(1 - h)^2``) doubles the variance
  of a balanced 2x2 with 3 seeds (h = 0.5) and cost most of a small grid's power.
* ``df = (sum_i a_i^2)^2 / sum_ij (w_i w_j M_ij)^2`` with ``w_i = a_i / sqrt(1 - h_i)``: the
  Satterthwaite degrees of freedom of ``se^2`` under equal spreads, ``(sum l)^2 / sum l^2`` over
  the eigenvalues ``l`` of ``diag(w) M diag(w)`` written without the eigendecomposition. It equals
  the residual degrees of freedom where the weights are equal in size (balanced two-level
  contrasts) and is smaller where few runs carry the contrast. Its reference is equal spreads,
  except for cells whose runs are all identical (runs stuck at chance repeat the same accuracy):
  those visibly have no spread, and the reference gives them none (a working covariance, as in
  Pustejovsky & Tipton 2018), which lowers the df instead of counting their runs as information
  about the noise.

Intervals and tests use the same se and df. Where a run has leverage 1, HC2 is undefined
(``1 - h = 0``): the model then falls back to HC1 on the residual degrees of freedom and says so.

Two families for Holm (:func:`ablate.analysis.stats.holm`, equal to statsmodels'
``multipletests(method="holm")``): the main effects, the questions a grid is built to answer, are
the primary family; the two-way interactions are a secondary family with their own Holm. Both are
reported; neither dilutes the other (Montgomery, *Design and Analysis of Experiments*, and the
usual practice for designed experiments: main effects first, interactions as secondary questions).
The simultaneous (Bonferroni) intervals are per family too. The model states what it checked: the
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

from ablate.analysis import stats

ROBUST = "HC2"
FALLBACK = "HC1"  # where a run has leverage 1 (HC2 divides by 1 - h): only with heavy missingness
FAMILIES = ("main", "interaction")  # Holm runs within each: main effects first, interactions second


@dataclass(frozen=True)
class EffectContrast:
    """One tested contrast of the grid's cell means."""

    kind: str  # "main" | "interaction"
    axes: str  # "norm" or "activation x norm"
    level: str
    reference: str
    vector: np.ndarray  # weights on the model's parameters


@dataclass(frozen=True)
class ErrorModel:
    """What the design matrix alone fixes of each contrast's test: built once per design, then
    shared by every response fitted on it (the report's runs, or thousands of simulated ones)."""

    pinv: np.ndarray  # X^+, parameters x runs
    leverage: np.ndarray  # h: the diagonal of the hat matrix X X^+, one per run
    residual_maker: np.ndarray  # M = I - X X^+, runs x runs
    weights: np.ndarray  # a: contrasts x runs, each estimate as a weighted sum of the runs (NaN rows: not estimable)
    df: np.ndarray  # Bell–McCaffrey degrees of freedom per contrast (the residual df under the fallback)
    resid_df: float  # runs - rank
    cov_type: str  # ROBUST, or FALLBACK where a run has leverage 1

    def df_without_spread(self, quiet: np.ndarray) -> np.ndarray:
        """Bell–McCaffrey degrees of freedom when the runs in ``quiet`` (a mask) have no spread.

        Bell–McCaffrey's reference is equal spreads. A cell whose runs are all identical (runs
        stuck at chance repeat the same accuracy) visibly has none, and counting it as if it had
        overstates the degrees of freedom: the reference then gives those runs zero variance (a
        working covariance, as in Pustejovsky & Tipton 2018), which keeps only their rows of M.
        """
        keep = ~np.asarray(quiet, dtype=bool)
        if keep.all() or self.cov_type != ROBUST:
            return self.df
        rows = self.residual_maker[keep]
        return _bell_mccaffrey(self.weights, self.leverage, rows.T @ rows, self.resid_df)


def _bell_mccaffrey(weights: np.ndarray, leverage: np.ndarray, gram: np.ndarray, resid_df: float) -> np.ndarray:
    """``(sum l)^2 / sum l^2`` over the eigenvalues ``l`` of ``diag(w) S diag(w)`` for each row of
    ``weights`` (``w = a / sqrt(1 - h)``), without an eigendecomposition: ``sum l = sum_i w_i^2 S_ii``
    and ``sum l^2 = sum_ij w_i^2 w_j^2 S_ij^2``. ``gram`` is ``S = M_K' M_K``, the residual maker's
    rows K of the runs with spread (all runs: ``S = M``, as ``M' M = M``)."""
    w2 = np.nan_to_num(weights) ** 2 / (1.0 - leverage)
    total = w2 @ np.diag(gram)
    squares = np.einsum("kn,kn->k", w2 @ (gram * gram), w2)
    positive = squares > 0
    df = np.where(positive, total**2 / np.where(positive, squares, 1.0), resid_df)
    # min: rounding can push the ratio a hair above its bound, the residual df
    return np.where(np.isfinite(weights).all(axis=1), np.minimum(df, resid_df), np.nan)


def error_model(exog: np.ndarray, vectors: Sequence[np.ndarray], estimable: np.ndarray) -> ErrorModel:
    """HC2 weights and Bell–McCaffrey degrees of freedom of each contrast ``vectors[k]`` (weights on
    the columns of ``exog``); see the module docstring for the formulas."""
    X = np.asarray(exog, dtype=float)
    n = X.shape[0]
    k = len(vectors)
    if X.size == 0:
        empty = np.full(k, math.nan)
        return ErrorModel(
            np.zeros((0, 0)), np.zeros(0), np.zeros((0, 0)), np.full((k, n), math.nan), empty, 0.0, ROBUST
        )
    pinv = np.linalg.pinv(X)
    residual_maker = np.eye(n) - X @ pinv
    leverage = np.clip(1.0 - np.diag(residual_maker), 0.0, 1.0)
    resid_df = float(n - np.linalg.matrix_rank(X))
    weights = np.full((k, n), math.nan)
    for i, (vec, ok) in enumerate(zip(vectors, estimable)):
        if ok:
            weights[i] = vec @ pinv
    cov_type = ROBUST if np.all(leverage < 1 - 1e-8) else FALLBACK
    df = np.full(k, math.nan)
    if resid_df >= 1 and cov_type == ROBUST:
        df = _bell_mccaffrey(weights, leverage, residual_maker, resid_df)
    elif resid_df >= 1:
        df[np.asarray(estimable, dtype=bool)] = resid_df
    return ErrorModel(pinv, leverage, residual_maker, weights, df, resid_df, cov_type)


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
    levels_missing: list[str] = field(default_factory=list)  # "axis=level" without any run
    cell: np.ndarray | None = None  # the grid cell of each run (an index), for cells without spread
    errors: ErrorModel | None = None  # what the design alone fixes of the error model (built on demand)

    def error_model(self) -> ErrorModel:
        if self.errors is None:
            self.errors = error_model(self.exog, [c.vector for c in self.contrasts], self.estimable)
        return self.errors


@dataclass
class GridFit:
    """Tested contrasts of one fitted model, with what the model checked."""

    table: pd.DataFrame  # one row per contrast: estimate, se, t, df, p, ci, p_holm (within its family), sim interval
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
    cell = pd.factorize(frame[[_column(i) for i in range(len(axes))]].astype(str).agg("-".join, axis=1))[0]
    return GridDesign(
        formula, frame, exog, list(both.exog_names), contrasts, estimable, len(cells), len(used), levels_missing, cell
    )


def fit_design(design: GridDesign, y: np.ndarray | None = None, *, alpha: float = stats.ALPHA) -> GridFit:
    """Least squares on ``design`` (its own response, or ``y``), every estimable contrast tested
    with HC2 errors on its Bell–McCaffrey degrees of freedom, Holm within each family."""
    from statsmodels.stats.diagnostic import het_breuschpagan

    y = design.frame["y"].to_numpy(dtype=float) if y is None else np.asarray(y, dtype=float)
    X = design.exog
    errors = design.error_model()
    n, resid_df, k = X.shape[0], errors.resid_df, len(design.contrasts)
    estimable = design.estimable.copy() if resid_df >= 1 else np.zeros(k, dtype=bool)
    estimates, ses = np.full(k, np.nan), np.full(k, np.nan)
    resid_sd, het_p = math.nan, math.nan
    if resid_df >= 1:
        resid = y - X @ (errors.pinv @ y)
        ssr = float(resid @ resid)
        resid_sd = math.sqrt(max(ssr, 0.0) / resid_df)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                het_p = float(het_breuschpagan(resid, X)[1]) if ssr > 0 else math.nan
            except (ValueError, np.linalg.LinAlgError):
                het_p = math.nan
        weights = errors.weights[estimable]
        estimates[estimable] = weights @ y
        if errors.cov_type == ROBUST:
            variances = weights**2 @ (resid**2 / (1.0 - errors.leverage))
        else:  # HC1: the plain sandwich scaled by n / (n - rank)
            variances = weights**2 @ resid**2 * n / resid_df
        ses[estimable] = np.sqrt(np.maximum(variances, 0.0))
        if ssr <= 1e-24 * max(1.0, float(y @ y)):  # an exact fit: no spread, only rounding noise
            ses[estimable] = 0.0
    df = np.where(estimable, errors.df_without_spread(quiet_runs(design.cell, y)), resid_df)
    tested = estimable & (ses > 0)
    t = np.where(tested, estimates / np.where(tested, ses, 1.0), np.nan)
    p = np.where(tested, stats.t_sf_two_sided_array(t, df), np.nan)
    half = stats.t_ppf_array(1 - alpha / 2, np.where(tested, df, np.nan)) * ses
    # An exactly fitted contrast has no spread to test with: its interval is the estimate itself.
    low = np.where(tested, estimates - half, np.where(estimable, estimates, np.nan))
    high = np.where(tested, estimates + half, np.where(estimable, estimates, np.nan))
    kind = np.array([c.kind for c in design.contrasts], dtype=object)
    p_holm, m, level, wide = np.full(k, np.nan), np.zeros(k, dtype=int), np.full(k, np.nan), np.full(k, np.nan)
    for family in FAMILIES:
        mine = kind == family
        if not mine.any():
            continue
        # stats.holm equals statsmodels' multipletests(method="holm") (a test holds them equal); it
        # is used because multipletests runs gc.collect() on every call (0.2 s with torch loaded),
        # which the thousands of simulated fits in the simulations cannot afford.
        p_holm[mine] = stats.holm(p[mine].tolist())
        m[mine] = int(tested[mine].sum())
        level[mine] = stats.simultaneous_confidence(int(tested[mine].sum()))
        wide[mine] = stats.t_ppf_array(0.5 + level[mine][0] / 2, np.where(tested[mine], df[mine], np.nan))
    wide[estimable & ~tested] = 0.0  # an exactly fitted contrast: the interval is the estimate itself
    table = pd.DataFrame(
        {
            "kind": kind.tolist(),
            "axes": [c.axes for c in design.contrasts],
            "level": [c.level for c in design.contrasts],
            "reference": [c.reference for c in design.contrasts],
            "estimate": estimates,
            "se": ses,
            "ci_low": low,
            "ci_high": high,
            "t": t,
            "df": df.astype(float),
            "p": p,
            "estimable": estimable,
            "p_holm": p_holm,
            "m": m,
            "sim_level": level,
            "sim_low": estimates - wide * ses,
            "sim_high": estimates + wide * ses,
        }
    )
    return GridFit(
        table,
        resid_df,
        resid_sd,
        het_p,
        errors.cov_type,
        n,
        design.cells_used,
        design.cells_total,
        design.levels_missing,
    )


def quiet_runs(cell: np.ndarray | None, y: np.ndarray) -> np.ndarray:
    """The runs of cells that have two or more runs, all with the same value."""
    if cell is None or cell.size == 0:
        return np.zeros(y.shape, dtype=bool)
    cells = int(cell.max()) + 1
    low, high = np.full(cells, np.inf), np.full(cells, -np.inf)
    np.minimum.at(low, cell, y)
    np.maximum.at(high, cell, y)
    quiet = (high - low <= 1e-12 * max(1.0, float(np.abs(y).max()))) & (np.bincount(cell, minlength=cells) >= 2)
    return quiet[cell]


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
