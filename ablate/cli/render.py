"""The rich tables the command line prints: built here from library results, printed by the commands.

One function per table: the cells of an experiment and their states (``ablate show``, ``run
--dry-run``), the per-variant summary after ``ablate run``, the verdicts after ``ablate report``,
the speeds after ``ablate bench``, and the registries of ``ablate list``. Cell text is rich
markup: every value from a file or a user is escaped.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from rich.markup import escape
from rich.table import Table

from ablate.experiment.experiment import Experiment
from ablate.experiment.validate import AXIS_REGISTRIES
from ablate.models.alexnet import arch_spec, build_model, count_params
from ablate.registry import ARCHS, DATASETS
from ablate.report.text import fmt_p, fmt_pm, fmt_sd
from ablate.store.claims import list_claims
from ablate.store.folder import RunScan, iter_runs
from ablate.store.record import FINISHED
from ablate.variant import Variant


def cells_table(exp: Experiment, results: Path, scan: RunScan) -> Table:
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
            state, text = (
                "running",
                f"[cyan]running[/] on {escape(claim.host)} pid {claim.pid} ({escape(claim.worker)}) since {since}",
            )
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


def _mean_sd(values: list[float], digits: int = 3) -> str:
    """Mean ± sd over seeds (the mean alone for one value)."""
    if not values:
        return "-"
    return fmt_sd(statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None, digits=digits)


def run_outcome_table(exp: Experiment, results: Path) -> Table:
    """After ``ablate run``, per variant over the experiment's current cells found in results/:
    seeds done, accuracy, speed (read from the run files; the report's statistics are
    ``analysis.summary.summary_frame``)."""
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
            _mean_sd(
                [
                    r["summary"]["final_val_acc"]
                    for r in ok
                    if isinstance(r["summary"].get("final_val_acc"), (int, float))
                ]
            ),
            _mean_sd(
                [r["runtime"]["train_images_per_s"] for r in ok if (r.get("runtime") or {}).get("train_images_per_s")],
                0,
            ),
        )
    table.caption = "* baseline"
    return table


def report_table(rep: Any) -> Table:
    """Per variant: runs, final validation accuracy with its CI, and the paired verdict against the baseline."""
    data, summary, comp = rep.data, rep.summary, rep.comparisons
    primary = comp[comp["metric"] == "final_val_acc"].set_index("variant")
    table = Table(
        title=f"{escape(data.name)}: final validation accuracy (%), ± 95% CI over seeds; baseline "
        f"{escape(data.baseline)}",
        caption="detectable: smallest difference (points) these seeds detect with 80% power (paired t-test, "
        "alpha 0.05); the report's paired comparisons give the seeds a given effect would need",
    )
    for col in ("variant", "ok", "not ok", "val acc", "diff vs baseline", "p (Holm)", "detectable", "verdict"):
        table.add_column(
            col, justify="left" if col in ("variant", "verdict", "not ok") else "right", no_wrap=col == "variant"
        )
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


def bench_table(rows: list[dict[str, Any]], device: Any, repeats: int) -> Table:
    """One row per bench case: speed (all members' images/s and one member's), step time, memory,
    FLOPs, or the case's error."""
    table = Table(title=f"steady-state speed on {device} (median of {repeats} repeats)")
    speed = ("images/s", "per member", "step ms", "peak MB", "GFLOP/img")
    for col in ("variant", "mode", "precision", "batch", "K", *speed, "status"):
        table.add_column(
            col,
            justify="left" if col in ("variant", "mode", "precision", "status") else "right",
            no_wrap=col == "variant",
        )
    for r in rows:
        flops = r.get("flops_train" if r["mode"] == "train" else "flops_forward")
        ok = r["status"] == "ok"
        table.add_row(
            escape(r["slug"]),
            r["mode"],
            r["precision"],
            str(r["batch_size"]),
            str(r.get("fuse", 1)),
            f"{r['images_per_s']:,.0f}" if ok else "-",
            f"{r['member_images_per_s']:,.0f}" if ok else "-",
            f"{r['step_time_ms']:.2f}" if ok else "-",
            f"{r['peak_memory_mb']:,.0f}" if ok and r["peak_memory_mb"] is not None else "-",
            f"{flops / 1e9:.3f}" if flops else "-",
            "ok" if ok else f"[red]{r['status']}[/]: {escape(str(r['error']))}",
        )
    return table


def registry_tables() -> Iterator[Table]:
    """``ablate list``: the axes and their values, the architecture presets, the datasets (each
    yielded when built, so that it is printed before the next one is built)."""
    default = Variant()
    axes = Table(title=escape("axes ([model] / [axes] keys)"))
    axes.add_column("axis")
    axes.add_column("values (default first marked *)")
    for axis, registry in AXIS_REGISTRIES.items():
        values = [f"{v}*" if v == getattr(default, axis) else v for v in registry.names()]
        axes.add_row(axis, ", ".join(values))
    axes.add_row("dropout", "true*, false")
    axes.add_row("dropout_p", f"number in [0, 1) ({default.dropout_p}*)")
    yield axes

    presets = Table(title="architecture presets")
    for col in ("arch", "input", "params (10 classes)", "description"):
        presets.add_column(col)
    for name in ARCHS.names():
        spec = arch_spec(name)
        params = count_params(build_model(Variant(arch=name), num_classes=10))
        presets.add_row(name, f"3x{spec.input_size}x{spec.input_size}", f"{params:,}", spec.description)
    yield presets

    datasets = Table(title=escape("datasets ([data] dataset = ...)"))
    datasets.add_column("dataset")
    datasets.add_column("description")
    for name in DATASETS.names():
        doc = (DATASETS.get(name).__doc__ or "").strip().splitlines()
        datasets.add_row(name, doc[0] if doc else "")
    yield datasets
