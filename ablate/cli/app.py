"""The ``ablate`` command line (typer + rich): one function per command. Thin: parse, call the
library, render.

Errors a user can fix (bad experiment file, missing data, unknown device) print one line to
stderr and exit with code 2, never a traceback. Elsewhere: the options' declarations and checks
(``cli_options``; a command's own options in ``cli_run_options``, ``cli_report_options`` and
``cli_bench``, which also measures), where it writes (``cli_console``), how it loads the experiment
(``cli_load``), the tables it prints (``cli_tables``), what ``run`` shows (``run_display``), how
help reads (``cli_help``), and the executors ``run`` chooses from (``executors``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, List

import typer
from rich.markup import escape
from rich.progress import Progress

from ablate._version import __version__
from ablate.cli.bench import (
    BatchSizeOption,
    BenchPrecisionOption,
    BenchTargets,
    ChannelsLastOption,
    CompileOption,
    ModeOption,
    RepeatsOption,
    StepsOption,
    WarmupOption,
    measure,
)
from ablate.cli.console import announce_stop, console, err, fail, interrupted, progress_bar, warn_unreadable
from ablate.cli.help import HelpGroup
from ablate.cli.load import load, load_for_cuda
from ablate.cli.options import (
    DeviceOption,
    DevicesOption,
    ExperimentFile,
    LooksOption,
    MaxCellsOption,
    MaxSeedsOption,
    NoCacheOption,
    OptionError,
    PilotOption,
    PrecisionOption,
    RayOption,
    ResultsOption,
    SetOption,
    ThreadsOption,
    UntilDecidedOption,
    WorkersOption,
    adaptive_plan,
    check_precision,
    choose_executor,
    slurm_target,
    split_list,
    workers_option,
)
from ablate.cli.report_options import (
    BaselineOption,
    CiOption,
    EffectOption,
    ExportNames,
    ExportOutOption,
    ReportNames,
    ReportOutOption,
    TargetAccOption,
    TargetTrainErrorOption,
    check_out,
)
from ablate.cli.run_options import (
    CpusPerTaskOption,
    DryRunOption,
    ForceOption,
    GpusPerTaskOption,
    KeepCheckpointsOption,
    LimitOption,
    MaxRetriesOption,
    PartitionOption,
    SlurmOption,
    SlurmOptOption,
    TasksOption,
    TimeOption,
    WaitOption,
    WorkersPerDeviceOption,
)
from ablate.cli.render import cells_table, registry_tables, report_table
from ablate.data import DataError
from ablate.execute.executors import EXECUTORS, run_sweep
from ablate.experiment.experiment import MAX_CELLS, Experiment
from ablate.experiment.errors import ExperimentError
from ablate.plugins import PluginError, load_plugins
from ablate.registry import RegistryError
from ablate.cli.progress import RunDisplay, print_outcome
from ablate.store.folder import StoreError, check_layout, check_writable
from ablate.execute.options import SweepOptions
from ablate.execute.errors import ExecutorError
from ablate.runtime.device import DeviceError, resolve_device

app = typer.Typer(
    name="ablate",
    help="Ablation studies of AlexNet-style CNNs: run experiments, list axes, report results.",
    cls=HelpGroup,
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Modules given with --plugin, for worker processes and Ray tasks to import as well.
_PLUGINS: list[str] = []


@app.command()
def show(
    file: ExperimentFile,
    set_: SetOption = [],  # noqa: B006 - typer copies defaults
    device: DeviceOption = "auto",
    results: ResultsOption = Path("results"),
    clean: bool = typer.Option(
        False,
        "--clean",
        help="Remove what killed runs left: temporary files of killed writers, checkpoints and dead "
        "claims of finished cells (checkpoints kept with --keep-checkpoints stay).",
    ),
    max_cells: MaxCellsOption = MAX_CELLS,
) -> None:
    """Print the experiment's cells (variant x seed): done, running (where, since when), failed or to run."""
    from ablate.store.leftovers import checkpoint_disk, clean_leftovers, find_leftovers, megabytes

    exp, _ = load(file, set_, device, max_cells)
    if clean:
        removed = clean_leftovers(results, exp.name)
        console.print(
            f"removed {escape(removed.describe())}" if removed.paths() else "nothing to clean", highlight=False
        )
    console.print(cells_table(exp, results, warn_unreadable(results, exp.name)))
    files, size = checkpoint_disk(results, exp.name)
    if files:
        left = find_leftovers(results, exp.name)
        console.print(
            f"checkpoints: {files} file(s), {megabytes(size)}"
            + (f"; {escape(left.describe())} removable with 'ablate show --clean'" if left.paths() else ""),
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def run(
    file: ExperimentFile,
    set_: SetOption = [],  # noqa: B006 - typer copies defaults
    device: DeviceOption = "auto",
    results: ResultsOption = Path("results"),
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    limit: LimitOption = None,
    no_cache: NoCacheOption = False,
    workers: WorkersOption = None,
    devices: DevicesOption = None,
    workers_per_device: WorkersPerDeviceOption = 1,
    threads: ThreadsOption = None,
    ray: RayOption = None,
    slurm: SlurmOption = False,
    partition: PartitionOption = None,
    tasks: TasksOption = None,
    gpus_per_task: GpusPerTaskOption = 0,
    cpus_per_task: CpusPerTaskOption = 1,
    time_limit: TimeOption = "60",
    slurm_opt: SlurmOptOption = [],  # noqa: B006 - typer copies defaults
    wait: WaitOption = False,
    max_retries: MaxRetriesOption = 2,
    keep_checkpoints: KeepCheckpointsOption = False,
    precision: PrecisionOption = None,
    pilot: PilotOption = None,
    until_decided: UntilDecidedOption = False,
    looks: LooksOption = None,
    max_seeds: MaxSeedsOption = None,
    max_cells: MaxCellsOption = MAX_CELLS,
) -> None:
    """Train every variant x seed of an experiment; finished cells are skipped, so reruns resume."""
    try:
        target = slurm_target(
            slurm,
            ray,
            workers,
            devices,
            partition,
            tasks,
            gpus_per_task,
            cpus_per_task,
            time_limit,
            slurm_opt,
            workers_per_device,
            wait,
            adaptive=precision is not None or until_decided,
        )
        # Slurm tasks train where they land: settings resolve for their device (CUDA with GPUs), not this login node's.
        if slurm and gpus_per_task and device != "cpu":
            exp, dev = load_for_cuda(file, set_, max_cells)
        else:
            exp, dev = load(file, set_, "cpu" if slurm else device, max_cells)
        n_workers = workers_option(workers)
        check_precision(precision)
        adaptive = adaptive_plan(exp, precision, pilot, until_decided, looks, max_seeds)
        check_writable(results)
        check_layout(results, exp.name)
    except (OptionError, ExecutorError, StoreError) as e:
        raise fail(str(e)) from None
    scan = warn_unreadable(results, exp.name)
    if dry_run:
        console.print(cells_table(exp, results, scan))
        return
    try:
        name, where = choose_executor(
            target, ray, dev, device, n_workers, workers, devices, workers_per_device, threads
        )
    except ExecutorError as e:
        raise fail(str(e)) from None
    executor = EXECUTORS[name]
    options = SweepOptions(
        device=device,
        force=force,
        limit=limit,
        use_cache=not no_cache,
        keep_checkpoints=keep_checkpoints,
        max_retries=max_retries,
        per_device=workers_per_device,
        threads=threads,
        plugins=tuple(_PLUGINS),
    )
    note = " with \\[gpu] overrides" if exp.gpu_overrides_applied else ""
    about = f": {escape(exp.description)}" if exp.description else ""
    console.print(f"[bold]{escape(exp.name)}[/]{about} · {escape(executor.describe(where))}{note}", highlight=False)

    show = f"ablate show {file}" + (f" --results {results}" if results != Path("results") else "")

    def execute(exp: Experiment, progress: Progress) -> Any:
        """One pass over ``exp``'s cells with the chosen executor."""
        display = RunDisplay(progress, exp.train.epochs, executor.workers(where), show=show, waits=wait)
        try:
            return run_sweep(executor, exp, results, where, options, display, announce_stop)
        except ExecutorError as e:  # Ray or Slurm refused: said while the progress display is up, as always
            raise fail(str(e)) from None

    outcome = None
    try:
        with progress_bar() as progress:
            if adaptive is None:
                summary = execute(exp, progress)
            else:
                from ablate.execute.adaptive import run_adaptively

                summary, outcome = run_adaptively(exp, results, lambda e: execute(e, progress), **adaptive)
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


@app.command(name="list")
def list_() -> None:
    """Print the axes and their values, the architecture presets, init schemes and datasets."""
    for table in registry_tables():
        console.print(table)


def _print_version(value: bool) -> None:
    # An eager option callback runs while the arguments are parsed, before the check for a
    # command, so that `ablate --version` works on its own.
    if value:
        console.print(f"ablate {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
    plugin: List[str] = typer.Option(
        [],
        "--plugin",
        "-p",
        metavar="MODULE",
        help="Import this module first (e.g. one that registers a new activation), from the working directory "
        "or installed; repeatable. Nothing else is imported from the working directory.",
    ),
) -> None:
    global _PLUGINS
    _PLUGINS = list(plugin)  # worker processes and Ray tasks import them too
    try:
        load_plugins(plugin)
    except PluginError as e:
        raise fail(str(e)) from None


@app.command()
def report(
    names: ReportNames = None,
    results: ResultsOption = Path("results"),
    out: ReportOutOption = Path("reports"),
    baseline: BaselineOption = None,
    target_acc: TargetAccOption = None,
    target_train_error: TargetTrainErrorOption = 0.25,
    effect: EffectOption = None,
    ci: CiOption = "t",
) -> None:
    """Statistics over seeds, paired comparisons, plots and a markdown report per experiment."""
    from ablate.analysis import ReportError, Targets
    from ablate.bench import BENCH_DIR, write_bench_report
    from ablate.report.build import build_report, check_report_options
    from ablate.store.folder import experiments

    for flag, value in (("--target-acc", target_acc), ("--target-train-error", target_train_error)):
        if value is not None and not 0 < value < 1:
            raise fail(f"{flag} {value:g}: expected a fraction between 0 and 1, e.g. 0.6")
    try:
        check_report_options(ci, effect)
    except ReportError as e:
        raise fail(str(e)) from None
    check_out(out)
    found = experiments(results)
    # results/bench/ holds `ablate bench` measurements: reported with everything else, or by name.
    with_bench = not names or BENCH_DIR in names
    bench_readme = write_bench_report(results, out) if with_bench else None
    if not found and bench_readme is None:
        raise fail(f"no results under {results} (no <experiment>/runs/ folders); run 'ablate run FILE' first")
    chosen = [n for n in (names or found) if n != BENCH_DIR]
    targets = Targets(train_error=target_train_error, val_acc=target_acc)
    loaded = {}  # the data each report read: the index takes it instead of reading the run files again
    for name in chosen:
        try:
            rep = build_report(results, name, out, baseline=baseline, targets=targets, ci=ci, effect_points=effect)
        except ReportError as e:
            if names:
                raise fail(str(e)) from None
            err.print(f"[yellow]skipped[/] {escape(name)}: {escape(str(e))}", highlight=False)
            continue
        loaded[name] = rep.data
        console.print(report_table(rep))
        for note in rep.data.notes:
            console.print(f"  [yellow]note[/]: {escape(note)}", highlight=False)
        console.print(f"  report: {escape(str(rep.readme))} ({len(rep.files)} files)", highlight=False)
    from ablate.report.index import write_report_index

    index = write_report_index(results, out, loaded=loaded)
    if index is not None:
        console.print(f"index of reports: {escape(str(index))}", highlight=False)
    if bench_readme is not None:
        console.print(f"speed benchmark report: {escape(str(bench_readme))}", highlight=False)
    elif names and BENCH_DIR in names:
        raise fail(f"no benchmark results under {results / BENCH_DIR}; run 'ablate bench' first")


@app.command()
def bench(
    targets: BenchTargets = None,
    batch_size: BatchSizeOption = [],  # noqa: B006 - typer copies defaults
    precision: BenchPrecisionOption = [],  # noqa: B006
    mode: ModeOption = [],  # noqa: B006
    device: DeviceOption = "auto",
    warmup: WarmupOption = None,
    steps: StepsOption = None,
    repeats: RepeatsOption = None,
    channels_last: ChannelsLastOption = True,
    compile_: CompileOption = "off",
    results: ResultsOption = Path("results"),
) -> None:
    """Steady-state speed of variants: train-step and inference images/s, step time, peak memory, params, FLOPs."""
    from ablate.bench import BenchError, default_settings, select_variants

    try:
        dev = resolve_device(device)
        variants = select_variants(list(targets or []), dev.type)
        settings = default_settings(
            dev,
            batch_sizes=split_list(batch_size, "--batch-size", int),
            precisions=split_list(precision, "--precision"),
            modes=split_list(mode, "--mode"),
            warmup=warmup,
            steps=steps,
            repeats=repeats,
            channels_last=channels_last,
            compile=compile_,
        )
    except (BenchError, DeviceError, ExperimentError, OptionError) as e:
        raise fail(str(e)) from None
    measure(variants, dev, settings, results)


export_app = typer.Typer(help="Export results to other tools (TensorBoard).", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("tensorboard")
def export_tensorboard_command(
    names: ExportNames = None,
    results: ResultsOption = Path("results"),
    out: ExportOutOption = ...,
) -> None:
    """TensorBoard event files from the run files: curves per epoch and step, HParams by axis
    (needs ablate[tensorboard])."""
    from ablate.report.tensorboard import ExportError, export_tensorboard

    check_out(out)

    try:
        done = export_tensorboard(results, out, names or None)
    except ExportError as e:
        raise fail(str(e)) from None
    for name, count in sorted(done.stale.items()):
        console.print(
            f"  [yellow]note[/]: {escape(name)}: {count} run(s) from an older configuration left out",
            highlight=False,
            soft_wrap=True,
        )
    steps = sum(r.steps for r in done.runs)
    console.print(
        f"{len(done.runs)} run(s) exported to {escape(str(out))} ({sum(r.epochs for r in done.runs)} epochs"
        + (f", {steps} steps" if steps else "")
        + f"); view with: tensorboard --logdir {escape(str(out))}",
        highlight=False,
        soft_wrap=True,
    )
