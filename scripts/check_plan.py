#!/usr/bin/env python3
"""How far ``ablate plan``'s predictions are from what happens: its statistics against references
(``--part stats``, seconds) and its time against the real ``ablate run`` on this machine
(``--part time``, minutes).

Statistics (``ablate.analysis.planning``, the functions ``ablate plan`` calls):

* seeds needed for a paired design with sd 0.4 and effect 0.3 points, against statsmodels'
  ``TTestPower``; then 2,000 simulated studies at that many seeds, tested by the report's paired t
  (``ablate.analysis.stats.paired_test``): their rejection rate against the planned 80% power;
* the committed Fashion-MNIST factorial (``results/fashion-mnist-factorial``) as the noise source of
  ``experiments/fashion-mnist/factorial.toml`` at its 3 seeds: each main effect's planned MDD
  against the MDD its published report states (``reports/fashion-mnist-factorial/effects.csv``);
* ``--until-decided`` (looks 3, 6, 12, 20) on two variants 20 points from the baseline at sd 2
  points of a paired difference: the plan's expected seeds per variant against the simulation in
  docs/statistics.md (``scripts/simulate_adaptive.py``).

Time: for each setup, ``ablate plan`` (its probe on this device) into a fresh results folder, then the
real ``ablate run`` of the same file and options into another fresh folder, timed from the start
of the process to its end as a user sees it. Prints a markdown table: setup, predicted and
measured wall seconds, error (predicted - measured, % of measured), how long the plan and its
probe took, and the machine's load average while each command ran. Timings are only as quiet as
the machine: the probe measures at one load, the run takes another time under another; run it
when nothing else does.

Setups (``--setups``, comma-separated; all by default):

``tiny-grid``    2x2 grid (pooling x dropout), 2 seeds, 256 generated training images, 2 epochs
``pooling``      the README's study as shipped: ``experiments/pooling.toml`` (6 cells)
``workers``      the tiny grid with ``--workers 2``
``eval-heavy``   one axis, 2 seeds, 128 training and 1,000 validation images, 3 epochs: each
                 epoch evaluates 1,128 images after training on 128

    python scripts/check_plan.py --part stats         # the statistics (under a minute)
    python scripts/check_plan.py                      # both; every time setup on the CPU (about 20 minutes)
    python scripts/check_plan.py --part time --setups tiny-grid --device cpu
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINY_GRID = """
name = "tiny-grid"
seeds = [0, 1]
[axes]
pooling = ["overlap", "nonoverlap"]
dropout = [true, false]
[data]
train_size = 256
val_size = 64
[train]
epochs = 2
batch_size = 32
optimizer = "adam"
lr = 3e-4
"""

EVAL_HEAVY = """
name = "eval-heavy"
seeds = [0, 1]
[axes]
pooling = ["overlap", "nonoverlap"]
[data]
train_size = 128
val_size = 1000
[train]
epochs = 3
batch_size = 32
eval_batch_size = 250
optimizer = "adam"
lr = 3e-4
"""

# name -> (experiment file text or path, extra options of both plan and run)
SETUPS: dict[str, tuple[str | Path, list[str]]] = {
    "tiny-grid": (TINY_GRID, []),
    "pooling": (ROOT / "experiments" / "pooling.toml", []),
    "workers": (TINY_GRID, ["--workers", "2"]),
    "eval-heavy": (EVAL_HEAVY, []),
}


FACTORIAL = "fashion-mnist-factorial"
CORES = os.cpu_count() or 1
SIMULATED = 2000


def stats_rows() -> list[tuple[str, str, str, str]]:
    """(check, planned, reference, goal) for each statistic; every number computed here."""
    import numpy as np
    import pandas as pd
    from statsmodels.stats.power import TTestPower

    from ablate.analysis import load_experiment_data, planning, stats
    from ablate.experiment.experiment import load_experiment

    rows = []
    # Seeds needed, and what 2,000 studies at that many seeds reject.
    noise = planning.Noise("sd 0.4", False, planning.PAIRED, None, 30, {"v": (0.4, 29)}, pooled_sd=0.4, pooled_df=29)
    (c,) = planning.plan_paired(noise, ["v"], seeds=3, effect=0.3)
    reference = TTestPower().solve_power(effect_size=0.3 / 0.4, alpha=stats.ALPHA, power=stats.POWER)
    rows.append(
        ("seeds for 0.3 points at sd 0.4 (paired)", f"{c.seeds_needed:.0f}", f"{reference:.2f} (TTestPower)", "16 ± 1")
    )
    n = int(c.seeds_needed)
    rng = np.random.default_rng(2026)
    rejected = float(np.mean([stats.paired_test(d).p < stats.ALPHA for d in rng.normal(0.3, 0.4, (SIMULATED, n))]))
    (at_n,) = planning.plan_paired(noise, ["v"], seeds=n, effect=0.3)
    rows.append(
        (
            f"power at {n} seeds ({SIMULATED:,} simulated studies, seed 2026)",
            f"{at_n.power:.3f}",
            f"{rejected:.3f} rejected",
            "0.80 ± 0.03",
        )
    )
    # The factorial's main effects at its own 3 seeds against its published report.
    data = load_experiment_data(ROOT / "results", FACTORIAL)
    noise = planning.noise_from_data(data, f"results/{FACTORIAL}")
    exp = load_experiment(ROOT / "experiments" / "fashion-mnist" / "factorial.toml")
    planned = {c.name: c for c in planning.plan_factorial(noise, exp, seeds=3, effect=2.0)}
    effects = pd.read_csv(ROOT / "reports" / FACTORIAL / "effects.csv")
    main = effects[(effects["metric"] == planning.METRIC) & (effects["kind"] == "main")]
    for r in main.to_dict("records"):
        name = f"{r['axes']}={r['level']}"
        mdd, report = planned[name].mdd, 100.0 * float(r["mdd"])
        rows.append(
            (f"factorial MDD, {name}, 3 seeds", f"{mdd:.3f}", f"{report:.3f} (report, {mdd / report - 1:+.1%})", "±10%")
        )
    # --until-decided at 20 points, sd 2, against docs/statistics.md's simulation.
    docs = (ROOT / "docs" / "statistics.md").read_text(encoding="utf-8")
    row = re.search(r"^\| gauss \| \+20 \| 3, 6, 12, 20 \|([^\n]+)$", docs, re.M)
    documented = float(row.group(1).split("|")[2]) if row else math.nan
    variants = ["a", "b"]
    cost = planning.until_decided_cost(variants, [2.0, 2.0], 20.0, (3, 6, 12, 20))
    expected = ", ".join(f"{cost.expected[v]:.2f}" for v in variants)
    rows.append(
        (
            f"--until-decided seeds per variant, 20 points, sd 2 ({cost.settings['studies']:,} studies)",
            expected,
            f"{documented:g} (docs/statistics.md)",
            "within 0.15 seeds",
        )
    )
    return rows


def ablate(*args: str) -> tuple[float, float]:
    """Run ``python -m ablate ARGS``: (wall seconds, mean 1-minute load average sampled every 5 s)."""
    cmd = [sys.executable, "-m", "ablate", *args]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    loads = [os.getloadavg()[0]]
    while True:
        try:
            out, err = proc.communicate(timeout=5)
            break
        except subprocess.TimeoutExpired:
            loads.append(os.getloadavg()[0])
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-2000:]}{err[-2000:]}")
    return seconds, sum(loads) / len(loads)


def check(name: str, device: str, tmp: Path) -> dict[str, float | str]:
    source, extra = SETUPS[name]
    if isinstance(source, Path):
        file = source
    else:
        file = tmp / f"{name}.toml"
        file.write_text(source, encoding="utf-8")
    planned, run = tmp / f"{name}-plan", tmp / f"{name}-run"
    plan_s, plan_load = ablate("plan", str(file), "--device", device, "--results", str(planned), "--no-bench", *extra)
    exp_name = next(p.name for p in planned.iterdir() if (p / "plan.json").exists())
    doc = json.loads((planned / exp_name / "plan.json").read_text(encoding="utf-8"))
    measured, run_load = ablate("run", str(file), "--device", device, "--results", str(run), *extra)
    predicted = float(doc["time"]["wall_s"])
    return {
        "setup": name,
        "cells": doc["cells"]["count"],
        "executor": doc["executor"]["text"],
        "predicted": predicted,
        "measured": measured,
        "error": 100.0 * (predicted - measured) / measured,
        "plan": plan_s,
        "probe": float(doc["time"]["probe"]["seconds"]),
        "plan_load": plan_load,
        "run_load": run_load,
        # On a machine with more runnable threads than cores each gets cores/load of one: the plan
        # at the run's load, a diagnostic of how much of the error the load explains (not a prediction).
        "at_run_load": predicted * max(1.0, run_load / CORES) / max(1.0, plan_load / CORES),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("stats", "time", "all"), default="all", help="what to check (default all)")
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, of {', '.join(SETUPS)}")
    parser.add_argument("--device", default="cpu", help="device of both plan and run (default cpu)")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.setups.split(",") if s.strip()]
    unknown = [s for s in names if s not in SETUPS]
    if unknown:
        parser.error(f"unknown setup(s) {unknown}; choose from {', '.join(SETUPS)}")
    if args.part in ("stats", "all"):
        print("| check | planned | reference | goal |")
        print("|---|---:|---:|---|")
        for row in stats_rows():
            print("| " + " | ".join(row) + " |")
        print()
    if args.part == "stats":
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="ablate-check-plan-") as tmp:
        for name in names:
            rows.append(check(name, args.device, Path(tmp)))
            r = rows[-1]
            print(f"{name}: predicted {r['predicted']:.0f} s, measured {r['measured']:.0f} s", file=sys.stderr)
    print(
        f"Load: mean 1-minute load average while the command ran, on {CORES} cores. At the run's load: the "
        "prediction times max(1, run load / cores) / max(1, plan load / cores), a diagnostic.\n"
    )
    print(
        "| setup | cells | executor | predicted (s) | measured (s) | error | `ablate plan` (s) | probe (s) "
        "| load: plan | load: run | at the run's load (s) | its error |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['setup']} | {r['cells']} | {r['executor']} | {r['predicted']:.0f} | {r['measured']:.0f} | "
            f"{r['error']:+.0f}% | {r['plan']:.0f} | {r['probe']:.0f} | {r['plan_load']:.1f} | {r['run_load']:.1f} | "
            f"{r['at_run_load']:.0f} | {100.0 * (r['at_run_load'] / r['measured'] - 1):+.0f}% |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
