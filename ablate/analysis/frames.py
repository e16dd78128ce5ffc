"""Result files -> :class:`ExperimentData`: tidy pandas frames of one experiment.

Reads what ``ablate run`` wrote (``results/<experiment>/experiment.json`` and ``runs/*.json``,
through :mod:`ablate.store.folder`) and never imports training code. Three frames per experiment:

* ``runs``: one row per cell of the experiment (variant x seed), including cells with no result
  file yet (status ``missing``), failed and diverged runs, with the run's final numbers;
* ``epochs``: one row per run x finished epoch;
* ``steps``: one row per run x step log point (``[train] log_every``; empty for older records).

What each row holds, and the derived per-run numbers, is :mod:`ablate.analysis.rows`; which of them a
report compares, :mod:`ablate.analysis.metrics`. This module finds the records and cells that belong to
the experiment and assembles the frames.

Only runs with status ``ok`` enter means, intervals and comparisons; the others are counted per
variant and listed, never silently dropped. Runs in the folder that belong to an older
configuration of the experiment (run ids not in the manifest) are left out and counted.

A damaged run file or manifest never stops a report: it is left out (a damaged manifest counts as
absent) and :attr:`ExperimentData.notes` names it.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.analysis.errors import ReportError
from ablate.analysis.metrics import Targets
from ablate.analysis.rows import EPOCH_COLUMNS, STEP_FRAME_COLUMNS, epoch_rows, run_row, slug_of, step_rows
from ablate.config import DataConfig, TrainConfig
from ablate.registry import suggest
from ablate.store.folder import experiments, manifest_path, manifest_problem, read_manifest, runs_dir, scan_runs
from ablate.store.record import RunRecord
from ablate.variant import Variant

STATUS_OK = "ok"
STATUS_MISSING = "missing"
NOT_REACHED = "target not reached"
ALL_EQUAL_NOTE = "every paired difference is the same (quantized metric?): zero-width interval, sign-flip p-value"


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
    # The run records the frames were built from (the current configuration's), kept so that a
    # caller such as the index of reports need not read the run files again.
    records: list[RunRecord] = field(default_factory=list)

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
    covered = (
        ["initialisation", "data order"]
        + (["augmentation"] if augment else [])
        + (["data sampling"] if resample else [])
    )
    return covered, [x for x in VARIATION_SOURCES if x not in covered]


# --- loading ----------------------------------------------------------------------------------
# Kept for callers of the old name; the store owns the results layout.
available_experiments = experiments


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
        raise ReportError(
            f"experiment {name!r} has no run records yet in {runs_dir(root, name)}; run it first"
            + (f" ({len(scan.unreadable)} damaged file(s): {scan.warnings()[0]})" if scan.unreadable else "")
        )
    notes: list[str] = list(scan.warnings())
    records = _readable(records, targets, notes)
    if not records:
        raise ReportError(
            f"experiment {name!r} has no readable run records in {runs_dir(root, name)}: {'; '.join(notes)}"
        )
    manifest = _checked_manifest(root, name, notes)

    # The cells the experiment consists of now: from the manifest when there is one.
    expected: list[tuple[str | None, str, int]] = []  # (run_id, slug, seed)
    if manifest and manifest.get("variants"):
        variant_axes = {slug_of(v): dict(v) for v in manifest["variants"]}
        variants = list(variant_axes)
        seeds = [int(s) for s in manifest.get("seeds", [])]
        run_ids = list(manifest.get("run_ids") or [])
        if manifest.get("cells"):  # explicit (run_id, slug, seed) per cell
            expected = [(c["run_id"], c["slug"], int(c["seed"])) for c in manifest["cells"]]
        elif len(run_ids) == len(seeds) * len(variants):  # older manifests: cells are stored seed-major
            expected = [(rid, variants[i % len(variants)], seeds[i // len(variants)]) for i, rid in enumerate(run_ids)]
        else:
            notes.append("the manifest's run ids do not match its variants x seeds; missing cells are not detected")
        current_records, extra = current_and_extra(records, manifest)
        if extra:  # the cells of the other seeds join the expected ones
            extra_seeds = sorted({int(r["seed"]) for r in extra})
            ids = {(r.get("slug") or slug_of(r.get("variant") or {}), int(r["seed"])): r["run_id"] for r in extra}
            expected += [(ids.get((v, s)), v, s) for s in extra_seeds for v in variants]
            seeds = sorted(set(seeds) | set(extra_seeds))
        stale = len(records) - len(current_records)
        default_baseline = manifest.get("baseline_slug") or slug_of(manifest.get("baseline") or {})
        design = manifest.get("design", "grid")
        axes = {k: list(v) for k, v in (manifest.get("axes") or {}).items()}
        description = manifest.get("description") or ""
    else:
        notes.append(
            "no usable experiment.json manifest: every run record in the folder is used and missing cells cannot be "
            "detected"
        )
        current_records, stale = records, 0
        variant_axes = {}
        for r in sorted(records, key=lambda r: (r.get("slug") or "", r.get("seed") or 0)):
            variant_axes.setdefault(r.get("slug") or slug_of(r.get("variant") or {}), dict(r.get("variant") or {}))
        variants = list(variant_axes)
        default_baseline = slug_of(Variant().axes()) if slug_of(Variant().axes()) in variant_axes else variants[0]
        seeds = sorted({int(r.get("seed", -1)) for r in records})
        axes = {}
        for axis in sorted({k for v in variant_axes.values() for k in v}):
            values = list(dict.fromkeys(v.get(axis) for v in variant_axes.values()))
            if len(values) > 1:
                axes[axis] = values
        design, description = "unknown", ""

    # Records of variants the manifest does not list (should not happen) still get reported.
    for r in current_records:
        slug = r.get("slug") or slug_of(r.get("variant") or {})
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
        notes.append(
            f"the experiment's [model] variant {default_baseline} is not one of its cells; baseline is {chosen}"
        )
    variants = [chosen] + [v for v in variants if v != chosen]

    rows = [run_row(r, targets) for r in current_records]
    have = {r["run_id"] for r in rows}
    for run_id, slug, seed in expected:
        if run_id not in have:
            row = {
                "run_id": run_id,
                "variant": slug,
                "seed": seed,
                "status": STATUS_MISSING,
                "error": "no result file",
                "epochs_done": 0,
            }
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
    epochs = pd.DataFrame(
        erows,
        columns=[
            "run_id",
            "variant",
            "seed",
            "status",
            *EPOCH_COLUMNS,
            "train_error",
            "cum_wall_time_s",
            "cum_train_time_s",
        ],
    )
    epochs = _sorted(epochs, order, ["seed", "epoch"])
    srows = [row for r in current_records for row in step_rows(r)]
    steps = _sorted(pd.DataFrame(srows, columns=STEP_FRAME_COLUMNS), order, ["seed", "step"])
    if stale:
        notes.append(f"{stale} run(s) from an older configuration of this experiment were ignored")
    devices = sorted(
        {d for d, st in zip(runs.get("device", []), runs["status"]) if st == STATUS_OK and isinstance(d, str) and d}
    )
    if len(devices) > 1:
        notes.append(
            f"ok runs come from {len(devices)} devices ({', '.join(devices)}): speed and time comparisons mix machines"
        )
    notes += _mixed_data_note(current_records)
    return ExperimentData(
        name=name,
        description=description,
        design=design,
        seeds=seeds,
        axes=axes,
        variants=variants,
        variant_axes=variant_axes,
        baseline=chosen,
        runs=runs,
        epochs=epochs,
        targets=targets,
        manifest=manifest,
        stale_runs=stale,
        notes=notes,
        steps=steps,
        records=current_records,
    )


def _data_identity(record: RunRecord) -> tuple[str, str] | None:
    """Where a run's images came from and their normalization statistics, as recorded: two runs of
    one experiment whose identities differ trained on different files (e.g. ``$ABLATE_DATA``
    pointed elsewhere, which is not part of the run id when ``data.root`` is unset)."""
    data = record.get("data")
    if record.get("status") != STATUS_OK or not isinstance(data, dict):
        return None
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    stats = ", ".join(
        f"{x:.6g}" if isinstance(x, float) else str(x) for key in ("mean", "std") for x in (data.get(key) or [])
    )
    return str(info.get("source", "?")), stats


def _mixed_data_note(records: list[RunRecord]) -> list[str]:
    seen: dict[tuple[str, str], int] = {}
    for r in records:
        identity = _data_identity(r)
        if identity is not None:
            seen[identity] = seen.get(identity, 0) + 1
    if len(seen) < 2:
        return []
    parts = [f"{n} from {src} (mean/std {stats})" for (src, stats), n in sorted(seen.items())]
    return [
        f"ok runs were trained on different data ({'; '.join(parts)}): their comparisons mix datasets; "
        "rerun the odd ones with the same data (set data.root to pin it)"
    ]


def current_and_extra(
    records: list[RunRecord], manifest: dict[str, Any] | None
) -> tuple[list[RunRecord], list[RunRecord]]:
    """(the records of the experiment's current configuration, those of them that the manifest does
    not list but that belong to it: other seeds with the same settings). Current: run ids in the
    manifest, plus those other seeds; every record when there is no usable manifest (no variants)
    or it lists no run ids. The one rule for the report, the index, the export and notebooks."""
    if not manifest or not manifest.get("variants"):
        return records, []
    run_ids = set(manifest.get("run_ids") or [])
    if not run_ids:
        return records, []
    variants = {slug_of(v) for v in manifest["variants"]}
    seeds = [int(s) for s in manifest.get("seeds", [])]
    extra = _other_seeds(records, run_ids, variants, seeds, manifest)
    return [r for r in records if r.get("run_id") in run_ids] + extra, extra


def _other_seeds(
    records: list[RunRecord], current: set[str], variants: set[str], seeds: list[int], manifest: dict[str, Any]
) -> list[RunRecord]:
    """Records that belong to the experiment although the manifest does not list them: a variant
    of it, a seed it does not list, and the same data and training settings. The manifest holds
    the seeds of the latest run only, and a run of one more seed (``--set seeds=[3]``) must not
    hide the runs of the others."""
    return [
        r
        for r in records
        if r.get("run_id") not in current
        and int(r.get("seed", -1)) not in seeds
        and (r.get("slug") or slug_of(r.get("variant") or {})) in variants
        and _same_settings(r.get("config"), manifest)
    ]


def _same_settings(config: Any, manifest: dict[str, Any]) -> bool:
    """Whether a run's [data] and [train] settings are the manifest's (see :func:`differing_settings`)."""
    return isinstance(config, dict) and not differing_settings(config, manifest)


def differing_settings(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The ``[data]`` and ``[train]`` settings (``section.key``) whose values differ between two
    configurations (a run's ``config``, a manifest): bookkeeping settings (``identity: False``,
    they never change results) left out, a setting missing on one side (older ablate) read as its
    default; a section that is not an object on either side is named whole (``"data"``)."""
    out: list[str] = []
    for section, cls in (("data", DataConfig), ("train", TrainConfig)):
        mine, other = ours.get(section), theirs.get(section)
        if not isinstance(mine, dict) or not isinstance(other, dict):
            out.append(section)
            continue
        known = {f.name: f for f in fields(cls)}
        for key in sorted(set(mine) | set(other)):
            f = known.get(key)
            if f is not None and f.metadata.get("identity") is False:
                continue
            default = f.default if f is not None and f.default is not MISSING else MISSING
            if mine.get(key, default) != other.get(key, default):
                out.append(f"{section}.{key}")
    return out


def _checked_manifest(root: str | Path, name: str, notes: list[str]) -> dict[str, Any] | None:
    """The experiment's manifest when it is readable and has the expected shape (the store checks
    both); otherwise None, with a note naming the file (the report then works from the run records
    alone)."""
    path = manifest_path(root, name)
    try:
        manifest = read_manifest(root, name)
    except Exception as e:  # a damaged file must not stop the report  # noqa: BLE001
        manifest, why = None, f"{type(e).__name__}: {e}"
    else:
        why = manifest_problem(root, name) or "unreadable"
    if manifest is None and path.exists():
        # the store's reason starts with the path: say it once
        notes.append(f"{path} is damaged ({why.replace(f'{path}: ', '')}): treated as absent")
    return manifest


def _readable(records: list[RunRecord], targets: Targets, notes: list[str]) -> list[RunRecord]:
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
        frame.assign(_order=key)
        .sort_values(["_order", *then], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
