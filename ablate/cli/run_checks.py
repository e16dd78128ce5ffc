"""The checks of ``ablate run``'s options that typer cannot express: which options go together, which
executor they choose and with what, which adaptive design. A mistake raises
:class:`~ablate.cli.options.OptionError` (or the executor's own ``ExecutorError``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ablate.cli.options import OptionError
from ablate.experiment.experiment import Experiment


def fuse_seeds(exp: Experiment, option: Optional[str], device: torch.device, remote: bool) -> tuple[Experiment, str]:
    """``--fuse-seeds K|auto`` (else ``[train] fuse_seeds``) as an integer K in ``exp.train``, and a
    line saying how ``auto`` chose it ("" when it was not asked). ``auto`` probes ``device``, this
    machine's: refused for Ray and Slurm, whose workers train elsewhere. K is an execution setting:
    it changes no cell's run id."""
    value: Any = exp.train.fuse_seeds if option is None else option
    if isinstance(value, str) and value != "auto":
        try:
            value = int(value)
        except ValueError:
            value = 0
    if value != "auto" and (not isinstance(value, int) or value < 1):
        raise OptionError(f"--fuse-seeds {option}: give an integer K >= 1, or auto")
    note = ""
    if value == "auto":
        if remote:
            raise OptionError("--fuse-seeds auto probes this machine's device; with --ray or --slurm give K")
        from ablate.bench import choose_fuse

        choice = choose_fuse(exp.baseline, exp.train, device, seeds=len(exp.seeds))
        value, note = choice.k, choice.note
    return dataclasses.replace(exp, train=dataclasses.replace(exp.train, fuse_seeds=value)), note


def check_until_precise(points: Optional[float]) -> None:
    """``--until-precise``: a positive, finite number of percentage points."""
    if points is not None and not (math.isfinite(points) and points > 0):
        raise OptionError(
            f"--until-precise {points:g}: expected a number of percentage points > 0, e.g. --until-precise 2"
        )


def adaptive_plan(
    exp: Experiment,
    until_precise: Optional[float],
    pilot: Optional[int],
    until_decided: bool,
    looks: Optional[str],
    max_seeds: Optional[int],
) -> Optional[dict[str, Any]]:
    """The adaptive design the options ask for, as keyword arguments of ``run_adaptively`` (None:
    a plain run)."""
    from ablate.config import SEED_MAX

    if until_precise is not None and until_decided:
        raise OptionError("--until-precise and --until-decided are two designs; choose one")
    if until_precise is None and not until_decided:
        for given, name in ((pilot, "--pilot"), (max_seeds, "--max-seeds")):
            if given is not None:
                raise OptionError(f"{name} goes with --until-precise or --until-decided")
        if looks is not None:
            raise OptionError("--looks goes with --until-decided")
        return None
    from ablate.analysis import (
        adaptive as ad,
    )  # here: its statistics take a second to import, which a plain run need not pay

    if max_seeds is not None and max_seeds > ad.MAX_SEEDS_LIMIT:
        raise OptionError(f"--max-seeds {max_seeds}: at most {ad.MAX_SEEDS_LIMIT} seeds per variant")
    if until_precise is not None:
        if looks is not None:
            raise OptionError("--looks goes with --until-decided, not --until-precise")
        m = max_seeds if max_seeds is not None else ad.DEFAULT_MAX_SEEDS
        if pilot is not None and not 2 <= pilot <= m:
            raise OptionError(f"--pilot {pilot}: expected 2..{m} seeds (at most --max-seeds)")
        n0 = pilot if pilot is not None else min(max(len(exp.seeds), ad.DEFAULT_PILOT), m)
        plan: dict[str, Any] = {"design": ad.STEIN, "precision": until_precise, "pilot": n0, "max_seeds": m}
    else:
        if pilot is not None:
            raise OptionError("--pilot goes with --until-precise, not --until-decided")
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


@dataclass(frozen=True)
class ExecutorRequest:
    """Where ``ablate run``'s options ask the cells to go, as typed (built once from them)."""

    device: str = "auto"  # --device as given: auto | cpu | cuda | cuda:N
    workers: str | None = None  # --workers N | auto (None: one, in this process)
    devices: str | None = None  # --devices cuda:0,cuda:2 | cpu
    per_device: int = 1  # --workers-per-device
    threads: int | None = None  # --threads
    ray: str | None = None  # --ray auto | ADDRESS | local
    slurm: bool = False  # --slurm, with the options below
    partition: str | None = None
    tasks: int | None = None
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    time_limit: str = "60"
    slurm_opt: tuple[str, ...] = ()
    wait: bool = False


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


def slurm_options(request: ExecutorRequest, *, adaptive: bool) -> Any:
    """The checked options of ``run --slurm`` as the Slurm executor's ``SlurmOptions`` (None
    without --slurm), the cluster asked whether it can run them; Slurm's own complaints are
    ``SlurmError``. Checked before the experiment's data is loaded: no sbatch, no partition = one
    line now."""
    slurm_only = {
        "--partition": request.partition,
        "--tasks": request.tasks,
        "--gpus-per-task": request.gpus_per_task or None,
        "--slurm-opt": request.slurm_opt or None,
        "--wait": request.wait or None,
        "--cpus-per-task": request.cpus_per_task if request.cpus_per_task != 1 else None,
        "--time": request.time_limit if request.time_limit != "60" else None,
    }
    if not request.slurm:
        given = [k for k, v in slurm_only.items() if v is not None]
        if given:
            raise OptionError(f"{given[0]} is an option of --slurm; add --slurm (or leave {given[0]} out)")
        return None
    for flag, value in (("--ray", request.ray), ("--workers", request.workers), ("--devices", request.devices)):
        if value is not None:
            raise OptionError(f"--slurm and {flag} choose two executors; with --slurm, --tasks N sets the workers")
    if adaptive and not request.wait:
        raise OptionError(
            "--until-precise or --until-decided with --slurm needs --wait (each round of seeds waits for the one "
            "before)"
        )
    from ablate.execute.slurm.cluster import SlurmOptions, check_cluster, parse_slurm_opts, parse_time

    options = SlurmOptions(
        tasks=request.tasks,
        partition=request.partition,
        gpus_per_task=request.gpus_per_task,
        cpus_per_task=request.cpus_per_task,
        time_min=parse_time(request.time_limit),
        per_device=request.per_device,
        extra=parse_slurm_opts(list(request.slurm_opt)),
        wait=request.wait,
    )
    check_cluster(options)
    return options


def choose_executor(request: ExecutorRequest, dev: torch.device, slurm: Any) -> tuple[str, Any]:
    """The row of ``execute.executors.EXECUTORS`` the options ask for, and where its cells go, in
    that row's own type: ``slurm`` (from :func:`slurm_options`), a ``RayOptions``, the local
    workers' slots, or ``dev`` (this process); bad worker or device settings are ``PoolError``."""
    from ablate.execute.local import parse_devices, plan_slots

    if slurm is not None:
        return "slurm", slurm
    if request.ray is not None:
        from ablate.execute.ray import RayOptions

        return "ray", RayOptions(request.ray, request.per_device)
    n_workers = workers_option(request.workers)
    if n_workers not in (None, 1) or request.workers == "auto" or request.devices is not None or request.per_device > 1:
        device_list = parse_devices(request.devices) or (
            [f"cuda:{i}" for i in range(torch.cuda.device_count())]
            if dev.type == "cuda" and request.device in ("auto", "cuda")
            else [str(dev)]
        )
        slots = plan_slots(device_list, n_workers, request.per_device, request.threads)
        if len(slots) > 1 or slots[0].device != str(dev):  # one worker on this device: train in this process
            return "local", slots
    return "in-process", dev
