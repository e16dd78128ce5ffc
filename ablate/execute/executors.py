"""The executor table: each way ``ablate run`` can train a sweep, by name, called one way.

Every row takes the experiment, the results folder, *where* the cells go (its own kind: a torch
device, the pool's worker slots, a Ray address, Slurm's ``SlurmOptions``), the one
:class:`~ablate.execute.options.SweepOptions`, an observer, and a stop request. Every executor hands
each cell to :func:`ablate.execute.runner.train_claimed`, so they agree on one results folder. Adding an
executor means adding its module and one row here; ``cli.run`` only says which row the options
chose. The executor modules are imported when their row runs: Ray and Slurm are optional extras.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ablate.experiment.experiment import Experiment
from ablate.execute.runner import RunSummary
from ablate.runtime.stop_signal import StopOnSignal
from ablate.execute.observer import SweepObserver
from ablate.execute.options import SweepOptions

StopRequest = Callable[[], bool]
# What a row's runner does: (exp, results, where, options, observer, should_stop) -> summary, or
# None when the sweep was handed to a scheduler and not waited for.
Runner = Callable[[Experiment, Path, Any, SweepOptions, SweepObserver, StopRequest], "RunSummary | None"]

# What the first Ctrl-C / SIGTERM does, said when it comes; a second Ctrl-C quits at once.
STOP_AT_STEP = "finishing the current step and saving a checkpoint (Ctrl-C again to quit now)"
INTERRUPTED = (
    "interrupted",
    "finished runs and checkpoints are kept, claims released; rerun the same command to "
    "continue (unfinished cells resume from their checkpoints).",
)


@dataclass(frozen=True)
class Executor:
    """One row: how to run a sweep there, how to name the place, and what a stop means."""

    run: Runner
    describe: Callable[[Any], str]  # where -> "device cpu", "4 workers on cuda:0, cuda:1", ... (plain text)
    stopping: str | None  # said on the first Ctrl-C / SIGTERM; None: signals are not caught (they end the driver)
    interrupted: tuple[str, str] = INTERRUPTED  # (head, text) said when a KeyboardInterrupt ends the sweep
    workers: Callable[[Any], dict[int, str] | None] = lambda where: None  # worker slot -> label, for the display


def _in_process(
    exp: Experiment,
    results: Path,
    device: Any,
    options: SweepOptions,
    observer: SweepObserver,
    should_stop: StopRequest,
) -> RunSummary:
    import torch

    from ablate.execute.runner import run_experiment

    if options.threads:
        torch.set_num_threads(options.threads)
    # runner.run_experiment keeps its keyword signature (it is also the library's entry point).
    return run_experiment(
        exp,
        device,
        results,
        force=options.force,
        limit=options.limit,
        observer=observer,
        use_cache=options.use_cache,
        keep_checkpoints=options.keep_checkpoints,
        should_stop=should_stop,
    )


def _pool(
    exp: Experiment, results: Path, slots: Any, options: SweepOptions, observer: SweepObserver, should_stop: StopRequest
) -> RunSummary:
    from ablate.execute.local import run_pool

    return run_pool(exp, results, slots, options, observer=observer, should_stop=should_stop)


def _ray(
    exp: Experiment,
    results: Path,
    address: Any,
    options: SweepOptions,
    observer: SweepObserver,
    should_stop: StopRequest,
) -> RunSummary:
    from ablate.execute.ray import run_ray

    return run_ray(exp, results, address, options, observer=observer, should_stop=should_stop)


def _slurm(
    exp: Experiment,
    results: Path,
    target: Any,
    options: SweepOptions,
    observer: SweepObserver,
    should_stop: StopRequest,
) -> RunSummary | None:
    from ablate.execute.slurm.array import run_slurm

    # The array's tasks stop on Slurm's signals (scancel, preemption); the driver only submits and waits.
    return run_slurm(exp, results, target, options, observer=observer, on_submit=observer.on_submit)


EXECUTORS: dict[str, Executor] = {
    "in-process": Executor(_in_process, lambda device: f"device {device}", STOP_AT_STEP),
    "pool": Executor(
        _pool,
        lambda slots: f"{len(slots)} workers on {', '.join(sorted({s.device for s in slots}))}",
        STOP_AT_STEP,
        workers=lambda slots: {s.index: s.label for s in slots},
    ),
    "ray": Executor(
        _ray,
        lambda address: f"Ray tasks ({address})",
        "cancelling the Ray tasks in flight (claims released, checkpoints kept; Ctrl-C again to quit now)",
    ),
    "slurm": Executor(
        _slurm,
        lambda target: f"Slurm array ({target.partition or 'default partition'})",
        None,
        interrupted=(
            "stopped waiting",
            "the Slurm job goes on; 'ablate show' follows it, scancel stops it (claims released, checkpoints kept).",
        ),
    ),
}


def run_sweep(
    executor: Executor,
    exp: Experiment,
    results: Path,
    where: Any,
    options: SweepOptions,
    observer: SweepObserver,
    announce_stop: Callable[[str], None],
) -> RunSummary | None:
    """One pass over ``exp``'s cells with ``executor``. Where it stops on signals, Ctrl-C and
    SIGTERM (a scheduler, ``kill``) ask it to stop: ``announce_stop`` says what that means, and
    the executor checkpoints, releases its claims and returns an ``interrupted`` summary."""
    if executor.stopping is None:
        return executor.run(exp, results, where, options, observer, lambda: False)
    with StopOnSignal(lambda: announce_stop(executor.stopping)) as stop:
        return executor.run(exp, results, where, options, observer, stop)
