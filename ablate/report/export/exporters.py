"""The exporter table: each tracker ``ablate export`` writes to, by name, called one way.

Every row takes its own target (a TensorBoard log folder, an MLflow tracking URI, a W&B project:
one frozen dataclass in the tracker's module, built once from the command line) and opens a
:class:`Sink`, which turns one run record into that tracker's run and, after an experiment's
runs, writes what belongs to the experiment as a whole. The walk over the run files
(:class:`~ablate.report.export.walk.Walk`) is shared: :func:`export` makes one pass, :func:`follow`
looks again every few seconds until asked to stop, so a study that any executor is training shows
up as its run files appear. Adding a tracker means adding its module and one row here; the
tracker modules are imported when their row runs (each is an optional extra).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ablate.report.export.walk import ExperimentView, ExportedRun, ExportError, Look, Walk
from ablate.store.record import RunRecord

if TYPE_CHECKING:  # the trackers' modules load with their rows (each tracker is an optional extra)
    from ablate.report.export.mlflow import MlflowTarget
    from ablate.report.export.tensorboard import TensorBoardTarget
    from ablate.report.export.wandb import WandbTarget

Target = TypeVar("Target")
StopRequest = Callable[[], bool]


class Sink(Protocol):
    """One tracker, open for writing. Every method is idempotent: a run already there (matched by
    the ablate run id) gets only what it lacks."""

    def run(self, view: ExperimentView, record: RunRecord) -> ExportedRun:
        """Create or bring up to date the tracker's run of ``record``."""
        ...

    def experiment(self, view: ExperimentView) -> None:
        """After ``view``'s changed runs: what belongs to the experiment as a whole (summaries over seeds)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Exporter(Generic[Target]):
    """One row: check that the tracker is installed, open it at a target, say where it writes."""

    installed: Callable[[], None]  # raises ExtraMissing (an ExportError) when the extra is not installed
    open: Callable[[Target], Sink]
    describe: Callable[[Target], str]  # "MLflow at sqlite:///mlflow.db" (plain text)
    view: Callable[[Target], str]  # how to look at it: "mlflow ui --backend-store-uri sqlite:///mlflow.db"


@dataclass
class Export:
    """What :func:`export` or :func:`follow` did."""

    runs: list[ExportedRun] = field(default_factory=list)  # every run brought up to date, in order
    stale: dict[str, int] = field(default_factory=dict)  # experiment -> run files of an older configuration
    warnings: list[str] = field(default_factory=list)  # damaged run files, each named once
    looks: int = 0  # looks at the results folder

    @property
    def created(self) -> int:
        return sum(r.created for r in self.runs)

    @property
    def points(self) -> int:
        return sum(r.points for r in self.runs)


def _tensorboard_installed() -> None:
    from ablate.report.export.tensorboard import library

    library()


def _tensorboard(target: TensorBoardTarget) -> Sink:
    from ablate.report.export.tensorboard import TensorBoardSink

    return TensorBoardSink(target)


def _mlflow_installed() -> None:
    from ablate.report.export.mlflow import library

    library()


def _mlflow(target: MlflowTarget) -> Sink:
    from ablate.report.export.mlflow import MlflowSink

    return MlflowSink(target)


def _wandb_installed() -> None:
    from ablate.report.export.wandb import library

    library()


def _wandb(target: WandbTarget) -> Sink:
    from ablate.report.export.wandb import WandbSink

    return WandbSink(target)


TENSORBOARD: Exporter[TensorBoardTarget] = Exporter(
    _tensorboard_installed,
    _tensorboard,
    lambda t: f"TensorBoard logs in {t.out}",
    lambda t: f"tensorboard --logdir {t.out}",
)
MLFLOW: Exporter[MlflowTarget] = Exporter(
    _mlflow_installed,
    _mlflow,
    lambda t: f"MLflow at {t.tracking_uri}",
    lambda t: f"mlflow ui --backend-store-uri {t.tracking_uri}",
)
WANDB: Exporter[WandbTarget] = Exporter(
    _wandb_installed,
    _wandb,
    lambda t: f"W&B project {t.project} ({t.mode}, {t.dir / 'wandb'})",
    lambda t: f"wandb sync {t.dir / 'wandb'}" if t.mode == "offline" else f"the W&B project {t.project}",
)
EXPORTERS: dict[str, Exporter[Any]] = {"tensorboard": TENSORBOARD, "mlflow": MLFLOW, "wandb": WANDB}

OnRun = Callable[[ExportedRun, int, int], None]  # (run, done so far, runs in this look)


def export(
    exporter: Exporter[Target],
    target: Target,
    results: str | Path,
    experiments: Iterable[str] | None = None,
    *,
    on_run: OnRun | None = None,
) -> Export:
    """One pass: every current run of ``experiments`` (default: all under ``results``) into the tracker.

    Raises :class:`~ablate.report.export.walk.ExportError` (and its ``ExtraMissing``) for a
    tracker that is not installed, an unknown experiment, no run to export, or a tracker that
    refuses (unreachable, not writable, an experiment of the same name with other content).
    """
    exporter.installed()
    walk = Walk(results, experiments)
    look = walk.look()
    if not look.experiments:
        names = list(experiments or [])
        raise ExportError(f"no run records to export under {results}" + (f" for {', '.join(names)}" if names else ""))
    done = Export()
    sink = exporter.open(target)
    try:
        _sync(sink, walk, look, done, on_run, lambda: False)
    finally:
        sink.close()
    return done


def follow(
    exporter: Exporter[Target],
    target: Target,
    results: str | Path,
    experiments: Iterable[str] | None = None,
    *,
    interval: float = 5.0,
    should_stop: StopRequest,
    on_look: Callable[[Look, list[ExportedRun]], None] | None = None,
    on_run: OnRun | None = None,
) -> Export:
    """Look at the results folder every ``interval`` seconds and mirror what changed, until
    ``should_stop()``: new runs and runs whose files changed (a failed run trained again). Named
    experiments that do not exist yet are waited for. A stop request is honoured between runs, so
    no tracker run is left half-written. ``on_look(look, runs)`` hears each look."""
    exporter.installed()
    walk = Walk(results, experiments, wait=True)
    done = Export()
    sink = exporter.open(target)
    try:
        while True:
            look = walk.look()
            before = len(done.runs)
            _sync(sink, walk, look, done, on_run, should_stop)
            if on_look is not None:
                on_look(look, done.runs[before:])
            if should_stop():
                break
            deadline = time.monotonic() + interval
            while not should_stop() and time.monotonic() < deadline:
                time.sleep(min(0.1, interval))
            if should_stop():
                break
    finally:
        sink.close()
    return done


def _sync(sink: Sink, walk: Walk, look: Look, done: Export, on_run: OnRun | None, should_stop: StopRequest) -> None:
    done.looks += 1
    done.stale.update(look.stale)
    done.warnings += look.warnings
    touched: dict[str, ExperimentView] = {}
    for i, (view, record) in enumerate(look.changed, 1):
        if should_stop():
            break
        exported = sink.run(view, record)
        walk.done(view.name, record)
        done.runs.append(exported)
        touched[view.name] = view
        if on_run is not None:
            on_run(exported, i, len(look.changed))
    for view in touched.values():
        sink.experiment(view)
