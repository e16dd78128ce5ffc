"""Write result folders with planted effects: realistic run records and a manifest, as ``ablate run``
would write them, but with per-epoch numbers chosen by the test (no training).

A record is assembled by the code that assembles real ones (:func:`ablate.store.record.build_record`,
:func:`ablate.store.record.summarize`), from a configuration made of ``[data]`` and ``[train]``'s own
dataclasses, so the report code sees exactly the shapes it sees on real results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ablate.config import DataConfig, TrainConfig
from ablate.store.folder import write_manifest, write_run
from ablate.store.record import EpochMetrics, Identity, RunRecord, StepPoint, build_record, summarize
from ablate.variant import Variant

# Every key of [data] and [train], as a resolved cell's config has them (defaults for the rest).
DATA = dataclasses.asdict(DataConfig(dataset="shapes", train_size=512, val_size=128))
TRAIN = dataclasses.asdict(TrainConfig(epochs=6, batch_size=32, optimizer="adam", lr=0.0003, weight_decay=0.0))


@dataclass
class Outcome:
    """What one planted run should show."""

    final_val_acc: float = 0.6
    final_train_acc: float | None = None  # default: final_val_acc + 0.05
    # Epoch at which training error first drops to the 25% target (None: never in this run).
    reach_train_target: int | None = None
    images_per_s: float = 1000.0
    status: str = "ok"  # ok | diverged | failed | missing (no file written)
    epochs: int = 6
    # Eval-mode training accuracy (train_eval_acc) recorded, as ablate records it: the in-epoch
    # train_acc plus this offset (no dropout at evaluation). train_eval False: an older record.
    train_eval: bool = True
    train_eval_offset: float = 0.0
    # Step logs (``[train] log_every``): a log point every this many optimizer steps (None: an
    # older record without ``steps``). Training accuracy at the log points is 0.70 before
    # ``reach_train_target_step`` and 0.80 from it (error <= 25% first there; None: never).
    log_every: int | None = None
    reach_train_target_step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


STEPS_PER_EPOCH = DATA["train_size"] // TRAIN["batch_size"]  # 16: drop_last batches of 32 over 512 images


def make_steps(outcome: Outcome, epochs: int, seed: int) -> list[StepPoint]:
    """Step log points as ``ablate.train.loop`` writes them with ``log_every = outcome.log_every``."""
    assert outcome.log_every is not None
    out = []
    for step in range(outcome.log_every, epochs * STEPS_PER_EPOCH + 1, outcome.log_every):
        reached = outcome.reach_train_target_step is not None and step >= outcome.reach_train_target_step
        acc = 0.80 if reached else 0.70 * step / (epochs * STEPS_PER_EPOCH)
        out.append(
            {
                "step": step,
                "epoch": (step - 1) // STEPS_PER_EPOCH + 1,
                "images": step * TRAIN["batch_size"],
                "lr": TRAIN["lr"],
                "train_loss": 2.3 * (1 - acc) + 0.05,
                "train_acc": acc,
                "time_s": step * (0.1 + 0.01 * seed),
            }
        )
    return out


def run_id(experiment: str, slug: str, seed: int) -> str:
    return hashlib.sha256(f"{experiment}/{slug}/{seed}".encode()).hexdigest()[:16]


def _curve(final: float, start: float, n: int) -> list[float]:
    return [start + (final - start) * (i + 1) / n for i in range(n)]


def make_record(experiment: str, axes: dict[str, Any], seed: int, outcome: Outcome) -> RunRecord:
    """A run record in the format of ``ablate.train.loop`` for ``axes`` x ``seed`` showing ``outcome``."""
    slug = Variant(**axes).slug()
    n = outcome.epochs
    val = _curve(outcome.final_val_acc, 0.15, n)
    train_final = outcome.final_train_acc if outcome.final_train_acc is not None else outcome.final_val_acc + 0.05
    train = _curve(train_final, 0.12, n)
    if outcome.reach_train_target is not None:  # error <= 25% first at that epoch
        k = outcome.reach_train_target
        train = [min(a, 0.70) if e + 1 < k else max(a, 0.76) for e, a in enumerate(train)]
    else:
        train = [min(a, 0.70) for a in train]
    epochs: list[EpochMetrics] = []
    for e in range(n):
        epochs.append(
            {
                "epoch": e + 1,
                "lr": TRAIN["lr"],
                "train_loss": 2.3 * (1 - train[e]) + 0.05,
                "train_acc": train[e],
                "val_loss": 2.3 * (1 - val[e]) + 0.1,
                "val_acc": val[e],
                "val_top5": min(1.0, val[e] + 0.3),
                "epoch_time_s": 2.0 + 0.1 * seed,
                "train_time_s": 1.8 + 0.1 * seed,
                "train_images_per_s": outcome.images_per_s,
                "peak_memory_mb": 1500.0,
            }
        )
        if outcome.train_eval:
            epochs[-1].update(
                train_eval_acc=min(1.0, train[e] + outcome.train_eval_offset), train_eval_loss=2.3 * (1 - train[e])
            )
    status, error = outcome.status, None
    if status == "failed":
        epochs, error = [], "RuntimeError: out of memory"
    elif status == "diverged":
        epochs, error = epochs[: max(1, n // 2)], f"non-finite training loss in epoch {max(1, n // 2) + 1}"
    # Records from before train_eval_acc have no final_train_eval_acc in their summary either.
    summary = summarize([{"train_eval_acc": None, **e} for e in epochs])
    if not outcome.train_eval:
        summary.pop("final_train_eval_acc", None)
    ident: Identity = {
        "run_id": run_id(experiment, slug, seed),
        "experiment": experiment,
        "variant": dict(axes),
        "slug": slug,
        "seed": seed,
        "config": {"variant": dict(axes), "seed": seed, "data": DATA, "train": {**TRAIN, "epochs": n}},
    }
    parts: dict[str, Any] = {
        "status": status,
        "error": error,
        "params": None if status == "failed" else 14_601_930,
        "data": {"classes": [f"c{i}" for i in range(10)], "train_images": 512, "val_images": 128, "input_size": 65},
        "runtime": {
            "precision": "fp32",
            "train_images_per_s": outcome.images_per_s if epochs else None,
            "peak_memory_mb": 1500.0,
            "peak_memory_kind": "host_max_rss",
        },
        "epochs": epochs,
        "summary": summary,
        "steps": make_steps(outcome, len(epochs), seed) if outcome.log_every is not None and epochs else None,
        "env": {"ablate_version": "0.1.0", "device": "cpu", "device_name": "test cpu", "hostname": "test"},
    }
    for key, value in outcome.extra.items():  # a test's own parts replace the planted ones
        (ident if key in Identity.__annotations__ else parts)[key] = value  # type: ignore[literal-required]
    return build_record(ident, **parts)


def write_planted(
    root: Path,
    name: str,
    axes: dict[str, list[Any]],
    seeds: list[int],
    outcome: Callable[[dict[str, Any], int], Outcome],
    *,
    design: str = "grid",
    baseline: dict[str, Any] | None = None,
    epochs: int = 6,
) -> dict[str, Any]:
    """Write a manifest and one record per cell of the design; returns the manifest.

    ``outcome(axes, seed)`` decides each run (status "missing" writes no file)."""
    base = Variant(**(baseline or {}))
    if design == "grid":
        keys = list(axes)
        variants = [base.replace(**dict(zip(keys, combo))) for combo in itertools.product(*(axes[k] for k in keys))]
    else:
        variants = [base] + [base.replace(**{k: v}) for k, vals in axes.items() for v in vals]
    if base in variants:
        variants.remove(base)
        variants.insert(0, base)
    variants = list(dict.fromkeys(variants))
    manifest = {
        "name": name,
        "description": f"planted test data for {name}",
        "design": design,
        "seeds": list(seeds),
        "baseline": base.axes(),
        "baseline_slug": base.slug(),
        "axes": {k: list(v) for k, v in axes.items()},
        "variants": [v.axes() for v in variants],
        "run_ids": [run_id(name, v.slug(), s) for s in seeds for v in variants],
        "data": DATA,
        "train": {**TRAIN, "epochs": epochs},
        "source": f"{name}.toml",
        "gpu_overrides_applied": False,
    }
    write_manifest(root, manifest)
    for s in seeds:
        for v in variants:
            o = outcome(v.axes(), s)
            o.epochs = epochs
            if o.status != "missing":
                write_run(root, make_record(name, v.axes(), s, o))
    return manifest


def seeded_noise(seed: int, *key: Any) -> np.random.Generator:
    """A generator fixed by the test's seed and a key (variant, seed), so planted data never changes."""
    digest = hashlib.sha256(repr((seed, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


POOLING = {"pooling": ["overlap", "nonoverlap"]}


def write_pooling_study(
    root: Path,
    seeds: list[int],
    noise: Callable[[bool, int], float] = lambda overlap, seed: 0.01 * seed,
    outcome: Callable[[int], dict[str, Any]] = lambda seed: {},
    **kwargs: Any,
) -> None:
    """The study the report, index, export and notebook tests start from: experiment ``pool``,
    overlapping pooling 10 points better than non-overlapping on every seed (0.7 against 0.6, plus
    ``noise(overlap, seed)``); ``outcome(seed)``: more fields of each run's :class:`Outcome`;
    ``kwargs`` go to :func:`write_planted` (``epochs=3``)."""

    def planted(axes: dict[str, Any], seed: int) -> Outcome:
        overlap = axes["pooling"] == "overlap"
        return Outcome(final_val_acc=0.6 + 0.1 * overlap + noise(overlap, seed), **outcome(seed))

    write_planted(root, "pool", POOLING, seeds, planted, **kwargs)
