"""Export run files to TensorBoard event files, after the fact: :func:`export_tensorboard`.

Training never writes TensorBoard files (and does not need the package): everything comes from
``results/<experiment>/runs/*.json``. ``tensorboard`` is an optional extra
(``pip install 'ablate[tensorboard]'``); without it :func:`export_tensorboard` raises
:class:`TensorBoardMissing` saying how to install it.

One TensorBoard run per ablate run, in ``<out>/<experiment>/<variant slug>/seed<k>/``:

* ``epoch/<key>`` scalars at step = epoch number, one per numeric field of the record's
  ``epochs`` (``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``,
  ``train_images_per_s``, ...);
* ``step/<key>`` scalars at step = global step, one per numeric field of the record's ``steps``
  (``train_loss``, ``train_acc``, ``lr``, ``images``, ``time_s``), when the run logged steps, and
  ``step/images_per_s``: images over training seconds since the previous point;
* ``run/<key>`` scalars at the last epoch: final and best validation accuracy, run-level
  training images/s, wall time, parameters;
* HParams: experiment, variant, seed, status, the variant's axes and the run's resolved ``data.*``
  and ``train.*`` settings, so TensorBoard's HParams view can filter and sort runs by axis. No
  experiment-level summary is written: TensorBoard then builds the table from every run's
  values, which keeps runs of different experiments (different axes) in one view.

Only runs of the experiment's current configuration are exported (run ids listed in its
``experiment.json``, as in the report). Exporting again replaces a run's event files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ablate.analysis.results import current_records
from ablate.registry import suggest
from ablate.store.folder import experiments as list_experiments
from ablate.store.record import RunRecord

INSTALL_HINT = "tensorboard is not installed; install it with: pip install 'ablate[tensorboard]'"
_SAFE = re.compile(r"[^A-Za-z0-9._+=-]")


class ExportError(ValueError):
    """Something a user can fix (unknown experiment, nothing to export); one-line ``str()``."""


class TensorBoardMissing(ExportError):
    """The optional ``tensorboard`` package is not installed."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


@dataclass(frozen=True)
class ExportedRun:
    """One TensorBoard run written."""

    experiment: str
    run_id: str
    name: str  # TensorBoard run name: <experiment>/<variant slug>/seed<k>, relative to ``out``
    path: Path
    status: str
    epochs: int  # epochs exported
    steps: int  # logged steps exported


@dataclass(frozen=True)
class Export:
    """What :func:`export_tensorboard` wrote."""

    out: Path
    runs: list[ExportedRun] = field(default_factory=list)
    # Experiment -> run files left out because they belong to an older configuration.
    stale: dict[str, int] = field(default_factory=dict)


def export_tensorboard(results: str | Path, out: str | Path, experiments: Iterable[str] | None = None) -> Export:
    """Write TensorBoard event files for the runs of ``experiments`` (default: all under ``results``).

    Raises :class:`TensorBoardMissing` without the ``tensorboard`` package and :class:`ExportError`
    for an unknown experiment or when there is no run to export.
    """
    tb = _tensorboard()
    found = list_experiments(results)
    names = list(dict.fromkeys(experiments)) if experiments else found
    for name in names:
        if name not in found:
            hint = suggest(name, found)
            where = f"found: {', '.join(found)}" if found else "no experiments there"
            raise ExportError(
                f"unknown experiment {name!r} under {results} ({where})" + (f"; did you mean {hint!r}?" if hint else "")
            )
    out = Path(out)
    plan: list[tuple[str, dict[str, Any], Path]] = []
    stale: dict[str, int] = {}
    taken: set[str] = set()
    for name in names:
        records, stale_n = current_records(results, name)
        if stale_n:
            stale[name] = stale_n
        for record in sorted(records, key=lambda r: (str(r.get("slug")), str(r.get("seed")), str(r.get("run_id")))):
            rel = run_name(name, record)
            if rel in taken:  # two records of one cell (no manifest to tell which is current): keep both
                rel = f"{rel}-{_safe(str(record.get('run_id')))[:12]}"
            taken.add(rel)
            plan.append((name, record, _inside(out, rel)))
    if not plan:
        raise ExportError(f"no run records to export under {results}" + (f" for {', '.join(names)}" if names else ""))
    written = []
    for name, record, path in plan:
        try:
            written.append(_write_run(tb, name, record, path, path.relative_to(out).as_posix()))
        except OSError as e:  # e.g. OUT/<experiment> is a file
            blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
            what = f"{blocker} is a file, not a folder" if blocker is not None else (e.strerror or str(e))
            raise ExportError(f"cannot write {path}: {what}; move it away or choose another --out") from None
    return Export(out=out, runs=written, stale=stale)


def run_name(experiment: str, record: RunRecord) -> str:
    """``<experiment>/<variant slug>/seed<k>``, each part reduced to characters safe in a path."""
    slug = record.get("slug") or "-".join(f"{k}={v}" for k, v in (record.get("variant") or {}).items()) or "variant"
    return f"{_safe(experiment)}/{_safe(str(slug))}/seed{_safe(str(record.get('seed')))}"


def _safe(part: str) -> str:
    """A single path component: odd characters become ``_`` and ``.``/``..`` cannot occur."""
    text = _SAFE.sub("_", part)
    return text if text.strip(".") else text.replace(".", "_") or "_"


def _inside(out: Path, rel: str) -> Path:
    # _safe already forbids separators and dot-only parts; this check makes escaping impossible
    # even if it changes.
    path = out / rel
    if not path.resolve().is_relative_to(out.resolve()):
        raise ExportError(f"run name {rel!r} would leave {out}")
    return path


# --- writing ------------------------------------------------------------------------------------
def _tensorboard() -> dict[str, Any]:
    """The TensorBoard writing API, imported only here (an optional dependency)."""
    try:
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TensorBoardMissing() from None
    return {
        "Summary": Summary,
        "api_pb2": api_pb2,
        "metadata": metadata,
        "plugin_data_pb2": plugin_data_pb2,
        "SummaryWriter": SummaryWriter,
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _seconds(stamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return None


def hparams_of(experiment: str, record: RunRecord) -> dict[str, bool | float | str]:
    """The HParams of one run: identity, variant axes, resolved ``data.*``/``train.*`` settings,
    precision and device. Values are bool, number or string; missing (None) values are left out,
    so that one setting keeps one type across runs."""
    out: dict[str, Any] = {
        "experiment": experiment,
        "variant": str(record.get("slug") or ""),
        "seed": record.get("seed"),
        "status": str(record.get("status") or "unknown"),
    }
    out.update(record.get("variant") or {})
    config = record.get("config") or {}
    for section in ("data", "train"):
        for key, value in (config.get(section) or {}).items():
            out[f"{section}.{key}"] = value
    out["precision"] = (record.get("runtime") or {}).get("precision")
    env = record.get("env") or {}
    out["device"] = env.get("device_name") or env.get("device")
    clean: dict[str, bool | float | str] = {}
    for key, value in out.items():
        if value is None:
            continue
        if isinstance(value, (bool, str)):
            clean[key] = value
        elif _number(value) is not None:
            clean[key] = float(value)
        elif not isinstance(value, (int, float)):  # lists, tables: their text
            clean[key] = str(value)
    return clean


def _write_run(tb: dict[str, Any], experiment: str, record: RunRecord, path: Path, name: str) -> ExportedRun:
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("events.out.tfevents.*"):  # our own earlier export of this run
        old.unlink()
    env = record.get("env") or {}
    start, end = _seconds(env.get("started")), _seconds(env.get("finished"))
    epochs = [e for e in record.get("epochs") or [] if isinstance(e, dict)]
    steps = [s for s in record.get("steps") or [] if isinstance(s, dict) and _number(s.get("step")) is not None]
    writer = tb["SummaryWriter"](log_dir=str(path))
    try:
        writer.file_writer.add_summary(_session_start(tb, hparams_of(experiment, record), start))
        _epoch_scalars(writer, epochs, start)
        _step_scalars(writer, steps, epochs, start)
        last = int(_number(epochs[-1].get("epoch")) or len(epochs)) if epochs else 0
        for key, value in _run_scalars(record).items():
            writer.add_scalar(f"run/{key}", value, last, walltime=end)
        api = tb["api_pb2"]
        status = api.STATUS_SUCCESS if record.get("status") == "ok" else api.STATUS_FAILURE
        writer.file_writer.add_summary(_session_end(tb, status, end))
    finally:
        writer.close()
    return ExportedRun(
        experiment=experiment,
        run_id=str(record.get("run_id")),
        name=name,
        path=path,
        status=str(record.get("status")),
        epochs=len(epochs),
        steps=len(steps),
    )


def _epoch_scalars(writer: Any, epochs: list[dict[str, Any]], start: float | None) -> None:
    elapsed = 0.0
    for i, e in enumerate(epochs, 1):
        step = int(_number(e.get("epoch")) or i)
        elapsed += _number(e.get("epoch_time_s")) or 0.0
        wall = start + elapsed if start is not None else None
        for key, value in e.items():
            if key != "epoch" and _number(value) is not None:
                writer.add_scalar(f"epoch/{key}", _number(value), step, walltime=wall)


def _step_scalars(writer: Any, steps: list[dict[str, Any]], epochs: list[dict[str, Any]], start: float | None) -> None:
    eval_before = _evaluation_before(epochs)
    prev_images, prev_time = 0.0, 0.0
    for s in steps:
        step, time_s, images = int(s["step"]), _number(s.get("time_s")), _number(s.get("images"))
        wall = None
        if start is not None and time_s is not None:
            # time_s counts training time only: add the evaluations of earlier epochs for the wall clock.
            wall = start + time_s + eval_before.get(s.get("epoch"), eval_before[len(epochs) + 1])
        for key, value in s.items():
            if key not in ("step", "epoch") and _number(value) is not None:
                writer.add_scalar(f"step/{key}", _number(value), step, walltime=wall)
        if time_s is not None and images is not None and time_s > prev_time:
            # Images/s over the window since the previous point (host clock: approximate on a GPU).
            rate = (images - prev_images) / (time_s - prev_time)
            writer.add_scalar("step/images_per_s", rate, step, walltime=wall)
            prev_images, prev_time = images, time_s


def _evaluation_before(epochs: list[dict[str, Any]]) -> dict[Any, float]:
    """Epoch number -> seconds spent outside training steps (evaluation) in the epochs before it."""
    out, total = {}, 0.0
    for i, e in enumerate(epochs, 1):
        number = e.get("epoch", i)
        out[number] = total
        wall, train = _number(e.get("epoch_time_s")), _number(e.get("train_time_s"))
        total += max(0.0, wall - train) if wall is not None and train is not None else 0.0
    out[len(epochs) + 1] = total  # steps of an epoch that did not finish (a diverged run)
    return out


def _run_scalars(record: RunRecord) -> dict[str, float]:
    summary, runtime = record.get("summary") or {}, record.get("runtime") or {}
    values = {
        "final_val_acc": summary.get("final_val_acc"),
        "best_val_acc": summary.get("best_val_acc"),
        "final_val_loss": summary.get("final_val_loss"),
        "final_train_loss": summary.get("final_train_loss"),
        "train_images_per_s": runtime.get("train_images_per_s"),
        "peak_memory_mb": runtime.get("peak_memory_mb"),
        "wall_time_s": summary.get("wall_time_s"),
        "params": record.get("params"),
    }
    return {k: float(v) for k, v in values.items() if _number(v) is not None}


def _session_start(tb: dict[str, Any], hparams: dict[str, bool | float | str], start: float | None) -> Any:
    pb = tb["plugin_data_pb2"]
    info = pb.SessionStartInfo(start_time_secs=start or 0.0)
    for key, value in hparams.items():
        if isinstance(value, bool):  # before numbers: bool is an int in Python
            info.hparams[key].bool_value = value
        elif isinstance(value, float):
            info.hparams[key].number_value = value
        else:
            info.hparams[key].string_value = value
    return _summary(tb, tb["metadata"].SESSION_START_INFO_TAG, pb.HParamsPluginData(session_start_info=info))


def _session_end(tb: dict[str, Any], status: int, end: float | None) -> Any:
    pb = tb["plugin_data_pb2"]
    info = pb.SessionEndInfo(status=status, end_time_secs=end or 0.0)
    return _summary(tb, tb["metadata"].SESSION_END_INFO_TAG, pb.HParamsPluginData(session_end_info=info))


def _summary(tb: dict[str, Any], tag: str, data: Any) -> Any:
    summary = tb["Summary"]
    return summary(value=[summary.Value(tag=tag, metadata=tb["metadata"].create_summary_metadata(data))])
