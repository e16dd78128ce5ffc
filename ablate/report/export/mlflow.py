"""Export run files to MLflow (``pip install 'ablate[mlflow]'``): this module holds MLflow's calls.

MLflow's conventions for a sweep, with ablate's names (``docs/trackers.md`` lists every field):

* one MLflow experiment per ablate experiment, tagged ``ablate.experiment`` and
  ``ablate.settings`` (the ``data`` and ``train`` settings its runs share): an MLflow experiment
  of that name that ablate did not make, or that holds another configuration, is refused;
* a parent run per variant (``ablate.kind = variant``), with a nested run per seed
  (``ablate.kind = seed``, ``mlflow.parentRunId``: what ``mlflow.start_run(nested=True)`` sets),
  so that the UI groups them;
* a seed's run: params = the resolved, flattened config (axes, ``seed``, ``data.*``,
  ``train.*``); metrics ``epoch/<field>`` at step 0..E-1 (epoch ``k`` of the run file at ``k - 1``),
  ``step/<field>`` at the global step, and the run's own numbers under ``load_results``'s column
  names (``final_val_acc``, ``train_images_per_s``, ...) at the last epoch's step; tags
  ``ablate.run_id``, ``ablate.variant``, ``ablate.status``, ``ablate.executor``, ``ablate.device``,
  ``ablate.git_commit`` (also ``mlflow.source.git.commit``), ``ablate.ablate_version``; status
  FINISHED for ``ok`` runs, FAILED for the others; start and end times from the run file;
* a variant's run: its axes as params; the summary over its ok seeds
  (:func:`ablate.analysis.summary_frame`: ``final_val_acc_mean``, ``final_val_acc_ci_low``, ...,
  ``n``) and its paired comparison with the baseline (:func:`ablate.analysis.compare_to_baseline`:
  ``<metric>_diff``, ``<metric>_diff_ci_low``/``_high``, ``<metric>_p_holm``; tags
  ``ablate.verdict.<metric>`` and ``ablate.verdict`` for the primary metric), at step = its number
  of ok seeds; RUNNING while cells are missing;
* a study run (``ablate.kind = study``), when ``ablate report`` wrote ``<reports>/<experiment>/``:
  the report folder (markdown, CSV, PNG) as its artifacts under ``report/``.

Idempotent: runs are found by their tags, a seed's run by ``ablate.run_id``. A run whose record is
unchanged (tag ``ablate.record``, a digest of the record) is left alone; otherwise only the metric
points it lacks (key and step not in its history) are logged, so exporting again adds nothing.
The default tracking URI is MLflow's own default, ``sqlite:///mlflow.db``; an unreachable server
fails at once (no retries for the first request), not after minutes of retries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ablate.analysis import compare_to_baseline, differing_settings, summary_frame
from ablate.report.export.walk import (
    ExperimentView,
    ExportedRun,
    ExportError,
    ExtraMissing,
    digest,
    epoch_points,
    flat_config,
    identity_tags,
    number,
    run_values,
    seconds,
    step_points,
)
from ablate.store.folder import StoreError, check_writable
from ablate.store.record import RunRecord

DEFAULT_URI = "sqlite:///mlflow.db"
TAG = "ablate."  # prefix of ablate's tags
PARENT = "mlflow.parentRunId"  # the tag mlflow.start_run(nested=True) sets
GIT_COMMIT = "mlflow.source.git.commit"
# MLflow's limits on one log_batch call.
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100
# The first request goes out without MLflow's retries (seven, with backoff: minutes against a
# server that is not there); the user's own settings of these variables win.
FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@dataclass(frozen=True)
class MlflowTarget:
    """Where to export: a tracking URI, and the reports folder whose ``<experiment>/`` is logged."""

    tracking_uri: str = DEFAULT_URI
    reports: Path | None = Path("reports")


def library() -> SimpleNamespace:
    """MLflow's client API, imported only here (an optional dependency). MLflow's usage telemetry
    is turned off unless the user set ``MLFLOW_DISABLE_TELEMETRY``: an export talks to the
    tracking URI and to nothing else."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise ExtraMissing("mlflow", "mlflow") from None
    return SimpleNamespace(
        MlflowClient=MlflowClient, Metric=Metric, Param=Param, RunTag=RunTag, MlflowException=MlflowException
    )


@dataclass
class _Experiment:
    """An MLflow experiment as this export knows it: its id and ablate's runs in it, by key
    (``("seed", run_id)``, ``("variant", slug)``, ``("study",)``)."""

    id: str
    runs: dict[tuple[str, ...], Any] = field(default_factory=dict)


class MlflowSink:
    """An open MLflow tracking store; see the module docstring for what goes where."""

    def __init__(self, target: MlflowTarget) -> None:
        self.ml = library()
        self.uri = target.tracking_uri
        self.reports = target.reports
        self._experiments: dict[str, _Experiment] = {}
        self._loggers = {name: logging.getLogger(name).level for name in ("mlflow", "alembic")}
        for name in self._loggers:  # "Creating initial MLflow database tables...": not for the user
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            _check_writable(self.uri)
            self.client = self.ml.MlflowClient(tracking_uri=self.uri)
            with _environment(FAIL_FAST):
                self.client.search_experiments(max_results=1)
        except ExportError:
            self.close()
            raise
        # The client raises errors of several libraries (requests, sqlalchemy, alembic, MLflow's
        # own) for one fact: this URI cannot be used. Each becomes one line.
        except Exception as e:  # noqa: BLE001
            self.close()
            raise ExportError(f"cannot use the MLflow tracking URI {self.uri}: {_reason(e)}") from None

    def close(self) -> None:
        for name, level in self._loggers.items():
            logging.getLogger(name).setLevel(level)

    # --- a seed's run ----------------------------------------------------------------------------
    def run(self, view: ExperimentView, record: RunRecord) -> ExportedRun:
        with self._errors():
            return self._run(view, record)

    def _run(self, view: ExperimentView, record: RunRecord) -> ExportedRun:
        exp = self._experiment(view)
        slug, run_id = str(record.get("slug") or ""), str(record["run_id"])
        name = f"{slug} seed{record.get('seed')}"
        epochs, steps = epoch_points(record), step_points(record)
        mine = digest(record)
        found = exp.runs.get(("seed", run_id))
        if found is not None and found.data.tags.get(TAG + "record") == mine:
            return ExportedRun.of(view.name, record, name, created=False, points=0)
        env = record.get("env") or {}
        start, end = seconds(env.get("started")), seconds(env.get("finished"))
        points = _points(record, epochs, steps, start, end)
        if found is None:
            parent = self._parent(exp, view, record, start)
            tags = {PARENT: parent, TAG + "kind": "seed"}
            created = self.client.create_run(exp.id, start_time=_ms(start), tags=tags, run_name=name)
            mlflow_id, logged = created.info.run_id, {}
            params = [self.ml.Param(k, _text(v)) for k, v in flat_config(record).items()]
        else:
            mlflow_id, params = found.info.run_id, []  # params are immutable and equal (the run id is their hash)
            logged = {key: {m.step for m in self.client.get_metric_history(mlflow_id, key)} for key in points}
        metrics = [
            self.ml.Metric(key, value, stamp, step)
            for key, series in points.items()
            for step, value, stamp in series
            if step not in logged.get(key, set())
        ]
        tags = {TAG + k: v for k, v in identity_tags(view.name, record).items()}
        if env.get("git_commit"):
            tags[GIT_COMMIT] = str(env["git_commit"])
        if record.get("error"):
            tags[TAG + "error"] = str(record["error"])[:4000]
        self._log(mlflow_id, metrics, params, tags)
        status = "FINISHED" if record.get("status") == "ok" else "FAILED"
        self.client.set_terminated(mlflow_id, status, end_time=_ms(end))
        self.client.set_tag(mlflow_id, TAG + "record", mine)  # last: the run is complete
        exp.runs[("seed", run_id)] = self.client.get_run(mlflow_id)
        return ExportedRun.of(view.name, record, name, created=found is None, points=len(metrics))

    def _log(self, run: str, metrics: list[Any], params: list[Any], tags: dict[str, str]) -> None:
        """As few ``log_batch`` calls as MLflow's limits per call allow (each is one request)."""
        tag_list = [self.ml.RunTag(k, v) for k, v in tags.items()]
        batches = zip_longest(
            _chunks(metrics, MAX_METRICS), _chunks(params, MAX_PARAMS), _chunks(tag_list, MAX_TAGS), fillvalue=[]
        )
        for m, p, t in batches:
            self.client.log_batch(run, metrics=m, params=p, tags=t)

    # --- a variant's run and the study run -------------------------------------------------------
    def _parent(self, exp: _Experiment, view: ExperimentView, record: RunRecord, start: float | None) -> str:
        slug = str(record.get("slug") or "")
        found = exp.runs.get(("variant", slug))
        if found is not None:
            return str(found.info.run_id)
        tags = {TAG + "kind": "variant", TAG + "experiment": view.name, TAG + "variant": slug}
        run = self.client.create_run(exp.id, start_time=_ms(start), tags=tags, run_name=slug)
        axes = [self.ml.Param(k, _text(v)) for k, v in (record.get("variant") or {}).items()]
        self._log(run.info.run_id, [], axes, {})
        exp.runs[("variant", slug)] = self.client.get_run(run.info.run_id)
        return str(run.info.run_id)

    def experiment(self, view: ExperimentView) -> None:
        with self._errors():
            exp = self._experiment(view)
            data = view.analysed()
            summary = summary_frame(data)
            comparisons = compare_to_baseline(data)
            for row in summary.to_dict("records"):
                found = exp.runs.get(("variant", str(row["variant"])))
                if found is not None:
                    self._summarise(exp, found, row, comparisons, data.baseline)
            self._study(exp, view, data)

    def _summarise(self, exp: _Experiment, run: Any, row: dict[str, Any], comparisons: Any, baseline: str) -> None:
        slug = str(row["variant"])
        values = {k: number(v) for k, v in row.items() if k not in ("variant", "baseline")}
        values = {k: v for k, v in values.items() if v is not None}
        tags = {TAG + "verdict": "baseline" if slug == baseline else ""}
        for c in comparisons[comparisons["variant"] == slug].to_dict("records"):
            metric = c["metric"]
            for column, key in (
                ("diff", "diff"),
                ("ci_low", "diff_ci_low"),
                ("ci_high", "diff_ci_high"),
                ("p_holm", "p_holm"),
            ):
                if number(c[column]) is not None:
                    values[f"{metric}_{key}"] = float(c[column])
            tags[f"{TAG}verdict.{metric}"] = str(c["verdict"])
            if not tags[TAG + "verdict"]:  # the first metric is the primary one
                tags[TAG + "verdict"] = str(c["verdict"])
        tags = {k: v for k, v in tags.items() if v}
        mine = hashlib.sha256(json.dumps([values, tags], sort_keys=True).encode()).hexdigest()[:16]
        if run.data.tags.get(TAG + "summary") == mine:
            return
        step = int(row.get("n") or 0)
        now = int(time.time() * 1000)
        metrics = [self.ml.Metric(k, v, now, step) for k, v in values.items()]
        mlflow_id = run.info.run_id
        self._log(mlflow_id, metrics, [], tags)
        if int(row.get("n_missing") or 0) == 0:
            self.client.set_terminated(mlflow_id, "FINISHED")
        else:  # cells still to come (a study in progress, --limit)
            self.client.update_run(mlflow_id, status="RUNNING")
        self.client.set_tag(mlflow_id, TAG + "summary", mine)
        exp.runs[("variant", slug)] = self.client.get_run(mlflow_id)

    def _study(self, exp: _Experiment, view: ExperimentView, data: Any) -> None:
        """The report folder as artifacts of the study run, when ``ablate report`` wrote it."""
        folder = self.reports / view.name if self.reports is not None else None
        if folder is None or not (folder / "README.md").is_file():
            return
        mine = _folder_digest(folder)
        found = exp.runs.get(("study",))
        if found is not None and found.data.tags.get(TAG + "report") == mine:
            return
        if found is None:
            tags = {TAG + "kind": "study", TAG + "experiment": view.name}
            if data.description:
                tags["mlflow.note.content"] = data.description
            run = self.client.create_run(exp.id, tags=tags, run_name=f"{view.name} (study)")
            params = {
                "design": data.design,
                "baseline": data.baseline,
                "seeds": data.seeds,
                "variants": len(data.variants),
            }
            self._log(run.info.run_id, [], [self.ml.Param(k, _text(v)) for k, v in params.items()], {})
            mlflow_id = run.info.run_id
        else:
            mlflow_id = found.info.run_id
        try:
            self.client.log_artifacts(mlflow_id, str(folder), artifact_path="report")
        except (OSError, self.ml.MlflowException) as e:
            where = self.client.get_run(mlflow_id).info.artifact_uri
            raise ExportError(f"cannot log {folder} to MLflow's artifact store {where}: {_reason(e)}") from None
        self.client.set_terminated(mlflow_id, "FINISHED")
        self.client.set_tag(mlflow_id, TAG + "report", mine)
        exp.runs[("study",)] = self.client.get_run(mlflow_id)

    # --- the MLflow experiment -------------------------------------------------------------------
    def _experiment(self, view: ExperimentView) -> _Experiment:
        known = self._experiments.get(view.name)
        if known is not None:
            return known
        settings = view.settings()
        found = self.client.get_experiment_by_name(view.name)
        if found is None:
            tags = {TAG + "experiment": view.name, TAG + "settings": json.dumps(settings, sort_keys=True, default=str)}
            try:
                exp_id = self.client.create_experiment(view.name, tags=tags)
            except self.ml.MlflowException:  # made meanwhile by another export: check it as any other
                found = self.client.get_experiment_by_name(view.name)
                if found is None:
                    raise
        if found is not None:
            self._check(found, view, settings)
            exp_id = found.experiment_id
        exp = _Experiment(str(exp_id))
        for run in self._search(exp.id):
            tags = run.data.tags
            kind = tags.get(TAG + "kind")
            key = {"seed": ("seed", tags.get(TAG + "run_id")), "variant": ("variant", tags.get(TAG + "variant"))}.get(
                str(kind), ("study",) if kind == "study" else None
            )
            if key is not None:
                exp.runs[key] = run
        self._experiments[view.name] = exp
        return exp

    def _check(self, found: Any, view: ExperimentView, settings: dict[str, Any]) -> None:
        """Refuse an MLflow experiment of this name with other content."""
        name, where = view.name, f"MLflow experiment {view.name!r} at {self.uri}"
        if found.lifecycle_stage == "deleted":
            raise ExportError(
                f"{where} is deleted: restore it in MLflow, or remove it for good (mlflow gc), then export again"
            )
        if found.tags.get(TAG + "experiment") != name:
            raise ExportError(
                f"{where} exists and was not made by 'ablate export mlflow': rename or delete it there, "
                "or export to another --tracking-uri"
            )
        try:
            stored = json.loads(found.tags.get(TAG + "settings") or "{}")
        except ValueError:
            stored = {}
        differ = differing_settings(stored if isinstance(stored, dict) else {}, settings)
        if differ:
            shown = ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
            raise ExportError(
                f"{where} holds another configuration of {name!r} (it differs in {shown}): delete it there, "
                "or export to another --tracking-uri"
            )

    def _search(self, experiment_id: str) -> Iterator[Any]:
        token = None
        while True:
            page = self.client.search_runs([experiment_id], max_results=1000, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """MLflow refusing a call (the server went away, a value it does not take) is one line."""
        try:
            yield
        except self.ml.MlflowException as e:
            raise ExportError(f"MLflow at {self.uri} refused the export: {_reason(e)}") from None


def _points(
    record: RunRecord,
    epochs: list[tuple[int, dict[str, float]]],
    steps: list[tuple[int, int | None, dict[str, float]]],
    start: float | None,
    end: float | None,
) -> dict[str, list[tuple[int, float, int]]]:
    """Metric key -> ``(step, value, timestamp ms)`` of a seed's run (see the module docstring)."""
    out: dict[str, list[tuple[int, float, int]]] = {}
    base = start if start is not None else time.time()
    elapsed = 0.0
    raw = [e for e in record.get("epochs") or [] if isinstance(e, dict)]
    for (index, values), e in zip(epochs, raw):
        elapsed += number(e.get("epoch_time_s")) or 0.0
        for key, value in values.items():
            out.setdefault(f"epoch/{key}", []).append((index, value, _ms(base + elapsed)))
    for step, _epoch, values in steps:
        stamp = _ms(base + (values.get("time_s") or 0.0))
        for key, value in values.items():
            out.setdefault(f"step/{key}", []).append((step, value, stamp))
    last = epochs[-1][0] if epochs else 0
    for key, value in run_values(record).items():
        out.setdefault(key, []).append((last, value, _ms(end if end is not None else base + elapsed)))
    return out


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _ms(stamp: float | None) -> int:
    return int((stamp if stamp is not None else time.time()) * 1000)


def _text(value: Any) -> str:
    """A param's value as MLflow's own ``log_param`` writes it (``str``), within its length limit."""
    return str(value)[:6000]


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _check_writable(uri: str) -> None:
    """A local store (``sqlite:///file``, a folder) must be writable: say so in one line now."""
    if uri.startswith("sqlite:///"):
        where = Path(uri[len("sqlite:///") :].split("?")[0] or "mlflow.db").parent
    elif uri.startswith("file:") or "://" not in uri:
        where = Path(re.sub(r"^file:(//)?", "", uri))
    else:
        return
    try:
        check_writable(where)
    except StoreError as e:
        why = str(e).replace("give --results a folder", "choose another --tracking-uri")
        raise ExportError(f"cannot write the MLflow store {uri}: {why}") from None


def _reason(error: BaseException) -> str:
    """The useful part of a client error: the OS's own words when a connection failed."""
    text = str(error)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return first if len(first) <= 300 else first[:297] + "..."


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables the user has not set, for the block."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
