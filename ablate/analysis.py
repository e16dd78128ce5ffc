"""Result files -> tidy pandas frames, and the tables of a report built from them.

Reads what ``ablate run`` wrote (``results/<experiment>/experiment.json`` and ``runs/*.json``,
through :mod:`ablate.store`) and never imports training code. Two frames per experiment:

* ``runs``: one row per cell of the experiment (variant x seed), including cells with no result
  file yet (status ``missing``), failed and diverged runs, with the run's final numbers;
* ``epochs``: one row per run x finished epoch.

Only runs with status ``ok`` enter means, intervals and comparisons; the others are counted per
variant and listed, never silently dropped. Runs in the folder that belong to an older
configuration of the experiment (run ids not in the manifest) are left out and counted.

Derived per-run numbers:

* ``gen_gap`` = final training accuracy - final validation accuracy, both in eval mode: the
  training accuracy is ``train_eval_acc``, measured after the epoch on a fixed training sample
  of the validation split's size (no dropout, no augmentation). Records without it fall back to
  ``train_acc``, measured during the epoch in training mode (dropout on), which understates the
  fit of dropout variants; ``gap_source`` says which one a run used.
* ``epochs_to_train_target``: the first epoch whose training error (1 - training accuracy)
  is at or below the target (the paper's Figure 1 uses 25%); ``time_to_train_target_s`` the
  wall time (training + evaluation) up to the end of that epoch. NaN when the run never got
  there (``reached_train_target`` False). Likewise for an optional validation-accuracy target.

The statistics themselves (intervals, tests, Holm, verdicts) live in :mod:`ablate.stats`.
"""

from __future__ import annotations

import difflib
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ablate import stats
from ablate.store import experiments, manifest_path, read_manifest, runs_dir, scan_runs
from ablate.variant import Variant

STATUS_OK = "ok"
STATUS_MISSING = "missing"
NOT_REACHED = "target not reached"
ALL_EQUAL_NOTE = "every paired difference is the same (quantized metric?): zero-width interval, sign-flip p-value"


class ReportError(ValueError):
    """Something a user can fix (unknown experiment or baseline, no results); one-line ``str()``."""


@dataclass(frozen=True)
class Targets:
    """What "reaching the target" means for time-to-target numbers (None = not computed)."""

    # Training error (1 - training accuracy) to reach; the paper's Figure 1 uses 0.25.
    train_error: float | None = 0.25
    # Validation accuracy to reach, e.g. 0.6.
    val_acc: float | None = None

    def describe(self) -> list[str]:
        out = []
        if self.train_error is not None:
            out.append(f"training error <= {self.train_error:.0%}")
        if self.val_acc is not None:
            out.append(f"validation accuracy >= {self.val_acc:.0%}")
        return out


@dataclass(frozen=True)
class Metric:
    """A per-run number that reports summarise and compare."""

    name: str  # column of the runs frame
    label: str  # for tables and plots
    higher_is_better: bool
    percent: bool = False  # a fraction shown as a percentage (differences in points)
    unit: str = ""


def metrics_for(targets: Targets, steps: bool = False) -> list[Metric]:
    """The metrics compared against the baseline, primary first; ``steps``: the runs log
    training steps, so time to the training-error target is also counted in images seen."""
    out = [
        Metric("final_val_acc", "final val accuracy", True, percent=True),
        Metric("best_val_acc", "best val accuracy", True, percent=True),
        Metric("final_val_loss", "final val loss", False, unit="nats"),
        Metric("final_train_loss", "final train loss", False, unit="nats"),
        Metric("gen_gap", "generalization gap (train - val acc)", False, percent=True),
        Metric("train_images_per_s", "training throughput", True, unit="images/s"),
    ]
    if targets.train_error is not None:
        out += [
            Metric("epochs_to_train_target", f"epochs to {targets.train_error:.0%} train error", False, unit="epochs"),
            Metric("time_to_train_target_s", f"time to {targets.train_error:.0%} train error", False, unit="s"),
        ]
        if steps:
            out.append(Metric("images_to_train_target", f"images to {targets.train_error:.0%} train error", False,
                              unit="images"))
    if targets.val_acc is not None:
        out += [
            Metric("epochs_to_val_target", f"epochs to {targets.val_acc:.0%} val acc", False, unit="epochs"),
            Metric("time_to_val_target_s", f"time to {targets.val_acc:.0%} val acc", False, unit="s"),
        ]
    return out


TARGET_METRICS = {
    "epochs_to_train_target": "reached_train_target",
    "images_to_train_target": "reached_train_target",
    "time_to_train_target_s": "reached_train_target",
    "epochs_to_val_target": "reached_val_target",
    "time_to_val_target_s": "reached_val_target",
}


@dataclass
class ExperimentData:
    """Everything a report needs about one experiment, read from its results folder."""

    name: str
    description: str
    design: str
    seeds: list[int]
    # Axis -> values the experiment varies (from the manifest; axes with a single value included).
    axes: dict[str, list[Any]]
    # Variant slugs in the experiment's order (baseline first) and their axis values.
    variants: list[str]
    variant_axes: dict[str, dict[str, Any]]
    baseline: str
    runs: pd.DataFrame
    epochs: pd.DataFrame
    targets: Targets
    manifest: dict[str, Any] | None = None
    stale_runs: int = 0
    notes: list[str] = field(default_factory=list)
    # One row per run x step log point (``[train] log_every``); empty for records without steps.
    steps: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STEP_FRAME_COLUMNS))

    @property
    def ok_runs(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == STATUS_OK]

    def seeds_seen(self) -> list[int]:
        """Seeds of the experiment and of any run found, sorted."""
        return sorted(set(self.seeds) | {int(s) for s in self.runs["seed"]})

    def varying_axes(self) -> dict[str, list[Any]]:
        """Axes with at least two values that actually differ between the variants."""
        out = {}
        for axis, values in self.axes.items():
            seen = {repr(self.variant_axes[v].get(axis)) for v in self.variants}
            if len(values) >= 2 and len(seen) >= 2:
                out[axis] = list(values)
        return out


# --- what the intervals cover --------------------------------------------------------------------
VARIATION_SOURCES = ("initialisation", "data order", "augmentation", "data sampling")


def variation_sources(data: ExperimentData) -> tuple[list[str], list[str]]:
    """(sources of run-to-run variation the seeds vary, sources they hold fixed), from the runs'
    configs: the run seed always sets initial weights and data order; augmentation varies with it
    when ``data.augment`` is not "none"; which images are drawn only when ``data.resample`` is true
    (a missing setting counts as false: the data depend on ``data.seed`` alone)."""
    runs = data.runs[data.runs["status"] != STATUS_MISSING]
    augment = "data_augment" in runs and any(str(a) not in ("none", "nan", "None", "") for a in runs["data_augment"])
    resample = "data_resample" in runs and bool(runs["data_resample"].fillna(False).astype(bool).any())
    covered = ["initialisation", "data order"] + (["augmentation"] if augment else []) + (["data sampling"] if resample else [])
    return covered, [x for x in VARIATION_SOURCES if x not in covered]


# --- loading ----------------------------------------------------------------------------------
# Kept for callers of the old name; the store owns the results layout.
available_experiments = experiments


def _slug(axes: dict[str, Any]) -> str:
    try:
        return Variant(**axes).slug()
    except TypeError:  # axes this version of ablate does not know: a readable fallback
        return "-".join(f"{k}={v}" for k, v in axes.items())


def _num(value: Any) -> float:
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
        wall += _num(e.get("epoch_time_s"))
        if ok(e):
            return float(e.get("epoch", math.nan)), wall
    return math.nan, math.nan


def run_row(record: dict[str, Any], targets: Targets) -> dict[str, Any]:
    """The per-run numbers of one result record (see the module docstring for the derived ones)."""
    epochs = [e for e in record.get("epochs") or [] if isinstance(e, dict)]
    summary = record.get("summary") or {}
    last = epochs[-1] if epochs else {}

    def final(key: str, epoch_key: str) -> float:
        value = _num(summary.get(key))
        return value if not math.isnan(value) else _num(last.get(epoch_key))

    runtime = record.get("runtime") or {}
    env = record.get("env") or {}
    val_accs = [_num(e.get("val_acc")) for e in epochs]
    row: dict[str, Any] = {
        "run_id": record.get("run_id"),
        "variant": record.get("slug") or _slug(record.get("variant") or {}),
        "seed": int(record["seed"]) if record.get("seed") is not None else -1,
        "status": record.get("status") or "unknown",
        "error": record.get("error") or "",
        "epochs_done": len(epochs),
        "params": _num(record.get("params")),
        "final_val_acc": final("final_val_acc", "val_acc"),
        "best_val_acc": _num(summary.get("best_val_acc")) if summary.get("best_val_acc") is not None
        else (max((v for v in val_accs if not math.isnan(v)), default=math.nan)),
        "final_val_loss": final("final_val_loss", "val_loss"),
        "final_train_loss": final("final_train_loss", "train_loss"),
        "final_train_acc": final("final_train_acc", "train_acc"),
        "final_val_top5": _num(last.get("val_top5")),
        "train_images_per_s": _num(runtime.get("train_images_per_s")),
        "peak_memory_mb": _num(runtime.get("peak_memory_mb")),
        "wall_time_s": _num(summary.get("wall_time_s")) if "wall_time_s" in summary
        else float(sum(_num(e.get("epoch_time_s")) for e in epochs)),
        "device": str(env.get("device_name") or env.get("device") or ""),
    }
    train_eval = _num(last.get("train_eval_acc"))
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
        ep, sec = _first_reaching(epochs, lambda e: 1.0 - _num(e.get("train_acc")) <= goal + 1e-12)
        row.update(epochs_to_train_target=ep, time_to_train_target_s=sec, reached_train_target=not math.isnan(ep),
                   images_to_train_target=math.nan, train_target_resolution="epoch")
        if steps:
            row.update(_step_target(record, steps, goal))
    if targets.val_acc is not None:
        goal = targets.val_acc
        ep, sec = _first_reaching(epochs, lambda e: _num(e.get("val_acc")) >= goal - 1e-12)
        row.update(epochs_to_val_target=ep, time_to_val_target_s=sec, reached_val_target=not math.isnan(ep))
    return row


def _images_per_epoch(record: dict[str, Any], steps: list[dict[str, Any]]) -> float:
    """Training images per epoch: batches of ``batch_size`` over the training split, the last
    partial batch dropped (as ablate trains); else read off the step log."""
    train = (record.get("config") or {}).get("train") or {}
    size = _num((record.get("data") or {}).get("train_images"))
    batch = _num(train.get("batch_size")) if isinstance(train, dict) else math.nan
    if not math.isnan(size) and not math.isnan(batch) and batch > 0 and size >= batch:
        return float(size // batch * batch)
    first = [_num(p.get("images")) for p in steps if p.get("epoch") == 1]
    return max(first) if first else math.nan


def _step_target(record: dict[str, Any], steps: list[dict[str, Any]], goal: float) -> dict[str, Any]:
    """Time to a training-error target at step resolution: the first log point whose training
    error (1 - mean training accuracy over the steps since the previous point) is <= ``goal``.
    Epochs are fractional (images seen / images per epoch); seconds are elapsed training time."""
    for p in steps:
        if 1.0 - _num(p.get("train_acc")) <= goal + 1e-12:
            images = _num(p.get("images"))
            return {"epochs_to_train_target": images / _images_per_epoch(record, steps),
                    "images_to_train_target": images, "time_to_train_target_s": _num(p.get("time_s")),
                    "reached_train_target": True, "train_target_resolution": "step"}
    return {"epochs_to_train_target": math.nan, "images_to_train_target": math.nan, "time_to_train_target_s": math.nan,
            "reached_train_target": False, "train_target_resolution": "step"}


STEP_COLUMNS = ("step", "epoch", "images", "lr", "train_loss", "train_acc", "time_s")
STEP_FRAME_COLUMNS = ["run_id", "variant", "seed", "status", *STEP_COLUMNS, "train_error"]


def step_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per step log point of a record (``record["steps"]``; none for older records)."""
    rows = []
    for p in record.get("steps") or []:
        if not isinstance(p, dict):
            continue
        row = {"run_id": record.get("run_id"), "variant": record.get("slug") or _slug(record.get("variant") or {}),
               "seed": int(record.get("seed", -1)), "status": record.get("status") or "unknown"}
        row.update({k: _num(p.get(k)) for k in STEP_COLUMNS})
        row["train_error"] = 1.0 - row["train_acc"]
        rows.append(row)
    return rows


EPOCH_COLUMNS = (
    "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5",
    "train_eval_loss", "train_eval_acc", "epoch_time_s", "train_time_s", "train_images_per_s", "peak_memory_mb",
)


def epoch_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per finished epoch of a record (none for a failed run)."""
    rows, wall, train = [], 0.0, 0.0
    for e in record.get("epochs") or []:
        row = {"run_id": record.get("run_id"), "variant": record.get("slug") or _slug(record.get("variant") or {}),
               "seed": int(record.get("seed", -1)), "status": record.get("status") or "unknown"}
        row.update({k: _num(e.get(k)) for k in EPOCH_COLUMNS})
        row["epoch"] = int(e.get("epoch", len(rows) + 1))
        row["train_error"] = 1.0 - row["train_acc"]
        wall += 0.0 if math.isnan(row["epoch_time_s"]) else row["epoch_time_s"]
        train += 0.0 if math.isnan(row["train_time_s"]) else row["train_time_s"]
        row["cum_wall_time_s"], row["cum_train_time_s"] = wall, train
        rows.append(row)
    return rows


def load_experiment_data(
    root: str | Path, name: str, baseline: str | None = None, targets: Targets | None = None
) -> ExperimentData:
    """Read one experiment's manifest and run records into :class:`ExperimentData`.

    Raises :class:`ReportError` for an unknown experiment, an experiment without any run record,
    or a ``baseline`` slug that is not one of its variants.
    """
    targets = targets or Targets()
    known = available_experiments(root)
    if name not in known:
        hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        found = f"found: {', '.join(known)}" if known else "no experiments there"
        raise ReportError(
            f"unknown experiment {name!r} under {root} ({found})" + (f"; did you mean {hint[0]!r}?" if hint else "")
        )
    scan = scan_runs(root, name)  # valid records, and the files that are not (one note each)
    records = [r for r in scan.records if isinstance(r, dict)]
    if not records:
        raise ReportError(f"experiment {name!r} has no run records yet in {runs_dir(root, name)}; run it first"
                          + (f" ({len(scan.unreadable)} damaged file(s): {scan.warnings()[0]})" if scan.unreadable else ""))
    notes: list[str] = list(scan.warnings())
    records = _readable(records, targets, notes)
    if not records:
        raise ReportError(f"experiment {name!r} has no readable run records in {runs_dir(root, name)}: {'; '.join(notes)}")
    manifest = _checked_manifest(root, name, notes)

    # The cells the experiment consists of now: from the manifest when there is one.
    expected: list[tuple[str | None, str, int]] = []  # (run_id, slug, seed)
    if manifest and manifest.get("variants"):
        variant_axes = {_slug(v): dict(v) for v in manifest["variants"]}
        variants = list(variant_axes)
        seeds = [int(s) for s in manifest.get("seeds", [])]
        run_ids = list(manifest.get("run_ids") or [])
        if manifest.get("cells"):  # explicit (run_id, slug, seed) per cell
            expected = [(c["run_id"], c["slug"], int(c["seed"])) for c in manifest["cells"]]
        elif len(run_ids) == len(seeds) * len(variants):  # older manifests: cells are stored seed-major
            expected = [(rid, variants[i % len(variants)], seeds[i // len(variants)]) for i, rid in enumerate(run_ids)]
        else:
            notes.append("the manifest's run ids do not match its variants x seeds; missing cells are not detected")
        current = set(run_ids)
        current_records = [r for r in records if r.get("run_id") in current] if run_ids else records
        stale = len(records) - len(current_records)
        default_baseline = manifest.get("baseline_slug") or _slug(manifest.get("baseline") or {})
        design = manifest.get("design", "grid")
        axes = {k: list(v) for k, v in (manifest.get("axes") or {}).items()}
        description = manifest.get("description") or ""
    else:
        notes.append("no experiment.json manifest: every run record in the folder is used and missing cells cannot be detected")
        current_records, stale = records, 0
        variant_axes = {}
        for r in sorted(records, key=lambda r: (r.get("slug") or "", r.get("seed") or 0)):
            variant_axes.setdefault(r.get("slug") or _slug(r.get("variant") or {}), dict(r.get("variant") or {}))
        variants = list(variant_axes)
        default_baseline = _slug(Variant().axes()) if _slug(Variant().axes()) in variant_axes else variants[0]
        seeds = sorted({int(r.get("seed", -1)) for r in records})
        axes = {}
        for axis in sorted({k for v in variant_axes.values() for k in v}):
            values = list(dict.fromkeys(v.get(axis) for v in variant_axes.values()))
            if len(values) > 1:
                axes[axis] = values
        design, description = "unknown", ""

    # Records of variants the manifest does not list (should not happen) still get reported.
    for r in current_records:
        slug = r.get("slug") or _slug(r.get("variant") or {})
        if slug not in variant_axes:
            variant_axes[slug] = dict(r.get("variant") or {})
            variants.append(slug)

    if baseline is not None:
        if baseline not in variant_axes:
            hint = difflib.get_close_matches(baseline, variants, n=1, cutoff=0.6)
            raise ReportError(
                f"unknown baseline {baseline!r} for experiment {name!r}; variants: {', '.join(variants)}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
            )
        chosen = baseline
    elif default_baseline in variant_axes:
        chosen = default_baseline
    else:
        chosen = variants[0]
        notes.append(f"the experiment's [model] variant {default_baseline} is not one of its cells; baseline is {chosen}")
    variants = [chosen] + [v for v in variants if v != chosen]

    rows = [run_row(r, targets) for r in current_records]
    have = {r["run_id"] for r in rows}
    for run_id, slug, seed in expected:
        if run_id not in have:
            row = {"run_id": run_id, "variant": slug, "seed": seed, "status": STATUS_MISSING, "error": "no result file",
                   "epochs_done": 0}
            rows.append(row)
    runs = pd.DataFrame(rows)
    order = {v: i for i, v in enumerate(variants)}
    runs = _sorted(runs, order, ["seed"])
    for axis in dict.fromkeys(k for v in variant_axes.values() for k in v):
        runs[axis] = [variant_axes[v].get(axis) for v in runs["variant"]]
    if "reached_train_target" in runs:
        runs["reached_train_target"] = runs["reached_train_target"].astype("boolean")
    if "reached_val_target" in runs:
        runs["reached_val_target"] = runs["reached_val_target"].astype("boolean")

    erows = [row for r in current_records for row in epoch_rows(r)]
    epochs = pd.DataFrame(erows, columns=["run_id", "variant", "seed", "status", *EPOCH_COLUMNS, "train_error",
                                          "cum_wall_time_s", "cum_train_time_s"])
    epochs = _sorted(epochs, order, ["seed", "epoch"])
    srows = [row for r in current_records for row in step_rows(r)]
    steps = _sorted(pd.DataFrame(srows, columns=STEP_FRAME_COLUMNS), order, ["seed", "step"])
    if stale:
        notes.append(f"{stale} run(s) from an older configuration of this experiment were ignored")
    devices = sorted({d for d, st in zip(runs.get("device", []), runs["status"]) if st == STATUS_OK and isinstance(d, str) and d})
    if len(devices) > 1:
        notes.append(f"ok runs come from {len(devices)} devices ({', '.join(devices)}): speed and time comparisons mix machines")
    return ExperimentData(
        name=name, description=description, design=design, seeds=seeds, axes=axes, variants=variants,
        variant_axes=variant_axes, baseline=chosen, runs=runs, epochs=epochs, targets=targets,
        manifest=manifest, stale_runs=stale, notes=notes, steps=steps,
    )


def _checked_manifest(root: str | Path, name: str, notes: list[str]) -> dict[str, Any] | None:
    """The experiment's manifest when it is readable and has the expected shape; otherwise None,
    with a note naming the file (the report then works from the run records alone)."""
    path = manifest_path(root, name)
    try:
        manifest = read_manifest(root, name)
    except Exception as e:  # a damaged file must not stop the report  # noqa: BLE001
        manifest, why = None, f"{type(e).__name__}: {e}"
    else:
        why = "not valid JSON or not readable"
    if manifest is None:
        if path.exists():
            notes.append(f"{path} is damaged ({why}): treated as absent")
        return None
    problem = _manifest_problem(manifest)
    if problem:
        notes.append(f"{path} is damaged ({problem}): treated as absent")
        return None
    return manifest


def _manifest_problem(m: Any) -> str:
    """Why a manifest cannot be used, or "" when its fields have the shapes analysis relies on."""
    if not isinstance(m, dict):
        return f"a JSON {type(m).__name__}, not an object"
    if not isinstance(m.get("variants", []), list) or not all(isinstance(v, dict) for v in m.get("variants", [])):
        return "'variants' is not a list of objects"
    try:
        [int(x) for x in m.get("seeds", [])]
    except (TypeError, ValueError):
        return "'seeds' is not a list of integers"
    if not isinstance(m.get("run_ids") or [], list):
        return "'run_ids' is not a list"
    cells = m.get("cells") or []
    if not isinstance(cells, list) or not all(isinstance(c, dict) and {"run_id", "slug", "seed"} <= set(c) for c in cells):
        return "'cells' is not a list of {run_id, slug, seed}"
    if not isinstance(m.get("axes") or {}, dict) or not all(isinstance(v, list) for v in (m.get("axes") or {}).values()):
        return "'axes' is not an object of lists"
    for key in ("baseline", "data", "train", "adaptive"):
        if m.get(key) is not None and not isinstance(m[key], dict):
            return f"'{key}' is not an object"
    return ""


def _readable(records: list[dict[str, Any]], targets: Targets, notes: list[str]) -> list[dict[str, Any]]:
    """Records whose fields analysis can read; the others are left out with a note each."""
    out = []
    for r in records:
        try:
            run_row(r, targets)
            epoch_rows(r)
            step_rows(r)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
            notes.append(f"run record {r.get('run_id', '?')} is damaged ({type(e).__name__}: {e}): left out")
            continue
        out.append(r)
    return out


def _sorted(frame: pd.DataFrame, order: dict[str, int], then: list[str]) -> pd.DataFrame:
    if frame.empty:
        return frame.reset_index(drop=True)
    key = frame["variant"].map(order).fillna(len(order)).astype(int)
    return (
        frame.assign(_order=key).sort_values(["_order", *then], kind="stable")
        .drop(columns="_order").reset_index(drop=True)
    )


# --- per-variant summary ---------------------------------------------------------------------------
def status_counts(data: ExperimentData) -> pd.DataFrame:
    """Per variant: cells expected, and how many are ok / diverged / failed / missing / other."""
    rows = []
    for v in data.variants:
        mine = data.runs[data.runs["variant"] == v]
        counts = mine["status"].value_counts()
        known = sum(int(counts.get(s, 0)) for s in ("ok", "diverged", "failed", STATUS_MISSING))
        rows.append({
            "variant": v,
            "n_cells": len(mine),
            "n_ok": int(counts.get("ok", 0)),
            "n_diverged": int(counts.get("diverged", 0)),
            "n_failed": int(counts.get("failed", 0)),
            "n_missing": int(counts.get(STATUS_MISSING, 0)),
            "n_other": len(mine) - known,
        })
    return pd.DataFrame(rows)


def per_seed(data: ExperimentData, metric: str) -> dict[str, dict[int, float]]:
    """Variant -> {seed: value} over ok runs with a finite value of ``metric``."""
    ok = data.ok_runs
    out: dict[str, dict[int, float]] = {v: {} for v in data.variants}
    if metric not in ok:
        return out
    for v, s, x in zip(ok["variant"], ok["seed"], ok[metric]):
        if x is not None and not pd.isna(x):
            out[v][int(s)] = float(x)
    return out


SUMMARY_INTERVALS = ("final_val_acc", "best_val_acc", "gen_gap", "train_images_per_s")
SUMMARY_SPREADS = ("final_val_loss", "final_train_loss", "wall_time_s")


def summary_table(data: ExperimentData) -> pd.DataFrame:
    """One row per variant (experiment order, baseline first): counts, and over its ok runs the
    mean, sd and 95% t interval of the main metrics, time to target and parameters."""
    counts = status_counts(data).set_index("variant")
    ok = data.ok_runs
    varying = list(data.varying_axes())
    rows = []
    for v in data.variants:
        mine = ok[ok["variant"] == v]
        row: dict[str, Any] = {"variant": v, "baseline": v == data.baseline}
        for axis in varying:
            row[axis] = data.variant_axes[v].get(axis)
        row["n"] = int(counts.loc[v, "n_ok"])
        for c in ("n_cells", "n_diverged", "n_failed", "n_missing", "n_other"):
            row[c] = int(counts.loc[v, c])
        for m in SUMMARY_INTERVALS:
            iv = stats.mean_interval(mine[m] if m in mine else [])
            row.update({f"{m}_mean": iv.mean, f"{m}_sd": iv.sd, f"{m}_ci_low": iv.ci_low, f"{m}_ci_high": iv.ci_high})
        for m in SUMMARY_SPREADS:
            iv = stats.mean_interval(mine[m] if m in mine else [])
            row.update({f"{m}_mean": iv.mean, f"{m}_sd": iv.sd})
        for kind in ("train", "val"):
            flag = f"reached_{kind}_target"
            if flag not in data.runs:
                continue
            reached = mine[flag].fillna(False).astype(bool) if len(mine) else pd.Series([], dtype=bool)
            row[f"{kind}_target_reached"] = int(reached.sum())
            for m in (f"epochs_to_{kind}_target", f"time_to_{kind}_target_s"):
                iv = stats.mean_interval(mine.loc[reached, m] if len(mine) else [])
                row.update({f"{m}_mean": iv.mean, f"{m}_sd": iv.sd})
        params = mine["params"].dropna() if "params" in mine else pd.Series([], dtype=float)
        if params.empty and "params" in data.runs:
            params = data.runs.loc[data.runs["variant"] == v, "params"].dropna()
        row["params"] = int(params.iloc[0]) if not params.empty else pd.NA
        rows.append(row)
    table = pd.DataFrame(rows)
    table["params"] = table["params"].astype("Int64")
    return table


# --- paired comparisons against the baseline ----------------------------------------------------
COMPARISON_COLUMNS = [
    "variant", "baseline", "metric", "higher_is_better", "n", "seeds", "baseline_mean", "variant_mean",
    "diff", "sd_diff", "ci_low", "ci_high", "t", "df", "p", "p_holm", "verdict", "note",
    "m", "sim_level", "sim_low", "sim_high", "ci_method", "boot_low", "boot_high",
    "p_improve", "p_improve_low", "p_improve_high", "mdd", "effect", "effect_source", "power_at_effect",
    "seeds_needed", "interval_note",
]
CI_METHODS = ("t", "bootstrap")
DEFAULT_EFFECT = 0.01  # one percentage point, for accuracy-like metrics without a paper's number


@dataclass(frozen=True)
class Effect:
    """The difference a comparison should be able to detect, in the metric's units (fractions
    for percent metrics), and where the number comes from."""

    size: float
    source: str


def compare_to_baseline(
    data: ExperimentData, metrics: Sequence[Metric] | None = None, *, ci: str = "t",
    effects: dict[tuple[str, str], Effect] | None = None, default_effect: Effect | None = None,
) -> pd.DataFrame:
    """One row per (variant other than the baseline) x metric: ``diff = variant - baseline``
    paired by seed over seeds where both runs are ok, its 95% t interval, paired t-test p-value,
    Holm-adjusted p over the variants for that metric (one family per metric) and the verdict.

    Also per row: the Bonferroni simultaneous interval over the ``m`` comparisons of the family
    (``sim_*``, at level ``sim_level``), which excludes 0 only when Holm rejects; with
    ``ci="bootstrap"`` the BCa paired bootstrap interval (``boot_*``); the probability that the
    variant beats the baseline on a seed pair (``p_improve*``); the minimum detectable difference
    at 80% power and alpha 0.05 (``mdd``); and, for percent metrics, the seeds needed to detect
    ``effect`` (``effects[(variant, metric)]``, else ``default_effect``, else 1 point).
    ``interval_note`` explains every interval shown that seems to disagree with the verdict.
    """
    if ci not in CI_METHODS:
        raise ReportError(f"--ci {ci!r}: expected one of {', '.join(CI_METHODS)}")
    metrics = list(metrics) if metrics is not None else metrics_for(data.targets)
    effects = effects or {}
    default_effect = default_effect or Effect(DEFAULT_EFFECT, "default: 1 point")
    rows: list[dict[str, Any]] = []
    for metric in metrics:
        values = per_seed(data, metric.name)
        base = values[data.baseline]
        reached_col = TARGET_METRICS.get(metric.name)
        block: list[dict[str, Any]] = []
        diffs_of: list[list[float]] = []
        for v in data.variants:
            if v == data.baseline:
                continue
            note = ""
            if reached_col is not None:
                # Time to target is censored for runs that never reached it: only compare when
                # every paired run reached it, and say how many did otherwise.
                seeds_ok = _paired_ok_seeds(data, v)
                rb, rv = _reached(data, data.baseline, seeds_ok, reached_col), _reached(data, v, seeds_ok, reached_col)
                if seeds_ok and (rb < len(seeds_ok) or rv < len(seeds_ok)):
                    note = (f"target reached by {rv}/{len(seeds_ok)} {v} and {rb}/{len(seeds_ok)} baseline runs "
                            f"of the paired seeds; not compared")
                    block.append(_comparison_row(data, v, metric, [], [], base, values[v], note, censored=True))
                    diffs_of.append([])
                    continue
            seeds, diffs = stats.paired_differences(values[v], base)
            if stats.paired_test(diffs).all_equal:
                note = ALL_EQUAL_NOTE
            if not seeds:
                note = "no seed with an ok run of both variant and baseline"
            elif len(seeds) < 2:
                note = f"only seed {seeds[0]} has ok runs of both: no interval can be given"
            block.append(_comparison_row(data, v, metric, seeds, diffs, base, values[v], note))
            diffs_of.append(diffs)
        adjusted = stats.holm([r["p"] for r in block])
        m = sum(1 for r in block if not _nan(r["p"]))
        level = stats.simultaneous_confidence(m)
        for r, p_adj, diffs in zip(block, adjusted, diffs_of):
            r["p_holm"] = p_adj
            if r["verdict"] is None:
                r["verdict"] = stats.verdict(r["diff"], p_adj, r["n"], metric.higher_is_better)
            effect = effects.get((r["variant"], metric.name), default_effect) if metric.percent else None
            r.update(_power_columns(diffs, metric, m, level, ci, effect))
            r["interval_note"] = interval_note(r, scale=100.0 if metric.percent else 1.0)
        rows.extend(block)
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    order = {v: i for i, v in enumerate(data.variants)}
    morder = {m.name: i for i, m in enumerate(metrics)}
    frame = frame.assign(_v=frame["variant"].map(order), _m=frame["metric"].map(morder))
    frame = frame.sort_values(["_v", "_m"], kind="stable").drop(columns=["_v", "_m"]).reset_index(drop=True)
    frame["n"] = frame["n"].astype(int)
    frame["df"] = frame["df"].astype("Int64")
    frame["m"] = frame["m"].astype("Int64")
    return frame


def _nan(x: Any) -> bool:
    try:
        return x is None or x is pd.NA or math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def _power_columns(diffs: list[float], metric: Metric, m: int, level: float, ci: str, effect: Effect | None) -> dict[str, Any]:
    """Simultaneous and bootstrap intervals, probability of improvement and power of one comparison."""
    test = stats.paired_test(diffs)
    wide = stats.paired_test(diffs, level) if diffs else test
    boot = stats.bootstrap_interval(diffs) if ci == "bootstrap" else (math.nan, math.nan)
    imp = stats.probability_of_improvement(diffs, metric.higher_is_better)
    mdd = stats.min_detectable_difference(test.sd, test.n) if test.n >= 2 else math.nan
    out: dict[str, Any] = {
        "m": m, "sim_level": level, "sim_low": wide.ci_low if test.n >= 2 else math.nan,
        "sim_high": wide.ci_high if test.n >= 2 else math.nan, "ci_method": ci, "boot_low": boot[0], "boot_high": boot[1],
        "p_improve": imp.p, "p_improve_low": imp.ci_low, "p_improve_high": imp.ci_high, "mdd": mdd,
        "effect": math.nan, "effect_source": "", "power_at_effect": math.nan, "seeds_needed": math.nan,
    }
    if effect is not None and test.n >= 2:
        out.update(effect=effect.size, effect_source=effect.source,
                   power_at_effect=stats.paired_power(effect.size, test.sd, test.n),
                   seeds_needed=stats.seeds_needed(effect.size, test.sd))
    elif effect is not None:
        out.update(effect=effect.size, effect_source=effect.source)
    return out


def _excludes_zero(low: Any, high: Any) -> bool:
    return not _nan(low) and not _nan(high) and (float(low) > 0 or float(high) < 0)


def interval_note(row: dict[str, Any], scale: float = 1.0) -> str:
    """Why an interval of this comparison seems to disagree with its verdict ("" when none does).

    The verdict comes from the Holm-adjusted paired t-test; the unadjusted 95% interval, the
    bootstrap interval and a zero-width interval over constant differences can exclude 0 without
    that test rejecting, and Holm can reject while the (Bonferroni) simultaneous interval holds 0.
    """
    verdict, n = row.get("verdict"), int(row.get("n") or 0)
    if n < 2 or verdict not in (stats.BETTER, stats.WORSE, stats.NO_DIFFERENCE):
        return ""
    notes = []
    rejected = verdict != stats.NO_DIFFERENCE
    if _excludes_zero(row["ci_low"], row["ci_high"]) and not rejected:
        if row.get("sd_diff") == 0:
            notes.append(f"every paired difference is the same, so the interval has zero width and says nothing "
                         f"about uncertainty; the verdict uses the exact sign-flip p-value 2^(1-{n}) = {2.0 ** (1 - n):.3g}")
        elif not _excludes_zero(row["sim_low"], row["sim_high"]):
            notes.append(f"the unadjusted 95% interval excludes 0, but {row['m']} comparisons are tested on this metric: "
                         f"Holm-adjusted p = {float(row['p_holm']):.3g} >= 0.05, and the simultaneous "
                         f"{100 * float(row['sim_level']):.4g}% interval [{float(row['sim_low']) * scale:+.4g}, "
                         f"{float(row['sim_high']) * scale:+.4g}] contains 0")
    if _excludes_zero(row.get("boot_low"), row.get("boot_high")) and not rejected and row.get("sd_diff") != 0:
        notes.append("the bootstrap interval excludes 0, but the verdict comes from the Holm-adjusted paired t-test, "
                     "which does not reject; with few seeds a bootstrap interval is too narrow (it cannot reach "
                     "beyond the observed differences)")
    if rejected and not _excludes_zero(row["sim_low"], row["sim_high"]) and row.get("sd_diff") != 0:
        notes.append(f"Holm rejects (p_holm = {float(row['p_holm']):.3g}) although the simultaneous (Bonferroni) "
                     "interval contains 0: Holm's step-down test is more powerful than Bonferroni's intervals")
    if rejected and not _nan(row.get("boot_low")) and not _excludes_zero(row.get("boot_low"), row.get("boot_high")):
        notes.append("the bootstrap interval contains 0; the verdict comes from the Holm-adjusted paired t-test")
    return "; ".join(notes)


def _paired_ok_seeds(data: ExperimentData, variant: str) -> list[int]:
    ok = data.ok_runs
    a = set(ok.loc[ok["variant"] == variant, "seed"].astype(int))
    b = set(ok.loc[ok["variant"] == data.baseline, "seed"].astype(int))
    return sorted(a & b)


def _reached(data: ExperimentData, variant: str, seeds: Iterable[int], column: str) -> int:
    ok = data.ok_runs
    mine = ok[(ok["variant"] == variant) & ok["seed"].isin(list(seeds))]
    return int(mine[column].fillna(False).astype(bool).sum())


def _comparison_row(
    data: ExperimentData, variant: str, metric: Metric, seeds: list[int], diffs: list[float],
    base: dict[int, float], mine: dict[int, float], note: str, censored: bool = False,
) -> dict[str, Any]:
    test = stats.paired_test(diffs)
    return {
        "variant": variant,
        "baseline": data.baseline,
        "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
        "n": test.n,
        "seeds": " ".join(str(s) for s in seeds),
        "baseline_mean": float(np.mean([base[s] for s in seeds])) if seeds else math.nan,
        "variant_mean": float(np.mean([mine[s] for s in seeds])) if seeds else math.nan,
        "diff": test.diff,
        "sd_diff": test.sd,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "t": test.t,
        "df": test.df if test.n >= 2 else pd.NA,
        "p": test.p,
        "p_holm": math.nan,
        "verdict": NOT_REACHED if censored else None,
        "note": note,
    }


# --- grid designs: main effects and two-way interactions ---------------------------------------
EFFECT_COLUMNS = [
    "kind", "axes", "level", "reference", "metric", "n", "seeds", "estimate", "sd", "ci_low", "ci_high",
    "t", "df", "p", "p_holm", "verdict", "note", "m", "sim_level", "sim_low", "sim_high", "interval_note",
]
POSITIVE_INTERACTION = "positive interaction"
NEGATIVE_INTERACTION = "negative interaction"
NO_INTERACTION = "no detectable interaction"


def _cell_lookup(data: ExperimentData, axes: Sequence[str]) -> dict[tuple, str]:
    """Values of ``axes`` -> variant slug, for the variants of the experiment."""
    return {tuple(repr(data.variant_axes[v].get(a)) for a in axes): v for v in data.variants}


def reference_level(data: ExperimentData, axis: str) -> Any:
    """The level effects are measured against: the baseline's value (else the axis' first value)."""
    values = data.axes.get(axis) or []
    base = data.variant_axes[data.baseline].get(axis)
    return base if base in values or not values else values[0]


@dataclass(frozen=True)
class Contrast:
    """Per-seed values of one contrast, and which seeds and combinations of other axes went in."""

    seeds: list[int]
    values: list[float]
    contexts_used: int
    contexts_total: int
    note: str = ""


def balanced_contrast(
    values: dict[str, dict[int, float]], contexts: Sequence[Sequence[tuple[float, str]]], seeds: Sequence[int]
) -> Contrast:
    """Per seed, the mean over ``contexts`` of ``sum(weight * values[variant][seed])``.

    Each context is a list of (weight, variant) terms, e.g. one combination of the other axes of a
    grid. Every seed must get the same linear combination for the t-test to be valid, so when runs
    are missing the contrast uses the largest block of seeds x contexts in which every run is ok:
    the set of seeds (at least two where possible) maximising seeds x contexts complete for all of
    them, preferring more contexts (the full contrast), then more seeds, then the lowest seeds.
    ``note`` says what was left out.
    """
    total = len(contexts)
    if total == 0:
        return Contrast([], [], 0, 0, "no such variants")
    complete = {s: [all(s in values.get(v, {}) for _, v in ctx) for ctx in contexts] for s in seeds}
    candidates = [s for s in seeds if any(complete[s])]
    best: tuple[tuple[bool, int, int, int], list[int], list[int]] = ((False, 0, 0, 0), [], [])
    if len(candidates) <= 12:  # exhaustive over seed subsets (at most 4096)
        subsets: Iterable[tuple[int, ...]] = (
            c for k in range(len(candidates), 0, -1) for c in itertools.combinations(candidates, k))
    else:  # many seeds: all seeds, or those complete in every context
        subsets = [tuple(candidates), tuple(s for s in candidates if all(complete[s]))]
    for subset in subsets:
        ctx = [i for i in range(total) if all(complete[s][i] for s in subset)]
        if not ctx or not subset:
            continue
        score = (len(subset) >= 2, len(subset) * len(ctx), len(ctx), len(subset))
        if score > best[0]:
            best = (score, list(subset), ctx)
    _, kept_seeds, kept_ctx = best
    out = [float(np.mean([sum(w * values[v][s] for w, v in contexts[i]) for i in kept_ctx])) for s in kept_seeds]
    seen = [s for s in seeds if any(s in values.get(v, {}) for ctx in contexts for _, v in ctx)]
    dropped = [s for s in seen if s not in kept_seeds]
    notes = []
    if kept_seeds and len(kept_ctx) < total:
        notes.append(f"averaged over {len(kept_ctx)} of {total} combinations of the other axes, the others miss an ok run")
    if dropped:
        notes.append(f"seed(s) {' '.join(map(str, dropped))} left out, a run in the contrast is not ok")
    return Contrast(kept_seeds, out, len(kept_ctx), total, "; ".join(notes))


def _grid_contrast(
    data: ExperimentData, values: dict[str, dict[int, float]], terms: list[tuple[float, dict[str, Any]]],
    axes: Sequence[str], context_axes: Sequence[str],
) -> Contrast:
    """:func:`balanced_contrast` of ``terms`` (weight, levels of some axes) over every combination
    of the levels of ``context_axes``."""
    lookup = _cell_lookup(data, axes)
    grid = data.varying_axes()
    contexts = []
    for ctx in itertools.product(*(grid[a] for a in context_axes)):
        one = []
        for weight, levels in terms:
            full = {**levels, **dict(zip(context_axes, ctx))}
            key = tuple(repr(full[a]) for a in axes)
            if key not in lookup:
                return Contrast([], [], 0, 0, "a cell of the grid is not among the variants")
            one.append((weight, lookup[key]))
        contexts.append(one)
    return balanced_contrast(values, contexts, sorted(data.seeds_seen()))


def grid_effects(data: ExperimentData, metrics: Sequence[Metric] | None = None) -> pd.DataFrame:
    """Main effects and two-way interactions for grid designs with two or more varying axes.

    Main effect of ``axis = level``: per seed, the mean over every combination of the other axes
    of ``y(level) - y(reference)``. Interaction of ``A = a`` with ``B = b``: per seed, the mean over
    the remaining axes of ``y(a, b) - y(a0, b) - y(a, b0) + y(a0, b0)`` (how much the effect of
    ``a`` changes when ``B`` goes from ``b0`` to ``b``). Each gets a 95% t interval over seeds and a
    t-test; Holm is applied over all effects of one metric. Cells without an ok run leave out
    seeds or combinations of the other axes (:func:`balanced_contrast`; the ``note`` column says
    which). Empty for other designs.
    """
    metrics = list(metrics) if metrics is not None else [metrics_for(data.targets)[0]]
    grid = data.varying_axes()
    if data.design != "grid" or len(grid) < 2:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    axes = list(grid)
    rows: list[dict[str, Any]] = []
    for metric in metrics:
        values = per_seed(data, metric.name)
        block = []
        for axis in axes:
            ref = reference_level(data, axis)
            others = [a for a in axes if a != axis]
            for level in grid[axis]:
                if level == ref:
                    continue
                c = _grid_contrast(data, values, [(1.0, {axis: level}), (-1.0, {axis: ref})], axes, others)
                block.append(_effect_row("main", axis, level, ref, metric, c))
        for a, b in itertools.combinations(axes, 2):
            a0, b0 = reference_level(data, a), reference_level(data, b)
            rest = [x for x in axes if x not in (a, b)]
            for la in grid[a]:
                for lb in grid[b]:
                    if la == a0 or lb == b0:
                        continue
                    terms = [(1.0, {a: la, b: lb}), (-1.0, {a: a0, b: lb}), (-1.0, {a: la, b: b0}), (1.0, {a: a0, b: b0})]
                    c = _grid_contrast(data, values, terms, axes, rest)
                    block.append(_effect_row("interaction", f"{a} x {b}", f"{la} x {lb}", f"{a0} x {b0}", metric, c))
        m = sum(1 for r in block if not _nan(r["p"]))
        level = stats.simultaneous_confidence(m)
        for r, p_adj in zip(block, stats.holm([r["p"] for r in block])):
            r["p_holm"] = p_adj
            v = stats.verdict(r["estimate"], p_adj, r["n"], metric.higher_is_better)
            wide = stats.paired_test(r.pop("_values"), level)
            r.update(m=m, sim_level=level, sim_low=wide.ci_low, sim_high=wide.ci_high)
            r["interval_note"] = interval_note({**r, "verdict": v, "sd_diff": r["sd"]}, scale=100.0 if metric.percent else 1.0)
            if r["kind"] == "interaction" and v in (stats.BETTER, stats.WORSE):
                v = POSITIVE_INTERACTION if r["estimate"] > 0 else NEGATIVE_INTERACTION
            elif r["kind"] == "interaction" and v == stats.NO_DIFFERENCE:
                v = NO_INTERACTION
            r["verdict"] = v
        rows.extend(block)
    frame = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    frame["n"] = frame["n"].astype(int)
    frame["df"] = frame["df"].astype("Int64")
    frame["m"] = frame["m"].astype("Int64")
    return frame


def _effect_row(kind: str, axes: str, level: Any, ref: Any, metric: Metric, c: Contrast) -> dict[str, Any]:
    test = stats.paired_test(c.values)
    return {
        "kind": kind, "axes": axes, "level": str(level), "reference": str(ref), "metric": metric.name,
        "n": test.n, "seeds": " ".join(str(s) for s in c.seeds), "estimate": test.diff, "sd": test.sd,
        "ci_low": test.ci_low, "ci_high": test.ci_high, "t": test.t, "df": test.df if test.n >= 2 else pd.NA,
        "p": test.p, "p_holm": math.nan, "verdict": "",
        "note": "; ".join(x for x in (c.note, ALL_EQUAL_NOTE if test.all_equal else "") if x),
        "_values": list(c.values),
    }


def cell_means(data: ExperimentData, metric: str, row_axis: str, col_axis: str) -> pd.DataFrame:
    """Mean of ``metric`` over ok runs for each (row level, column level), averaged over the
    variants' other axes (for the interaction heatmap); NaN where no run is ok."""
    grid = data.varying_axes()
    ok = data.ok_runs
    means = ok.groupby("variant", sort=False)[metric].mean() if not ok.empty else pd.Series(dtype=float)
    table = pd.DataFrame(index=[str(x) for x in grid[row_axis]], columns=[str(x) for x in grid[col_axis]], dtype=float)
    for r in grid[row_axis]:
        for c in grid[col_axis]:
            vals = [
                means[v] for v in data.variants
                if repr(data.variant_axes[v].get(row_axis)) == repr(r) and repr(data.variant_axes[v].get(col_axis)) == repr(c)
                and v in means.index and not pd.isna(means[v])
            ]
            table.loc[str(r), str(c)] = float(np.mean(vals)) if vals else math.nan
    table.index.name, table.columns.name = row_axis, col_axis
    return table


# --- pairs of variants that differ in one axis (for claims) -----------------------------------------
def matched_pairs(data: ExperimentData, axis: str, level_a: Any, level_b: Any) -> list[tuple[str, str]]:
    """Pairs ``(variant with axis=level_a, variant with axis=level_b)`` equal on every other axis."""
    pairs = []
    for va in data.variants:
        ax = data.variant_axes[va]
        if ax.get(axis) != level_a or type(ax.get(axis)) is not type(level_a):
            continue
        for vb in data.variants:
            bx = data.variant_axes[vb]
            if bx.get(axis) == level_b and type(bx.get(axis)) is type(level_b) and \
                    all(bx.get(k) == ax.get(k) for k in set(ax) | set(bx) if k != axis):
                pairs.append((va, vb))
    return pairs
