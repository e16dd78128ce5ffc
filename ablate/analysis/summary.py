"""Per-variant frames over the ok runs of an experiment: status counts, per-seed values, the summary."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ablate.analysis import stats
from ablate.analysis.frames import STATUS_MISSING, ExperimentData


def status_counts(data: ExperimentData) -> pd.DataFrame:
    """Per variant: cells expected, and how many are ok / diverged / failed / missing / other."""
    rows = []
    for v in data.variants:
        mine = data.runs[data.runs["variant"] == v]
        counts = mine["status"].value_counts()
        known = sum(int(counts.get(s, 0)) for s in ("ok", "diverged", "failed", STATUS_MISSING))
        rows.append(
            {
                "variant": v,
                "n_cells": len(mine),
                "n_ok": int(counts.get("ok", 0)),
                "n_diverged": int(counts.get("diverged", 0)),
                "n_failed": int(counts.get("failed", 0)),
                "n_missing": int(counts.get(STATUS_MISSING, 0)),
                "n_other": len(mine) - known,
            }
        )
    return pd.DataFrame(rows)


def per_seed(data: ExperimentData, metric: str) -> dict[str, dict[int, float]]:
    """Variant -> {seed: value} over ok runs with a finite value of ``metric``."""
    ok = data.ok_runs
    out: dict[str, dict[int, float]] = {v: {} for v in data.variants}
    if metric not in ok:
        return out
    for v, s, x in zip(ok["variant"], ok["seed"], ok[metric]):
        if x is not None and not pd.isna(x):
            out[v][int(s)] = float(x)
    return out


SUMMARY_INTERVALS = ("final_val_acc", "best_val_acc", "gen_gap", "train_images_per_s")
SUMMARY_SPREADS = ("final_val_loss", "final_train_loss", "wall_time_s")


def summary_frame(data: ExperimentData) -> pd.DataFrame:
    """One row per variant (experiment order, baseline first): counts, and over its ok runs the
    mean, sd and 95% t interval of the main metrics, time to target and parameters."""
    counts = status_counts(data).set_index("variant")
    ok = data.ok_runs
    varying = list(data.varying_axes())
    rows = []
    for v in data.variants:
        mine = ok[ok["variant"] == v]
        row: dict[str, Any] = {"variant": v, "baseline": v == data.baseline}
        for axis in varying:
            row[axis] = data.variant_axes[v].get(axis)
        row["n"] = int(counts.loc[v, "n_ok"])
        for c in ("n_cells", "n_diverged", "n_failed", "n_missing", "n_other"):
            row[c] = int(counts.loc[v, c])
        for m in SUMMARY_INTERVALS:
            iv = stats.mean_interval(mine[m] if m in mine else [])
            row.update({f"{m}_mean": iv.mean, f"{m}_sd": iv.sd, f"{m}_ci_low": iv.ci_low, f"{m}_ci_high": iv.ci_high})
        for m in SUMMARY_SPREADS:
            iv = stats.mean_interval(mine[m] if m in mine else [])
            row.update({f"{m}_mean": iv.mean, f"{m}_sd": iv.sd})
        for kind in ("train", "val"):
            flag = f"reached_{kind}_target"
            if flag not in data.runs:
                continue
            reached = mine[flag].fillna(False).astype(bool) if len(mine) else pd.Series([], dtype=bool)
            row[f"{kind}_target_reached"] = int(reached.sum())
            for m in (f"epochs_to_{kind}_target", f"time_to_{kind}_target_s"):
                iv = stats.mean_interval(mine.loc[reached, m] if len(mine) else [])
                row.update({f"{m}_mean": iv.mean, f"{m}_sd": iv.sd})
        params = mine["params"].dropna() if "params" in mine else pd.Series([], dtype=float)
        if params.empty and "params" in data.runs:
            params = data.runs.loc[data.runs["variant"] == v, "params"].dropna()
        row["params"] = int(params.iloc[0]) if not params.empty else pd.NA
        rows.append(row)
    table = pd.DataFrame(rows)
    table["params"] = table["params"].astype("Int64")
    return table
