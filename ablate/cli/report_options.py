"""The options of ``ablate report`` and ``ablate export``, the two commands that read finished
results and write under ``--out``: declared for typer, and the check that ``--out`` can be written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ablate.cli.console import fail
from ablate.store.folder import StoreError, check_writable

ReportNames = Annotated[
    Optional[List[str]],
    typer.Argument(
        metavar="[EXPERIMENT]...", help="Experiments to report on (default: every experiment under --results)."
    ),
]
ReportOutOption = Annotated[
    Path, typer.Option("--out", help="Reports go to OUT/<experiment>/ (README.md, CSVs, PNGs).")
]
BaselineOption = Annotated[
    Optional[str],
    typer.Option(
        "--baseline",
        metavar="VARIANT",
        help="Variant slug to compare against (default: the experiment's [model]).",
    ),
]
TargetAccOption = Annotated[
    Optional[float],
    typer.Option(
        "--target-acc",
        metavar="X",
        help="Also report epochs/time to reach this validation accuracy (0-1, e.g. 0.6).",
    ),
]
TargetTrainErrorOption = Annotated[
    float,
    typer.Option(
        "--target-train-error",
        metavar="E",
        help="Training error for epochs/time to target (0-1; the paper's 0.25).",
    ),
]
EffectOption = Annotated[
    Optional[float],
    typer.Option(
        "--effect",
        metavar="POINTS",
        help="Difference (percentage points) each comparison should detect: seeds "
        "needed for 80% power (default: the paper's effect where a comparison matches one of its claims, else 1).",
    ),
]
CiOption = Annotated[
    str,
    typer.Option(
        "--ci",
        metavar="t|bootstrap",
        help="Interval shown: t (Student's t) or bootstrap (BCa, paired; for "
        "metrics far from normal). Verdicts always come from the Holm-adjusted paired t-test.",
    ),
]
ReportForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Re-render every report, also those whose run files, ablate version and options are unchanged since "
        "they were written (their stamp, OUT/<experiment>/.report-stamp.json, says so; such reports are skipped).",
    ),
]
ExportNames = Annotated[
    Optional[List[str]],
    typer.Argument(
        metavar="[EXPERIMENT]...", help="Experiments to export (default: every experiment under --results)."
    ),
]
ExportOutOption = Annotated[
    Path,
    typer.Option("--out", help="TensorBoard log folder: one run per ablate run, OUT/<experiment>/<variant>/seed<k>/."),
]
FollowOption = Annotated[
    bool,
    typer.Option(
        "--follow",
        help="Keep watching the results folder and mirror new epochs and finished runs as their files "
        "appear (any executor: local workers, Ray, Slurm); Ctrl-C stops.",
    ),
]
IntervalOption = Annotated[
    float,
    typer.Option("--interval", min=0.1, metavar="SECONDS", help="With --follow: seconds between looks."),
]
TrackingUriOption = Annotated[
    str,
    typer.Option(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI: a database (sqlite:///mlflow.db, MLflow's default) or a server (http://host:5000).",
    ),
]
ReportsOption = Annotated[
    Path,
    typer.Option(
        "--reports",
        metavar="DIR",
        help="Where 'ablate report' wrote: DIR/<experiment>/ is logged as artifacts of a study run, when it exists.",
    ),
]
ProjectOption = Annotated[str, typer.Option("--project", metavar="P", help="W&B project.")]
ModeOption = Annotated[
    Optional[str],
    typer.Option(
        "--mode",
        metavar="offline|online",
        help="offline: run folders under DIR/wandb/ that 'wandb sync' uploads later (the default without "
        "an API key: WANDB_API_KEY or 'wandb login'); online: straight to the W&B server.",
    ),
]
WandbDirOption = Annotated[
    Path, typer.Option("--dir", metavar="DIR", help="W&B's local folder: run folders go to DIR/wandb/.")
]


def check_out(out: Path) -> None:
    """Before any result is read: an unwritable ``--out`` ends the command now, in one line (the
    store's message names ``--results``, the folder it usually checks)."""
    try:
        check_writable(out)
    except StoreError as e:
        raise fail(str(e).replace("--results", "--out")) from None
