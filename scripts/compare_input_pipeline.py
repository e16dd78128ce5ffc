#!/usr/bin/env python
"""Epoch time of ablate's input pipeline vs a plain torchvision DataLoader, on Fashion-MNIST at 65x65.

Both sides train the same model (``ablate.build_model(Variant(), 10)``, same seed, same memory
layout, same optimizer) on the same images (ablate's seeded class-balanced subset) with the same
batch size, one step per batch exactly as ``ablate.train.loop`` does it, and both hand the model the
same thing: a normalized float32 batch of 3 x 65 x 65 images in the default (NCHW) layout. With a
channels-last model (ablate's default) the first conv converts that layout on both sides alike.
(``ablate.train.loop`` asks the loader for channels-last batches instead: the same conversion, done
one step earlier; here it would be counted as input cost on one side only.)

- **ablate**: ``load_splits`` (decoded once, resized uint8 tensors from the cache) +
  ``DeviceBatches`` (seeded permutation, gather, fused uint8 -> normalized float on the device);
- **torchvision**: ``DataLoader(FashionMNIST(transform=Compose([Resize(65), Grayscale(3),
  ToTensor(), Normalize(mean, std)])), shuffle=True)``, i.e. per-image PIL work every epoch
  (``Grayscale(3)`` because the model, like every ablate model, takes 3 channels).

Measured per epoch: the full training epoch, and the input cost alone (the same loop with the
model replaced by a no-op). Measurements are interleaved (``ablate.bench.timing.interleave``:
ablate, torchvision, torchvision, ablate, ...: each round reverses the order) and medians
reported, so that load from other processes on a shared machine hits both sides alike; every
epoch and one-time cost is read on training's clock (``ablate.runtime.clock.StepTimer``). The CPU load
average is printed with the results; on a busy machine rerun, or raise ``--rounds``.

torchvision's FashionMNIST reads uncompressed files from ``<root>/FashionMNIST/raw``; they are
written to a temporary folder (or symlinked, when the source is uncompressed). Nothing is
downloaded. ablate's cache goes to a temporary folder too, unless ``--cache`` names one.

Usage (from the repository root, venv active)::

    python scripts/compare_input_pipeline.py                 # 2048 images, batch 128, 3 rounds
    python scripts/compare_input_pipeline.py --images 4096 --rounds 5 --threads 2 --strict
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--images", type=int, default=2048, help="training images per epoch (a class-balanced subset)")
    p.add_argument("--batch-size", type=int, default=128, help="images per step, both pipelines (ablate's default)")
    p.add_argument("--rounds", type=int, default=3, help="full training epochs per pipeline (interleaved)")
    p.add_argument("--noop-rounds", type=int, default=11, help="input-only epochs per pipeline (interleaved)")
    p.add_argument("--threads", type=int, default=min(2, torch.get_num_threads()), help="torch intra-op threads")
    p.add_argument(
        "--workers", type=int, default=0, help="DataLoader worker processes for torchvision (0: in the main process)"
    )
    p.add_argument("--size", type=int, default=65, help="input size (65: alexnet65)")
    p.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="keep the model NCHW (ablate trains channels-last by default); inputs are NCHW either way",
    )
    p.add_argument("--cache", type=Path, default=None, help="ablate cache folder (default: a temporary one)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a criterion is not met")
    return p.parse_args()


def torchvision_root(files: dict[str, tuple[Path, Path]], into: Path) -> Path:
    """``into/FashionMNIST/raw`` with the four uncompressed IDX files torchvision expects."""
    raw = into / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for pair in files.values():
        for src in pair:
            dest = raw / src.name.removesuffix(".gz")
            if src.suffix == ".gz":
                with gzip.open(src, "rb") as fin, open(dest, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            else:
                dest.symlink_to(src.resolve())
    return into


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="ablate-compare-"))
    os.environ["ABLATE_CACHE"] = str(args.cache or tmp / "cache")
    # Imported after setting the cache location, which ablate reads at load time anyway.
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms
    from torchvision.datasets import FashionMNIST

    import ablate
    from ablate.bench.timing import interleave, seconds
    from ablate.config import DataConfig, TrainConfig
    from ablate.data import DataError, load_splits
    from ablate.data import fashion_mnist as fm
    from ablate.data.common import balanced_subset, search_dirs
    from ablate.data.loader import DeviceBatches
    from ablate.train.optim import make_optimizer

    device = torch.device("cpu")

    def timed(fn: Callable[[], object]) -> float:
        return seconds(fn, device)

    try:
        cfg = DataConfig(dataset="fashion-mnist", train_size=args.images, val_size=100)
        files = fm.find_files(search_dirs(cfg, fm.NAME, fm.SYSTEM_DIR))
        if files is None:
            raise DataError(f"Fashion-MNIST not found ($ABLATE_DATA/fashion-mnist or {fm.SYSTEM_DIR}); {fm.HOW_TO_GET}")
        layout = torch.channels_last if args.channels_last else torch.contiguous_format

        # --- one-time costs ---------------------------------------------------------------------------
        first_load = timed(lambda: load_splits(cfg, args.size))  # decode + resize + cache write (or a hit)
        splits_box: list = []
        cached_load = timed(lambda: splits_box.append(load_splits(cfg, args.size)))
        splits = splits_box[0]
        ablate_batches = DeviceBatches(
            splits.train_x,
            splits.train_y,
            splits.mean,
            splits.std,
            device,
            args.batch_size,
            shuffle=True,
            drop_last=True,
            seed=0,
            channels_last=False,  # same layout as torchvision's
        )
        root = torchvision_root(files, tmp / "tv")
        transform = transforms.Compose(
            [
                transforms.Resize(args.size),
                transforms.Grayscale(num_output_channels=3),
                transforms.ToTensor(),
                transforms.Normalize(splits.mean, splits.std),
            ]
        )
        tv_box: list = []
        tv_setup = timed(
            lambda: tv_box.append(FashionMNIST(str(root), train=True, transform=transform, download=False))
        )
        tv_dataset = tv_box[0]
        same_images = balanced_subset(tv_dataset.targets, args.images, cfg.seed, "train").tolist()
        tv_batches = DataLoader(
            Subset(tv_dataset, same_images),
            batch_size=args.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=args.workers,
            generator=torch.Generator().manual_seed(0),
            persistent_workers=args.workers > 0,
        )
        assert len(tv_batches) == len(ablate_batches)

        # --- the same model and step on both sides ---------------------------------------------------
        def make_step() -> Callable[[torch.Tensor, torch.Tensor], None]:
            torch.manual_seed(0)
            model = ablate.build_model(ablate.Variant(), 10).to(memory_format=layout).train()
            optimizer = make_optimizer(model, TrainConfig())
            loss_sum = torch.zeros((), dtype=torch.float64)

            def step(x: torch.Tensor, y: torch.Tensor) -> None:  # as in ablate.train.loop.train_cell
                nonlocal loss_sum
                out = model(x)
                loss = F.cross_entropy(out.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * y.shape[0]

            return step

        def noop(x: torch.Tensor, y: torch.Tensor) -> None:
            pass

        def epoch(batches: Iterable, step: Callable[[torch.Tensor, torch.Tensor], None]) -> Callable[[], None]:
            def run() -> None:
                for x, y in batches:
                    step(x, y)

            return run

        pipelines = {"ablate": ablate_batches, "torchvision": tv_batches}
        steps = {name: make_step() for name in pipelines}
        for name, batches in pipelines.items():  # warm-up: oneDNN kernels, allocator, worker start
            x, y = next(iter(batches))
            steps[name](x, y)

        Step = Callable[[torch.Tensor, torch.Tensor], None]

        def interleaved(rounds: int, step_of: Callable[[str], Step]) -> dict[str, list[float]]:
            """Seconds per epoch of each pipeline, taking turns."""
            runs = {name: epoch(batches, step_of(name)) for name, batches in pipelines.items()}
            return interleave({name: (lambda run=run: timed(run)) for name, run in runs.items()}, rounds)

        load_before = os.getloadavg()
        noop_times = interleaved(args.noop_rounds, lambda name: noop)
        full_times = interleaved(args.rounds, lambda name: steps[name])
        load_after = os.getloadavg()
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # --- report ----------------------------------------------------------------------------------------
    n = len(ablate_batches) * args.batch_size
    med = {
        k: {name: statistics.median(v) for name, v in t.items()}
        for k, t in (("noop", noop_times), ("full", full_times))
    }
    print(
        f"Fashion-MNIST {args.size}x{args.size}, {n} training images/epoch, batch {args.batch_size}, "
        f"{args.threads} threads, DataLoader workers {args.workers}, channels-last model {args.channels_last}, torch "
        f"{torch.__version__}"
    )
    print(
        f"ablate one-time: first load {first_load:.2f} s (decode+resize+cache write), cached load {cached_load:.2f} s; "
        f"torchvision dataset setup {tv_setup:.2f} s"
    )
    print(
        f"load average (1 min) before/after timing: {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} "
        "CPUs "
        "(well above 0 means other processes shared the CPUs: compare medians, or rerun)"
    )
    print()
    header = (
        f"{'pipeline':<12} {'input-only epoch':>17} {'(min)':>9} {'per image':>10} "
        f"{'full epoch':>11} {'(min)':>8} {'train img/s':>12}   all full epochs (s)"
    )
    print(header)
    print("-" * len(header))
    for name in pipelines:
        runs = ", ".join(f"{t:.2f}" for t in full_times[name])
        print(
            f"{name:<12} {med['noop'][name] * 1e3:>14.1f} ms {min(noop_times[name]) * 1e3:>6.1f} ms "
            f"{med['noop'][name] / n * 1e6:>7.1f} us {med['full'][name]:>9.2f} s {min(full_times[name]):>6.2f} s "
            f"{n / med['full'][name]:>12.1f}   {runs}"
        )
    print()
    input_ratio = med["noop"]["torchvision"] / med["noop"]["ablate"]
    full_ratio = med["full"]["ablate"] / med["full"]["torchvision"]
    # Ratios within each round (the two measurements of a round ran back to back, under about the
    # same outside load): their spread shows how much the machine's load moved the numbers.
    paired = sorted(a / b for a, b in zip(full_times["ablate"], full_times["torchvision"]))
    ok_input, ok_full = input_ratio >= 10, full_ratio <= 1.0
    print(
        f"input cost: torchvision / ablate = {input_ratio:.1f}x of medians (needs >= 10x)  "
        f"{'PASS' if ok_input else 'FAIL'}"
    )
    print(
        f"full epoch: ablate / torchvision = {full_ratio:.3f} of medians (needs <= 1)     "
        f"{'PASS' if ok_full else 'FAIL'}"
        f"   [per-round ratios: {', '.join(f'{r:.3f}' for r in paired)}]"
    )
    return 1 if args.strict and not (ok_input and ok_full) else 0


if __name__ == "__main__":
    sys.exit(main())
