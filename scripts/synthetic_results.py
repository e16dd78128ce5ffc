#!/usr/bin/env python3
"""Synthetic result folders, to measure what ``ablate report`` costs as studies grow (no training).

Writes ``--experiments`` experiments named ``synthetic-1`` ... under ``--results``, each the
paper's 36-cell grid (activation relu/tanh/sigmoid x pooling overlap/nonoverlap x norm
none/lrn/batchnorm x dropout on/off) over ``--seeds`` seeds, ``--epochs`` epochs per run: with the
defaults 5 x 36 x 5 = 900 run files of 180 variants. Each record is assembled by the code that
assembles real ones (:func:`ablate.store.record.build_record`, ``summarize``), with a manifest as
``ablate run`` writes it, so the report reads exactly the shapes it reads on real results. The
numbers are fixed by ``--seed`` (each variant a planted mean, each run noise of sd 1.5 points), so
the same command writes the same files.

    python scripts/synthetic_results.py --results /tmp/syn              # 900 runs
    /usr/bin/time -v ablate report --results /tmp/syn --out /tmp/syn-reports
    python scripts/synthetic_results.py --results /tmp/syn --experiments 2 --seeds 3   # 216 runs
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ablate.config import DataConfig, TrainConfig
from ablate.store.folder import write_manifest, write_run
from ablate.store.record import EpochMetrics, build_record, summarize
from ablate.variant import Variant

GRID: dict[str, list[Any]] = {
    "activation": ["relu", "tanh", "sigmoid"],
    "pooling": ["overlap", "nonoverlap"],
    "norm": ["none", "lrn", "batchnorm"],
    "dropout": [True, False],
}
DATA = dataclasses.asdict(DataConfig(dataset="shapes", train_size=512, val_size=128))


def run_id(experiment: str, slug: str, seed: int) -> str:
    """A stable id per cell (real ids hash the resolved cell; any unique 16 hex digits serve here)."""
    return hashlib.sha256(f"{experiment}/{slug}/{seed}".encode()).hexdigest()[:16]


def record(experiment: str, variant: Variant, seed: int, epochs: int, train: dict[str, Any], final: float) -> Any:
    """One ok run whose validation accuracy climbs from 0.15 to ``final`` over ``epochs``."""
    rows: list[EpochMetrics] = []
    for e in range(epochs):
        val = 0.15 + (final - 0.15) * (e + 1) / epochs
        acc = min(1.0, val + 0.05)
        rows.append(
            {
                "epoch": e + 1,
                "lr": train["lr"],
                "train_loss": 2.3 * (1 - acc) + 0.05,
                "train_acc": acc,
                "train_eval_acc": acc,
                "train_eval_loss": 2.3 * (1 - acc),
                "val_loss": 2.3 * (1 - val) + 0.1,
                "val_acc": val,
                "val_top5": min(1.0, val + 0.3),
                "epoch_time_s": 2.0 + 0.1 * seed,
                "train_time_s": 1.8 + 0.1 * seed,
                "train_images_per_s": 1000.0 + seed,
                "peak_memory_mb": 1500.0,
            }
        )
    axes = variant.axes()
    return build_record(
        {
            "run_id": run_id(experiment, variant.slug(), seed),
            "experiment": experiment,
            "variant": axes,
            "slug": variant.slug(),
            "seed": seed,
            "config": {"variant": axes, "seed": seed, "data": DATA, "train": train},
        },
        status="ok",
        error=None,
        params=14_601_930,
        data={"classes": [f"c{i}" for i in range(10)], "train_images": 512, "val_images": 128, "input_size": 65},
        runtime={
            "precision": "fp32",
            "train_images_per_s": 1000.0 + seed,
            "peak_memory_mb": 1500.0,
            "peak_memory_kind": "host_max_rss",
        },
        epochs=rows,
        summary=summarize(rows),
        steps=None,
        env={"ablate_version": "synthetic", "device": "cpu", "device_name": "synthetic", "hostname": "synthetic"},
    )


def write_experiment(results: Path, name: str, seeds: list[int], epochs: int, rng: np.random.Generator) -> int:
    """Write one synthetic grid study: its manifest and one run file per cell; returns the runs written."""
    base = Variant()
    variants = [base.replace(**dict(zip(GRID, combo))) for combo in itertools.product(*GRID.values())]
    variants.remove(base)
    variants.insert(0, base)
    train = dataclasses.asdict(TrainConfig(epochs=epochs, batch_size=32, optimizer="adam", lr=0.0003))
    write_manifest(
        results,
        {
            "name": name,
            "description": "synthetic grid study (scripts/synthetic_results.py)",
            "design": "grid",
            "seeds": seeds,
            "baseline": base.axes(),
            "baseline_slug": base.slug(),
            "axes": GRID,
            "variants": [v.axes() for v in variants],
            "run_ids": [run_id(name, v.slug(), s) for s in seeds for v in variants],
            "data": DATA,
            "train": train,
            "source": f"{name}.toml",
            "gpu_overrides_applied": False,
        },
    )
    means = {v: 0.6 + rng.normal(0, 0.03) for v in variants}
    for s in seeds:
        for v in variants:
            final = float(np.clip(means[v] + rng.normal(0, 0.015), 0.2, 0.95))
            write_run(results, record(name, v, s, epochs, train, final))
    return len(seeds) * len(variants)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="results folder to write into")
    parser.add_argument("--experiments", type=int, default=5, help="experiments (36 variants each)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per variant")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per run")
    parser.add_argument("--seed", type=int, default=0, help="fixes the planted numbers")
    args = parser.parse_args(argv)
    if min(args.experiments, args.seeds, args.epochs) < 1:
        print("--experiments, --seeds and --epochs must be at least 1", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    runs = sum(
        write_experiment(args.results, f"synthetic-{i + 1}", list(range(args.seeds)), args.epochs, rng)
        for i in range(args.experiments)
    )
    print(f"{runs} run files in {args.experiments} experiment(s) under {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
