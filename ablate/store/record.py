"""The run record: one JSON file per finished run, and the one check every reader goes through.

Every record is assembled here, by :func:`build_record` from typed parts (the cell's
:class:`Identity`, the epochs as :class:`EpochMetrics`, the step points as :class:`StepPoint`, ...):
:func:`ablate.train.loop.train_cell` builds ``ok`` / ``diverged`` records with it, :func:`failed_record`
``failed`` ones, and the runner adds where and by whom with :func:`with_parts`. Records are read
back by the store, the CLI tables and the analysis.
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
from ablate.variant import Variant

FORMAT_VERSION = 2

# Statuses of runs that are done: rerunning the experiment skips them. A "failed" run (an
# exception, e.g. out of memory) is kept for the record but tried again on the next run.
FINISHED = ("ok", "diverged")
STATUSES = ("ok", "diverged", "failed")


class EpochMetrics(TypedDict, total=False):
    """One finished epoch (``record["epochs"][i]``); ``docs/results-format.md`` explains each key
    and a test keeps its table to exactly these keys. Every value is a number (null: non-finite)."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    val_top5: float  # with more than 5 classes
    train_eval_loss: float
    train_eval_acc: float
    train_eval_top5: float  # with more than 5 classes
    epoch_time_s: float
    train_time_s: float
    timed_steps: int
    train_images_per_s: float
    images_seen: int
    peak_memory_mb: float


class StepPoint(TypedDict, total=False):
    """One step-level log point (``record["steps"][i]``, every ``[train] log_every`` steps)."""

    step: int
    epoch: int
    images: int
    lr: float
    train_loss: float
    train_acc: float
    time_s: float


# The keys of an epoch entry and of a step point, in the order the types declare them: what
# ``frames``, the docs and the checks below derive from.
EPOCH_KEYS: tuple[str, ...] = tuple(typing.get_type_hints(EpochMetrics))
STEP_KEYS: tuple[str, ...] = tuple(typing.get_type_hints(StepPoint))


class Identity(TypedDict):
    """Which run a record is of: the cell's identity and its resolved configuration."""

    run_id: str
    experiment: str
    variant: dict[str, Any]
    slug: str
    seed: int
    config: dict[str, Any]


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
    steps: list[StepPoint]
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
    why = _identity_problem(record)
    if why:
        return why
    ok = record["status"] == "ok"
    for name, keys in (("epochs", EPOCH_KEYS), ("steps", STEP_KEYS)):
        for i, entry in enumerate(record.get(name, [])):
            if not isinstance(entry, dict):
                return f"{name}[{i}] is {_kind(entry)}"
            for key, value in entry.items():
                if key not in keys:
                    return f"{name}[{i}].{key}: not a key of {name}[] entries"
                why = _number_problem(value, key, required=ok and name == "epochs" and key in _OK_NEEDS)
                if why:
                    return f"{name}[{i}].{key} {why}"
    for key, value in record["summary"].items():
        why = _number_problem(value, key, required=ok and key in _OK_NEEDS_SUMMARY)
        if why:
            return f"summary.{key} {why}"
    if record["status"] in FINISHED and record["epochs"] and not record["summary"]:
        return "no summary for a finished run"
    return None


# What an ``ok`` run always has (ablate records a non-finite loss as ``diverged``): numbers, never
# null, in each epoch and in the summary. A null there would silently drop the run from a comparison.
_OK_NEEDS = frozenset({"train_loss", "train_acc", "val_loss", "val_acc"})
_OK_NEEDS_SUMMARY = frozenset(
    {"final_val_acc", "best_val_acc", "final_val_loss", "final_train_loss", "final_train_acc"}
)


def _is_fraction(key: str) -> bool:
    """Accuracies (top-1 and top-5) are fractions of images: 0..1."""
    return key.endswith("_acc") or key.endswith("_top5")


def _number_problem(value: Any, key: str, required: bool) -> str:
    """Why ``value`` cannot be the metric ``key`` of a run (a few words), or "". Every metric ablate
    records (losses, accuracies, times, counts, rates, memory) is a finite number >= 0, accuracies at
    most 1; null stands for a value that does not exist (a diverged run's loss), never NaN or infinity."""
    if not _type_ok(value, _NUMBER):
        return f"is {_kind(value)}"
    if value is None:
        return "is null in an ok run" if required else ""
    if not math.isfinite(value):
        return f"is {value} (ablate writes null for a value that does not exist)"
    if value < 0 or (_is_fraction(key) and value > 1):
        return f"is {value:g}, outside {'0..1' if _is_fraction(key) else '0 and above'}"
    return ""


def _identity_problem(record: dict[str, Any]) -> str:
    """Whether the record's identity agrees with itself: ``seed`` and ``variant`` are the resolved
    config's, and ``slug`` names that variant (a run filed under another variant or seed would be
    counted there)."""
    config = record["config"]
    if "seed" in config and (not _type_ok(config["seed"], (int,)) or config["seed"] != record["seed"]):
        return f"seed {record['seed']!r} but config.seed {config['seed']!r}"
    if "variant" in config and config["variant"] != record["variant"]:
        return "'variant' differs from config.variant"
    try:
        slug = Variant(**record["variant"]).slug()
    except (TypeError, ValueError):  # axes this ablate does not know: nothing to compare the slug with
        return ""
    if record["slug"] != slug:
        return f"slug {record['slug']!r} but its variant is {slug!r}"
    return ""


def identity_of(cell: Any) -> Identity:
    """The :class:`Identity` of an ``ablate.experiment.experiment.Cell`` (anything with its ``run_id``,
    ``experiment``, ``variant``, ``seed`` and ``config()``)."""
    return {
        "run_id": cell.run_id,
        "experiment": cell.experiment,
        "variant": cell.variant.axes(),
        "slug": cell.variant.slug(),
        "seed": cell.seed,
        "config": cell.config(),
    }


def build_record(
    identity: Identity,
    *,
    status: str,
    error: str | None = None,
    traceback: str | None = None,
    params: int | None = None,
    data: dict[str, Any] | None = None,
    runtime: dict[str, Any] | None = None,
    epochs: list[EpochMetrics] | None = None,
    steps: list[StepPoint] | None = None,
    resumed: list[dict[str, Any]] | None = None,
    summary: dict[str, Any] | None = None,
    env: dict[str, Any] | None = None,
    worker: dict[str, Any] | None = None,
) -> RunRecord:
    """A run record (any status) from its parts: the one place a record is assembled. Parts left
    None are left out (a failed run has no ``data``, ``runtime``, ``steps``; ``env`` and
    ``worker`` are added by the runner with :func:`with_parts`), except ``error`` and
    ``params``, which every record states. Keys come in the order ablate has always written them."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} (expected {', '.join(STATUSES)})")
    record: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "run_id": identity["run_id"],
        "experiment": identity["experiment"],
        "variant": identity["variant"],
        "slug": identity["slug"],
        "seed": identity["seed"],
        "status": status,
        "error": error,
        "traceback": traceback,
        "config": identity["config"],
        "params": params,
        "data": data,
        "runtime": runtime,
        "epochs": list(epochs or []),
        "steps": steps,
        "resumed": resumed,
        "summary": summary or {},
        "env": env,
        "worker": worker,
    }
    return {k: v for k, v in record.items() if v is not None or k in ("error", "params")}  # type: ignore[return-value]


def with_parts(
    record: RunRecord, *, env: dict[str, Any] | None = None, worker: dict[str, Any] | None = None
) -> RunRecord:
    """``record`` with the parts known only after training: where it ran (``env``, the runner's
    clock around the cell) and who trained it (``worker``, under its claim)."""
    parts: dict[str, Any] = {k: v for k, v in record.items() if k not in _IDENTITY_KEYS}
    parts.update({k: v for k, v in (("env", env), ("worker", worker)) if v is not None})
    identity: Identity = {k: record[k] for k in Identity.__annotations__}  # type: ignore[misc]
    return build_record(identity, **parts)


# Keys build_record sets itself (format) or takes from the Identity.
_IDENTITY_KEYS = frozenset({"format", *Identity.__annotations__})


def failed_record(identity: Identity, error: BaseException | str, params: int | None = None) -> RunRecord:
    """The record of a cell that raised (``error``; a string for a failure known without an
    exception, e.g. a dead worker): kept for the record, retried on the next run."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return build_record(
        identity,
        status="failed",
        error=(message.splitlines() or [""])[0],
        traceback=traceback.format_exc() if not isinstance(error, str) else "",
        params=params,
    )


def summarize(epochs: list[EpochMetrics]) -> dict[str, Any]:
    """A run's ``summary``: final and best numbers, for tables ({} when no epoch finished)."""
    if not epochs:
        return {}
    last = epochs[-1]
    return {
        "epochs_done": len(epochs),
        "final_val_acc": last["val_acc"],
        "best_val_acc": max(e["val_acc"] for e in epochs),
        "final_val_loss": last["val_loss"],
        "final_train_loss": last["train_loss"],
        "final_train_acc": last["train_acc"],
        "final_train_eval_acc": last["train_eval_acc"],
        "train_time_s": sum(e["train_time_s"] for e in epochs),
        "wall_time_s": sum(e["epoch_time_s"] for e in epochs),
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
