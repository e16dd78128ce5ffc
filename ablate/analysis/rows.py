"""Run record -> rows: the per-run numbers (:func:`run_row`), one row per finished epoch
(:func:`epoch_rows`) and one per step log point (:func:`step_rows`), the columns those frames have.

The epoch and step columns come from the record's types in :mod:`ablate.store.record`, so that a key
added to the record reaches the frames without a second list to keep in step.

Derived per-run numbers:

* ``gen_gap`` = final training accuracy - final validation accuracy, both in eval mode: the
  training accuracy is ``train_eval_acc``, measured after the epoch on a fixed training sample
  of the validation split's size (no dropout, no augmentation). Records without it fall back to
  ``train_acc``, measured during the epoch in training mode (dropout on), which understates the
  fit of dropout variants; ``gap_source`` says which one a run used.
* ``epochs_to_train_target``: the first epoch whose training error (1 - training accuracy)
  is at or below the target (the paper's Figure 1 uses 25%); ``time_to_train_target_s`` the
  wall time (training + evaluation) up to the end of that epoch. With step logs the target is
  found at step resolution instead: the first log point at or below it, ``images_to_train_target``
  the images seen by then, epochs fractional, seconds of training (``train_target_resolution``
  says which). NaN when the run never got there (``reached_train_target`` False). Likewise for
  an optional validation-accuracy target (epoch resolution).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ablate.analysis.metrics import Targets
from ablate.store.record import EPOCH_KEYS, STEP_KEYS, RunRecord
from ablate.variant import Variant


def slug_of(axes: dict[str, Any]) -> str:
    """A variant's slug from its axes (a readable ``axis=value`` join for axes this ablate does not know)."""
    try:
        return Variant(**axes).slug()
    except TypeError:  # axes this version of ablate does not know: a readable fallback
        return "-".join(f"{k}={v}" for k, v in axes.items())


def number(value: Any) -> float:
    """A record's value as a float: NaN for a missing, boolean, non-numeric or non-finite value."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _first_reaching(epochs: list[dict[str, Any]], ok: Callable[[dict[str, Any]], bool]) -> tuple[float, float]:
    """(epoch number, cumulative wall seconds) of the first epoch satisfying ``ok``; NaNs if none."""
    wall = 0.0
    for e in epochs:
        wall += number(e.get("epoch_time_s"))
        if ok(e):
            return float(e.get("epoch", math.nan)), wall
    return math.nan, math.nan


def run_row(record: RunRecord, targets: Targets) -> dict[str, Any]:
    """The per-run numbers of one result record (see the module docstring for the derived ones)."""
    epochs = [e for e in record.get("epochs") or [] if isinstance(e, dict)]
    summary = record.get("summary") or {}
    last = epochs[-1] if epochs else {}

    def final(key: str, epoch_key: str) -> float:
        value = number(summary.get(key))
        return value if not math.isnan(value) else number(last.get(epoch_key))

    runtime = record.get("runtime") or {}
    env = record.get("env") or {}
    val_accs = [number(e.get("val_acc")) for e in epochs]
    row: dict[str, Any] = {
        "run_id": record.get("run_id"),
        "variant": record.get("slug") or slug_of(record.get("variant") or {}),
        "seed": int(record["seed"]) if record.get("seed") is not None else -1,
        "status": record.get("status") or "unknown",
        "error": record.get("error") or "",
        "epochs_done": len(epochs),
        "params": number(record.get("params")),
        "final_val_acc": final("final_val_acc", "val_acc"),
        "best_val_acc": number(summary.get("best_val_acc"))
        if summary.get("best_val_acc") is not None
        else (max((v for v in val_accs if not math.isnan(v)), default=math.nan)),
        "final_val_loss": final("final_val_loss", "val_loss"),
        "final_train_loss": final("final_train_loss", "train_loss"),
        "final_train_acc": final("final_train_acc", "train_acc"),
        "final_val_top5": number(last.get("val_top5")),
        "train_images_per_s": number(runtime.get("train_images_per_s")),
        "peak_memory_mb": number(runtime.get("peak_memory_mb")),
        "wall_time_s": number(summary.get("wall_time_s"))
        if "wall_time_s" in summary
        else float(sum(number(e.get("epoch_time_s")) for e in epochs)),
        "device": str(env.get("device_name") or env.get("device") or ""),
    }
    train_eval = number(last.get("train_eval_acc"))
    row["gap_source"] = "train_acc" if math.isnan(train_eval) else "train_eval_acc"
    row["gen_gap"] = (row["final_train_acc"] if math.isnan(train_eval) else train_eval) - row["final_val_acc"]
    config_data = (record.get("config") or {}).get("data") or {}
    row["data_augment"] = str(config_data.get("augment") or "none") if isinstance(config_data, dict) else "none"
    row["data_resample"] = bool(config_data.get("resample")) if isinstance(config_data, dict) else False
    steps = [p for p in record.get("steps") or [] if isinstance(p, dict)]
    row["steps_logged"] = len(steps)
    row["images_per_epoch"] = _images_per_epoch(record, steps) if steps else math.nan
    if targets.train_error is not None:
        goal = targets.train_error
        ep, sec = _first_reaching(epochs, lambda e: 1.0 - number(e.get("train_acc")) <= goal + 1e-12)
        row.update(
            epochs_to_train_target=ep,
            time_to_train_target_s=sec,
            reached_train_target=not math.isnan(ep),
            images_to_train_target=math.nan,
            train_target_resolution="epoch",
        )
        if steps:
            row.update(_step_target(record, steps, goal))
    if targets.val_acc is not None:
        goal = targets.val_acc
        ep, sec = _first_reaching(epochs, lambda e: number(e.get("val_acc")) >= goal - 1e-12)
        row.update(epochs_to_val_target=ep, time_to_val_target_s=sec, reached_val_target=not math.isnan(ep))
    return row


def _images_per_epoch(record: RunRecord, steps: list[dict[str, Any]]) -> float:
    """Training images per epoch: batches of ``batch_size`` over the training split, the last
    partial batch dropped (as ablate trains); else read off the step log."""
    train = (record.get("config") or {}).get("train") or {}
    size = number((record.get("data") or {}).get("train_images"))
    batch = number(train.get("batch_size")) if isinstance(train, dict) else math.nan
    if not math.isnan(size) and not math.isnan(batch) and batch > 0 and size >= batch:
        return float(size // batch * batch)
    first = [number(p.get("images")) for p in steps if p.get("epoch") == 1]
    return max(first) if first else math.nan


def _step_target(record: RunRecord, steps: list[dict[str, Any]], goal: float) -> dict[str, Any]:
    """Time to a training-error target at step resolution: the first log point whose training
    error (1 - mean training accuracy over the steps since the previous point) is <= ``goal``.
    Epochs are fractional (images seen / images per epoch); seconds are elapsed training time."""
    for p in steps:
        if 1.0 - number(p.get("train_acc")) <= goal + 1e-12:
            images = number(p.get("images"))
            return {
                "epochs_to_train_target": images / _images_per_epoch(record, steps),
                "images_to_train_target": images,
                "time_to_train_target_s": number(p.get("time_s")),
                "reached_train_target": True,
                "train_target_resolution": "step",
            }
    return {
        "epochs_to_train_target": math.nan,
        "images_to_train_target": math.nan,
        "time_to_train_target_s": math.nan,
        "reached_train_target": False,
        "train_target_resolution": "step",
    }


# The record's own keys, in the order store/record.py declares them: a key added there is a column here.
STEP_COLUMNS: tuple[str, ...] = STEP_KEYS
STEP_FRAME_COLUMNS = ["run_id", "variant", "seed", "status", *STEP_COLUMNS, "train_error"]


def _run_keys(record: RunRecord) -> dict[str, Any]:
    """The columns that tie a step or epoch row to its run (run id, variant, seed, status)."""
    return {
        "run_id": record.get("run_id"),
        "variant": record.get("slug") or slug_of(record.get("variant") or {}),
        "seed": int(record.get("seed", -1)),
        "status": record.get("status") or "unknown",
    }


def step_rows(record: RunRecord) -> list[dict[str, Any]]:
    """One row per step log point of a record (``record["steps"]``; none for older records)."""
    rows = []
    for p in record.get("steps") or []:
        if not isinstance(p, dict):
            continue
        row = _run_keys(record)
        row.update({k: number(p.get(k)) for k in STEP_COLUMNS})
        row["train_error"] = 1.0 - row["train_acc"]
        rows.append(row)
    return rows


EPOCH_COLUMNS: tuple[str, ...] = EPOCH_KEYS


def epoch_rows(record: RunRecord) -> list[dict[str, Any]]:
    """One row per finished epoch of a record (none for a failed run)."""
    rows, wall, train = [], 0.0, 0.0
    for e in record.get("epochs") or []:
        row = _run_keys(record)
        row.update({k: number(e.get(k)) for k in EPOCH_COLUMNS})
        row["epoch"] = int(e.get("epoch", len(rows) + 1))
        row["train_error"] = 1.0 - row["train_acc"]
        wall += 0.0 if math.isnan(row["epoch_time_s"]) else row["epoch_time_s"]
        train += 0.0 if math.isnan(row["train_time_s"]) else row["train_time_s"]
        row["cum_wall_time_s"], row["cum_train_time_s"] = wall, train
        rows.append(row)
    return rows
