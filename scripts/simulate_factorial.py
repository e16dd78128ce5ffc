#!/usr/bin/env python3
"""Error rate and power of a grid's verdicts, by simulation: today's error model against the one before.

Each simulated study is fitted by ablate's own code (``ablate.analysis.factorial.fit_design``, the model the
reports use: seed block, main effects and two-way interactions, HC2 errors with Bell–McCaffrey
degrees of freedom, Holm within the main effects and, separately, within the interactions).
Beside it, from the same design and residuals:

* the method before (#16): HC3 errors on the residual degrees of freedom, one Holm family over
  the main effects and the interactions together (the first study is checked against
  statsmodels' own HC3);
* an alternative that was weighed and not taken: HC2 errors with Welch–Satterthwaite degrees of
  freedom from each cell's own spread (``(tr A S)^2 / tr (A S)^2``, ``S`` the cells' estimated
  variances), Holm per family as today. It holds the error rate under unequal spreads better and
  costs power when spreads are equal.

Grids (3 seeds each by default): 2x2 (activation relu/sigmoid x norm none/batchnorm), 2x3 (norm
none/lrn/batchnorm), 2x2x2 (activation x pooling x dropout) and the paper's 36 cells (activation 3
x pooling 2 x norm 3 x dropout 2).

Noise (run-to-run sd 2 points, plus a seed effect shared by the cells, which the seed block takes):

* ``equal``: every cell sd 2;
* ``unequal``: each cell's sd drawn from 1, 2 and 3 points (a ratio of 3);
* ``strong``: each cell's sd drawn from 0.5, 1, 2 and 4 points (a ratio of 8);
* ``zero``: a quarter of the cells (at least one) with no spread at all (variants stuck at chance
  repeat the same accuracy), the others sd 2;
* ``t3``: equal spreads, Student-t noise with 3 degrees of freedom scaled to sd 2 (heavy tails).

Rows:

* null studies (every cell the same mean): the share of studies with any false better/worse
  verdict in the main-effect family and, separately, in the interaction family (family-wise error;
  the rule is at most 5% in each);
* power: +4 points on norm=batchnorm in the 2x2 at sd 2, with activation at -14 points and with
  activation null; +2 points at sd 2 on the 36-cell grid's pooling and norm=batchnorm (as before).

    python scripts/simulate_factorial.py                # 10,000 null studies a row, 2,000 a power row
    python scripts/simulate_factorial.py --sims 500     # quick look
    python scripts/simulate_factorial.py --seeds 4      # the same with 4 seeds per cell
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ablate.analysis import factorial, stats

GRIDS = {
    "2x2": {"activation": ["relu", "sigmoid"], "norm": ["none", "batchnorm"]},
    "2x3": {"activation": ["relu", "sigmoid"], "norm": ["none", "lrn", "batchnorm"]},
    "2x2x2": {"activation": ["relu", "sigmoid"], "pooling": ["overlap", "nonoverlap"], "dropout": [True, False]},
    "36 cells": {
        "activation": ["relu", "tanh", "sigmoid"],
        "pooling": ["overlap", "nonoverlap"],
        "norm": ["none", "lrn", "batchnorm"],
        "dropout": [True, False],
    },
}
NOISES = {
    "equal": "equal spreads (sd 2)",
    "unequal": "spreads differ by cell (sd 1-3)",
    "strong": "spreads differ strongly (sd 0.5-4)",
    "zero": "1/4 of cells at zero spread",
    "t3": "t3 noise (sd 2)",
}
SD = 2.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sims", type=int, default=10_000, help="simulated null studies per row (power rows: a fifth)")
    p.add_argument("--seed", type=int, default=2026, help="generator seed")
    p.add_argument("--seeds", type=int, default=3, help="seeds (runs per cell) of each simulated study")
    return p.parse_args()


@dataclass
class Study:
    """One grid's design and what the simulations need of it."""

    design: factorial.GridDesign
    cell: np.ndarray  # cell index per run
    seed: np.ndarray  # seed index per run
    kind: np.ndarray  # "main" / "interaction" per contrast

    @classmethod
    def of(cls, grid: dict[str, list], seeds: int) -> Study:
        design = factorial.design_for_simulation(grid, list(range(seeds)))
        columns = [f"a{i}" for i in range(len(grid))]
        cell = pd.factorize(design.frame[columns].astype(str).agg("-".join, axis=1))[0]
        seed = pd.factorize(design.frame["seed"])[0]
        kind = np.array([c.kind for c in design.contrasts])
        return cls(design, cell, seed, kind)

    def level(self, axis_index: int, level_index: int) -> np.ndarray:
        return (self.design.frame[f"a{axis_index}"] == f"L{level_index}").to_numpy()

    def contrast(self, axis: str, level: object) -> int:
        return next(
            i
            for i, c in enumerate(self.design.contrasts)
            if c.kind == "main" and c.axes == axis and c.level == str(level)
        )


def noise(study: Study, kind: str, rng: np.random.Generator) -> np.ndarray:
    cells, seeds = study.cell.max() + 1, study.seed.max() + 1
    sd = np.full(cells, SD)
    if kind == "unequal":
        sd = rng.choice([1.0, 2.0, 3.0], size=cells)
    elif kind == "strong":
        sd = rng.choice([0.5, 1.0, 2.0, 4.0], size=cells)
    elif kind == "zero":
        sd[rng.choice(cells, size=max(1, round(cells / 4)), replace=False)] = 0.0
    if kind == "t3":  # t with 3 df has variance 3
        draw = lambda size: rng.standard_t(3, size) / math.sqrt(3.0)  # noqa: E731
    else:
        draw = lambda size: rng.normal(0.0, 1.0, size)  # noqa: E731
    return (draw(seeds)[study.seed] + draw(study.cell.size)) * sd[study.cell]


def old_method(study: Study, y: np.ndarray) -> np.ndarray:
    """p_holm per contrast as ablate computed it before: HC3 on the residual df, one Holm family."""
    errors = study.design.error_model()
    X, ok = study.design.exog, study.design.estimable
    resid = y - X @ (errors.pinv @ y)
    weights = errors.weights[ok]
    se = np.sqrt(weights**2 @ (resid**2 / (1.0 - errors.leverage) ** 2))
    p = np.full(len(ok), np.nan)
    tested = se > 1e-12 * max(1.0, float(np.abs(y).max()))
    p[np.flatnonzero(ok)[tested]] = stats.t_sf_two_sided_array((weights @ y)[tested] / se[tested], errors.resid_df)
    return np.asarray(stats.holm(p.tolist()), dtype=float)


def welch_method(study: Study, y: np.ndarray) -> np.ndarray:
    """p_holm per contrast (Holm per family) with HC2 errors on Welch–Satterthwaite degrees of
    freedom from each cell's own spread: the alternative weighed against Bell–McCaffrey's. The
    degrees of freedom are Bell–McCaffrey's formula with the cells' estimated variances as the
    reference covariance: ``S = M' diag(s^2) M`` in place of ``M``."""
    errors = study.design.error_model()
    X, ok = study.design.exog, study.design.estimable
    M = errors.residual_maker
    resid = y - X @ (errors.pinv @ y)
    cell_var = np.bincount(study.cell, resid**2) / np.bincount(study.cell, np.diag(M))  # unbiased per cell
    gram = M.T @ (cell_var[study.cell][:, None] * M)
    df = factorial._bell_mccaffrey(errors.weights, errors.leverage, gram, errors.resid_df)
    weights = np.nan_to_num(errors.weights)
    se = np.sqrt(weights**2 @ (resid**2 / (1.0 - errors.leverage)))
    tested = ok & (se > 1e-12 * max(1.0, float(np.abs(y).max())))
    p = np.full(len(ok), np.nan)
    p[tested] = stats.t_sf_two_sided_array((weights @ y)[tested] / se[tested], df[tested])
    out = np.full(len(ok), np.nan)
    for family in ("main", "interaction"):
        mine = study.kind == family
        out[mine] = stats.holm(p[mine].tolist())
    return out


def check_old_method_against_statsmodels(study: Study, y: np.ndarray) -> None:
    import statsmodels.api as sm

    fit = sm.OLS(y, study.design.exog).fit(cov_type="HC3", use_t=True)
    test = fit.t_test(np.vstack([c.vector for c in study.design.contrasts])[study.design.estimable])
    p = np.full(len(study.design.contrasts), np.nan)
    p[study.design.estimable] = np.ravel(test.pvalue)
    assert np.allclose(old_method(study, y), stats.holm(p.tolist()), rtol=1e-6, atol=1e-12)


METHODS = ("today", "before", "welch")


def p_values(study: Study, y: np.ndarray) -> dict[str, np.ndarray]:
    """p_holm per contrast by each method, for one simulated response."""
    return {
        "today": factorial.fit_design(study.design, y).table["p_holm"].to_numpy(dtype=float),
        "before": old_method(study, y),
        "welch": welch_method(study, y),
    }


def main() -> int:
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    studies = {name: Study.of(grid, args.seeds) for name, grid in GRIDS.items()}
    check_old_method_against_statsmodels(studies["36 cells"], 80.0 + noise(studies["36 cells"], "unequal", rng))

    null_rows = []
    for name, study in studies.items():
        for kind, label in NOISES.items():
            false = {method: {"main": 0, "interaction": 0} for method in METHODS}
            for _ in range(args.sims):
                y = 80.0 + noise(study, kind, rng)
                for method, p_holm in p_values(study, y).items():
                    for family in false[method]:
                        false[method][family] += bool((p_holm[study.kind == family] < stats.ALPHA).any())
            for family in ("main", "interaction"):
                rates = [false[method][family] / args.sims for method in METHODS]
                null_rows.append((name, label, family, args.sims, *rates))

    power_sims = max(args.sims // 5, 1)
    power_rows = []
    two = studies["2x2"]
    bn, sigmoid = two.level(1, 1), two.level(0, 1)
    cases = [
        (
            "2x2",
            "+4 on norm=batchnorm, activation -14",
            two,
            4.0 * bn - 14.0 * sigmoid,
            two.contrast("norm", "batchnorm"),
        ),
        ("2x2", "+4 on norm=batchnorm, activation null", two, 4.0 * bn, two.contrast("norm", "batchnorm")),
    ]
    big = studies["36 cells"]
    cases += [
        ("36 cells", "+2 on pooling=nonoverlap", big, 2.0 * big.level(1, 1), big.contrast("pooling", "nonoverlap")),
        ("36 cells", "+2 on norm=batchnorm", big, 2.0 * big.level(2, 2), big.contrast("norm", "batchnorm")),
    ]
    for name, label, study, effect, index in cases:
        hits = dict.fromkeys(METHODS, 0)
        for _ in range(power_sims):
            y = 80.0 + effect + noise(study, "equal", rng)
            right_way = float(study.design.error_model().weights[index] @ y) > 0  # every method shares the estimate
            for method, p_holm in p_values(study, y).items():
                hits[method] += bool(p_holm[index] < stats.ALPHA and right_way)
        power_rows.append((name, label, power_sims, *(hits[method] / power_sims for method in METHODS)))

    def ci(rate: float, sims: int) -> str:
        return f"{rate:.3f} (± {1.96 * math.sqrt(rate * (1 - rate) / sims):.3f})"

    print(f"{args.seeds} seeds per cell; generator seed {args.seed}; {time.perf_counter() - start:.0f} s\n")
    print(
        "| grid | noise | family | null studies | HC2 + Bell–McCaffrey, Holm per family (today) "
        "| HC3, one Holm family (before) | HC2 + Welch df (not taken) |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    for name, label, family, sims, today, before, welch in null_rows:
        print(f"| {name} | {label} | {family} effects | {sims:,} | {ci(today, sims)} | {before:.3f} | {welch:.3f} |")
    print()
    print("| grid | planted (sd 2) | studies | power today | power before | power with Welch df |")
    print("|---|---|---:|---:|---:|---:|")
    for name, label, sims, today, before, welch in power_rows:
        print(f"| {name} | {label} | {sims:,} | {ci(today, sims)} | {before:.3f} | {welch:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
