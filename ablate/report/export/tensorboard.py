"""Export run files to TensorBoard event files, after the fact: :func:`export_tensorboard`.

Training never writes TensorBoard files (and does not need the package): everything comes from
``results/<experiment>/runs/*.json``. ``tensorboard`` is an optional extra
(``pip install 'ablate[tensorboard]'``); without it :func:`export_tensorboard` raises
:class:`~ablate.report.export.walk.ExtraMissing` saying how to install it. The run files are read
by the shared walk (:mod:`ablate.report.export.walk`); this module holds TensorBoard's own calls.

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
``experiment.json``, as in the report). Exporting again replaces a run's event files (also with
``--follow``, when a run file changes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.report.export.walk import (
    ExperimentView,
    ExportedRun,
    ExportError,
    ExtraMissing,
    flat_config,
)
from ablate.report.export.walk import number as _number
from ablate.report.export.walk import seconds as _seconds
from ablate.store.record import RunRecord

__all__ = ["INSTALL_HINT", "ExportError", "TensorBoardSink", "TensorBoardTarget", "export_tensorboard", "run_name"]

INSTALL_HINT = str(ExtraMissing("tensorboard", "tensorboard"))
_SAFE = re.compile(r"[^A-Za-z0-9._+=-]")


@dataclass(frozen=True)
class TensorBoardTarget:
    """Where the event files go: ``out/<experiment>/<variant slug>/seed<k>/``."""

    out: Path


def export_tensorboard(results: str | Path, out: str | Path, experiments: Iterable[str] | None = None) -> Any:
    """Write TensorBoard event files for the runs of ``experiments`` (default: all under ``results``);
    returns the :class:`~ablate.report.export.exporters.Export`.

    Raises :class:`~ablate.report.export.walk.ExtraMissing` without the ``tensorboard`` package and
    :class:`ExportError` for an unknown experiment or when there is no run to export.
    """
    from ablate.report.export.exporters import TENSORBOARD, export

    return export(TENSORBOARD, TensorBoardTarget(Path(out)), results, experiments)


class TensorBoardSink:
    """Writes one TensorBoard run per ablate run; writing a run again replaces its event files."""

    def __init__(self, target: TensorBoardTarget) -> None:
        self.tb = library()
        self.out = Path(target.out)
        self._names: dict[tuple[str, str], str] = {}  # (experiment, run id) -> run name
        self._taken: set[str] = set()

    def run(self, view: ExperimentView, record: RunRecord) -> ExportedRun:
        key = (view.name, str(record.get("run_id")))
        rel = self._names.get(key)
        if rel is None:
            rel = run_name(view.name, record)
            if rel in self._taken:  # two records of one cell (no manifest to tell which is current): keep both
                rel = f"{rel}-{_safe(str(record.get('run_id')))[:12]}"
            self._taken.add(rel)
            self._names[key] = rel
        path = _inside(self.out, rel)
        try:
            return _write_run(self.tb, view.name, record, path, rel)
        except OSError as e:  # e.g. OUT/<experiment> is a file
            blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
            what = f"{blocker} is a file, not a folder" if blocker is not None else (e.strerror or str(e))
            raise ExportError(f"cannot write {path}: {what}; move it away or choose another --out") from None

    def experiment(self, view: ExperimentView) -> None:
        """Nothing: TensorBoard builds its HParams table from every run's values (see the module docstring)."""

    def close(self) -> None:
        pass


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
def library() -> dict[str, Any]:
    """The TensorBoard writing API, imported only here (an optional dependency)."""
    try:
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ExtraMissing("tensorboard", "tensorboard") from None
    return {
        "Summary": Summary,
        "api_pb2": api_pb2,
        "metadata": metadata,
        "plugin_data_pb2": plugin_data_pb2,
        "SummaryWriter": SummaryWriter,
    }


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
    out.update(flat_config(record))
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
    writer = _Counted(tb["SummaryWriter"](log_dir=str(path)))
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
        points=writer.points,
    )


class _Counted:
    """A SummaryWriter that counts the scalars written through it."""

    def __init__(self, writer: Any) -> None:
        self.writer, self.file_writer, self.points = writer, writer.file_writer, 0

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        self.points += 1
        self.writer.add_scalar(*args, **kwargs)

    def close(self) -> None:
        self.writer.close()


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
