"""The options only ``ablate run`` takes, declared for typer: what to train now, how workers share
GPUs, ``--slurm`` and its resources, retries and checkpoints.

The options several commands share (``--device``, ``--results``, the executor choice, the adaptive
designs) and the checks of how options combine are in ``options``; this module only declares.
"""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

ForceOption = Annotated[bool, typer.Option("--force", help="Rerun cells that already have a finished result.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the cells that would run, train nothing.")]
LimitOption = Annotated[
    Optional[int], typer.Option("--limit", min=1, help="Run at most this many cells now; rerun to continue.")
]
WorkersPerDeviceOption = Annotated[
    int,
    typer.Option(
        "--workers-per-device", min=1, metavar="K", help="Workers sharing each GPU (small models leave a GPU idle)."
    ),
]
SlurmOption = Annotated[
    bool,
    typer.Option(
        "--slurm",
        help="Submit the cells as one Slurm job array; each array task claims cells until none is left (needs "
        "ablate[slurm]).",
    ),
]
PartitionOption = Annotated[
    Optional[str],
    typer.Option("--partition", metavar="NAME", help="With --slurm: the partition (default: the cluster's default)."),
]
TasksOption = Annotated[
    Optional[int],
    typer.Option(
        "--tasks",
        min=1,
        metavar="N",
        help="With --slurm: array tasks, i.e. workers (default: one per cell to do, at most 8).",
    ),
]
GpusPerTaskOption = Annotated[
    int,
    typer.Option("--gpus-per-task", min=0, metavar="G", help="With --slurm: GPUs per array task (0: train on CPUs)."),
]
CpusPerTaskOption = Annotated[
    int,
    typer.Option(
        "--cpus-per-task", min=1, metavar="C", help="With --slurm: CPUs per worker process (its torch threads)."
    ),
]
TimeOption = Annotated[
    str,
    typer.Option(
        "--time",
        metavar="TIME",
        help="With --slurm: time limit per array task, minutes or Slurm's 1:30:00 / 2-00:00:00; checkpointed and "
        "requeued when it runs out.",
    ),
]
SlurmOptOption = Annotated[
    List[str],
    typer.Option(
        "--slurm-opt",
        metavar="KEY=VALUE",
        help="With --slurm: any other sbatch option, e.g. --slurm-opt account=mylab (repeatable).",
    ),
]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", help="With --slurm: wait for the cells and print the summary (default: return once submitted)."
    ),
]
MaxRetriesOption = Annotated[
    int,
    typer.Option("--max-retries", min=0, help="Retries of a cell whose worker process died (killed, crashed)."),
]
KeepCheckpointsOption = Annotated[
    bool,
    typer.Option("--keep-checkpoints", help="Keep each finished cell's last checkpoint (its final weights)."),
]
