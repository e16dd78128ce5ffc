"""``ablate report``: statistics, plots and a markdown report per experiment, and the index of reports."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from ablate.cli.console import console, err, fail
from ablate.cli.options import (
    ResultsOption,
)
from ablate.cli.render import report_table
from ablate.cli.report_options import (
    BaselineOption,
    CiOption,
    EffectOption,
    ReportForceOption,
    ReportNames,
    ReportOutOption,
    TargetAccOption,
    TargetTrainErrorOption,
    check_out,
)


def report(
    names: ReportNames = None,
    results: ResultsOption = Path("results"),
    out: ReportOutOption = Path("reports"),
    baseline: BaselineOption = None,
    target_acc: TargetAccOption = None,
    target_train_error: TargetTrainErrorOption = 0.25,
    effect: EffectOption = None,
    ci: CiOption = "t",
    force: ReportForceOption = False,
) -> None:
    """Statistics over seeds, paired comparisons, plots and a markdown report per experiment (an
    experiment whose results, ablate version and options are unchanged since its report is skipped)."""
    from ablate.analysis import ReportError, Targets
    from ablate.bench import BENCH_DIR, write_bench_report
    from ablate.report.incremental import Unchanged, report_if_changed
    from ablate.report.options import check_report_options
    from ablate.report.planned import plan_section
    from ablate.store.folder import experiments

    for flag, value in (("--target-acc", target_acc), ("--target-train-error", target_train_error)):
        if value is not None and not 0 < value < 1:
            raise fail(f"{flag} {value:g}: expected a fraction between 0 and 1, e.g. 0.6")
    try:
        check_report_options(ci, effect)
    except ReportError as e:
        raise fail(str(e)) from None
    check_out(out)
    found = experiments(results)
    # results/bench/ holds `ablate bench` measurements: reported with everything else, or by name.
    with_bench = not names or BENCH_DIR in names
    bench_readme = write_bench_report(results, out) if with_bench else None
    if not found and bench_readme is None:
        raise fail(f"no results under {results} (no <experiment>/runs/ folders); run 'ablate run FILE' first")
    chosen = [n for n in (names or found) if n != BENCH_DIR]
    targets = Targets(train_error=target_train_error, val_acc=target_acc)
    loaded = {}  # the data each report read: the index takes it instead of reading the run files again
    for name in chosen:
        try:
            rep = report_if_changed(
                results, name, out, baseline=baseline, targets=targets, ci=ci, effect_points=effect, force=force
            )
        except ReportError as e:
            if names:
                raise fail(str(e)) from None
            err.print(f"[yellow]skipped[/] {escape(name)}: {escape(str(e))}", highlight=False)
            continue
        if isinstance(rep, Unchanged):  # its notes are those the stamp kept: an unchanged report still says them
            notes = rep.notes
            console.print(
                f"{escape(name)}: unchanged since its report was written (same run files, ablate version and "
                "options; --force re-renders)",
                highlight=False,
            )
        else:
            notes = rep.data.notes
            loaded[name] = rep.data
            console.print(report_table(rep))
        for note in notes:
            console.print(f"  [yellow]note[/]: {escape(note)}", highlight=False)
        for line in [] if isinstance(rep, Unchanged) else plan_section(rep.plan)[:1]:  # (the README keeps it)
            console.print(f"  {escape(line.replace('**', '').replace('`', ''))}", highlight=False, soft_wrap=True)
        console.print(f"  report: {escape(str(rep.readme))} ({len(rep.files)} files)", highlight=False)
    from ablate.report.index import write_report_index

    index = write_report_index(results, out, loaded=loaded)
    if index is not None:
        console.print(f"index of reports: {escape(str(index))}", highlight=False)
    if bench_readme is not None:
        console.print(f"speed benchmark report: {escape(str(bench_readme))}", highlight=False)
    elif names and BENCH_DIR in names:
        raise fail(f"no benchmark results under {results / BENCH_DIR}; run 'ablate bench' first")
