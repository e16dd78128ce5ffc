#!/usr/bin/env python
"""Error rates and costs of ablate's adaptive seed designs, by simulation of whole studies.

Each simulated study draws per-run values for a baseline and ``m`` variants over the seeds
(variant ``i`` = baseline + effect ``i``; each run has its own noise, so the paired differences
share the baseline's noise, as in a real study), then applies the production rules of
:mod:`ablate.analysis.adaptive` (the functions the runner calls) to the paired differences:

``stein``   ``--until-precise P`` (Stein's two-stage procedure) with a pilot of ``n0`` seeds: coverage
            of the interval, its mean half-width, the seeds a comparison used (mean and 95th
            percentile), against the fixed-sample t requirement ``n`` (smallest ``n`` with
            ``t_{0.975,n-1} * sd / sqrt(n) <= P``, sd known).
``null``    ``--until-decided`` under no effect: the family-wise rate of any false better/worse.
``power``   ``--until-decided`` with every variant at the same effect: power (decided in the right
            direction), wrong-direction calls, seeds per comparison, the share decided at the
            first look, and coverage of the repeated confidence interval.

Noise: ``gauss`` (normal) or ``t3`` (Student's t with 3 degrees of freedom, scaled to the same
sd): per-run sd ``sd / sqrt(2)``, so a paired difference has sd ``sd``. Everything is vectorised
over studies; 10,000 studies per row take seconds.

Usage (repository root, venv active)::

    python scripts/simulate_adaptive.py --sims 10000 --seed 1            # every table, markdown
    python scripts/simulate_adaptive.py --sections null --sims 2000
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ablate.analysis import adaptive  # noqa: E402

SD = 2.0  # points: sd of a paired difference
SECTIONS = ("stein", "null", "power")


def paired_differences(
    rng: np.random.Generator, sims: int, effects: list[float], seeds: int, sd: float = SD, noise: str = "gauss"
) -> np.ndarray:
    """Paired differences, shape ``(sims, m, seeds)``: each variant's runs minus the baseline's."""
    m = len(effects)

    def draw(shape: tuple[int, ...]) -> np.ndarray:
        if noise == "gauss":
            return rng.standard_normal(shape)
        if noise == "t3":
            return rng.standard_t(3, shape) / math.sqrt(3.0)  # variance of t3 is 3
        raise ValueError(f"unknown noise {noise!r}")

    run_sd = sd / math.sqrt(2.0)
    base = draw((sims, 1, seeds)) * run_sd
    var = draw((sims, m, seeds)) * run_sd + np.asarray(effects, dtype=float)[None, :, None]
    return var - base


def fixed_n(sd: float, precision: float) -> int:
    """Smallest n with t_{0.975,n-1} * sd / sqrt(n) <= precision (sd known)."""
    n = 2
    while sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n) > precision:
        n += 1
    return n


def stein_row(
    rng: np.random.Generator, sims: int, effect: float, precision: float, pilot: int, max_seeds: int, noise: str
) -> dict[str, float]:
    """One comparison under Stein's procedure: coverage, half-width and seeds."""
    d = paired_differences(rng, sims, [effect], max_seeds, noise=noise)
    _, s0, n = adaptive.stein_plan(d[..., :pilot], precision, max_seeds)
    mean, half, _ = adaptive.stein_interval(d, n, s0, np.full(n.shape, pilot))
    cover = np.abs(mean - effect) <= half
    return {
        "coverage": float(cover.mean()),
        "half": float(half.mean()),
        "seeds": float(n.mean()),
        "p95": float(np.percentile(n, 95)),
        "capped": float((n >= max_seeds).mean()),
    }


def sequential_study(
    rng: np.random.Generator, sims: int, effects: list[float], looks: tuple[int, ...], noise: str
) -> dict[str, np.ndarray]:
    """``--until-decided`` on simulated studies: the runner's rules, look by look."""
    design = adaptive.SequentialDesign(looks=looks, m=len(effects))
    d = paired_differences(rng, sims, effects, design.max_seeds, noise=noise)
    return adaptive.run_sequential(d, design)


def se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / n)


def stein_table(args: argparse.Namespace, rng: np.random.Generator) -> list[str]:
    need = fixed_n(SD, args.precision)
    out = [
        f"### `--until-precise {args.precision:g}` (Stein, pilot {args.pilot} seeds, at most {args.stein_max} seeds), "
        f"sd {SD:g} points: fixed-sample t requirement {need} seeds",
        "",
        "| noise | effect (points) | coverage (± 2 se) | mean half-width | seeds: mean | seeds: 95th pct | seeds / "
        "fixed-n | capped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for noise in ("gauss", "t3"):
        for effect in (0.0, 2.0, 5.0, 20.0):
            r = stein_row(rng, args.sims, effect, args.precision, args.pilot, args.stein_max, noise)
            out.append(
                f"| {noise} | {effect:g} | {r['coverage']:.4f} ± {2 * se(r['coverage'], args.sims):.4f} | "
                f"{r['half']:.3f} | "
                f"{r['seeds']:.1f} | {r['p95']:.0f} | {r['seeds'] / need:.2f} | {r['capped']:.4f} |"
            )
    out.append("")
    out += [
        f"Pilot size against cost (gauss, effect 0, same target): fixed-n {need} seeds",
        "",
        "| pilot n0 | coverage | seeds: mean | seeds / fixed-n |",
        "|---:|---:|---:|---:|",
    ]
    for pilot in (3, 5, 10, 15):
        r = stein_row(rng, args.sims, 0.0, args.precision, pilot, max(args.stein_max, 200), "gauss")
        out.append(f"| {pilot} | {r['coverage']:.4f} | {r['seeds']:.1f} | {r['seeds'] / need:.2f} |")
    return out + [""]


def null_table(args: argparse.Namespace, rng: np.random.Generator) -> list[str]:
    out = [
        "### `--until-decided` under no effect: family-wise false better/worse",
        "",
        "| noise | variants | looks | family-wise false rate (± 2 se) | seeds per comparison: mean | stopped for "
        "futility |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for noise in ("gauss", "t3"):
        for m in (1, 2, 5):
            for looks in ((3, 6, 12, 20), (3, 6, 10)):
                r = sequential_study(rng, args.sims, [0.0] * m, looks, noise)
                false = np.isin(r["status"], (adaptive.BETTER, adaptive.WORSE)).any(axis=-1).mean()
                fut = (r["status"] == adaptive.FUTILITY).mean()
                out.append(
                    f"| {noise} | {m} | {', '.join(map(str, looks))} | {false:.4f} ± {2 * se(false, args.sims):.4f} | "
                    f"{r['seeds'].mean():.1f} | {fut:.3f} |"
                )
    return out + [""]


def power_table(args: argparse.Namespace, rng: np.random.Generator) -> list[str]:
    out = [
        f"### `--until-decided` with an effect (2 variants at the same effect, sd {SD:g} points)",
        "",
        "| noise | effect (points) | looks | power (right direction) | wrong direction | seeds per comparison: mean | "
        "decided at the first look | repeated CI covers |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for noise in ("gauss", "t3"):
        for effect in (0.0, 1.0, 2.0, 5.0, 20.0, -20.0):
            for looks in ((3, 6, 12, 20), (5, 10, 20)):
                r = sequential_study(rng, args.sims, [effect, effect], looks, noise)
                right = adaptive.BETTER if effect > 0 else adaptive.WORSE
                wrong = adaptive.WORSE if effect > 0 else adaptive.BETTER
                power = (r["status"] == right).mean() if effect else math.nan
                wrong_rate = (r["status"] == wrong).mean() if effect else np.isin(r["status"], (1, -1)).mean()
                decided = np.isin(r["status"], (1, -1))
                first = (decided & (r["stop_look"] == 0)).mean()
                half = r["t_boundary"] * r["sd"] / np.sqrt(r["n"])
                # Under no effect every decided comparison is a false one: its interval misses 0 by construction.
                covers = (np.abs(r["mean"] - effect) <= half)[decided].mean() if decided.any() and effect else math.nan
                out.append(
                    f"| {noise} | {effect:+g} | {', '.join(map(str, looks))} | "
                    f"{'-' if math.isnan(power) else f'{power:.3f}'} | {wrong_rate:.4f} | {r['seeds'].mean():.1f} | "
                    f"{first:.3f} | {'-' if math.isnan(covers) else f'{covers:.3f}'} |"
                )
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=10_000, help="simulated studies per row (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--precision", type=float, default=1.0, help="--until-precise target, points (default 1)")
    parser.add_argument("--pilot", type=int, default=adaptive.DEFAULT_PILOT, help="Stein pilot seeds (default 10)")
    parser.add_argument("--stein-max", type=int, default=100, help="Stein's --max-seeds (default 100)")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or args.sims < 1:
        parser.error(f"unknown section(s) {unknown}" if unknown else "--sims must be >= 1")
    rng = np.random.default_rng(args.seed)
    print(f"Simulated studies per row: {args.sims:,} (seed {args.seed}); sd of a paired difference {SD:g} points.\n")
    tables = {"stein": stein_table, "null": null_table, "power": power_table}
    for s in sections:
        print("\n".join(tables[s](args, rng)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
