#!/usr/bin/env python3
"""Wall time of one sweep with ``--workers 1`` against ``--workers N``, on this machine.

Each side is a fresh ``ablate run`` process on a fresh results folder, so process start-up, data
loading and every cell are inside the time, as a user sees it. Sides take turns round by round
(A B, B A, ...) so that load from other processes falls on both alike; the ratio is per round.

    python scripts/measure_workers.py                       # 6 cells, --workers 1 vs 2, on the CPU
    python scripts/measure_workers.py --device cuda --workers-per-device 4 \
        --experiment experiments/factorial.toml --set train.epochs=1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SWEEP = """
name = "workers"
seeds = [0, 1, 2]
[axes]
pooling = ["overlap", "nonoverlap"]
[data]
train_size = {train_size}
val_size = 64
[train]
epochs = 1
batch_size = 32
optimizer = "adam"
lr = 3e-4
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", type=Path, help="experiment file (default: 6 tiny shapes cells)")
    p.add_argument("--train-size", type=int, default=512, help="images per cell in the default sweep")
    p.add_argument("--workers", default="2", help="the other side's --workers (N or auto)")
    p.add_argument("--workers-per-device", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--set", action="append", default=[], help="--set KEY=VALUE for both sides")
    return p.parse_args()


def sweep(file: Path, results: Path, args: argparse.Namespace, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "ablate", "run", str(file), "--results", str(results), "--device", args.device, *extra]
    for item in args.set:
        cmd += ["--set", item]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="ablate-workers-") as tmp:
        tmp_path = Path(tmp)
        file = args.experiment or tmp_path / "workers.toml"
        if args.experiment is None:
            file.write_text(textwrap.dedent(SWEEP.format(train_size=args.train_size)))
        sides = {
            "1 worker": [],
            f"{args.workers} workers": [
                "--workers",
                args.workers,
                "--workers-per-device",
                str(args.workers_per_device),
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for name in order:
                times[name].append(sweep(file, tmp_path / f"r{r}-{name.replace(' ', '-')}", args, sides[name]))
                print(f"round {r + 1}: {name}: {times[name][-1]:.1f} s", flush=True)
    one, many = times["1 worker"], times[f"{args.workers} workers"]
    ratios = [a / b for a, b in zip(one, many)]
    print(
        f"\nsweep of {file.name if args.experiment else '6 cells'} on {args.device}: "
        f"1 worker {statistics.median(one):.1f} s, {args.workers} workers {statistics.median(many):.1f} s; "
        f"speed-up (1-worker time / {args.workers}-worker time) per round: {', '.join(f'{x:.2f}' for x in ratios)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
