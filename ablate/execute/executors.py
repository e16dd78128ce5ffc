"""The executor table: each way ``ablate run`` can train a sweep, by name, called one way.

Every row takes the experiment, the results folder, *where* the cells go (its own type: a torch
device, the local workers' slots, :class:`~ablate.execute.ray.RayOptions`,
:class:`~ablate.execute.slurm.SlurmOptions`), the one :class:`~ablate.execute.options.SweepOptions`,
an observer, and a stop request. Every executor starts with
:func:`~ablate.execute.runner.start_sweep` and hands each cell to
:func:`~ablate.execute.runner.train_claimed`, so they agree on one results folder and on what
``--limit`` means. Adding an executor means adding its module and one row here; ``cli.run`` only
says which row the options chose. The executor modules are imported when their row runs: Ray and
Slurm are optional extras.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch

from ablate.execute.observer import RunObserver
from ablate.execute.options import SweepOptions
from ablate.execute.runner import RunSummary
from ablate.experiment.experiment import Experiment
from ablate.runtime.stop_signal import StopOnSignal

if TYPE_CHECKING:  # the backends' modules load with their rows (Ray and Slurm are optional extras)
    from ablate.execute.local import Slot
    from ablate.execute.ray import RayOptions
    from ablate.execute.slurm.cluster import SlurmOptions

Where = TypeVar("Where")
StopRequest = Callable[[], bool]

# What the first Ctrl-C / SIGTERM does, said when it comes; a second Ctrl-C quits at once.
STOP_AT_STEP = "finishing the current step and saving a checkpoint (Ctrl-C again to quit now)"
INTERRUPTED = (
    "interrupted",
    "finished runs and checkpoints are kept, claims released; rerun the same command to "
    "continue (unfinished cells resume from their checkpoints).",
)


@dataclass(frozen=True)
class Executor(Generic[Where]):
    """One row: how to run a sweep at a ``Where``, how to name it, and what a stop means."""

    # (exp, results, where, options, observer, should_stop) -> summary, or None when the sweep was
    # handed to a scheduler and not waited for
    run: Callable[[Experiment, Path, Where, SweepOptions, RunObserver, StopRequest], RunSummary | None]
    describe: Callable[[Where], str]  # "device cpu", "4 workers on cuda:0, cuda:1", ... (plain text)
    stopping: str | None  # said on the first Ctrl-C / SIGTERM; None: signals are not caught (they end the driver)
    interrupted: tuple[str, str] = INTERRUPTED  # (head, text) said when a KeyboardInterrupt ends the sweep
    workers: Callable[[Where], dict[int, str] | None] = lambda where: None  # worker slot -> label, for the display


def _in_process(
    exp: Experiment,
    results: Path,
    device: torch.device,
    options: SweepOptions,
    observer: RunObserver,
    should_stop: StopRequest,
) -> RunSummary:
    from ablate.execute.runner import run_in_process

    return run_in_process(exp, results, device, options, observer, should_stop)


def _local(
    exp: Experiment,
    results: Path,
    slots: list[Slot],
    options: SweepOptions,
    observer: RunObserver,
    should_stop: StopRequest,
) -> RunSummary:
    from ablate.execute.local import run_pool

    return run_pool(exp, results, slots, options, observer=observer, should_stop=should_stop)


def _ray(
    exp: Experiment,
    results: Path,
    target: RayOptions,
    options: SweepOptions,
    observer: RunObserver,
    should_stop: StopRequest,
) -> RunSummary:
    from ablate.execute.ray import run_ray

    return run_ray(exp, results, target, options, observer=observer, should_stop=should_stop)


def _slurm(
    exp: Experiment,
    results: Path,
    target: SlurmOptions,
    options: SweepOptions,
    observer: RunObserver,
    should_stop: StopRequest,
) -> RunSummary | None:
    from ablate.execute.slurm.array import run_slurm

    # The array's tasks stop on Slurm's signals (scancel, preemption); the driver only submits and waits.
    return run_slurm(exp, results, target, options, observer=observer)


IN_PROCESS: Executor[torch.device] = Executor(_in_process, lambda device: f"device {device}", STOP_AT_STEP)
LOCAL: Executor[list[Slot]] = Executor(
    _local,
    lambda slots: f"{len(slots)} workers on {', '.join(sorted({s.device for s in slots}))}",
    STOP_AT_STEP,
    workers=lambda slots: {s.index: s.label for s in slots},
)
RAY: Executor[RayOptions] = Executor(
    _ray,
    lambda target: f"Ray tasks ({target.address})",
    "cancelling the Ray tasks in flight (claims released, checkpoints kept; Ctrl-C again to quit now)",
)
SLURM: Executor[SlurmOptions] = Executor(
    _slurm,
    lambda target: f"Slurm array ({target.partition or 'default partition'})",
    None,
    interrupted=(
        "stopped waiting",
        "the Slurm job goes on; 'ablate show' follows it, scancel stops it (claims released, checkpoints kept).",
    ),
)
EXECUTORS: dict[str, Executor[Any]] = {"in-process": IN_PROCESS, "local": LOCAL, "ray": RAY, "slurm": SLURM}


def run_sweep(
    executor: Executor[Where],
    exp: Experiment,
    results: Path,
    where: Where,
    options: SweepOptions,
    observer: RunObserver,
    announce_stop: Callable[[str], None],
) -> RunSummary | None:
    """One pass over ``exp``'s cells with ``executor``. Where it stops on signals, Ctrl-C and
    SIGTERM (a scheduler, ``kill``) ask it to stop: ``announce_stop`` says what that means, and
    the executor checkpoints, releases its claims and returns an ``interrupted`` summary."""
    stopping = executor.stopping
    if stopping is None:
        return executor.run(exp, results, where, options, observer, lambda: False)
    with StopOnSignal(lambda: announce_stop(stopping)) as stop:
        return executor.run(exp, results, where, options, observer, stop)
