"""``ablate plan FILE``: before paying for a study, what it will cost and what it can detect.

The command checks its options, measures the cells' costs with a short probe on the device they
will train on (:mod:`ablate.bench.probe`; :mod:`ablate.bench.estimate` turns them into time), works
out what the planned comparisons can detect from a noise estimate (:mod:`ablate.analysis.planning`),
prints one screen and stores everything as ``<results>/<experiment>/plan.json``
(:func:`ablate.store.folder.write_plan`). ``ablate run`` reads the plan for its first line
(:func:`planned_time_text`).
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ablate.cli.console import console, err, fail
from ablate.cli.load import load
from ablate.cli.options import OptionError, device_option, max_cells_option, results_option, set_option
from ablate.cli.run_checks import ExecutorRequest, adaptive_plan, check_until_precise, choose_executor
from ablate.cli.run_options import LooksOption, MaxSeedsOption, PilotOption, UntilPreciseOption
from ablate.experiment.experiment import MAX_CELLS, Experiment
from ablate.store.folder import PLAN_KIND, StoreError, read_plan, write_plan

PlanFile = Annotated[Path, typer.Argument(metavar="FILE", help="Experiment file (TOML).")]
EffectOption = Annotated[
    Optional[str],
    typer.Option(
        "--effect",
        metavar="POINTS",
        help="The difference (percentage points of validation accuracy) the study should detect: power, and the "
        "seeds it needs at 80% power (default 1).",
    ),
]
NoiseFromOption = Annotated[
    Optional[str],
    typer.Option(
        "--noise-from",
        metavar="EXPERIMENT|DIR",
        help="Finished runs to take the seed-to-seed noise from: an experiment under --results, or its results "
        "folder (default: a stated guess).",
    ),
]
PlanWorkersOption = Annotated[
    Optional[str],
    typer.Option(
        "--workers", "-w", metavar="N|auto", help="Cells at once, each in its own process, as ablate run --workers."
    ),
]
NoBenchOption = Annotated[
    bool,
    typer.Option("--no-bench", help="Time the steps with the probe even where ablate bench results cover them."),
]


def parse_effect(text: Optional[str]) -> Optional[float]:
    """``--effect``: a positive, finite number of points (typer's own float parsing would print a
    usage box, not one line)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"--effect {text}: expected a number of percentage points > 0, e.g. --effect 0.5") from None
    if not (math.isfinite(value) and 0 < value < 100):
        raise OptionError(f"--effect {text}: expected percentage points between 0 and 100 (not 0), e.g. --effect 0.5")
    return value


def noise_folder(spec: str, results: Path) -> tuple[Path, str]:
    """``--noise-from``: (results root, experiment name) of a finished experiment, named or given
    as its folder."""
    from ablate.store.folder import experiments

    path = Path(spec)
    if (path / "runs").is_dir():
        return path.parent, path.name
    if (results / spec / "runs").is_dir():
        return results, spec
    known = experiments(results)
    raise OptionError(
        f"--noise-from {spec}: no finished runs there (no {path / 'runs'} and no {results / spec / 'runs'}); "
        + (f"experiments under {results}: {', '.join(known)}" if known else f"no experiments under {results}")
    )


def cells_fingerprint(exp: Experiment) -> str:
    """What identifies the planned cells: a hash of their run ids (``ablate run`` compares it)."""
    return hashlib.sha256(",".join(c.run_id for c in exp.cells()).encode()).hexdigest()[:16]


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def planned_time_text(results: Path, exp: Experiment) -> str:
    """``ablate run``'s note of the plan: its predicted wall time, or that it is for other cells ("" without a plan)."""
    planned = read_plan(results, exp.name)
    if planned is None:
        return ""
    if planned.get("cells", {}).get("fingerprint") != cells_fingerprint(exp):
        return " · plan.json is for other cells (rerun ablate plan)"
    time = planned.get("time") or {}
    wall = time.get("wall_s")
    if not isinstance(wall, (int, float)):
        return ""
    return f" · plan: {duration(float(wall))} ({escape(str(time.get('executor', '')))})"


def plan(
    file: PlanFile,
    set_: Annotated[list[str], set_option()] = [],  # noqa: B006 - typer copies defaults
    effect: EffectOption = None,
    noise_from: NoiseFromOption = None,
    device: Annotated[str, device_option()] = "auto",
    workers: PlanWorkersOption = None,
    until_precise: UntilPreciseOption = None,
    pilot: PilotOption = None,
    looks: LooksOption = None,
    max_seeds: MaxSeedsOption = None,
    no_bench: NoBenchOption = False,
    results: Annotated[Path, results_option()] = Path("results"),
    max_cells: Annotated[int, max_cells_option()] = MAX_CELLS,
) -> None:
    """Predict a study's time (a short probe on its device) and what it can detect (MDD, seeds needed, adaptive
    designs' cost); writes <results>/<experiment>/plan.json."""
    from ablate.analysis import ReportError, load_experiment_data, planning
    from ablate.analysis import adaptive as ad
    from ablate.bench.estimate import study_time
    from ablate.bench.probe import ProbeError, probe
    from ablate.data import DataError
    from ablate.execute.errors import ExecutorError

    try:
        points = parse_effect(effect)
        check_until_precise(until_precise)
        exp, dev = load(file, set_, device, max_cells)
        where_name, where = choose_executor(ExecutorRequest(device=device, workers=workers), dev, None)
        seq = None
        if looks is not None or len(exp.seeds) >= 3:
            seq = adaptive_plan(exp, None, None, True, looks, max_seeds)
        stein = adaptive_plan(exp, until_precise or points or planning.DEFAULT_EFFECT, pilot, False, None, max_seeds)
        if noise_from is not None:
            root, name = noise_folder(noise_from, results)
            source = str(root / name)
            noise = planning.noise_from_data(load_experiment_data(root, name), source)
        else:
            noise = planning.default_noise(planning.experiment_analysis(exp))
        planning.check_noise(noise, exp)
    except (OptionError, ExecutorError, ReportError, planning.PlanError) as e:
        raise fail(str(e)) from None
    slots = where if where_name == "local" else None
    threads = slots[0].threads if slots else None
    n_workers = len(slots) if slots else 1
    executor = (
        f"{n_workers} local workers on {slots[0].device}" + (f", {threads} thread(s) each" if dev.type == "cpu" else "")
        if slots
        else f"in-process on {dev}"
    )
    with console.status("planning: the statistics", spinner="dots") as status:
        detection = planning.plan_detection(
            exp,
            noise,
            points,
            looks=tuple(seq["looks"]) if seq else None,
            stein=(until_precise, stein["pilot"], stein["max_seeds"]) if stein else None,
        )
        try:
            measured = probe(
                exp,
                dev if not slots else _slot_device(slots[0].device),
                threads=threads,
                results=results,
                use_bench=not no_bench,
                on_step=lambda what: status.update(f"probe: {escape(what)}"),
            )
        except (DataError, ProbeError) as e:
            raise fail(str(e)) from None
    time = study_time(exp, measured, n_workers, executor)
    doc = {
        "kind": PLAN_KIND,
        "format": 1,
        "experiment": exp.name,
        "file": str(file),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cells": {
            "variants": len(exp.variants()),
            "seeds": len(exp.seeds),
            "count": len(exp.cells()),
            "design": exp.design,
            "fingerprint": cells_fingerprint(exp),
        },
        "executor": {"device": str(dev), "workers": n_workers, "threads": threads, "text": executor},
        "time": {**time.record(), "probe": measured.record()},
        "detect": detection.record(),
    }
    try:
        path = write_plan(results, doc)
    except StoreError as e:
        raise fail(str(e)) from None
    _print(exp, time, measured, detection, ad)
    if detection.noise.guess:
        err.print(
            "[yellow]warning[/]: no --noise-from: the noise is a guess (sd of a paired difference "
            f"{planning.DEFAULT_PAIRED_SD:g} points); give finished runs of a study like this one for numbers to trust",
            highlight=False,
            soft_wrap=True,
        )
    for note in detection.notes + time.notes + measured.notes:
        console.print(f"  note: {escape(note)}", highlight=False, soft_wrap=True)
    console.print(f"plan written to {escape(str(path))}", highlight=False, soft_wrap=True)


def _slot_device(name: str) -> Any:
    import torch

    return torch.device(name)


def _print(exp: Experiment, time: Any, measured: Any, detection: Any, ad: Any) -> None:
    """The one screen: cells and work, time, what the study can detect."""
    cells = exp.cells()
    about = f": {escape(exp.description)}" if exp.description else ""
    console.print(f"[bold]{escape(exp.name)}[/]{about}", highlight=False)
    first = next(iter(time.per_variant.values()))
    console.print(
        f"[bold]Cells[/]: {len(exp.variants())} variants x {len(exp.seeds)} seeds = {len(cells)} cells ({exp.design}); "
        f"per cell {first.train_images:,} training images ({exp.train.epochs} epochs), {first.eval_images:,} "
        f"evaluated, {first.checkpoints} checkpoint(s)",
        highlight=False,
    )
    load = f" at load {measured.load:.1f}" if measured.load is not None else ""
    console.print(
        f"[bold]Time[/] ({time.executor}): [bold]{duration(time.wall_s)}[/] wall, {time.device_s / 3600:.2f} "
        f"device-hours ({duration(time.device_s)} of cells); start-up {duration(time.start_s)} "
        f"(process {duration(measured.start_s)}, data). Probe {duration(measured.seconds)} on "
        f"{escape(measured.device_name)}{load}: {escape(measured.method)}",
        highlight=False,
        soft_wrap=True,
    )
    # One space between columns and short headers: the longest slug and every column fit 80 characters.
    table = Table(show_edge=False, box=None, pad_edge=False, padding=(0, 0, 0, 1), caption="seconds per cell; step: ms")
    for col in ("variant", "cell", "build", "train", "eval", "ckpt", "step", "from"):
        table.add_column(col, justify="left" if col in ("variant", "from") else "right", no_wrap=True)
    for slug, c in time.per_variant.items():
        cost = measured.models[slug]
        table.add_row(
            escape(slug),
            _secs(c.seconds),
            *(_secs(c.parts[k]) for k in ("build", "train", "eval", "checkpoints")),
            f"{cost.step_s * 1e3:.0f}",
            escape(cost.source),
        )
    console.print(table)
    noise = detection.noise
    console.print(
        f"[bold]What it can detect[/] (final validation accuracy, 80% power, alpha 0.05 per comparison; effect "
        f"{detection.effect:g} points, {escape(detection.effect_source)}): {escape(detection.model)}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"  noise: {escape(noise.describe())}", highlight=False, soft_wrap=True)
    table = Table(show_edge=False, box=None, pad_edge=False)
    for col in ("comparison", "MDD (points)", f"power at {detection.effect:g}", f"seeds for {detection.effect:g}"):
        table.add_column(col, justify="left" if col == "comparison" else "right", no_wrap=col == "comparison")
    for c in detection.main():
        mdd = f"{c.mdd:.2f}" if not noise.thin else f"{c.mdd_low:.2f} to {c.mdd_high:.2f}"
        need = (
            "-" if math.isnan(c.seeds_needed) else ("> 1000" if math.isinf(c.seeds_needed) else f"{c.seeds_needed:.0f}")
        )
        power = "-" if math.isnan(c.power) else f"{c.power:.2f}"
        table.add_row(escape(c.name), mdd, power, need)
    console.print(table)
    inter = [c for c in detection.comparisons if c.kind == "interaction" and math.isfinite(c.mdd)]
    if inter:
        low, high = min(c.mdd for c in inter), max(c.mdd for c in inter)
        console.print(f"  {len(inter)} two-way interactions: MDD {low:.2f} to {high:.2f} points", highlight=False)
    for a in detection.adaptive:
        per, spread = _values(a.expected.values(), 1), _values(a.p90.values(), 0)
        if a.design == ad.GROUP_SEQUENTIAL:
            name = f"--until-decided (looks {','.join(map(str, a.settings['looks']))}) at effect {a.effect:g}"
        else:
            s = a.settings
            name = f"--until-precise {s['precision']:g} (pilot {s['pilot']}, max {s['max_seeds']})"
        cells_time = a.expected_cells * time.mean_cell_s() / time.workers
        console.print(
            f"  {name}: seeds per variant expected {per} (90th percentile {spread}), baseline "
            f"{a.baseline_expected:.1f}; {a.expected_cells:.0f} cells, about {duration(cells_time)}",
            highlight=False,
            soft_wrap=True,
        )


def _secs(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds < 10 else f"{seconds:,.0f}"


def _values(values: Any, digits: int) -> str:
    """A few numbers listed, many as their range."""
    values = list(values)
    if len(values) <= 4:
        return ", ".join(f"{v:.{digits}f}" for v in values)
    return f"{min(values):.{digits}f} to {max(values):.{digits}f} ({len(values)} variants)"
