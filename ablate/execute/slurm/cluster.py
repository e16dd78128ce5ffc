"""What ``--slurm`` asks of Slurm, checked before anything is submitted: the array tasks' settings
(``SlurmOptions``), ``--time`` and ``--slurm-opt`` parsed, the cluster asked whether it can take the
job, and what a submission hands back (``Submission``).

Apart from :mod:`ablate.execute.slurm.array` (the array tasks' worker, submission and waiting) so that
the command line checks its options without importing training, and the executor stays one layer
above the runner.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.execute.errors import ExecutorError, import_extra

# Array tasks when --tasks is not given: one per cell to do, at most this many.
DEFAULT_MAX_TASKS = 8
# Slurm warns each task this long before its time limit (sbatch --signal, submitit's signal_delay_s),
# and the task then has to checkpoint and requeue itself (STOP_WAIT_S in array.py).
SIGNAL_DELAY_S = 90
# The shortest --time that leaves a task time to train after it starts and before that warning.
MIN_TIME_MIN = -(-(SIGNAL_DELAY_S + 60) // 60)  # 3 minutes
# How long sbatch and squeue may take to answer before the controller counts as unreachable.
SBATCH_TIMEOUT_S = 120


class SlurmError(ExecutorError, RuntimeError):
    """Slurm or submitit missing, a bad option, a refused submission; ``str()`` is one line."""


@dataclass(frozen=True)
class SlurmOptions:
    """What each array task asks Slurm for, and whether the driver waits for the job."""

    tasks: int | None = (
        None  # array tasks = workers, each claims cells until none is left (None: one per cell, at most 8)
    )
    partition: str | None = None  # None: the cluster's default partition
    gpus_per_task: int = 0  # GPUs per array task
    cpus_per_task: int = 1  # CPUs per worker process (its torch threads)
    time_min: int = 60  # time limit of each array task, minutes
    per_device: int = 1  # workers sharing each GPU (--workers-per-device): processes per array task
    extra: dict[str, Any] = field(default_factory=dict)  # --slurm-opt key=value, passed to sbatch as is
    wait: bool = False  # the driver follows the job to the end (--wait) instead of returning once submitted

    @property
    def processes(self) -> int:
        """Worker processes (Slurm tasks of one step) per array task: K per GPU, or K on CPUs."""
        return max(1, self.gpus_per_task) * self.per_device


def parse_time(text: str) -> int:
    """A Slurm time limit in whole minutes (rounded up): ``90``, ``45:30`` (min:s), ``1:30:00``,
    ``2-00``, ``2-12:00``, ``2-12:00:00`` (days-hours[:min[:s]])."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise SlurmError(f"--time {text}: expected minutes or a Slurm time such as 90, 1:30:00 or 2-00:00:00")
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    if days is not None:  # days-hours[:minutes[:seconds]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # hours:minutes:seconds
        seconds = a * 3600 + b * 60 + c
    elif b is not None:  # minutes:seconds
        seconds = a * 60 + b
    else:
        seconds = a * 60
    if seconds <= 0:
        raise SlurmError(f"--time {text}: expected a time limit above zero")
    minutes = -(-seconds // 60)
    if minutes < MIN_TIME_MIN:
        raise SlurmError(
            f"--time {text}: Slurm warns each task {SIGNAL_DELAY_S} s before its time limit to checkpoint and "
            f"requeue, so a task this short would be stopped soon after every start; give at least --time "
            f"{MIN_TIME_MIN}"
        )
    return minutes


def parse_slurm_opts(values: list[str]) -> dict[str, Any]:
    """``["account=lab", "qos=high", "exclusive"]`` -> sbatch parameters (a bare key is a flag)."""
    out: dict[str, Any] = {}
    for value in values:
        key, eq, val = value.partition("=")
        key = key.strip().lstrip("-")
        if not re.fullmatch(r"[A-Za-z][\w-]*", key) or (eq and not val.strip()):
            raise SlurmError(
                f"--slurm-opt {value}: expected KEY=VALUE (an sbatch option without its dashes, "
                "e.g. --slurm-opt account=mylab --slurm-opt qos=high) or a bare flag such as exclusive"
            )
        out[key.replace("-", "_")] = val.strip() if eq else True
    return out


def submitit_module() -> Any:
    """submitit, or a one-line ``SlurmError`` saying how to install it."""
    return import_extra("submitit", SlurmError, "--slurm needs submitit", "slurm")


def check_cluster(options: SlurmOptions) -> None:
    """Fail in one line before anything is loaded when Slurm cannot take the job: no ``sbatch``,
    no answer from the controller, or a partition it does not have."""
    for tool in ("sbatch", "squeue", "sinfo"):
        if shutil.which(tool) is None:
            raise SlurmError(
                f"--slurm needs Slurm's {tool}, which is not on PATH; run on a Slurm login node "
                "(or start a test cluster with tests/slurm/start.sh)"
            )
    submitit_module()
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise SlurmError("sinfo did not answer within 30 s; is slurmctld up? (scontrol ping)") from None
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SlurmError(f"Slurm does not answer (sinfo: {why}); is slurmctld up? (scontrol ping)")
    partitions = [p.rstrip("*") for p in out.stdout.split()]
    if options.partition is not None and options.partition not in partitions:
        raise SlurmError(
            f"--partition {options.partition}: no such Slurm partition; this cluster has "
            f"{', '.join(partitions) or 'none'}"
        )
    _check_size(options)


def _check_size(options: SlurmOptions) -> None:
    """Refuse a task larger than any node of its partition: Slurm would leave it pending for ever
    (or, on some clusters, refuse it only after a long wait). Nodes as ``sinfo`` lists them: CPUs
    and GPUs (``gpu`` generic resources) per node."""
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%P|%c|%G"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return  # the partition check above got an answer; sizes stay Slurm's to judge
    nodes = [line.split("|", 2) for line in out.stdout.splitlines() if line.count("|") == 2]
    default = next((p.rstrip("*") for p, _, _ in nodes if p.endswith("*")), None)
    partition = options.partition or default
    mine = [(int(c), _gpus(g)) for p, c, g in nodes if p.rstrip("*") == partition and c.strip().isdigit()]
    if out.returncode != 0 or not mine:
        return
    cpus = options.cpus_per_task * options.processes
    most_cpus, most_gpus = max(c for c, _ in mine), max(g for _, g in mine)
    where = f"partition {partition}" if options.partition else f"the default partition ({partition})"
    if cpus > most_cpus:
        ask = f"--cpus-per-task {options.cpus_per_task}" + (
            f" x {options.processes} processes" if options.processes > 1 else ""
        )
        raise SlurmError(
            f"{ask} = {cpus} CPUs per array task, but the largest node of {where} has {most_cpus} (sinfo); "
            "ask for fewer, or choose another --partition"
        )
    if options.gpus_per_task > most_gpus:
        raise SlurmError(
            f"--gpus-per-task {options.gpus_per_task}: the nodes of {where} have at most {most_gpus} GPU(s) (sinfo); "
            "ask for fewer, or choose another --partition"
        )


def _gpus(gres: str) -> int:
    """GPUs in a node's generic resources as sinfo prints them (``gpu:4``, ``gpu:a100:2(S:0-1)``)."""
    return sum(int(n) for n in re.findall(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)", gres))


@dataclass(frozen=True)
class Submission:
    """A submitted array job: what the user needs to follow it."""

    job_id: str
    tasks: int
    folder: Path  # submitit's logs and pickles: results/<exp>/slurm/
    cells: int
