"""Grid designs: main effects and two-way interactions over seeds, balanced contrasts for grids with
missing runs, cell means for heatmaps, and pairs of variants that differ in one axis (for claims)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ablate import stats
from ablate.comparisons import _nan, interval_note
from ablate.frames import ALL_EQUAL_NOTE, ExperimentData, Metric, metrics_for
from ablate.tables import per_seed

# --- grid designs: main effects and two-way interactions ---------------------------------------
EFFECT_COLUMNS = [
    "kind", "axes", "level", "reference", "metric", "n", "seeds", "estimate", "sd", "ci_low", "ci_high",
    "t", "df", "p", "p_holm", "verdict", "note", "m", "sim_level", "sim_low", "sim_high", "interval_note",
]
POSITIVE_INTERACTION = "positive interaction"
NEGATIVE_INTERACTION = "negative interaction"
NO_INTERACTION = "no detectable interaction"


def _cell_lookup(data: ExperimentData, axes: Sequence[str]) -> dict[tuple, str]:
    """Values of ``axes`` -> variant slug, for the variants of the experiment."""
    return {tuple(repr(data.variant_axes[v].get(a)) for a in axes): v for v in data.variants}


def reference_level(data: ExperimentData, axis: str) -> Any:
    """The level effects are measured against: the baseline's value (else the axis' first value)."""
    values = data.axes.get(axis) or []
    base = data.variant_axes[data.baseline].get(axis)
    return base if base in values or not values else values[0]


@dataclass(frozen=True)
class Contrast:
    """Per-seed values of one contrast, and which seeds and combinations of other axes went in."""

    seeds: list[int]
    values: list[float]
    contexts_used: int
    contexts_total: int
    note: str = ""


def balanced_contrast(
    values: dict[str, dict[int, float]], contexts: Sequence[Sequence[tuple[float, str]]], seeds: Sequence[int]
) -> Contrast:
    """Per seed, the mean over ``contexts`` of ``sum(weight * values[variant][seed])``.

    Each context is a list of (weight, variant) terms, e.g. one combination of the other axes of a
    grid. Every seed must get the same linear combination for the t-test to be valid, so when runs
    are missing the contrast uses the largest block of seeds x contexts in which every run is ok:
    the set of seeds (at least two where possible) maximising seeds x contexts complete for all of
    them, preferring more contexts (the full contrast), then more seeds, then the lowest seeds.
    ``note`` says what was left out.
    """
    total = len(contexts)
    if total == 0:
        return Contrast([], [], 0, 0, "no such variants")
    complete = {s: [all(s in values.get(v, {}) for _, v in ctx) for ctx in contexts] for s in seeds}
    candidates = [s for s in seeds if any(complete[s])]
    best: tuple[tuple[bool, int, int, int], list[int], list[int]] = ((False, 0, 0, 0), [], [])
    if len(candidates) <= 12:  # exhaustive over seed subsets (at most 4096)
        subsets: Iterable[tuple[int, ...]] = (
            c for k in range(len(candidates), 0, -1) for c in itertools.combinations(candidates, k))
    else:  # many seeds: all seeds, or those complete in every context
        subsets = [tuple(candidates), tuple(s for s in candidates if all(complete[s]))]
    for subset in subsets:
        ctx = [i for i in range(total) if all(complete[s][i] for s in subset)]
        if not ctx or not subset:
            continue
        score = (len(subset) >= 2, len(subset) * len(ctx), len(ctx), len(subset))
        if score > best[0]:
            best = (score, list(subset), ctx)
    _, kept_seeds, kept_ctx = best
    out = [float(np.mean([sum(w * values[v][s] for w, v in contexts[i]) for i in kept_ctx])) for s in kept_seeds]
    seen = [s for s in seeds if any(s in values.get(v, {}) for ctx in contexts for _, v in ctx)]
    dropped = [s for s in seen if s not in kept_seeds]
    notes = []
    if kept_seeds and len(kept_ctx) < total:
        notes.append(f"averaged over {len(kept_ctx)} of {total} combinations of the other axes, the others miss an ok run")
    if dropped:
        notes.append(f"seed(s) {' '.join(map(str, dropped))} left out, a run in the contrast is not ok")
    return Contrast(kept_seeds, out, len(kept_ctx), total, "; ".join(notes))


def _grid_contrast(
    data: ExperimentData, values: dict[str, dict[int, float]], terms: list[tuple[float, dict[str, Any]]],
    axes: Sequence[str], context_axes: Sequence[str],
) -> Contrast:
    """:func:`balanced_contrast` of ``terms`` (weight, levels of some axes) over every combination
    of the levels of ``context_axes``."""
    lookup = _cell_lookup(data, axes)
    grid = data.varying_axes()
    contexts = []
    for ctx in itertools.product(*(grid[a] for a in context_axes)):
        one = []
        for weight, levels in terms:
            full = {**levels, **dict(zip(context_axes, ctx))}
            key = tuple(repr(full[a]) for a in axes)
            if key not in lookup:
                return Contrast([], [], 0, 0, "a cell of the grid is not among the variants")
            one.append((weight, lookup[key]))
        contexts.append(one)
    return balanced_contrast(values, contexts, sorted(data.seeds_seen()))


def grid_effects(data: ExperimentData, metrics: Sequence[Metric] | None = None) -> pd.DataFrame:
    """Main effects and two-way interactions for grid designs with two or more varying axes.

    Main effect of ``axis = level``: per seed, the mean over every combination of the other axes
    of ``y(level) - y(reference)``. Interaction of ``A = a`` with ``B = b``: per seed, the mean over
    the remaining axes of ``y(a, b) - y(a0, b) - y(a, b0) + y(a0, b0)`` (how much the effect of
    ``a`` changes when ``B`` goes from ``b0`` to ``b``). Each gets a 95% t interval over seeds and a
    t-test; Holm is applied over all effects of one metric. Cells without an ok run leave out
    seeds or combinations of the other axes (:func:`balanced_contrast`; the ``note`` column says
    which). Empty for other designs.
    """
    metrics = list(metrics) if metrics is not None else [metrics_for(data.targets)[0]]
    grid = data.varying_axes()
    if data.design != "grid" or len(grid) < 2:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    axes = list(grid)
    rows: list[dict[str, Any]] = []
    for metric in metrics:
        values = per_seed(data, metric.name)
        block = []
        for axis in axes:
            ref = reference_level(data, axis)
            others = [a for a in axes if a != axis]
            for level in grid[axis]:
                if level == ref:
                    continue
                c = _grid_contrast(data, values, [(1.0, {axis: level}), (-1.0, {axis: ref})], axes, others)
                block.append(_effect_row("main", axis, level, ref, metric, c))
        for a, b in itertools.combinations(axes, 2):
            a0, b0 = reference_level(data, a), reference_level(data, b)
            rest = [x for x in axes if x not in (a, b)]
            for la in grid[a]:
                for lb in grid[b]:
                    if la == a0 or lb == b0:
                        continue
                    terms = [(1.0, {a: la, b: lb}), (-1.0, {a: a0, b: lb}), (-1.0, {a: la, b: b0}), (1.0, {a: a0, b: b0})]
                    c = _grid_contrast(data, values, terms, axes, rest)
                    block.append(_effect_row("interaction", f"{a} x {b}", f"{la} x {lb}", f"{a0} x {b0}", metric, c))
        m = sum(1 for r in block if not _nan(r["p"]))
        level = stats.simultaneous_confidence(m)
        for r, p_adj in zip(block, stats.holm([r["p"] for r in block])):
            r["p_holm"] = p_adj
            v = stats.verdict(r["estimate"], p_adj, r["n"], metric.higher_is_better)
            wide = stats.paired_test(r.pop("_values"), level)
            r.update(m=m, sim_level=level, sim_low=wide.ci_low, sim_high=wide.ci_high)
            r["interval_note"] = interval_note({**r, "verdict": v, "sd_diff": r["sd"]}, scale=100.0 if metric.percent else 1.0)
            if r["kind"] == "interaction" and v in (stats.BETTER, stats.WORSE):
                v = POSITIVE_INTERACTION if r["estimate"] > 0 else NEGATIVE_INTERACTION
            elif r["kind"] == "interaction" and v == stats.NO_DIFFERENCE:
                v = NO_INTERACTION
            r["verdict"] = v
        rows.extend(block)
    frame = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    frame["n"] = frame["n"].astype(int)
    frame["df"] = frame["df"].astype("Int64")
    frame["m"] = frame["m"].astype("Int64")
    return frame


def _effect_row(kind: str, axes: str, level: Any, ref: Any, metric: Metric, c: Contrast) -> dict[str, Any]:
    test = stats.paired_test(c.values)
    return {
        "kind": kind, "axes": axes, "level": str(level), "reference": str(ref), "metric": metric.name,
        "n": test.n, "seeds": " ".join(str(s) for s in c.seeds), "estimate": test.diff, "sd": test.sd,
        "ci_low": test.ci_low, "ci_high": test.ci_high, "t": test.t, "df": test.df if test.n >= 2 else pd.NA,
        "p": test.p, "p_holm": math.nan, "verdict": "",
        "note": "; ".join(x for x in (c.note, ALL_EQUAL_NOTE if test.all_equal else "") if x),
        "_values": list(c.values),
    }


def cell_means(data: ExperimentData, metric: str, row_axis: str, col_axis: str) -> pd.DataFrame:
    """Mean of ``metric`` over ok runs for each (row level, column level), averaged over the
    variants' other axes (for the interaction heatmap); NaN where no run is ok."""
    grid = data.varying_axes()
    ok = data.ok_runs
    means = ok.groupby("variant", sort=False)[metric].mean() if not ok.empty else pd.Series(dtype=float)
    table = pd.DataFrame(index=[str(x) for x in grid[row_axis]], columns=[str(x) for x in grid[col_axis]], dtype=float)
    for r in grid[row_axis]:
        for c in grid[col_axis]:
            vals = [
                means[v] for v in data.variants
                if repr(data.variant_axes[v].get(row_axis)) == repr(r) and repr(data.variant_axes[v].get(col_axis)) == repr(c)
                and v in means.index and not pd.isna(means[v])
            ]
            table.loc[str(r), str(c)] = float(np.mean(vals)) if vals else math.nan
    table.index.name, table.columns.name = row_axis, col_axis
    return table


# --- pairs of variants that differ in one axis (for claims) -----------------------------------------
def matched_pairs(data: ExperimentData, axis: str, level_a: Any, level_b: Any) -> list[tuple[str, str]]:
    """Pairs ``(variant with axis=level_a, variant with axis=level_b)`` equal on every other axis."""
    pairs = []
    for va in data.variants:
        ax = data.variant_axes[va]
        if ax.get(axis) != level_a or type(ax.get(axis)) is not type(level_a):
            continue
        for vb in data.variants:
            bx = data.variant_axes[vb]
            if bx.get(axis) == level_b and type(bx.get(axis)) is type(level_b) and \
                    all(bx.get(k) == ax.get(k) for k in set(ax) | set(bx) if k != axis):
                pairs.append((va, vb))
    return pairs
