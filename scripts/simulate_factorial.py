#!/usr/bin/env python3
"""Error rate and power of a grid's verdicts, by simulation: the linear model against per-seed means.

Simulates the paper's 36-cell factorial (activation 3 x pooling 2 x norm 3 x dropout 2) with 3
seeds and fits every simulated study with ablate's own code (``ablate.factorial.fit_design``, the
model the reports use: seed block, main effects and two-way interactions, HC3 errors, Holm over
the 19 effects). Beside it, the analysis ablate used before: each effect's per-seed contrast (the
mean over the other axes of level - reference, one value per seed) tested with a paired t over the
seeds, Holm over the same 19 effects.

Rows:

* null factorials, every cell the same mean: the share of studies with any better/worse verdict
  (family-wise error; the rule is at most 5%), with equal spreads and with spreads that differ by
  cell (0, 0.5, 1, 2 or 4 points; a sixth of the cells with none, as runs stuck at chance);
* a planted 2-point main effect at a run-to-run sd of 2 points: the share of studies that call it
  (power), on a two-level axis (pooling) and on one level of a three-level axis (norm=batchnorm).

    python scripts/simulate_factorial.py                # 10,000 null studies, 2,000 per power row
    python scripts/simulate_factorial.py --sims 200     # quick look
    python scripts/simulate_factorial.py --seeds 4      # the same with 4 seeds per cell
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import pandas as pd

from ablate import factorial, stats

GRID = {
    "activation": ["relu", "tanh", "sigmoid"],
    "pooling": ["overlap", "nonoverlap"],
    "norm": ["none", "lrn", "batchnorm"],
    "dropout": [True, False],
}
SPREADS = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
SPREAD_P = np.array([1 / 6, 5 / 24, 5 / 24, 5 / 24, 5 / 24])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sims", type=int, default=10_000, help="simulated null studies per row (power rows: a fifth)")
    p.add_argument("--seed", type=int, default=2026, help="generator seed")
    p.add_argument("--seeds", type=int, default=3, help="seeds (runs per cell) of each simulated study")
    return p.parse_args()


def per_seed_holm(design: factorial.GridDesign, y: np.ndarray) -> np.ndarray:
    """The old analysis: per-seed contrast values (the model's contrast weights applied to each
    seed's cell means), paired t over seeds, Holm over the family. Returns p_holm per effect."""
    frame = design.frame.assign(y=y)
    cols = [c for c in frame.columns if c.startswith("a")]
    cell_means = frame.groupby(["seed", *cols], sort=True)["y"].mean().unstack("seed")
    cells = factorial.design_for_simulation(GRID, [0])  # one row per cell, same coding
    x_cells = cells.exog  # rows in the grid's order; cell_means sorted the same way (L0 < L1 < L2)
    order = cells.frame[cols].astype(str).agg("-".join, axis=1)
    means = cell_means.copy()
    means.index = ["-".join(map(str, ix)) for ix in means.index]
    values = means.loc[order.to_numpy()].to_numpy()  # cells x seeds
    solve = np.linalg.pinv(x_cells)  # each seed's cell values -> the model's coefficients (seed columns aside)
    keep = np.array([not name.startswith("C(seed)") for name in design.exog_names])  # the seed block cancels
    p = []
    for c in design.contrasts:
        per_seed = c.vector[keep] @ solve @ values  # the effect measured on each seed alone
        p.append(stats.paired_test(per_seed).p)
    return np.asarray(stats.holm(p), dtype=float)


def main() -> int:
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    seeds = list(range(args.seeds))
    design = factorial.design_for_simulation(GRID, seeds)
    cell = pd.factorize(design.frame[["a0", "a1", "a2", "a3"]].astype(str).agg("-".join, axis=1))[0]
    seed = pd.factorize(design.frame["seed"])[0]
    n = cell.size
    rows = []
    start = time.perf_counter()

    def null(kind: str) -> np.ndarray:
        sd = np.full(cell.max() + 1, 2.0) if kind == "equal" else rng.choice(SPREADS, cell.max() + 1, p=SPREAD_P)
        return 80.0 + (rng.normal(0, 1, len(seeds))[seed] + rng.normal(0, 1, n)) * sd[cell]

    for kind in ("equal", "unequal"):
        model = old = 0
        for _ in range(args.sims):
            y = null(kind)
            model += bool((factorial.fit_design(design, y).table["p_holm"] < 0.05).any())
            old += bool((per_seed_holm(design, y) < 0.05).any())
        rows.append(
            (
                f"null, {'equal spreads (sd 2)' if kind == 'equal' else 'spreads differ by cell, 1/6 at zero'}",
                "any false better/worse",
                args.sims,
                model / args.sims,
                old / args.sims,
            )
        )
    power_sims = max(args.sims // 5, 1)
    for label, column, level, idx in (
        ("pooling=nonoverlap (2 levels)", "a1", "L1", 2),
        ("norm=batchnorm (3 levels)", "a2", "L2", 4),
    ):
        planted = (design.frame[column] == level).to_numpy()
        model = old = 0
        for _ in range(power_sims):
            y = 80.0 + rng.normal(0, 2, n) + 2.0 * planted
            table = factorial.fit_design(design, y).table
            model += bool(table.loc[idx, "p_holm"] < 0.05 and table.loc[idx, "estimate"] > 0)
            old += bool(per_seed_holm(design, y)[idx] < 0.05)
        rows.append((f"+2 points on {label}, sd 2", "power", power_sims, model / power_sims, old / power_sims))

    print(
        f"36-cell factorial x {len(seeds)} seeds; Holm over 19 effects; seed {args.seed}; "
        f"{time.perf_counter() - start:.0f} s\n"
    )
    print("| simulated studies | what is counted | studies | linear model (HC3) | per-seed paired t (before) |")
    print("|---|---|---:|---:|---:|")
    for label, what, sims, model, old in rows:
        se = math.sqrt(model * (1 - model) / sims)
        print(f"| {label} | {what} | {sims:,} | {model:.3f} (± {1.96 * se:.3f}) | {old:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
