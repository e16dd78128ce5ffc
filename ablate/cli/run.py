"""``ablate run FILE``: train every variant x seed of an experiment with the executor the options choose."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import Progress

from ablate.cli.console import announce_stop, console, fail, interrupted, progress_bar, warn_unreadable
from ablate.cli.load import load, load_for_cuda
from ablate.cli.options import OptionError, plugin_modules
from ablate.cli.plan import planned_time_text
from ablate.cli.progress import RunDisplay, print_outcome
from ablate.cli.render import cells_table
from ablate.cli.run_checks import (
    ExecutorRequest,
    adaptive_plan,
    check_until_precise,
    choose_executor,
    fuse_seeds,
    slurm_options,
    workers_option,
)
from ablate.cli.run_options import (
    CpusPerTaskOption,
    DevicesOption,
    DryRunOption,
    ForceOption,
    FuseSeedsOption,
    GpusPerTaskOption,
    KeepCheckpointsOption,
    LimitOption,
    LooksOption,
    MaxRetriesOption,
    MaxSeedsOption,
    NewDesignOption,
    NoCacheOption,
    PartitionOption,
    PilotOption,
    RayOption,
    RunDeviceOption,
    RunExperimentFile,
    RunMaxCellsOption,
    RunResultsOption,
    RunSetOption,
    SlurmOption,
    SlurmOptOption,
    TasksOption,
    ThreadsOption,
    TimeOption,
    UntilDecidedOption,
    UntilPreciseOption,
    WaitOption,
    WorkersOption,
    WorkersPerDeviceOption,
)
from ablate.data import DataError
from ablate.execute.designs import as_recorded, check_design
from ablate.execute.errors import ExecutorError
from ablate.execute.executors import EXECUTORS, run_sweep
from ablate.execute.options import SweepOptions
from ablate.experiment.experiment import MAX_CELLS, Experiment
from ablate.registry import RegistryError
from ablate.store.folder import StoreError, check_layout, check_writable


def run(
    ctx: typer.Context,
    file: RunExperimentFile,
    set_: RunSetOption = [],  # noqa: B006 - typer copies defaults
    device: RunDeviceOption = "auto",
    no_cache: NoCacheOption = False,
    max_cells: RunMaxCellsOption = MAX_CELLS,
    workers: WorkersOption = None,
    devices: DevicesOption = None,
    workers_per_device: WorkersPerDeviceOption = 1,
    threads: ThreadsOption = None,
    fuse_seeds_: FuseSeedsOption = None,
    ray: RayOption = None,
    max_retries: MaxRetriesOption = 2,
    slurm: SlurmOption = False,
    partition: PartitionOption = None,
    tasks: TasksOption = None,
    gpus_per_task: GpusPerTaskOption = 0,
    cpus_per_task: CpusPerTaskOption = 1,
    time_limit: TimeOption = "60",
    slurm_opt: SlurmOptOption = [],  # noqa: B006 - typer copies defaults
    wait: WaitOption = False,
    until_precise: UntilPreciseOption = None,
    pilot: PilotOption = None,
    until_decided: UntilDecidedOption = False,
    looks: LooksOption = None,
    max_seeds: MaxSeedsOption = None,
    new_design: NewDesignOption = False,
    results: RunResultsOption = Path("results"),
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    limit: LimitOption = None,
    keep_checkpoints: KeepCheckpointsOption = False,
) -> None:
    """Train every variant x seed of an experiment; finished cells are skipped, so reruns resume."""
    request = ExecutorRequest(
        device=device,
        workers=workers,
        devices=devices,
        per_device=workers_per_device,
        threads=threads,
        ray=ray,
        slurm=slurm,
        partition=partition,
        tasks=tasks,
        gpus_per_task=gpus_per_task,
        cpus_per_task=cpus_per_task,
        time_limit=time_limit,
        slurm_opt=tuple(slurm_opt),
        wait=wait,
    )
    options = SweepOptions(
        device=device,
        force=force,
        limit=limit,
        use_cache=not no_cache,
        keep_checkpoints=keep_checkpoints,
        max_retries=max_retries,
        threads=threads,
        plugins=tuple(plugin_modules(ctx)),
    )
    try:
        target = slurm_options(request, adaptive=until_precise is not None or until_decided)
        # Slurm tasks train where they land: settings resolve for their device (CUDA with GPUs), not this login node's.
        if slurm and gpus_per_task and device != "cpu":
            exp, dev = load_for_cuda(file, set_, max_cells)
        else:
            exp, dev = load(file, set_, "cpu" if slurm else device, max_cells)
        workers_option(workers)
        exp, fuse_note = fuse_seeds(exp, fuse_seeds_, dev, remote=slurm or ray is not None)
        check_until_precise(until_precise)
        adaptive = adaptive_plan(exp, until_precise, pilot, until_decided, looks, max_seeds)
        check_writable(results)
        check_layout(results, exp.name)
        # The design the folder holds is final unless --new-design (execute.designs says why).
        exp = dataclasses.replace(exp, design_changes=check_design(results, exp, adaptive, new_design))
    except (OptionError, ExecutorError, StoreError) as e:
        raise fail(str(e)) from None
    scan = warn_unreadable(results, exp.name)
    if fuse_note:
        console.print(escape(fuse_note), highlight=False)
    if dry_run:
        shown = as_recorded(results, exp) if adaptive is not None else exp  # the seeds its design added so far
        console.print(cells_table(shown, results, scan))
        return
    try:
        name, where = choose_executor(request, dev, target)
    except ExecutorError as e:
        raise fail(str(e)) from None
    executor = EXECUTORS[name]
    note = " with \\[gpu] overrides" if exp.gpu_overrides_applied else ""
    about = f": {escape(exp.description)}" if exp.description else ""
    planned = planned_time_text(results, exp)
    console.print(
        f"[bold]{escape(exp.name)}[/]{about} · {escape(executor.describe(where))}{note}{planned}", highlight=False
    )

    show = f"ablate show {file}" + (f" --results {results}" if results != Path("results") else "")

    def execute(exp: Experiment, progress: Progress, handled: frozenset[str] = frozenset()) -> Any:
        """One pass over ``exp``'s cells with the chosen executor (``handled``: cells this command
        trained or tried already, in an adaptive design's earlier stages)."""
        display = RunDisplay(progress, exp.train.epochs, executor.workers(where), show=show, waits=wait)
        try:
            return run_sweep(
                executor, exp, results, where, dataclasses.replace(options, handled=handled), display, announce_stop
            )
        except ExecutorError as e:  # Ray or Slurm refused: said while the progress display is up, as always
            raise fail(str(e)) from None

    outcome = None
    try:
        with progress_bar() as progress:
            if adaptive is None:
                summary = execute(exp, progress)
            else:
                from ablate.execute.adaptive import run_adaptively

                summary, outcome = run_adaptively(
                    exp,
                    results,
                    lambda e, handled: execute(e, progress, handled),
                    notify=lambda message: progress.console.print(f"  {escape(message)}", highlight=False),
                    **adaptive,
                )
    except (DataError, RegistryError, StoreError) as e:
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        raise interrupted(*executor.interrupted) from None
    if summary is None:  # --slurm without --wait: submitted, and said so
        return
    if outcome is not None:
        exp = dataclasses.replace(exp, seeds=tuple(outcome.seeds), seed_counts=outcome.seed_counts or None)
        console.print(
            f"adaptive seeds ({len(outcome.seeds)}: {outcome.seeds[0]}..{outcome.seeds[-1]}): "
            f"{escape(outcome.stopped)}",
            highlight=False,
            soft_wrap=True,
        )
    if summary.interrupted:
        raise interrupted(*executor.interrupted)
    counts = print_outcome(exp, results, summary)
    if counts["failed"]:
        raise fail(f"{counts['failed']} run(s) failed; see 'error' and 'traceback' in their result files", code=1)
    if summary.errors:
        raise fail(f"{len(summary.errors)} worker error(s); see above", code=1)
