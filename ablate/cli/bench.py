"""``ablate bench``: its options, declared for typer, the command, and the measuring run (progress,
saving, the table of speeds) once the options are checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer
from rich.markup import escape

from ablate.cli.console import console, err, fail, progress_bar
from ablate.cli.options import DeviceOption, OptionError, ResultsOption, split_list
from ablate.cli.render import bench_table
from ablate.experiment.errors import ExperimentError
from ablate.runtime.device import DeviceError, resolve_device

BenchTargets = Annotated[
    Optional[List[str]],
    typer.Argument(
        metavar="[FILE.toml | PATTERN]...",
        help="Experiment files (their variants) or shell patterns on variant slugs, e.g. 'relu-*-lrn-*'. "
        "Default: the alexnet65 baseline and each single-axis change of it.",
    ),
]
BatchSizeOption = Annotated[
    List[str],
    typer.Option(
        "--batch-size", "-b", help="Batch sizes, repeatable or comma-separated (default 32 on CPU, 256 on CUDA)."
    ),
]
BenchPrecisionOption = Annotated[
    List[str],
    typer.Option("--precision", help="auto | fp32 | bf16 | fp16, repeatable or comma-separated (default auto)."),
]
ModeOption = Annotated[
    List[str], typer.Option("--mode", help="train | infer, repeatable or comma-separated (default both).")
]
WarmupOption = Annotated[
    Optional[int], typer.Option(min=0, help="Untimed steps per case (default 2 on CPU, 10 on CUDA).")
]
StepsOption = Annotated[
    Optional[int], typer.Option(min=1, help="Steps per timed repeat (default 3 on CPU, 20 on CUDA).")
]
RepeatsOption = Annotated[
    Optional[int], typer.Option(min=1, help="Timed repeats; the median is reported (default 3 on CPU, 5 on CUDA).")
]
ChannelsLastOption = Annotated[
    bool, typer.Option("--channels-last/--no-channels-last", help="NHWC layout, as training uses by default.")
]
CompileOption = Annotated[str, typer.Option("--compile", help="torch.compile mode: off | default | max-autotune.")]
FuseOption = Annotated[
    List[str],
    typer.Option(
        "--fuse",
        metavar="K,...|auto",
        help="Seeds fused into one model, e.g. 1,2,4,8 (default 1): images/s of all members and of one; or auto: the "
        'K that fuse_seeds = "auto" picks by its short probe (train mode).',
    ),
]


def measure(variants: list[Any], dev: Any, settings: Any, results: Path) -> None:
    """Time every case of ``variants`` x ``settings`` on ``dev`` with a progress bar, save the rows
    under ``results`` and print them; exits 1 when a case failed, 130 (nothing saved) on Ctrl-C."""
    from ablate.bench import run_bench, save_bench

    cases = (
        len(variants) * len(settings.batch_sizes) * len(settings.precisions) * len(settings.modes) * len(settings.fuse)
    )
    console.print(
        f"[bold]bench[/]: {len(variants)} variant(s), {cases} case(s) on {dev}; warm-up {settings.warmup}, "
        f"{settings.repeats} x {settings.steps} timed steps per case",
        highlight=False,
    )
    try:
        with progress_bar() as progress:
            task = progress.add_task("cases", total=cases)

            def on_case(row: dict[str, Any], index: int, total: int) -> None:
                fused = f" · K={row['fuse']}" if row["fuse"] > 1 else ""
                progress.update(
                    task, advance=1, description=f"{row['slug']} · {row['mode']} · b{row['batch_size']}{fused}"
                )

            rows = run_bench(variants, dev, settings, on_case)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: nothing saved.")
        raise typer.Exit(130) from None
    json_path, csv_path = save_bench(rows, dev, settings, results)

    console.print(bench_table(rows, dev, settings.repeats))
    if len(settings.fuse) > 1:
        for choice in _auto_choices(rows):
            console.print(f"{escape(choice)}", highlight=False)
    console.print(f"saved {escape(str(json_path))} and {escape(str(csv_path))}", highlight=False)
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        raise fail(f"{len(failed)} of {len(rows)} case(s) failed; their errors are recorded in {json_path}", code=1)


def _auto_choices(rows: list[dict[str, Any]]) -> list[str]:
    """What ``fuse_seeds = "auto"`` takes from these measurements, per variant, precision and batch."""
    from ablate.bench import pick_fuse

    cases: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        if r["mode"] == "train":
            cases.setdefault((r["slug"], r["precision"], r["batch_size"]), []).append(r)
    return [
        f"{slug} {precision} batch {batch}: {pick_fuse(part).note}" for (slug, precision, batch), part in cases.items()
    ]


def probe_fuse(variants: list[Any], dev: Any, settings: Any, results: Path) -> None:
    """``--fuse auto``: for each variant, precision and batch size, the probe ``fuse_seeds = "auto"``
    runs and the K it picks (one line each); the probe's rows are saved like any bench rows."""
    import dataclasses

    from ablate.bench import choose_fuse, probe_settings, save_bench
    from ablate.config import TrainConfig

    rows: list[dict[str, Any]] = []
    try:
        with progress_bar() as progress:
            task = progress.add_task("probe", total=None)
            for variant in variants:
                for batch in settings.batch_sizes:
                    for precision in settings.precisions:
                        train = TrainConfig(
                            batch_size=batch,
                            precision=precision,
                            channels_last=settings.channels_last,
                            compile=settings.compile,
                            optimizer=settings.optimizer,
                        )

                        def on_case(row: dict[str, Any]) -> None:
                            progress.update(task, description=f"{row['slug']} · b{row['batch_size']} · K={row['fuse']}")

                        choice = choose_fuse(variant, train, dev, settings.num_classes, on_case=on_case)
                        rows += choice.rows
                        console.print(f"{escape(variant.slug())} batch {batch}: {escape(choice.note)}", highlight=False)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: nothing saved.")
        raise typer.Exit(130) from None
    probe = dataclasses.replace(
        probe_settings(train, dev),
        batch_sizes=settings.batch_sizes,
        precisions=settings.precisions,
        fuse=tuple(sorted({r["fuse"] for r in rows})),
    )
    json_path, csv_path = save_bench(rows, dev, probe, results)
    console.print(bench_table(rows, dev, probe.repeats))
    console.print(f"saved {escape(str(json_path))} and {escape(str(csv_path))}", highlight=False)


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
    fuse: FuseOption = [],  # noqa: B006
    results: ResultsOption = Path("results"),
) -> None:
    """Steady-state speed of variants: train-step and inference images/s, step time, peak memory, params, FLOPs."""
    from ablate.bench import BenchError, default_settings, select_variants

    auto = split_list(fuse, "--fuse") == ("auto",)
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
            fuse=None if auto else split_list(fuse, "--fuse", int),
        )
    except (BenchError, DeviceError, ExperimentError, OptionError) as e:
        raise fail(str(e)) from None
    if auto:
        probe_fuse(variants, dev, settings, results)
    else:
        measure(variants, dev, settings, results)
