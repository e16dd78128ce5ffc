"""Result files -> :class:`ExperimentData`: tidy pandas frames of one experiment.

Reads what ``ablate run`` wrote (``results/<experiment>/experiment.json`` and ``runs/*.json``,
through :mod:`ablate.store`) and never imports training code. Three frames per experiment:

* ``runs``: one row per cell of the experiment (variant x seed), including cells with no result
  file yet (status ``missing``), failed and diverged runs, with the run's final numbers;
* ``epochs``: one row per run x finished epoch;
* ``steps``: one row per run x step log point (``[train] log_every``; empty for older records).

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

A damaged run file or manifest never stops a report: it is left out (a damaged manifest counts as
absent) and :attr:`ExperimentData.notes` names it.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ablate.config import DataConfig, TrainConfig
from ablate.registry import suggest
from ablate.store import experiments, manifest_path, manifest_problem, read_manifest, runs_dir, scan_runs
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
        hint = suggest(name, known)
        found = f"found: {', '.join(known)}" if known else "no experiments there"
        raise ReportError(
            f"unknown experiment {name!r} under {root} ({found})" + (f"; did you mean {hint!r}?" if hint else "")
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
        if run_ids:  # runs of other seeds with these very settings (e.g. an earlier --set seeds=[...])
            extra = _other_seeds(records, current, set(variants), seeds, manifest)
            current_records += extra
            extra_seeds = sorted({int(r["seed"]) for r in extra})
            ids = {(r.get("slug") or _slug(r.get("variant") or {}), int(r["seed"])): r["run_id"] for r in extra}
            expected += [(ids.get((v, s)), v, s) for s in extra_seeds for v in variants]
            seeds = sorted(set(seeds) | set(extra_seeds))
        stale = len(records) - len(current_records)
        default_baseline = manifest.get("baseline_slug") or _slug(manifest.get("baseline") or {})
        design = manifest.get("design", "grid")
        axes = {k: list(v) for k, v in (manifest.get("axes") or {}).items()}
        description = manifest.get("description") or ""
    else:
        notes.append("no usable experiment.json manifest: every run record in the folder is used and missing cells cannot be detected")
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
            hint = suggest(baseline, variants)
            raise ReportError(
                f"unknown baseline {baseline!r} for experiment {name!r}; variants: {', '.join(variants)}"
                + (f" (did you mean {hint!r}?)" if hint else "")
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
    notes += _mixed_data_note(current_records)
    return ExperimentData(
        name=name, description=description, design=design, seeds=seeds, axes=axes, variants=variants,
        variant_axes=variant_axes, baseline=chosen, runs=runs, epochs=epochs, targets=targets,
        manifest=manifest, stale_runs=stale, notes=notes, steps=steps,
    )


def _data_identity(record: dict[str, Any]) -> tuple[str, str] | None:
    """Where a run's images came from and their normalization statistics, as recorded: two runs of
    one experiment whose identities differ trained on different files (e.g. ``$ABLATE_DATA``
    pointed elsewhere, which is not part of the run id when ``data.root`` is unset)."""
    data = record.get("data")
    if record.get("status") != STATUS_OK or not isinstance(data, dict):
        return None
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    stats = ", ".join(f"{x:.6g}" if isinstance(x, float) else str(x) for key in ("mean", "std")
                      for x in (data.get(key) or []))
    return str(info.get("source", "?")), stats


def _mixed_data_note(records: list[dict[str, Any]]) -> list[str]:
    seen: dict[tuple[str, str], int] = {}
    for r in records:
        identity = _data_identity(r)
        if identity is not None:
            seen[identity] = seen.get(identity, 0) + 1
    if len(seen) < 2:
        return []
    parts = [f"{n} from {src} (mean/std {stats})" for (src, stats), n in sorted(seen.items())]
    return [f"ok runs were trained on different data ({'; '.join(parts)}): their comparisons mix datasets; "
            "rerun the odd ones with the same data (set data.root to pin it)"]


def _other_seeds(records: list[dict[str, Any]], current: set[str], variants: set[str], seeds: list[int],
                 manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Records that belong to the experiment although the manifest does not list them: a variant
    of it, a seed it does not list, and the same data and training settings. The manifest holds
    the seeds of the latest run only, and a run of one more seed (``--set seeds=[3]``) must not
    hide the runs of the others."""
    return [r for r in records
            if r.get("run_id") not in current and int(r.get("seed", -1)) not in seeds
            and (r.get("slug") or _slug(r.get("variant") or {})) in variants
            and _same_settings(r.get("config"), manifest)]


def _same_settings(config: Any, manifest: dict[str, Any]) -> bool:
    """Whether a run's [data] and [train] settings are the manifest's: bookkeeping settings
    (``identity: False``, they never change results) left out, a setting missing on one side
    (older ablate) read as its default."""
    if not isinstance(config, dict):
        return False
    for section, cls in (("data", DataConfig), ("train", TrainConfig)):
        ours, theirs = manifest.get(section), config.get(section)
        if not isinstance(ours, dict) or not isinstance(theirs, dict):
            return False
        known = {f.name: f for f in fields(cls)}
        for key in set(ours) | set(theirs):
            f = known.get(key)
            if f is not None and f.metadata.get("identity") is False:
                continue
            default = f.default if f is not None and f.default is not MISSING else MISSING
            if ours.get(key, default) != theirs.get(key, default):
                return False
    return True


def _checked_manifest(root: str | Path, name: str, notes: list[str]) -> dict[str, Any] | None:
    """The experiment's manifest when it is readable and has the expected shape; otherwise None,
    with a note naming the file (the report then works from the run records alone)."""
    path = manifest_path(root, name)
    try:
        manifest = read_manifest(root, name)
    except Exception as e:  # a damaged file must not stop the report  # noqa: BLE001
        manifest, why = None, f"{type(e).__name__}: {e}"
    else:
        why = manifest_problem(root, name) or "unreadable"
    if manifest is None:
        if path.exists():
            # the store's reason starts with the path: say it once
            notes.append(f"{path} is damaged ({why.replace(f'{path}: ', '')}): treated as absent")
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
