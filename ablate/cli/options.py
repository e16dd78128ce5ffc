"""The options of the commands: declared once (typer ``Annotated`` types), checked once.

The declarations of the options several commands share, and the checks of ``ablate run``'s and
``ablate bench``'s options that typer cannot express (which options go together, what a list
reads as, which executor they choose). A mistake raises :class:`OptionError` (or the executor's
own ``ExecutorError``), whose ``str()`` is the one line a command prints before exiting with 2.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, List, Optional

import torch
import typer

from ablate.experiment.experiment import MAX_CELLS, Experiment


class OptionError(ValueError):
    """Options that do not go together or do not parse; ``str()`` is one line for the user."""


# Where the app's callback keeps the --plugin modules in the click context: worker processes and
# Ray tasks import them too.
PLUGINS = "plugins"


def plugin_modules(ctx: typer.Context) -> list[str]:
    """The modules given with ``--plugin``, as the app's callback stored them."""
    obj = ctx.find_root().obj
    return list(obj.get(PLUGINS, [])) if isinstance(obj, dict) else []


# Options shared by several commands, declared once.
# Help texts are plain text (rich markup is off, see help.plain_help): write [gpu], not \\[gpu].
ExperimentFile = Annotated[Path, typer.Argument(metavar="FILE", help="Experiment file (TOML).")]
SetOption = Annotated[
    List[str],
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a key of the experiment file, e.g. --set train.epochs=2 (repeatable; the value is read as TOML; "
        "gpu.KEY edits the [gpu] table).",
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        metavar="DEVICE",
        help="auto (CUDA when present) | cpu | cuda | cuda:N; on CUDA the file's [gpu] overrides apply.",
    ),
]
ResultsOption = Annotated[Path, typer.Option(metavar="DIR", help="Root folder of the results.")]
MaxCellsOption = Annotated[
    int,
    typer.Option(
        "--max-cells",
        min=1,
        metavar="N",
        help=f"Refuse an experiment of more cells (variants x seeds) than this (default {MAX_CELLS:,}).",
    ),
]


# Options of `ablate run` whose help takes several lines: where cells train, adaptive designs.
NoCacheOption = Annotated[
    bool,
    typer.Option("--no-cache", help="Decode datasets from their files again, without reading or writing the cache."),
]
WorkersOption = Annotated[
    Optional[str],
    typer.Option(
        "--workers",
        "-w",
        metavar="N|auto",
        help=(
            "Cells trained at once, each in its own process; auto = one per visible GPU (1 on a CPU-only machine). "
            "Default: 1, in this process."
        ),
    ),
]
DevicesOption = Annotated[
    Optional[str],
    typer.Option(
        "--devices",
        metavar="LIST",
        help=("Devices for the workers, e.g. cuda:0,cuda:2 or cpu (default: every GPU, else cpu)."),
    ),
]
ThreadsOption = Annotated[
    Optional[int],
    typer.Option(
        "--threads",
        min=1,
        metavar="T",
        help=(
            "CPU threads per worker (default: the cores split between the workers). "
            "CPU results depend on it in the last bits."
        ),
    ),
]
RayOption = Annotated[
    Optional[str],
    typer.Option(
        "--ray",
        metavar="auto|ADDRESS|local",
        help=(
            "Run each cell as a Ray task: auto = the running cluster, ADDRESS = that cluster, local = start Ray here "
            "(needs ablate\\[ray])."
        ),
    ),
]
# The adaptive designs (docs/report.md); adaptive_plan below checks how they combine.
PrecisionOption = Annotated[
    Optional[float],
    typer.Option(
        "--precision",
        metavar="POINTS",
        help=(
            "Stein's two-stage design: a pilot of seeds, then each variant gets the seeds its 95% interval needs to be "
            "within ±POINTS percentage points of validation accuracy (see docs/report.md)."
        ),
    ),
]
PilotOption = Annotated[
    Optional[int],
    typer.Option(
        "--pilot",
        metavar="N",
        help=("With --precision: seeds in the pilot (default: the experiment's seeds, at least 10)."),
    ),
]
UntilDecidedOption = Annotated[
    bool,
    typer.Option(
        "--until-decided",
        help=(
            "Group-sequential tests at planned looks: each variant gets seeds until its comparison with the baseline "
            "is "
            "decided or cannot be decided within --max-seeds (see docs/report.md)."
        ),
    ),
]
LooksOption = Annotated[
    Optional[str],
    typer.Option(
        "--looks",
        metavar="LIST",
        help=(
            "With --until-decided: seeds at each look, e.g. 3,5,10,20 "
            "(default: the experiment's seeds, doubling, --max-seeds)."
        ),
    ),
]
MaxSeedsOption = Annotated[
    Optional[int],
    typer.Option(
        "--max-seeds",
        min=2,
        metavar="M",
        help=("With --precision or --until-decided: at most this many seeds per variant (default 20)."),
    ),
]


def check_precision(precision: Optional[float]) -> None:
    """``--precision``: a positive, finite number of percentage points."""
    if precision is not None and not (math.isfinite(precision) and precision > 0):
        raise OptionError(f"--precision {precision:g}: expected a number of percentage points > 0, e.g. --precision 2")


def adaptive_plan(
    exp: Experiment,
    precision: Optional[float],
    pilot: Optional[int],
    until_decided: bool,
    looks: Optional[str],
    max_seeds: Optional[int],
) -> Optional[dict[str, Any]]:
    """The adaptive design the options ask for, as keyword arguments of ``run_adaptively`` (None:
    a plain run)."""
    from ablate.config import SEED_MAX

    if precision is not None and until_decided:
        raise OptionError("--precision and --until-decided are two designs; choose one")
    if precision is None and not until_decided:
        for given, name in ((pilot, "--pilot"), (max_seeds, "--max-seeds")):
            if given is not None:
                raise OptionError(f"{name} goes with --precision or --until-decided")
        if looks is not None:
            raise OptionError("--looks goes with --until-decided")
        return None
    from ablate.analysis import (
        adaptive as ad,
    )  # here: its statistics take a second to import, which a plain run need not pay

    if max_seeds is not None and max_seeds > ad.MAX_SEEDS_LIMIT:
        raise OptionError(f"--max-seeds {max_seeds}: at most {ad.MAX_SEEDS_LIMIT} seeds per variant")
    if precision is not None:
        if looks is not None:
            raise OptionError("--looks goes with --until-decided, not --precision")
        m = max_seeds if max_seeds is not None else ad.DEFAULT_MAX_SEEDS
        if pilot is not None and not 2 <= pilot <= m:
            raise OptionError(f"--pilot {pilot}: expected 2..{m} seeds (at most --max-seeds)")
        n0 = pilot if pilot is not None else min(max(len(exp.seeds), ad.DEFAULT_PILOT), m)
        plan: dict[str, Any] = {"design": ad.STEIN, "precision": precision, "pilot": n0, "max_seeds": m}
    else:
        if pilot is not None:
            raise OptionError("--pilot goes with --precision, not --until-decided")
        if looks is not None:
            try:
                planned = tuple(int(x) for x in looks.split(","))
            except ValueError:
                raise OptionError(
                    f"--looks {looks}: expected increasing seed counts separated by commas, e.g. 3,5,10,20"
                ) from None
            if planned[0] < 3 or any(b <= a for a, b in zip(planned, planned[1:])):
                raise OptionError(f"--looks {looks}: expected increasing seed counts from at least 3, e.g. 3,5,10,20")
            if max_seeds is not None and planned[-1] != max_seeds:
                raise OptionError(
                    f"--looks {looks} ends at {planned[-1]} seeds but --max-seeds is {max_seeds}; the last look is the "
                    "maximum"
                )
            if planned[-1] > ad.MAX_SEEDS_LIMIT:
                raise OptionError(f"--looks {looks}: at most {ad.MAX_SEEDS_LIMIT} seeds per variant")
            m = planned[-1]
        else:
            m = max_seeds if max_seeds is not None else ad.DEFAULT_MAX_SEEDS
            if len(exp.seeds) < 3:
                raise OptionError(
                    f"--until-decided: the first look is the experiment's {len(exp.seeds)} seed(s); list at least 3 "
                    "seeds or give --looks"
                )
            if len(exp.seeds) > m:
                raise OptionError(
                    f"--until-decided: the experiment lists {len(exp.seeds)} seeds, more than --max-seeds {m}"
                )
            planned = ad.default_looks(len(exp.seeds), m)
        plan = {"design": ad.GROUP_SEQUENTIAL, "looks": planned, "max_seeds": m}
    overflow = ad.seed_overflow(exp.seeds, plan["max_seeds"], SEED_MAX)
    if overflow:
        raise OptionError(overflow)
    return plan


def workers_option(value: Optional[str]) -> Optional[int]:
    """``--workers``: a number, or None for auto or not given."""
    if value is None or value == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        raise OptionError(f"--workers {value}: expected a number of workers or auto") from None
    if n < 1:
        raise OptionError(f"--workers {value}: expected an integer >= 1 or auto")
    return n


def slurm_target(
    slurm: bool,
    ray: Optional[str],
    workers: Optional[str],
    devices: Optional[str],
    partition: Optional[str],
    tasks: Optional[int],
    gpus: int,
    cpus: int,
    time_limit: str,
    opts: list[str],
    per_device: int,
    wait: bool,
    *,
    adaptive: bool,
) -> Any:
    """The checked options of ``run --slurm``, as the Slurm executor's ``SlurmOptions`` (None
    without --slurm); Slurm's own complaints are ``SlurmError``."""
    slurm_only = {
        "--partition": partition,
        "--tasks": tasks,
        "--gpus-per-task": gpus or None,
        "--slurm-opt": opts or None,
        "--wait": wait or None,
        "--cpus-per-task": cpus if cpus != 1 else None,
        "--time": time_limit if time_limit != "60" else None,
    }
    if not slurm:
        given = [k for k, v in slurm_only.items() if v is not None]
        if given:
            raise OptionError(f"{given[0]} is an option of --slurm; add --slurm (or leave {given[0]} out)")
        return None
    for flag, value in (("--ray", ray), ("--workers", workers), ("--devices", devices)):
        if value is not None:
            raise OptionError(f"--slurm and {flag} choose two executors; with --slurm, --tasks N sets the workers")
    if adaptive and not wait:
        raise OptionError(
            "--precision or --until-decided with --slurm needs --wait (each round of seeds waits for the one before)"
        )
    from ablate.execute.slurm.cluster import SlurmOptions, check_cluster, parse_slurm_opts, parse_time

    options = SlurmOptions(
        tasks=tasks,
        partition=partition,
        gpus_per_task=gpus,
        cpus_per_task=cpus,
        time_min=parse_time(time_limit),
        per_device=per_device,
        extra=parse_slurm_opts(opts),
        wait=wait,
    )
    check_cluster(options)  # before the experiment's data is loaded: no sbatch, no partition = one line now
    return options


def choose_executor(
    slurm: Any,
    ray: Optional[str],
    dev: torch.device,
    device: str,
    n_workers: Optional[int],
    workers: Optional[str],
    devices: Optional[str],
    per_device: int,
    threads: Optional[int],
) -> tuple[str, Any]:
    """The row of ``executors.EXECUTORS`` the options of ``ablate run`` ask for, and where its cells
    go; bad worker or device settings are ``PoolError``."""
    from ablate.execute.local import parse_devices, plan_slots

    if slurm is not None:
        return "slurm", slurm
    if ray is not None:
        return "ray", ray
    if n_workers not in (None, 1) or workers == "auto" or devices is not None or per_device > 1:
        device_list = parse_devices(devices) or (
            [f"cuda:{i}" for i in range(torch.cuda.device_count())]
            if dev.type == "cuda" and device in ("auto", "cuda")
            else [str(dev)]
        )
        slots = plan_slots(device_list, n_workers, per_device, threads)
        if len(slots) > 1 or slots[0].device != str(dev):  # one worker on this device: train in this process
            return "pool", slots
    return "in-process", dev


def split_list(values: list[str], name: str, kind: type = str) -> tuple[Any, ...] | None:
    """``["32,64", "128"]`` -> ``(32, 64, 128)``: repeatable options that also take comma lists."""
    items = [part.strip() for value in values for part in value.split(",") if part.strip()]
    try:
        return tuple(kind(i) for i in items) or None
    except ValueError:
        raise OptionError(f"{name} {', '.join(items)}: expected {kind.__name__} values, e.g. {name} 32,64") from None
