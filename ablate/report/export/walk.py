"""The one walk over the run files that every exporter shares, and what every tracker logs of a run.

:class:`Walk` looks at ``results/<experiment>/runs/*.json`` through :mod:`ablate.store` and
chooses each experiment's current records as the report does
(:func:`ablate.analysis.current_and_extra`): a run of an older configuration is left out and
counted. Each look says which records are new or changed since the previous one (a file is read
again only when its size or time changes), so that ``--follow`` mirrors a study as its run files
appear. A damaged or half-written file is named once, in :attr:`Look.warnings`, and picked up
when it is whole. The results folder is the only state: nothing here knows which executor
trains the cells.

What a run is, in a tracker's terms, is decided here once for every tracker:

* :func:`resolved_config` / :func:`flat_config`: the resolved configuration, the variant's axes
  and the seed first, then ``data.*`` and ``train.*``;
* :func:`epoch_points` and :func:`step_points`: the numeric fields of each finished epoch (at
  its 0-based index, epoch ``k`` of the record at ``k - 1``) and of each logged step (at the
  global step);
* :func:`run_values`: the run's own numbers, the columns :func:`ablate.load_results` gives it
  (``final_val_acc``, ``train_images_per_s``, ...), computed by :func:`ablate.analysis.run_row`;
* :func:`identity_tags`: run id, experiment, variant, seed, status, who trained it, on what
  device, git commit and ablate version.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ablate.analysis import ExperimentData, Targets, current_and_extra, load_experiment_data, run_row
from ablate.registry import suggest
from ablate.store.folder import check_run_file, read_manifest, runs_dir
from ablate.store.folder import experiments as list_experiments
from ablate.store.record import RunRecord


class ExportError(ValueError):
    """Something a user can fix (unknown experiment, nothing to export, a tracker that refuses);
    one-line ``str()``."""


class ExtraMissing(ExportError):
    """The tracker's package, an optional extra of ablate, is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed; install it with: pip install 'ablate[{extra}]'")


@dataclass(frozen=True)
class ExportedRun:
    """One ablate run as a tracker now holds it."""

    experiment: str
    run_id: str
    name: str  # the tracker's name for it (TensorBoard: <experiment>/<variant slug>/seed<k>)
    status: str
    epochs: int  # epochs in the run file
    steps: int  # logged steps in the run file
    path: Path | None = None  # where it was written, for trackers that write a folder per run
    created: bool = True  # a new tracker run; False: one found by its run id
    points: int = 0  # metric points (or history rows) this export added; 0: it was up to date

    @classmethod
    def of(cls, experiment: str, record: RunRecord, name: str, *, created: bool, points: int) -> ExportedRun:
        """What a tracker that logs :func:`epoch_points` and :func:`step_points` now holds of ``record``."""
        return cls(
            experiment=experiment,
            run_id=str(record["run_id"]),
            name=name,
            status=str(record.get("status")),
            epochs=len(epoch_points(record)),
            steps=len(step_points(record)),
            created=created,
            points=points,
        )


@dataclass(frozen=True)
class ExperimentView:
    """One experiment as a look found it: its current records, sorted by variant, seed and run id."""

    name: str
    results: Path
    records: tuple[RunRecord, ...]
    manifest: dict[str, Any] | None
    stale: int  # run files of an older configuration, left out

    def settings(self) -> dict[str, Any]:
        """The ``data`` and ``train`` settings the runs share (the manifest's, else the first record's)."""
        source = self.manifest if self.manifest else (self.records[0].get("config") or {})
        return {"data": source.get("data") or {}, "train": source.get("train") or {}}

    def analysed(self) -> ExperimentData:
        """The experiment's frames, as the report computes them (read from the folder again)."""
        return load_experiment_data(self.results, self.name)


@dataclass
class Look:
    """What one look at the results folder found."""

    experiments: list[ExperimentView] = field(default_factory=list)  # those with current records
    # Records new or changed since the previous look (all of them at the first), in order.
    changed: list[tuple[ExperimentView, RunRecord]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # damaged files, each named once
    waiting: list[str] = field(default_factory=list)  # named experiments without a run file yet

    @property
    def stale(self) -> dict[str, int]:
        return {e.name: e.stale for e in self.experiments if e.stale}


@dataclass
class _Seen:
    """A run file as last read: its size and time, and what it held."""

    stamp: tuple[int, int, int]
    record: RunRecord | None
    problem: str | None
    digest: str


class Walk:
    """Looks at the run files of ``names`` (default: every experiment under ``results``).

    Without ``wait``, a named experiment that does not exist is an :class:`ExportError` (with a
    suggestion); with it (``--follow``), it is waited for."""

    def __init__(self, results: str | Path, names: Iterable[str] | None = None, *, wait: bool = False) -> None:
        self.results = Path(results)
        self.names = list(dict.fromkeys(names)) if names else None
        self.wait = wait
        self._seen: dict[Path, _Seen] = {}
        self._warned: set[Path] = set()
        self._done: dict[tuple[str, str], str] = {}  # (experiment, run_id) -> digest of the record exported
        if self.names and not wait:
            found = list_experiments(self.results)
            for name in self.names:
                if name not in found:
                    hint = suggest(name, found)
                    where = f"found: {', '.join(found)}" if found else "no experiments there"
                    raise ExportError(
                        f"unknown experiment {name!r} under {self.results} ({where})"
                        + (f"; did you mean {hint!r}?" if hint else "")
                    )

    def look(self) -> Look:
        """Read what changed since the previous look."""
        found = list_experiments(self.results)
        look = Look()
        for name in self.names or found:
            if name not in found:
                look.waiting.append(name)
                continue
            digests = self._records(name, look.warnings)  # run id -> (record, digest)
            records = [record for record, _ in digests.values()]
            manifest = read_manifest(self.results, name)
            current, _ = current_and_extra(records, manifest)
            if not current:
                look.waiting.append(name)
                continue
            current = sorted(current, key=lambda r: (str(r.get("slug")), str(r.get("seed")), str(r.get("run_id"))))
            view = ExperimentView(
                name=name,
                results=self.results,
                records=tuple(current),
                manifest=manifest,
                stale=len(records) - len(current),
            )
            look.experiments.append(view)
            for record in current:
                if self._done.get((name, str(record["run_id"]))) != digests[str(record["run_id"])][1]:
                    look.changed.append((view, record))
        return look

    def done(self, experiment: str, record: RunRecord) -> None:
        """``record`` is exported: the next look reports it only if its file changes."""
        self._done[(experiment, str(record["run_id"]))] = digest(record)

    def _records(self, name: str, warnings: list[str]) -> dict[str, tuple[RunRecord, str]]:
        folder = runs_dir(self.results, name)
        out = {}
        for path in sorted(folder.glob("*.json")):
            try:
                stat = path.stat()
            except OSError:  # removed between the listing and now
                continue
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)  # an atomic rewrite is a new inode
            seen = self._seen.get(path)
            if seen is None or seen.stamp != stamp:
                record, problem = check_run_file(path)
                if record is not None:
                    problem = _unreadable(record)
                    record = None if problem else record
                seen = self._seen[path] = _Seen(stamp, record, problem, digest(record) if record else "")
            if seen.record is not None:
                self._warned.discard(path)  # whole again: a later damage is news
                out[str(seen.record["run_id"])] = (seen.record, seen.digest)
            elif path not in self._warned:
                self._warned.add(path)
                warnings.append(f"{path}: {seen.problem}; skipped until it is whole")
        return out


def _unreadable(record: RunRecord) -> str | None:
    """Why analysis cannot read a record that passed the schema check (a field of an odd shape)."""
    try:
        run_row(record, Targets())
        epoch_points(record)
        step_points(record)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        return f"damaged ({type(e).__name__}: {e})"
    return None


def digest(record: RunRecord) -> str:
    """A short hash of a record's content: equal digests, nothing new to export."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- a run in a tracker's terms ------------------------------------------------------------------
def number(value: Any) -> float | None:
    """A finite number as a float; None for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def seconds(stamp: Any) -> float | None:
    """An ISO 8601 time of the record as Unix seconds (None when missing or unreadable)."""
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return None


def resolved_config(record: RunRecord) -> dict[str, Any]:
    """The resolved configuration: the variant's axes, the seed, the ``data`` and ``train`` settings."""
    config = record.get("config") or {}
    return {
        **(record.get("variant") or config.get("variant") or {}),
        "seed": record.get("seed"),
        "data": dict(config.get("data") or {}),
        "train": dict(config.get("train") or {}),
    }


def flat_config(record: RunRecord) -> dict[str, Any]:
    """:func:`resolved_config` flattened: ``pooling``, ``seed``, ``data.dataset``, ``train.lr``, ..."""
    out: dict[str, Any] = {}
    for key, value in resolved_config(record).items():
        if key in ("data", "train"):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def epoch_points(record: RunRecord) -> list[tuple[int, dict[str, float]]]:
    """``(index, {field: value})`` per finished epoch: index = the record's 1-based ``epoch`` - 1,
    every finite numeric field but ``epoch`` itself."""
    out = []
    for i, e in enumerate(record.get("epochs") or []):
        if not isinstance(e, dict):
            continue
        index = int(number(e.get("epoch")) or i + 1) - 1
        out.append((index, {k: v for k, v in ((k, number(x)) for k, x in e.items() if k != "epoch") if v is not None}))
    return out


def step_points(record: RunRecord) -> list[tuple[int, int | None, dict[str, float]]]:
    """``(global step, epoch number, {field: value})`` per logged step (none for older records)."""
    out = []
    for s in record.get("steps") or []:
        if not isinstance(s, dict) or number(s.get("step")) is None:
            continue
        epoch = number(s.get("epoch"))
        values = {
            k: v for k, v in ((k, number(x)) for k, x in s.items() if k not in ("step", "epoch")) if v is not None
        }
        out.append((int(s["step"]), int(epoch) if epoch is not None else None, values))
    return out


def run_values(record: RunRecord) -> dict[str, float]:
    """The run's own finite numbers, named as :func:`ablate.load_results`'s ``runs`` columns."""
    row = run_row(record, Targets())
    return {k: v for k, v in ((k, number(x)) for k, x in row.items() if k != "seed") if v is not None}


def identity_tags(experiment: str, record: RunRecord) -> dict[str, str]:
    """Which run it is and where it ran: ``run_id``, ``experiment``, ``variant`` (slug), ``seed``,
    ``status``, ``executor`` (the worker that trained it: ``cpu #0``, ``ray host cuda:0``, ...),
    ``device``, ``git_commit``, ``ablate_version``; missing ones left out."""
    env = record.get("env") or {}
    worker = record.get("worker") or {}
    tags = {
        "run_id": record.get("run_id"),
        "experiment": experiment,
        "variant": record.get("slug"),
        "seed": record.get("seed"),
        "status": record.get("status") or "unknown",
        "executor": worker.get("label") if isinstance(worker, dict) else None,
        "device": env.get("device_name") or env.get("device"),
        "git_commit": env.get("git_commit"),
        "ablate_version": env.get("ablate_version"),
    }
    return {k: str(v) for k, v in tags.items() if v is not None and v != ""}
