"""The ``ablate`` command line (typer + rich). Thin: parse, call the library, render.

Errors a user can fix (bad experiment file, missing data, unknown device) print one line to
stderr and exit with code 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, List, Optional

import torch
import typer
from rich.console import Console
from typer.core import TyperArgument, TyperGroup, TyperOption
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

import ablate
from ablate.data import DataError
from ablate.experiment import AXIS_REGISTRIES, MAX_CELLS, Experiment, ExperimentError, load_experiment
from ablate.models import arch_spec, build_model, count_params
from ablate.plugins import PluginError, load_plugins
from ablate.registry import ARCHS, DATASETS, RegistryError
from ablate.leases import list_claims
from ablate.record import FINISHED
from ablate.run_display import RunDisplay
from ablate.stop_signal import StopOnSignal
from ablate.runner import is_finished, run_experiment
from ablate.store import RunScan, StoreError, check_layout, check_writable, iter_runs, scan_runs
from ablate.textfmt import fmt_sd
from ablate.train import DeviceError, resolve_device
from ablate.variant import Variant

class _Argument(TyperArgument):
    """An argument in help as click writes it: ``FILE``, ``[NAME]...`` (typer writes ``{file}``
    in the usage line and a ``<path>`` type after the name)."""

    def _usage_display_name(self) -> str:
        if self.metavar is not None:  # written out in full by the command, e.g. "[EXPERIMENT]..."
            return self.metavar
        name = (self.name or "arg").upper()
        return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _plain_help(command: Any) -> None:
    """Help without rich markup (a ``[model]`` in a help text is text, not a style tag, so no
    text can vanish from help) and without typer's ``<bool>`` / ``<list[str]>`` placeholders:
    flags show no value, other options an upper-case metavar (TEXT, INTEGER, PATH, ...)."""
    command.rich_markup_mode = None
    if isinstance(command, TyperGroup) and not isinstance(command, _HelpGroup):
        command.__class__ = _HelpGroup  # sub-apps (ablate export ...) get the same help
    if command.help:  # "\\[gpu]", written for rich markup, reads "[gpu]" here too
        command.help = command.help.replace("\\[", "[")
    for p in command.params:
        if getattr(p, "help", None):
            p.help = p.help.replace("\\[", "[")
        if type(p) is TyperArgument:
            p.__class__ = _Argument
        elif isinstance(p, TyperOption) and p.metavar is None and not p.is_flag:
            label = p.display_type(None).strip("<>")
            label = label[5:-1] if label.startswith("list[") else label
            word = label.split()[0] if label else "value"
            p.metavar = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "path": "PATH"}.get(word, word.upper())


class _HelpGroup(TyperGroup):
    """The ablate app: every command it hands out gets :func:`_plain_help`."""

    def get_params(self, ctx: Any) -> list[Any]:
        _plain_help(self)
        return super().get_params(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_help(command)
        return command


app = typer.Typer(
    name="ablate",
    help="Ablation studies of AlexNet-style CNNs: run experiments, list axes, report results.",
    cls=_HelpGroup,
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)
# Modules given with --plugin, for worker processes and Ray tasks to import as well.
_PLUGINS: list[str] = []

# Options shared by several commands, declared once.
# Help texts are plain text (rich markup is off, see _plain_help): write [gpu], not \\[gpu].
ExperimentFile = Annotated[Path, typer.Argument(metavar="FILE", help="Experiment file (TOML).")]
SetOption = Annotated[
    List[str],
    typer.Option(
        "--set", "-s", metavar="KEY=VALUE",
        help="Override a key of the experiment file, e.g. --set train.epochs=2 (repeatable; the value is read as TOML; "
        "gpu.KEY edits the [gpu] table).",
    ),
]
DeviceOption = Annotated[
    str, typer.Option(metavar="DEVICE", help="auto (CUDA when present) | cpu | cuda | cuda:N; on CUDA the file's [gpu] overrides apply.")
]
ResultsOption = Annotated[Path, typer.Option(metavar="DIR", help="Root folder of the results.")]
MaxCellsOption = Annotated[
    int, typer.Option("--max-cells", min=1, metavar="N", help=f"Refuse an experiment of more cells (variants x seeds) than this (default {MAX_CELLS:,}).")
]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    # One line, whatever the message holds (a plugin's exception text may span several).
    message = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _load(file: Path, overrides: list[str], device: str, max_cells: int = MAX_CELLS) -> tuple[Experiment, Any]:
    try:
        dev = resolve_device(device)
        exp = load_experiment(file, overrides, dev.type)
        exp.check_size(max_cells)
        return exp, dev
    except (ExperimentError, DeviceError) as e:
        raise fail(str(e)) from None


def _cells_table(exp: Experiment, results: Path, scan: RunScan) -> Table:
    """Every cell with its state in the results folder (``scan``): done, running (where, since
    when), failed, damaged (unreadable run file) or to run."""
    records = {r["run_id"]: r for r in scan.records}
    damaged = {p.stem for p, _ in scan.unreadable}
    claims = list_claims(results, exp.name)
    table = Table(title=f"{escape(exp.name)}: {len(exp.variants())} variants x {len(exp.seeds)} seeds ({exp.design})")
    for col in ("#", "variant", "seed", "run_id", "status"):
        table.add_column(col)
    counts: dict[str, int] = {}
    for i, cell in enumerate(exp.cells(), 1):
        record, claim = records.get(cell.run_id), claims.get(cell.run_id)
        if record is not None and record["status"] in FINISHED:
            state, text = "done", "[green]done[/]" + (" (diverged)" if record["status"] == "diverged" else "")
        elif claim is not None and not claim.stale():
            since = datetime.fromtimestamp(claim.started).strftime("%Y-%m-%d %H:%M")
            state, text = "running", f"[cyan]running[/] on {escape(claim.host)} pid {claim.pid} ({escape(claim.worker)}) since {since}"
        elif record is not None:
            state, text = "failed", f"[red]failed[/]: {escape(str(record.get('error')))}"
        elif cell.run_id in damaged:
            state, text = "damaged", "[yellow]damaged run file[/] (retrained after moving it aside)"
        else:
            state, text = "to run", "to run"
        if claim is not None and claim.stale() and state != "done":
            text += " (stale claim: will be taken over)"
        counts[state] = counts.get(state, 0) + 1
        mark = " (baseline)" if cell.variant == exp.baseline else ""
        table.add_row(str(i), escape(cell.variant.slug()) + mark, str(cell.seed), cell.run_id, text)
    order = ("done", "running", "failed", "damaged", "to run")
    shown = [f"{counts.get(k, 0)} {k}" for k in order if counts.get(k) or k in ("done", "to run")]
    table.caption = ", ".join(shown) + f"; results in {escape(str(results / exp.name / 'runs'))}"
    return table


def _warn_unreadable(results: Path, name: str) -> RunScan:
    """One warning line per run file that is not a valid record (never a traceback); returns
    the scan, for callers that show the cells."""
    scan = scan_runs(results, name)
    for line in scan.warnings():
        err.print(f"[yellow]warning[/]: {escape(line)}", highlight=False, soft_wrap=True)
    return scan


@app.command()
def show(
    file: ExperimentFile,
    set_: SetOption = [],  # noqa: B006 - typer copies defaults
    device: DeviceOption = "auto",
    results: ResultsOption = Path("results"),
    clean: bool = typer.Option(
        False, "--clean", help="Remove what killed runs left: temporary files of killed writers, checkpoints and dead "
        "claims of finished cells (checkpoints kept with --keep-checkpoints stay).",
    ),
    max_cells: MaxCellsOption = MAX_CELLS,
) -> None:
    """Print the experiment's cells (variant x seed): done, running (where, since when), failed or to run."""
    from ablate.runner import checkpoint_disk, clean_leftovers, find_leftovers, megabytes

    exp, _ = _load(file, set_, device, max_cells)
    if clean:
        removed = clean_leftovers(results, exp.name)
        console.print(f"removed {escape(removed.describe())}" if removed.paths() else "nothing to clean", highlight=False)
    console.print(_cells_table(exp, results, _warn_unreadable(results, exp.name)))
    files, size = checkpoint_disk(results, exp.name)
    if files:
        left = find_leftovers(results, exp.name)
        console.print(f"checkpoints: {files} file(s), {megabytes(size)}"
                      + (f"; {escape(left.describe())} removable with 'ablate show --clean'" if left.paths() else ""),
                      highlight=False, soft_wrap=True)


def _mean_sd(values: list[float], digits: int = 3) -> str:
    """Mean ± sd over seeds (the mean alone for one value)."""
    if not values:
        return "-"
    return fmt_sd(statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None, digits=digits)


def summary_table(exp: Experiment, results: Path) -> Table:
    """Per variant, over the experiment's current cells found in results/: seeds done, accuracy, speed."""
    wanted = {c.run_id for c in exp.cells()}
    runs = [r for r in iter_runs(results, exp.name) if r["run_id"] in wanted]
    table = Table(title=f"{escape(exp.name)}: final validation accuracy over seeds")
    table.add_column("variant", no_wrap=True)
    table.add_column("ok runs", justify="right")
    table.add_column("val acc (mean ± sd)", justify="right", no_wrap=True)
    table.add_column("train img/s", justify="right", no_wrap=True)
    for variant in exp.variants():
        mine = [r for r in runs if r["variant"] == variant.axes()]
        ok = [r for r in mine if r["status"] == "ok"]
        bad = [f"{r['status']} seed {r['seed']}" for r in mine if r["status"] != "ok"]
        table.add_row(
            escape(variant.slug()) + (" *" if variant == exp.baseline else ""),
            f"{len(ok)}/{len(exp.seeds_of(variant))}" + (f" ({', '.join(bad)})" if bad else ""),
            _mean_sd([r["summary"]["final_val_acc"] for r in ok if isinstance(r["summary"].get("final_val_acc"), (int, float))]),
            _mean_sd([r["runtime"]["train_images_per_s"] for r in ok if (r.get("runtime") or {}).get("train_images_per_s")], 0),
        )
    table.caption = "* baseline"
    return table


def _adaptive_plan(exp: Experiment, precision: Optional[float], pilot: Optional[int], until_decided: bool,
                   looks: Optional[str], max_seeds: Optional[int]) -> Optional[dict[str, Any]]:
    """The adaptive design the options ask for, as keyword arguments of ``run_adaptively`` (None:
    a plain run); a problem is one line, exit 2."""
    from ablate import adaptive as ad
    from ablate.config import SEED_MAX

    if precision is not None and until_decided:
        raise fail("--precision and --until-decided are two designs; choose one")
    if precision is None and not until_decided:
        for given, name in ((pilot, "--pilot"), (max_seeds, "--max-seeds")):
            if given is not None:
                raise fail(f"{name} goes with --precision or --until-decided")
        if looks is not None:
            raise fail("--looks goes with --until-decided")
        return None
    if max_seeds is not None and max_seeds > ad.MAX_SEEDS_LIMIT:
        raise fail(f"--max-seeds {max_seeds}: at most {ad.MAX_SEEDS_LIMIT} seeds per variant")
    if precision is not None:
        if looks is not None:
            raise fail("--looks goes with --until-decided, not --precision")
        m = max_seeds if max_seeds is not None else ad.DEFAULT_MAX_SEEDS
        if pilot is not None and not 2 <= pilot <= m:
            raise fail(f"--pilot {pilot}: expected 2..{m} seeds (at most --max-seeds)")
        n0 = pilot if pilot is not None else min(max(len(exp.seeds), ad.DEFAULT_PILOT), m)
        plan: dict[str, Any] = {"design": ad.STEIN, "precision": precision, "pilot": n0, "max_seeds": m}
    else:
        if pilot is not None:
            raise fail("--pilot goes with --precision, not --until-decided")
        if looks is not None:
            try:
                planned = tuple(int(x) for x in looks.split(","))
            except ValueError:
                raise fail(f"--looks {looks}: expected increasing seed counts separated by commas, e.g. 3,5,10,20") from None
            if planned[0] < 3 or any(b <= a for a, b in zip(planned, planned[1:])):
                raise fail(f"--looks {looks}: expected increasing seed counts from at least 3, e.g. 3,5,10,20")
            if max_seeds is not None and planned[-1] != max_seeds:
                raise fail(f"--looks {looks} ends at {planned[-1]} seeds but --max-seeds is {max_seeds}; the last look is the maximum")
            if planned[-1] > ad.MAX_SEEDS_LIMIT:
                raise fail(f"--looks {looks}: at most {ad.MAX_SEEDS_LIMIT} seeds per variant")
            m = planned[-1]
        else:
            m = max_seeds if max_seeds is not None else ad.DEFAULT_MAX_SEEDS
            if len(exp.seeds) < 3:
                raise fail(f"--until-decided: the first look is the experiment's {len(exp.seeds)} seed(s); list at least 3 "
                           "seeds or give --looks")
            if len(exp.seeds) > m:
                raise fail(f"--until-decided: the experiment lists {len(exp.seeds)} seeds, more than --max-seeds {m}")
            planned = ad.default_looks(len(exp.seeds), m)
        plan = {"design": ad.GROUP_SEQUENTIAL, "looks": planned, "max_seeds": m}
    overflow = ad.seed_overflow(exp.seeds, plan["max_seeds"], SEED_MAX)
    if overflow:
        raise fail(overflow)
    return plan


def _workers_option(value: Optional[str]) -> Optional[int]:
    if value is None or value == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        raise fail(f"--workers {value}: expected a number of workers or auto") from None
    if n < 1:
        raise fail(f"--workers {value}: expected an integer >= 1 or auto")
    return n


def _announce_stop() -> None:
    err.print("[yellow]stopping[/]: finishing the current step and saving a checkpoint (Ctrl-C again to quit now)",
              soft_wrap=True)


def _announce_ray_stop() -> None:
    err.print("[yellow]stopping[/]: cancelling the Ray tasks in flight (claims released, checkpoints kept; "
              "Ctrl-C again to quit now)", soft_wrap=True)


def _interrupted() -> typer.Exit:
    err.print("[yellow]interrupted[/]: finished runs and checkpoints are kept, claims released; "
              "rerun the same command to continue (unfinished cells resume from their checkpoints).", soft_wrap=True)
    return typer.Exit(130)


@app.command()
def run(
    file: ExperimentFile,
    set_: SetOption = [],  # noqa: B006 - typer copies defaults
    device: DeviceOption = "auto",
    results: ResultsOption = Path("results"),
    force: bool = typer.Option(False, "--force", help="Rerun cells that already have a finished result."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the cells that would run, train nothing."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Run at most this many cells now; rerun to continue."),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Decode datasets from their files again, without reading or writing the cache."
    ),
    workers: Optional[str] = typer.Option(
        None, "--workers", "-w", metavar="N|auto",
        help="Cells trained at once, each in its own process; auto = one per visible GPU (1 on a CPU-only machine). "
        "Default: 1, in this process.",
    ),
    devices: Optional[str] = typer.Option(
        None, "--devices", metavar="LIST", help="Devices for the workers, e.g. cuda:0,cuda:2 or cpu (default: every GPU, else cpu)."
    ),
    workers_per_device: int = typer.Option(1, "--workers-per-device", min=1, metavar="K", help="Workers sharing each GPU (small models leave a GPU idle)."),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, metavar="T",
        help="CPU threads per worker (default: the cores split between the workers). CPU results depend on it in the last bits.",
    ),
    ray: Optional[str] = typer.Option(
        None, "--ray", metavar="auto|ADDRESS|local",
        help="Run each cell as a Ray task: auto = the running cluster, ADDRESS = that cluster, local = start Ray here (needs ablate\\[ray]).",
    ),
    slurm: bool = typer.Option(False, "--slurm", help="Submit the cells as one Slurm job array; each array task claims cells until none is left (needs ablate[slurm])."),
    partition: Optional[str] = typer.Option(None, "--partition", metavar="NAME", help="With --slurm: the partition (default: the cluster's default)."),
    tasks: Optional[int] = typer.Option(None, "--tasks", min=1, metavar="N", help="With --slurm: array tasks, i.e. workers (default: one per cell to do, at most 8)."),
    gpus_per_task: int = typer.Option(0, "--gpus-per-task", min=0, metavar="G", help="With --slurm: GPUs per array task (0: train on CPUs)."),
    cpus_per_task: int = typer.Option(1, "--cpus-per-task", min=1, metavar="C", help="With --slurm: CPUs per worker process (its torch threads)."),
    time_limit: str = typer.Option("60", "--time", metavar="TIME", help="With --slurm: time limit per array task, minutes or Slurm's 1:30:00 / 2-00:00:00; checkpointed and requeued when it runs out."),
    slurm_opt: List[str] = typer.Option([], "--slurm-opt", metavar="KEY=VALUE", help="With --slurm: any other sbatch option, e.g. --slurm-opt account=mylab (repeatable)."),
    wait: bool = typer.Option(False, "--wait", help="With --slurm: wait for the cells and print the summary (default: return once submitted)."),
    max_retries: int = typer.Option(2, "--max-retries", min=0, help="Retries of a cell whose worker process died (killed, crashed)."),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="Keep each finished cell's last checkpoint (its final weights)."),
    precision: Optional[float] = typer.Option(
        None, "--precision", metavar="POINTS",
        help="Stein's two-stage design: a pilot of seeds, then each variant gets the seeds its 95% interval needs to be "
        "within ±POINTS percentage points of validation accuracy (see docs/report.md).",
    ),
    pilot: Optional[int] = typer.Option(
        None, "--pilot", metavar="N", help="With --precision: seeds in the pilot (default: the experiment's seeds, at least 10)."
    ),
    until_decided: bool = typer.Option(
        False, "--until-decided",
        help="Group-sequential tests at planned looks: each variant gets seeds until its comparison with the baseline is "
        "decided or cannot be decided within --max-seeds (see docs/report.md).",
    ),
    looks: Optional[str] = typer.Option(
        None, "--looks", metavar="LIST",
        help="With --until-decided: seeds at each look, e.g. 3,5,10,20 (default: the experiment's seeds, doubling, --max-seeds).",
    ),
    max_seeds: Optional[int] = typer.Option(
        None, "--max-seeds", min=2, metavar="M", help="With --precision or --until-decided: at most this many seeds per variant (default 20)."
    ),
    max_cells: MaxCellsOption = MAX_CELLS,
) -> None:
    """Train every variant x seed of an experiment; finished cells are skipped, so reruns resume."""
    from ablate.pool import PoolError, parse_devices, plan_slots, run_pool

    slurm_options = _slurm_options(slurm, ray, workers, devices, partition, tasks, gpus_per_task, cpus_per_task, time_limit,
                                   slurm_opt, workers_per_device, wait, adaptive=precision is not None or until_decided)
    # Slurm tasks train where they land: settings resolve for their device (CUDA with GPUs), not this login node's.
    if slurm and gpus_per_task and device != "cpu":
        exp, dev = _load_for_cuda(file, set_, max_cells)
    else:
        exp, dev = _load(file, set_, "cpu" if slurm else device, max_cells)
    n_workers = _workers_option(workers)
    if precision is not None and not (math.isfinite(precision) and precision > 0):
        raise fail(f"--precision {precision:g}: expected a number of percentage points > 0, e.g. --precision 2")
    adaptive_plan = _adaptive_plan(exp, precision, pilot, until_decided, looks, max_seeds)
    try:
        check_writable(results)
        check_layout(results, exp.name)
    except StoreError as e:
        raise fail(str(e)) from None
    scan = _warn_unreadable(results, exp.name)
    if dry_run:
        console.print(_cells_table(exp, results, scan))
        return
    use_pool = ray is None and not slurm and (n_workers not in (None, 1) or (workers == "auto") or devices is not None or workers_per_device > 1)
    slots = []
    if use_pool:
        try:
            device_list = parse_devices(devices) or (
                [f"cuda:{i}" for i in range(torch.cuda.device_count())] if dev.type == "cuda" and device in ("auto", "cuda") else [str(dev)]
            )
            slots = plan_slots(device_list, n_workers, workers_per_device, threads)
        except PoolError as e:
            raise fail(str(e)) from None
        use_pool = len(slots) > 1 or slots[0].device != str(dev)
    note = " with \\[gpu] overrides" if exp.gpu_overrides_applied else ""
    if slurm_options is not None:
        where = f"Slurm array ({escape(slurm_options.partition or 'default partition')})"
    elif ray is not None:
        where = f"Ray tasks ({escape(ray)})"
    elif use_pool:
        where = f"{len(slots)} workers on {', '.join(sorted({s.device for s in slots}))}"
    else:
        where = f"device {dev}"
    about = f": {escape(exp.description)}" if exp.description else ""
    console.print(f"[bold]{escape(exp.name)}[/]{about} · {where}{note}", highlight=False)

    def execute(exp: Experiment, progress: Progress) -> Any:
        """One pass over ``exp``'s cells with the chosen executor."""
        if slurm_options is not None:
            return _run_slurm(exp, file, results, slurm_options, progress, device=device, force=force, limit=limit,
                              use_cache=not no_cache, keep_checkpoints=keep_checkpoints, wait=wait)
        if ray is not None:
            from ablate.ray_executor import RayError, run_ray

            try:
                # SIGTERM stops the driver like Ctrl-C: tasks cancelled, claims released, exit 130.
                with StopOnSignal(_announce_ray_stop) as stop:
                    return run_ray(exp, results, ray, device=device, force=force, limit=limit,
                                   observer=RunDisplay(progress, exp.train.epochs), use_cache=not no_cache,
                                   keep_checkpoints=keep_checkpoints, max_retries=max_retries,
                                   per_device=workers_per_device, threads=threads or 1, plugins=_PLUGINS,
                                   should_stop=stop)
            except RayError as e:
                raise fail(str(e)) from None
        if use_pool:
            # SIGTERM (a scheduler, `kill`) stops the pool like Ctrl-C: workers checkpoint, release, exit 130.
            with StopOnSignal(_announce_stop) as stop:
                return run_pool(exp, results, slots, force=force, limit=limit,
                                observer=RunDisplay(progress, exp.train.epochs, {s.index: s.label for s in slots}),
                                use_cache=not no_cache, keep_checkpoints=keep_checkpoints, max_retries=max_retries,
                                plugins=_PLUGINS, should_stop=stop)
        with StopOnSignal(_announce_stop) as stop:
            return run_experiment(exp, dev, results, force=force, limit=limit, observer=RunDisplay(progress, exp.train.epochs),
                                  use_cache=not no_cache, keep_checkpoints=keep_checkpoints, should_stop=stop)

    if threads and ray is None and not use_pool:
        torch.set_num_threads(threads)
    adaptive = None
    try:
        with progress_bar() as progress:
            if adaptive_plan is None:
                summary = execute(exp, progress)
            else:
                from ablate.runner import run_adaptively

                summary, adaptive = run_adaptively(exp, results, lambda e: execute(e, progress), **adaptive_plan)
    except (DataError, RegistryError, StoreError) as e:
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        raise _interrupted() from None
    if summary is None:  # --slurm without --wait: submitted, and said so
        return
    if adaptive is not None:
        exp = dataclasses.replace(exp, seeds=tuple(adaptive.seeds), seed_counts=adaptive.seed_counts or None)
        console.print(f"adaptive seeds ({len(adaptive.seeds)}: {adaptive.seeds[0]}..{adaptive.seeds[-1]}): {escape(adaptive.stopped)}",
                      highlight=False, soft_wrap=True)
    if summary.interrupted:
        raise _interrupted()
    # Cells busy elsewhere when this run reached them may have finished since: say what holds now.
    summary.busy = [c for c in summary.busy if not is_finished(results, c)]
    for line in summary.errors:
        err.print(f"[red]worker error[/]: {escape(line)}", highlight=False, soft_wrap=True)
    console.print(summary_table(exp, results))
    counts = summary.counts()
    console.print(
        f"{len(summary.records)} run(s): {counts['ok']} ok, {counts['failed']} failed, {counts['diverged']} diverged; "
        f"{len(summary.skipped)} already done"
        + (f"; {len(summary.busy)} being trained by another worker (see 'ablate show')" if summary.busy else "")
        + (f"; {len(summary.remaining)} left for a later run (--limit)" if summary.remaining else "")
        + f"; results in {escape(str(results / exp.name / 'runs'))}",
        highlight=False, soft_wrap=True,
    )
    if counts["failed"]:
        raise fail(f"{counts['failed']} run(s) failed; see 'error' and 'traceback' in their result files", code=1)
    if summary.errors:
        raise fail(f"{len(summary.errors)} worker error(s); see above", code=1)


def _slurm_options(slurm: bool, ray: Optional[str], workers: Optional[str], devices: Optional[str], partition: Optional[str],
                   tasks: Optional[int], gpus: int, cpus: int, time_limit: str, opts: list[str], per_device: int,
                   wait: bool, *, adaptive: bool) -> Any:
    """The checked options of ``run --slurm`` (None without --slurm); every mistake is one line."""
    slurm_only = {"--partition": partition, "--tasks": tasks, "--gpus-per-task": gpus or None, "--slurm-opt": opts or None,
                  "--wait": wait or None, "--cpus-per-task": cpus if cpus != 1 else None,
                  "--time": time_limit if time_limit != "60" else None}
    if not slurm:
        given = [k for k, v in slurm_only.items() if v is not None]
        if given:
            raise fail(f"{given[0]} is an option of --slurm; add --slurm (or leave {given[0]} out)")
        return None
    for flag, value in (("--ray", ray), ("--workers", workers), ("--devices", devices)):
        if value is not None:
            raise fail(f"--slurm and {flag} choose two executors; with --slurm, --tasks N sets the workers")
    if adaptive and not wait:
        raise fail("--precision or --until-decided with --slurm needs --wait (each round of seeds waits for the one before)")
    from ablate.slurm_executor import SlurmError, SlurmOptions, check_cluster, parse_slurm_opts, parse_time

    try:
        options = SlurmOptions(tasks=tasks, partition=partition, gpus_per_task=gpus, cpus_per_task=cpus,
                               time_min=parse_time(time_limit), per_device=per_device, extra=parse_slurm_opts(opts))
        check_cluster(options)  # before the experiment's data is loaded: no sbatch, no partition = one line now
    except SlurmError as e:
        raise fail(str(e)) from None
    return options


def _load_for_cuda(file: Path, overrides: list[str], max_cells: int = MAX_CELLS) -> tuple[Experiment, Any]:
    """The experiment as GPU tasks will train it ([gpu] overrides applied), from a login node
    that may have no GPU itself."""
    try:
        exp = load_experiment(file, overrides, "cuda")
        exp.check_size(max_cells)
        return exp, torch.device("cuda")
    except ExperimentError as e:
        raise fail(str(e)) from None


def _run_slurm(exp: Experiment, file: Path, results: Path, options: Any, progress: Progress, *, device: str,
               force: bool, limit: Optional[int], use_cache: bool, keep_checkpoints: bool, wait: bool) -> Any:
    """Submit the array; with ``wait``, follow it to the end (the summary), else None."""
    from ablate.slurm_executor import SlurmError, run_slurm

    def announce(sub: Any) -> None:
        show = f"ablate show {file}" + (f" --results {results}" if results != Path("results") else "")
        progress.console.print(
            f"submitted Slurm job {sub.job_id}: {sub.tasks} array task(s) for {sub.cells} cell(s); logs in {sub.folder}/\n"
            f"  progress: {show}   cancel: scancel {sub.job_id}"
            + ("\n  waiting for the cells (Ctrl-C stops waiting; the job goes on)" if wait else ""),
            highlight=False, soft_wrap=True,
        )

    try:
        return run_slurm(exp, results, options, device=device, force=force, limit=limit,
                         observer=RunDisplay(progress, exp.train.epochs), use_cache=use_cache,
                         keep_checkpoints=keep_checkpoints, plugins=_PLUGINS, wait_for_job=wait, on_submit=announce)
    except SlurmError as e:
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        err.print("[yellow]stopped waiting[/]: the Slurm job goes on; 'ablate show' follows it, scancel stops it "
                  "(claims released, checkpoints kept).", soft_wrap=True)
        raise typer.Exit(130) from None


@app.command(name="list")
def list_() -> None:
    """Print the axes and their values, the architecture presets, init schemes and datasets."""
    default = Variant()
    axes = Table(title=escape("axes ([model] / [axes] keys)"))
    axes.add_column("axis")
    axes.add_column("values (default first marked *)")
    for axis, registry in AXIS_REGISTRIES.items():
        values = [f"{v}*" if v == getattr(default, axis) else v for v in registry.names()]
        axes.add_row(axis, ", ".join(values))
    axes.add_row("dropout", "true*, false")
    axes.add_row("dropout_p", f"number in [0, 1) ({default.dropout_p}*)")
    console.print(axes)

    presets = Table(title="architecture presets")
    for col in ("arch", "input", "params (10 classes)", "description"):
        presets.add_column(col)
    for name in ARCHS.names():
        spec = arch_spec(name)
        params = count_params(build_model(Variant(arch=name), num_classes=10))
        presets.add_row(name, f"3x{spec.input_size}x{spec.input_size}", f"{params:,}", spec.description)
    console.print(presets)

    datasets = Table(title=escape("datasets ([data] dataset = ...)"))
    datasets.add_column("dataset")
    datasets.add_column("description")
    for name in DATASETS.names():
        doc = (DATASETS.get(name).__doc__ or "").strip().splitlines()
        datasets.add_row(name, doc[0] if doc else "")
    console.print(datasets)


def _print_version(value: bool) -> None:
    # An eager option callback runs while the arguments are parsed, before the check for a
    # command, so that `ablate --version` works on its own.
    if value:
        console.print(f"ablate {ablate.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
    plugin: List[str] = typer.Option(
        [], "--plugin", "-p", metavar="MODULE",
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
    names: Optional[List[str]] = typer.Argument(
        None, metavar="[EXPERIMENT]...", help="Experiments to report on (default: every experiment under --results)."
    ),
    results: ResultsOption = Path("results"),
    out: Path = typer.Option(Path("reports"), "--out", help="Reports go to OUT/<experiment>/ (README.md, CSVs, PNGs)."),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", metavar="VARIANT", help="Variant slug to compare against (default: the experiment's [model])."
    ),
    target_acc: Optional[float] = typer.Option(
        None, "--target-acc", metavar="X", help="Also report epochs/time to reach this validation accuracy (0-1, e.g. 0.6)."
    ),
    target_train_error: float = typer.Option(
        0.25, "--target-train-error", metavar="E", help="Training error for epochs/time to target (0-1; the paper's 0.25)."
    ),
    effect: Optional[float] = typer.Option(
        None, "--effect", metavar="POINTS", help="Difference (percentage points) each comparison should detect: seeds "
        "needed for 80% power (default: the paper's effect where a comparison matches one of its claims, else 1)."
    ),
    ci: str = typer.Option(
        "t", "--ci", metavar="t|bootstrap", help="Interval shown: t (Student's t) or bootstrap (BCa, paired; for "
        "metrics far from normal). Verdicts always come from the Holm-adjusted paired t-test."
    ),
) -> None:
    """Statistics over seeds, paired comparisons, plots and a markdown report per experiment."""
    from ablate.analysis import CI_METHODS, ReportError, Targets
    from ablate.bench import BENCH_DIR, write_bench_report
    from ablate.report import build_report
    from ablate.store import experiments

    for flag, value in (("--target-acc", target_acc), ("--target-train-error", target_train_error)):
        if value is not None and not 0 < value < 1:
            raise fail(f"{flag} {value:g}: expected a fraction between 0 and 1, e.g. 0.6")
    if effect is not None and not 0 < effect < 100:
        raise fail(f"--effect {effect:g}: expected percentage points between 0 and 100, e.g. 0.5")
    if ci not in CI_METHODS:
        raise fail(f"--ci {ci}: expected one of {', '.join(CI_METHODS)}")
    try:  # before any result is read: an unwritable --out fails now, in one line
        check_writable(out)
    except StoreError as e:
        raise fail(str(e).replace("--results", "--out")) from None
    found = experiments(results)
    # results/bench/ holds `ablate bench` measurements: reported with everything else, or by name.
    with_bench = not names or BENCH_DIR in names
    bench_readme = write_bench_report(results, out) if with_bench else None
    if not found and bench_readme is None:
        raise fail(f"no results under {results} (no <experiment>/runs/ folders); run 'ablate run FILE' first")
    chosen = [n for n in (names or found) if n != BENCH_DIR]
    targets = Targets(train_error=target_train_error, val_acc=target_acc)
    for name in chosen:
        try:
            rep = build_report(results, name, out, baseline=baseline, targets=targets, ci=ci, effect_points=effect)
        except ReportError as e:
            if names:
                raise fail(str(e)) from None
            err.print(f"[yellow]skipped[/] {escape(name)}: {escape(str(e))}", highlight=False)
            continue
        console.print(_report_table(rep))
        for note in rep.data.notes:
            console.print(f"  [yellow]note[/]: {escape(note)}", highlight=False)
        console.print(f"  report: {escape(str(rep.readme))} ({len(rep.files)} files)", highlight=False)
    from ablate.report_index import write_report_index

    index = write_report_index(results, out)
    if index is not None:
        console.print(f"index of reports: {escape(str(index))}", highlight=False)
    if bench_readme is not None:
        console.print(f"speed benchmark report: {escape(str(bench_readme))}", highlight=False)
    elif names and BENCH_DIR in names:
        raise fail(f"no benchmark results under {results / BENCH_DIR}; run 'ablate bench' first")


def _report_table(rep: Any) -> Table:
    """Per variant: runs, final validation accuracy with its CI, and the paired verdict against the baseline."""
    from ablate.textfmt import fmt_p, fmt_pm

    data, summary, comp = rep.data, rep.summary, rep.comparisons
    primary = comp[comp["metric"] == "final_val_acc"].set_index("variant")
    table = Table(title=f"{escape(data.name)}: final validation accuracy (%), ± 95% CI over seeds; baseline {escape(data.baseline)}",
                  caption="detectable: smallest difference (points) these seeds detect with 80% power (paired t-test, "
                  "alpha 0.05); the report's paired comparisons give the seeds a given effect would need")
    for col in ("variant", "ok", "not ok", "val acc", "diff vs baseline", "p (Holm)", "detectable", "verdict"):
        table.add_column(col, justify="left" if col in ("variant", "verdict", "not ok") else "right", no_wrap=col == "variant")
    for r in summary.to_dict("records"):
        v = r["variant"]
        bad = ", ".join(f"{int(r[c])} {c[2:]}" for c in ("n_diverged", "n_failed", "n_missing", "n_other") if r[c])
        acc = fmt_pm(r["final_val_acc_mean"], r["final_val_acc_ci_low"], r["final_val_acc_ci_high"], int(r["n"]), 100.0)
        if v in primary.index:
            c = primary.loc[v]
            diff = fmt_pm(c["diff"], c["ci_low"], c["ci_high"], int(c["n"]), 100.0, signed=True) if c["n"] else "-"
            p, verdict = fmt_p(c["p_holm"]), str(c["verdict"])
            mdd = f"≥ {100 * float(c['mdd']):.1f}" if c["mdd"] == c["mdd"] else "-"  # NaN: fewer than 2 seeds
        else:
            diff, p, verdict, mdd = "", "", "(baseline)", ""
        table.add_row(escape(v), f"{int(r['n'])}/{int(r['n_cells'])}", bad or "-", acc, diff, p, mdd, verdict)
    return table


def _split_list(values: list[str], name: str, kind: type = str) -> tuple[Any, ...] | None:
    """``["32,64", "128"]`` -> ``(32, 64, 128)``: repeatable options that also take comma lists."""
    items = [part.strip() for value in values for part in value.split(",") if part.strip()]
    try:
        return tuple(kind(i) for i in items) or None
    except ValueError:
        raise fail(f"{name} {', '.join(items)}: expected {kind.__name__} values, e.g. {name} 32,64") from None


@app.command()
def bench(
    targets: Optional[List[str]] = typer.Argument(
        None, metavar="[FILE.toml | PATTERN]...",
        help="Experiment files (their variants) or shell patterns on variant slugs, e.g. 'relu-*-lrn-*'. "
        "Default: the alexnet65 baseline and each single-axis change of it.",
    ),
    batch_size: List[str] = typer.Option([], "--batch-size", "-b", help="Batch sizes, repeatable or comma-separated (default 32 on CPU, 256 on CUDA)."),
    precision: List[str] = typer.Option([], "--precision", "-p", help="auto | fp32 | bf16 | fp16, repeatable or comma-separated (default auto)."),
    mode: List[str] = typer.Option([], "--mode", help="train | infer, repeatable or comma-separated (default both)."),
    device: DeviceOption = "auto",
    warmup: Optional[int] = typer.Option(None, min=0, help="Untimed steps per case (default 2 on CPU, 10 on CUDA)."),
    steps: Optional[int] = typer.Option(None, min=1, help="Steps per timed repeat (default 3 on CPU, 20 on CUDA)."),
    repeats: Optional[int] = typer.Option(None, min=1, help="Timed repeats; the median is reported (default 3 on CPU, 5 on CUDA)."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last", help="NHWC layout, as training uses by default."),
    compile_: str = typer.Option("off", "--compile", help="torch.compile mode: off | default | max-autotune."),
    results: ResultsOption = Path("results"),
) -> None:
    """Steady-state speed of variants: train-step and inference images/s, step time, peak memory, params, FLOPs."""
    from ablate.bench import BenchError, default_settings, run_bench, save_bench, select_variants

    try:
        dev = resolve_device(device)
        variants = select_variants(list(targets or []), dev.type)
        settings = default_settings(
            dev, batch_sizes=_split_list(batch_size, "--batch-size", int), precisions=_split_list(precision, "--precision"),
            modes=_split_list(mode, "--mode"), warmup=warmup, steps=steps, repeats=repeats,
            channels_last=channels_last, compile=compile_,
        )
    except (BenchError, DeviceError, ExperimentError) as e:
        raise fail(str(e)) from None
    cases = len(variants) * len(settings.batch_sizes) * len(settings.precisions) * len(settings.modes)
    console.print(
        f"[bold]bench[/]: {len(variants)} variant(s), {cases} case(s) on {dev}; warm-up {settings.warmup}, "
        f"{settings.repeats} x {settings.steps} timed steps per case",
        highlight=False,
    )
    try:
        with progress_bar() as progress:
            task = progress.add_task("cases", total=cases)

            def on_case(row: dict[str, Any], index: int, total: int) -> None:
                progress.update(task, advance=1, description=f"{row['slug']} · {row['mode']} · b{row['batch_size']}")

            rows = run_bench(variants, dev, settings, on_case)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: nothing saved.")
        raise typer.Exit(130) from None
    json_path, csv_path = save_bench(rows, dev, settings, results)

    table = Table(title=f"steady-state speed on {dev} (median of {settings.repeats} repeats)")
    for col in ("variant", "mode", "precision", "batch", "images/s", "step ms", "peak MB", "GFLOP/img", "status"):
        table.add_column(col, justify="left" if col in ("variant", "mode", "precision", "status") else "right", no_wrap=col == "variant")
    for r in rows:
        flops = r.get("flops_train" if r["mode"] == "train" else "flops_forward")
        ok = r["status"] == "ok"
        table.add_row(
            escape(r["slug"]), r["mode"], r["precision"], str(r["batch_size"]),
            f"{r['images_per_s']:,.0f}" if ok else "-", f"{r['step_time_ms']:.2f}" if ok else "-",
            f"{r['peak_memory_mb']:,.0f}" if ok and r["peak_memory_mb"] is not None else "-",
            f"{flops / 1e9:.3f}" if flops else "-",
            "ok" if ok else f"[red]{r['status']}[/]: {escape(str(r['error']))}",
        )
    console.print(table)
    console.print(f"saved {escape(str(json_path))} and {escape(str(csv_path))}", highlight=False)
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        raise fail(f"{len(failed)} of {len(rows)} case(s) failed; their errors are recorded in {json_path}", code=1)


export_app = typer.Typer(help="Export results to other tools (TensorBoard).", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("tensorboard")
def export_tensorboard_command(
    names: Optional[List[str]] = typer.Argument(
        None, metavar="[EXPERIMENT]...", help="Experiments to export (default: every experiment under --results)."
    ),
    results: ResultsOption = Path("results"),
    out: Path = typer.Option(..., "--out", help="TensorBoard log folder: one run per ablate run, OUT/<experiment>/<variant>/seed<k>/."),
) -> None:
    """TensorBoard event files from the run files: curves per epoch and step, HParams by axis (needs ablate[tensorboard])."""
    from ablate.export import ExportError, export_tensorboard

    try:
        check_writable(out)
    except StoreError as e:
        raise fail(str(e).replace("--results", "--out")) from None

    try:
        done = export_tensorboard(results, out, names or None)
    except ExportError as e:
        raise fail(str(e)) from None
    for name, count in sorted(done.stale.items()):
        console.print(f"  [yellow]note[/]: {escape(name)}: {count} run(s) from an older configuration left out",
                      highlight=False, soft_wrap=True)
    steps = sum(r.steps for r in done.runs)
    console.print(
        f"{len(done.runs)} run(s) exported to {escape(str(out))} ({sum(r.epochs for r in done.runs)} epochs"
        + (f", {steps} steps" if steps else "") + f"); view with: tensorboard --logdir {escape(str(out))}",
        highlight=False, soft_wrap=True,
    )
