"""The index of reports, ``<out>/README.md``: one table row per experiment report under ``out``.

Columns: the experiment (linked to its report), its headline (each variant's final validation
accuracy against the baseline: verdict and paired difference, from the report's
``comparisons.csv``; for grids of two or more axes the main effect of each level, from
``effects.csv``, with the interactions counted; and the paper's claims from ``claims.csv``), the data (dataset and the
training / validation image counts the runs used), the device(s), the seeds with how many runs
are ok, and the total training time (sum of the runs' wall time).

It reads only what is on disk: each report's CSVs, and the experiment's manifest and run records
under ``results`` (current configuration only, as in the report). Nothing is printed, and there
is no timestamp: the same files give a byte-identical index.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from ablate.analysis.results import ExperimentData, current_records
from ablate.experiment.experiment import BENCH_NAME as BENCH
from ablate.report.text import level_text
from ablate.store.folder import read_manifest
from ablate.store.record import RunRecord
from ablate.variant import Variant

INDEX = "README.md"
PRIMARY = "final_val_acc"
# Above this many variants besides the baseline a row counts verdicts instead of listing them.
LIST_AT_MOST = 4
VERDICT_ORDER = (
    "better",
    "worse",
    "no detectable difference",
    "positive interaction",
    "negative interaction",
    "no detectable interaction",
    "supported",
    "contradicted",
    "inconclusive",
)


def write_report_index(
    results: str | Path, out: str | Path, loaded: Mapping[str, ExperimentData] | None = None
) -> Path | None:
    """Write ``out/README.md`` indexing every experiment report in ``out`` (a folder with the
    report's ``README.md`` and ``summary.csv``); returns its path, or None when there is none.
    ``loaded``: experiments already read (``Report.data`` of the reports just built), whose run
    files are then not read a second time."""
    out = Path(out)
    names = (
        sorted(
            p.parent.name
            for p in out.glob(f"*/{INDEX}")
            if p.parent.name != BENCH and (p.parent / "summary.csv").is_file()
        )
        if out.is_dir()
        else []
    )
    if not names:
        return None
    path = out / INDEX
    path.write_text(render_index(results, out, names, loaded), encoding="utf-8")
    return path


def render_index(
    results: str | Path, out: str | Path, names: list[str], loaded: Mapping[str, ExperimentData] | None = None
) -> str:
    """The markdown of the index for the reports of ``names`` in ``out`` (``loaded``: see
    :func:`write_report_index`)."""
    out = Path(out)
    rows = [_row(results, out, name, (loaded or {}).get(name)) for name in names]
    lines = [
        "# Reports",
        "",
        (
            "One row per experiment, written by `ablate report` from the results folder; each links to its full "
            "report. "
            "Headline: final validation accuracy of each variant against the experiment's baseline, as the mean "
            "difference over seeds paired by seed (percentage points) and the verdict of a Holm-corrected paired test; "
            "for grids of two or more axes also each level's main effect (its difference averaged over every "
            "combination of the other axes, paired by seed, Holm-corrected over the grid's effects) and the two-way "
            "interactions counted by verdict; claims: the 2012 paper's claims checked by the report. Training time: "
            "the sum of every run's wall time "
            "(training and evaluation)."
        ),
        "",
        "| experiment | headline | data | device | seeds | training time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    if (out / BENCH / INDEX).is_file():
        lines += ["", f"Speed benchmarks (`ablate bench`): [{BENCH}]({BENCH}/{INDEX})."]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(results: str | Path, out: Path, name: str, data: ExperimentData | None) -> list[str]:
    folder = out / name
    if data is not None:  # what the report read: the same manifest and records, not read again
        manifest, records = data.manifest or {}, data.records
    else:
        manifest = read_manifest(results, name) or {}
        records, _ = current_records(results, name)
    link = f"[{name}]({quote(name)}/{INDEX})"
    return [
        link,
        _headline(folder, manifest),
        _data(manifest, records),
        _devices(records),
        _seeds(manifest, records),
        _duration(sum(_wall_time(r) for r in records)) if records else "-",
    ]


# --- headline ---------------------------------------------------------------------------------------
def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return pd.DataFrame()


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _label(slug: str, baseline: str, axes: dict[str, dict[str, Any]]) -> str:
    """A variant by what differs from the baseline (``pooling=nonoverlap``), else its slug."""
    mine, base = axes.get(slug), axes.get(baseline)
    if mine is None or base is None:
        return f"`{slug}`"
    diff = [f"{k}={level_text(v)}" for k, v in mine.items() if repr(base.get(k)) != repr(v)]
    return f"`{', '.join(diff)}`" if diff else f"`{slug}`"


def _variant_axes(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for axes in manifest.get("variants") or []:
        try:
            out[Variant(**axes).slug()] = dict(axes)
        except (TypeError, ValueError):  # axes this version does not know: show slugs
            continue
    return out


def _effect(r: dict[str, str]) -> str:
    diff = _float(r.get("diff"))
    return f"{r.get('verdict') or '?'} ({diff * 100:+.2f} pts)" if not math.isnan(diff) else (r.get("verdict") or "?")


def _headline(folder: Path, manifest: dict[str, Any]) -> str:
    comp = _read_csv(folder / "comparisons.csv")
    effects = _grid_effects(folder)
    parts = []
    if not comp.empty and {"metric", "variant", "baseline", "verdict", "diff"} <= set(comp.columns):
        primary = comp[comp["metric"] == PRIMARY].to_dict("records")
        if primary:
            baseline = primary[0]["baseline"]
            axes = _variant_axes(manifest)
            parts.append(f"vs `{baseline}`:")
            if len(primary) <= LIST_AT_MOST:
                parts += [f"{_label(r['variant'], baseline, axes)}: {_effect(r)}" for r in primary]
            else:
                parts.append(f"{len(primary)} variants: " + _counts(r["verdict"] for r in primary))
                # Best and worst among variants with an interval (two or more paired seeds); a grid's
                # main effects answer its questions instead.
                ranked = (
                    []
                    if effects
                    else sorted(
                        (r for r in primary if not math.isnan(_float(r["diff"])) and _float(r.get("n")) >= 2),
                        key=lambda r: (-_float(r["diff"]), r["variant"]),
                    )
                )
                if ranked:
                    parts.append(f"best {_label(ranked[0]['variant'], baseline, axes)}: {_effect(ranked[0])}")
                    parts.append(f"worst {_label(ranked[-1]['variant'], baseline, axes)}: {_effect(ranked[-1])}")
    parts += effects
    claims = _read_csv(folder / "claims.csv")
    if not claims.empty and "verdict" in claims:
        parts.append("claims: " + _counts(claims["verdict"]))
    return "<br>".join(parts) or "-"


def _grid_effects(folder: Path) -> list[str]:
    """Each level's main effect (averaged over the grid's other axes) and the interactions counted:
    with many variants these, not the baseline comparisons, answer a factorial's questions."""
    effects = _read_csv(folder / "effects.csv")
    if effects.empty or not {"kind", "axes", "level", "reference", "metric", "estimate", "verdict"} <= set(
        effects.columns
    ):
        return []
    effects = effects[effects["metric"] == PRIMARY]
    main = effects[effects["kind"] == "main"].to_dict("records")
    inter = effects[effects["kind"] == "interaction"]
    parts = []
    if main:
        # Only the effects detected are named: the row stays short however large the grid.
        found = [r for r in main if r["verdict"] in ("better", "worse")]
        parts.append("main effects (mean over the other axes):")
        parts += [
            f"`{r['axes']}={level_text(r['level'])}` vs `{level_text(r['reference'])}`: "
            f"{_effect({'verdict': r['verdict'], 'diff': r['estimate']})}"
            for r in found
        ]
        if len(found) < len(main):
            parts.append(f"{len(main) - len(found)} other(s): " + _counts(r["verdict"] for r in main if r not in found))
    if not inter.empty:
        parts.append(f"{len(inter)} interactions: " + _counts(inter["verdict"]))
    return parts


def _counts(verdicts: Iterable[str]) -> str:
    """``2 better, 1 no detectable difference``: the usual verdicts first, then the rest by name."""
    counts = Counter(verdicts)
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    return ", ".join(f"{counts[v]} {v}" for v in sorted(counts, key=lambda v: (order.get(v, len(order)), v)))


# --- data, device, seeds, time ---------------------------------------------------------------------
def _data(manifest: dict[str, Any], records: list[RunRecord]) -> str:
    datasets = sorted({str(((r.get("config") or {}).get("data") or {}).get("dataset")) for r in records} - {"None"})
    if not datasets and (manifest.get("data") or {}).get("dataset"):
        datasets = [str(manifest["data"]["dataset"])]
    sizes = sorted(
        {
            (r["data"].get("train_images"), r["data"].get("val_images"))
            for r in records
            if isinstance(r.get("data"), dict) and r["data"].get("train_images") is not None
        },
        key=lambda s: (s[0] or 0, s[1] or 0),
    )
    text = ", ".join(datasets) or "-"
    if sizes:
        text += ": " + " or ".join(f"{_count(t)} train / {_count(v)} val images" for t, v in sizes)
    return text


def _count(n: Any) -> str:
    return f"{int(n):,}" if isinstance(n, (int, float)) and not isinstance(n, bool) else "?"


def _devices(records: list[RunRecord]) -> str:
    names = set()
    for r in records:
        env = r.get("env") or {}
        name, kind = env.get("device_name"), env.get("device")
        if name or kind:
            names.add(f"{name} ({kind})" if name and kind and str(kind) not in str(name) else str(name or kind))
    return "<br>".join(sorted(names)) or "-"


def _seeds(manifest: dict[str, Any], records: list[RunRecord]) -> str:
    seeds = manifest.get("seeds") or sorted({r.get("seed") for r in records if isinstance(r.get("seed"), int)})
    cells = len(manifest.get("run_ids") or []) or len(records)
    ok = sum(r.get("status") == "ok" for r in records)
    text = ", ".join(str(s) for s in seeds) or "-"
    return f"{text} ({ok}/{cells} runs ok)" if cells else text


def _wall_time(record: RunRecord) -> float:
    value = _float((record.get("summary") or {}).get("wall_time_s"))
    if math.isnan(value):  # failed or older records: what the finished epochs took
        value = sum(
            _float(e.get("epoch_time_s"))
            for e in record.get("epochs") or []
            if isinstance(e, dict) and not math.isnan(_float(e.get("epoch_time_s")))
        )
    return value


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
