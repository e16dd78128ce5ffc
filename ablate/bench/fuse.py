"""How many seeds to fuse into one model (``fuse_seeds = "auto"``): a short probe of the device.

Fusing K seeds (:mod:`ablate.models.fused`) pays off where one small model leaves the device
idle: on a GPU, K grouped convolutions keep it busy where one AlexNet-65 cannot. On a CPU that one
model already keeps every core busy, and a fused step is K steps' work or more. So ``auto``
measures rather than assumes: :func:`choose_fuse` times the training step of the variant, with
the run's batch size, precision, layout and optimizer, at K = 1, 2, 4, ... on the device the
seeds will train on, and :func:`pick_fuse` takes the K with the most images per second over all
members, a larger K only when it gains at least :data:`MIN_GAIN` over the best smaller one
(more memory and a coarser unit of work must buy something). The probe stops at the first K that
does not gain, runs out of memory or fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ablate.bench.cases import measure_case
from ablate.bench.settings import BenchSettings
from ablate.config import TrainConfig
from ablate.variant import Variant

#: K tried by the probe, in order (at most as many as there are seeds to fuse).
CANDIDATES: tuple[int, ...] = (1, 2, 4, 8, 16)
#: A larger K is chosen only if its images/s (all members) are at least this times the best so far.
MIN_GAIN = 1.15


@dataclass(frozen=True)
class FuseChoice:
    """The K chosen, one line saying why, and the measurements it rests on (bench rows)."""

    k: int
    note: str
    rows: list[dict[str, Any]] = field(default_factory=list)


def pick_fuse(rows: Sequence[dict[str, Any]]) -> FuseChoice:
    """The K that ``auto`` takes from train-step measurements of one case at several K (bench rows
    with ``fuse`` and ``images_per_s``, in increasing K): the largest K whose images/s are at least
    :data:`MIN_GAIN` times those of the K chosen before it, looking no further than the first K that
    gains less, failed or ran out of memory."""
    ok = sorted((r for r in rows if r["status"] == "ok" and r["mode"] == "train"), key=lambda r: r["fuse"])
    if not ok or ok[0]["fuse"] != 1:
        return FuseChoice(1, "fuse_seeds auto: K=1 (no measurement of one model to compare with)", list(rows))
    best = ok[0]
    device = best["device"]
    for r in sorted(rows, key=lambda r: r["fuse"]):
        if r["fuse"] <= best["fuse"] or r["mode"] != "train":
            continue
        if r["status"] != "ok":
            why = f"K={r['fuse']} {'ran out of memory' if r['status'] == 'oom' else 'failed'}"
            break
        gain = r["images_per_s"] / best["images_per_s"]
        if gain < MIN_GAIN:
            why = (
                f"K={r['fuse']} trained {r['images_per_s']:,.0f} img/s against {best['images_per_s']:,.0f} at "
                f"K={best['fuse']}: {gain:.2f}x, under the {MIN_GAIN:.2f}x a larger K must gain"
            )
            break
        best = r
    else:
        why = f"the largest K probed, {best['images_per_s'] / ok[0]['images_per_s']:.2f}x the img/s of K=1"
    return FuseChoice(best["fuse"], f"fuse_seeds auto: K={best['fuse']} on {device} ({why})", list(rows))


def probe_settings(train: TrainConfig, device: torch.device) -> BenchSettings:
    """What the probe times: the run's batch size, precision, layout, compile mode and optimizer,
    for a few steps (a GPU step takes milliseconds, a CPU step of AlexNet-65 seconds)."""
    short = dict(warmup=5, steps=10, repeats=3) if device.type == "cuda" else dict(warmup=1, steps=2, repeats=1)
    return BenchSettings(
        batch_sizes=(train.batch_size,),
        precisions=(train.precision,),
        modes=("train",),
        channels_last=train.channels_last,
        compile=train.compile,
        optimizer=train.optimizer,
        **short,
    )


def choose_fuse(
    variant: Variant,
    train: TrainConfig,
    device: torch.device,
    num_classes: int = 10,
    seeds: int | None = None,
    candidates: Sequence[int] = CANDIDATES,
    on_case: Callable[[dict[str, Any]], None] | None = None,
) -> FuseChoice:
    """K for ``fuse_seeds = "auto"``: probe the train step of ``variant`` at each candidate K (at
    most ``seeds``, the seeds there are to fuse) on ``device`` and :func:`pick_fuse`; stops at the
    first K that does not gain. ``on_case(row)`` hears each measurement."""
    settings = probe_settings(train, device)
    tried = [k for k in candidates if seeds is None or k <= seeds] or [1]
    rows: list[dict[str, Any]] = []
    described: dict[Variant, dict[str, Any]] = {}
    for k in tried:
        row = measure_case(variant, train.batch_size, train.precision, "train", k, device, settings, described)
        rows.append(row)
        if on_case:
            on_case(row)
        if pick_fuse(rows).k != k:  # this K did not gain (or failed): larger ones are not tried
            break
    return pick_fuse(rows)
