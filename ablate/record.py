"""The run record: one JSON file per finished run, and the one check every reader goes through.

A record is written by :func:`ablate.train.train_cell` (``ok`` / ``diverged``) or by
:func:`failed_record` (``failed``), and read back by the store, the CLI tables and the analysis.
:func:`problem` is the single schema check: a file that fails it is *unreadable* (named in a
warning, never counted as finished, never silently overwritten), whatever the command.

Format version 1 is what ablate 0.1 wrote (no ``format`` key); version 2 adds ``format``,
``resumed`` (mid-cell resumes from a checkpoint) and ``worker`` (who trained it). Readers accept
both. ``docs/results-format.md`` documents every key.
"""

from __future__ import annotations

import math
import traceback
import types
import typing
from typing import Any, TypedDict

from ablate.config import SEED_MAX

FORMAT_VERSION = 2

# Statuses of runs that are done: rerunning the experiment skips them. A "failed" run (an
# exception, e.g. out of memory) is kept for the record but tried again on the next run.
FINISHED = ("ok", "diverged")
STATUSES = ("ok", "diverged", "failed")


class EpochMetrics(TypedDict, total=False):
    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    train_eval_loss: float
    train_eval_acc: float
    epoch_time_s: float
    train_time_s: float
    timed_steps: int
    train_images_per_s: float
    peak_memory_mb: float


class RunRecord(TypedDict, total=False):
    """Every key a run record may have, with its JSON type: the one description of the schema
    (:func:`problem` checks records against these annotations; ``docs/results-format.md``
    explains each key, and a test keeps its table to exactly these keys)."""

    format: int
    run_id: str
    experiment: str
    variant: dict[str, Any]
    slug: str
    seed: int
    status: str  # one of STATUSES
    error: str | None
    traceback: str
    config: dict[str, Any]
    params: int | None
    data: dict[str, Any]
    runtime: dict[str, Any]
    epochs: list[EpochMetrics]
    steps: list[dict[str, Any]]
    summary: dict[str, Any]
    resumed: list[dict[str, Any]]
    worker: dict[str, Any]
    env: dict[str, Any]


# Keys every record has, failed ones included (the rest are optional: version 1 records lack
# ``format``, ``resumed`` and ``worker``; failed records have no ``data``, ``runtime``, ...).
REQUIRED = frozenset({"run_id", "experiment", "variant", "slug", "seed", "status", "config", "epochs", "summary"})


def _json_types(annotation: Any) -> tuple[type, ...]:
    """The Python types JSON decoding gives for a RunRecord annotation (``str | None`` ->
    ``(str, NoneType)``, ``list[...]`` -> ``(list,)``)."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        return tuple(t for arg in typing.get_args(annotation) for t in _json_types(arg))
    if annotation is type(None):
        return (type(None),)
    return (typing.get_origin(annotation) or annotation,)


# key -> (accepted types, required), from RunRecord. bool is excluded from int checks below.
_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    key: (_json_types(hint), key in REQUIRED) for key, hint in typing.get_type_hints(RunRecord).items()
}
_NUMBER = (int, float, type(None))  # null: a non-finite value stored as "no value"


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def problem(record: Any) -> str | None:
    """What makes ``record`` unusable as a run record, in a few words; None when it is fine."""
    if not isinstance(record, dict):
        return f"not a JSON object ({_kind(record)})"
    for key, (accepted, required) in _FIELDS.items():
        if key not in record:
            if required:
                return f"no {key!r}"
            continue
        if not _type_ok(record[key], accepted):
            return f"{key!r} is {_kind(record[key])}"
    if not 1 <= record.get("format", 1) <= FORMAT_VERSION:
        return f"format {record['format']} (this ablate reads 1..{FORMAT_VERSION}; upgrade ablate)"
    if record["status"] not in STATUSES:
        return f"status {record['status']!r} (expected {', '.join(STATUSES)})"
    if not 0 <= record["seed"] <= SEED_MAX:  # no seed beyond what NumPy and torch accept was trained
        return f"seed {record['seed']} (expected 0..{SEED_MAX})"
    for key in ("variant", "data", "train"):
        if key in record["config"] and not isinstance(record["config"][key], dict):
            return f"'config.{key}' is {_kind(record['config'][key])}"
    for i, epoch in enumerate(record["epochs"]):
        if not isinstance(epoch, dict):
            return f"epochs[{i}] is {_kind(epoch)}"
        for key, value in epoch.items():
            if not _type_ok(value, _NUMBER):
                return f"epochs[{i}].{key} is {_kind(value)}"
    for key, value in record["summary"].items():
        if not _type_ok(value, _NUMBER):
            return f"summary.{key} is {_kind(value)}"
    if record["status"] in FINISHED and record["epochs"] and not record["summary"]:
        return "no summary for a finished run"
    return None


def failed_record(cell: Any, error: BaseException | str, params: int | None = None) -> RunRecord:
    """The record of a cell that raised: kept for the record, retried on the next run."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return {
        "format": FORMAT_VERSION,
        "run_id": cell.run_id, "experiment": cell.experiment, "variant": cell.variant.axes(),
        "slug": cell.variant.slug(), "seed": cell.seed, "status": "failed",
        "error": (message.splitlines() or [""])[0],
        "traceback": traceback.format_exc() if not isinstance(error, str) else "",
        "config": cell.config(), "params": params, "epochs": [], "summary": {},
    }


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null (a diverged metric is 'no value')."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
