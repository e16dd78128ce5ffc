"""The options only ``ablate run`` takes, declared for typer in the groups its help shows them in:
data and training, executors, Slurm, adaptive seeds, output. How they combine is checked in
``run_checks``; this module only declares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ablate.cli.options import ExperimentFile, device_option, max_cells_option, results_option, set_option

# The groups of `ablate run --help`, in the order they are listed.
DATA = "Data and training"
EXECUTORS = "Executors"
SLURM = "Slurm"
ADAPTIVE = "Adaptive seeds"
OUTPUT = "Output"

RunExperimentFile = ExperimentFile
RunSetOption = Annotated[List[str], set_option(DATA)]
RunDeviceOption = Annotated[str, device_option(DATA)]
RunMaxCellsOption = Annotated[int, max_cells_option(DATA)]
RunResultsOption = Annotated[Path, results_option(OUTPUT)]

ForceOption = Annotated[
    bool, typer.Option("--force", help="Rerun cells that already have a finished result.", rich_help_panel=OUTPUT)
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print the cells that would run, train nothing.", rich_help_panel=OUTPUT)
]
LimitOption = Annotated[
    Optional[int],
    typer.Option("--limit", min=1, help="Run at most this many cells now; rerun to continue.", rich_help_panel=OUTPUT),
]
WorkersPerDeviceOption = Annotated[
    int,
    typer.Option(
        "--workers-per-device",
        min=1,
        metavar="K",
        help="Workers sharing each GPU (small models leave a GPU idle).",
        rich_help_panel=EXECUTORS,
    ),
]
SlurmOption = Annotated[
    bool,
    typer.Option(
        "--slurm",
        help="Submit the cells as one Slurm job array; each array task claims cells until none is left (needs "
        "ablate[slurm]).",
        rich_help_panel=SLURM,
    ),
]
PartitionOption = Annotated[
    Optional[str],
    typer.Option(
        "--partition",
        metavar="NAME",
        help="With --slurm: the partition (default: the cluster's default).",
        rich_help_panel=SLURM,
    ),
]
TasksOption = Annotated[
    Optional[int],
    typer.Option(
        "--tasks",
        min=1,
        metavar="N",
        help="With --slurm: array tasks, i.e. workers (default: one per cell to do, at most 8).",
        rich_help_panel=SLURM,
    ),
]
GpusPerTaskOption = Annotated[
    int,
    typer.Option(
        "--gpus-per-task",
        min=0,
        metavar="G",
        help="With --slurm: GPUs per array task (0: train on CPUs).",
        rich_help_panel=SLURM,
    ),
]
CpusPerTaskOption = Annotated[
    int,
    typer.Option(
        "--cpus-per-task",
        min=1,
        metavar="C",
        help="With --slurm: CPUs per worker process (its torch threads).",
        rich_help_panel=SLURM,
    ),
]
TimeOption = Annotated[
    str,
    typer.Option(
        "--time",
        metavar="TIME",
        help="With --slurm: time limit per array task, minutes or Slurm's 1:30:00 / 2-00:00:00; checkpointed and "
        "requeued when it runs out.",
        rich_help_panel=SLURM,
    ),
]
SlurmOptOption = Annotated[
    List[str],
    typer.Option(
        "--slurm-opt",
        metavar="KEY=VALUE",
        help="With --slurm: any other sbatch option, e.g. --slurm-opt account=mylab (repeatable).",
        rich_help_panel=SLURM,
    ),
]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="With --slurm: wait for the cells and print the summary (default: return once submitted).",
        rich_help_panel=SLURM,
    ),
]
MaxRetriesOption = Annotated[
    int,
    typer.Option(
        "--max-retries",
        min=0,
        help="Retries of a cell whose worker process died (killed, crashed).",
        rich_help_panel=EXECUTORS,
    ),
]
KeepCheckpointsOption = Annotated[
    bool,
    typer.Option(
        "--keep-checkpoints",
        help="Keep each finished cell's last checkpoint (its final weights).",
        rich_help_panel=OUTPUT,
    ),
]


NoCacheOption = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Decode datasets from their files again, without reading or writing the cache.",
        rich_help_panel=DATA,
    ),
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
        rich_help_panel=EXECUTORS,
    ),
]
DevicesOption = Annotated[
    Optional[str],
    typer.Option(
        "--devices",
        metavar="LIST",
        help=("Devices for the workers, e.g. cuda:0,cuda:2 or cpu (default: every GPU, else cpu)."),
        rich_help_panel=EXECUTORS,
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
        rich_help_panel=EXECUTORS,
    ),
]
FuseSeedsOption = Annotated[
    Optional[str],
    typer.Option(
        "--fuse-seeds",
        metavar="K|auto",
        help=(
            "Train up to K seeds of a variant as one fused model (each seed as it trains alone; fills a GPU one "
            "small model leaves idle); auto = K from a short probe of this machine's device. Default: "
            "[train] fuse_seeds (1)."
        ),
        rich_help_panel=EXECUTORS,
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
        rich_help_panel=EXECUTORS,
    ),
]
# The adaptive designs (docs/report.md); adaptive_plan below checks how they combine.
UntilPreciseOption = Annotated[
    Optional[float],
    typer.Option(
        "--until-precise",
        metavar="POINTS",
        help=(
            "Stein's two-stage design: a pilot of seeds, then each variant gets the seeds its 95% interval needs to be "
            "within ±POINTS percentage points of validation accuracy (see docs/report.md)."
        ),
        rich_help_panel=ADAPTIVE,
    ),
]
PilotOption = Annotated[
    Optional[int],
    typer.Option(
        "--pilot",
        metavar="N",
        help=("With --until-precise: seeds in the pilot (default: the experiment's seeds, at least 10)."),
        rich_help_panel=ADAPTIVE,
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
        rich_help_panel=ADAPTIVE,
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
        rich_help_panel=ADAPTIVE,
    ),
]
MaxSeedsOption = Annotated[
    Optional[int],
    typer.Option(
        "--max-seeds",
        min=2,
        metavar="M",
        help=("With --until-precise or --until-decided: at most this many seeds per variant (default 20)."),
        rich_help_panel=ADAPTIVE,
    ),
]
NewDesignOption = Annotated[
    bool,
    typer.Option(
        "--new-design",
        help=(
            "Run a design other than the one the results folder holds (other --looks, --until-precise settings, the "
            "other design, or fixed seeds after an adaptive one), which is refused without it: rerunning a design "
            "until it says something else voids its error rate, and the report will say that it changed."
        ),
        rich_help_panel=ADAPTIVE,
    ),
]
