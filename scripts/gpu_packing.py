#!/usr/bin/env python3
"""Several cells packed on one GPU: images/s of one cell alone against K cells at once.

AlexNet-65 at batch 128 leaves a large GPU mostly idle, so several worker processes per GPU
(``ablate run --workers-per-device K``) can raise the total throughput. For each K this runs K
cells (seeds 0..K-1 of the baseline) as K workers on one device, and reports the sum of the
cells' recorded training images/s (each cell's own clock, warm-up excluded) and the wall time.

    python scripts/gpu_packing.py                      # K = 1, 2, 4, 8 on cuda:0
    python scripts/gpu_packing.py --device cpu --packs 1,2 --train-size 64   # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CELL = """
name = "packing"
seeds = {seeds}
[data]
train_size = {train_size}
val_size = 512
[train]
epochs = {epochs}
batch_size = {batch}
optimizer = "adam"
lr = 3e-4
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda:0", help="cuda:N or cpu")
    p.add_argument("--packs", default="1,2,4,8", help="K values: cells sharing the device")
    p.add_argument("--train-size", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    return p.parse_args()


def main() -> int:
    args = parse_args()
    packs = [int(k) for k in args.packs.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ablate-packing-") as tmp:
        for k in packs:
            exp = Path(tmp) / f"k{k}.toml"
            exp.write_text(
                textwrap.dedent(
                    CELL.format(seeds=list(range(k)), train_size=args.train_size, epochs=args.epochs, batch=args.batch)
                )
            )
            results = Path(tmp) / f"r{k}"
            cmd = [
                sys.executable,
                "-m",
                "ablate",
                "run",
                str(exp),
                "--results",
                str(results),
                "--devices",
                args.device,
                "--workers",
                str(k),
                "--workers-per-device",
                str(k),
            ]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
            records = [json.loads(p.read_text()) for p in sorted((results / "packing" / "runs").glob("*.json"))]
            rates = [r["runtime"]["train_images_per_s"] for r in records]
            rows.append((k, sum(rates), min(rates), wall))
            print(
                f"K={k}: {sum(rates):,.0f} images/s in all ({min(rates):,.0f}..{max(rates):,.0f} per cell), wall "
                f"{wall:.1f} s",
                flush=True,
            )
    base = rows[0][1]
    print(f"\n| cells on {args.device} | images/s (sum) | per cell (slowest) | x one cell | wall s |")
    print("| --- | --- | --- | --- | --- |")
    for k, total, slowest, wall in rows:
        print(f"| {k} | {total:,.0f} | {slowest:,.0f} | {total / base:.2f} | {wall:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
