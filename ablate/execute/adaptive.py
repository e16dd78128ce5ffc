"""Run an experiment under an adaptive replication design (:mod:`ablate.analysis.adaptive`'s rules) with
any executor: stage by stage, each stage's seeds decided by the finished results of the stages
before it, and the design's outcome recorded in the manifest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from ablate.analysis import adaptive as ad
from ablate.analysis import load_experiment_data
from ablate.execute.runner import RunSummary, now
from ablate.experiment.experiment import Experiment
from ablate.store.folder import write_manifest
from ablate.store.record import finite  # NaN and infinities as null: the manifest stays strict JSON


@dataclass
class AdaptiveOutcome:
    """How adaptive replication ended: the seeds used (the baseline's; each variant a prefix of
    them, ``seed_counts``) and the design's last word."""

    seeds: list[int]
    stopped: str  # one sentence: why it stopped (or "not decided: ..." when interrupted)
    rounds: int
    seed_counts: dict[str, int] = field(default_factory=dict)


def run_adaptively(
    exp: Experiment,
    results: str | Path,
    execute: Callable[[Experiment], RunSummary],
    *,
    design: str,
    max_seeds: int,
    precision: float | None = None,
    pilot: int | None = None,
    looks: tuple[int, ...] | None = None,
) -> tuple[RunSummary, AdaptiveOutcome]:
    """Run ``exp`` with ``execute`` (any executor) under an adaptive design of :mod:`ablate.analysis.adaptive`
    (``"stein"``: ``precision`` and ``pilot``; ``"group-sequential"``: ``looks``, the last being
    ``max_seeds``), giving each variant its own prefix of one seed list, and record the design,
    its boundaries and why each comparison stopped in the manifest (``"adaptive"``). Each stage's
    decision depends only on the finished results of the seeds planned before it, so a rerun of
    the same command replays the same decisions and trains nothing new."""
    runner = _Stages(exp, results, execute)
    if design == ad.STEIN:
        assert precision is not None and pilot is not None
        record = _run_stein(runner, precision=precision, pilot=pilot, max_seeds=max_seeds)
    elif design == ad.GROUP_SEQUENTIAL:
        record = _run_sequential(runner, looks or ad.default_looks(len(exp.seeds), max_seeds))
    else:
        raise ValueError(f"unknown adaptive design {design!r}")
    if record is None:
        return runner.total, AdaptiveOutcome(
            list(runner.exp.seeds),
            f"not decided: {runner.why}; rerun the same command",
            runner.rounds,
            dict(runner.exp.seed_counts or {}),
        )
    final = runner.exp
    record["seeds"] = list(final.seeds)
    write_manifest(results, {**final.manifest(), "updated": now(), "adaptive": finite(record)})
    return runner.total, AdaptiveOutcome(
        list(final.seeds), record["stopped"], runner.rounds, dict(final.seed_counts or {})
    )


class _Stages:
    """Runs the stages of an adaptive design with one executor, summing what they trained."""

    def __init__(self, exp: Experiment, results: str | Path, execute: Callable[[Experiment], RunSummary]) -> None:
        self.exp, self.results, self.execute = exp, results, execute
        self.total = RunSummary(exp.name)
        self.rounds, self.why = 0, ""
        baseline = exp.baseline.slug()
        self.baseline = baseline
        self.others = [v.slug() for v in exp.variants() if v.slug() != baseline]

    def run(self, seeds: list[int], counts: dict[str, int]) -> bool:
        """Train the cells of ``seeds`` (variant ``v`` on the first ``counts[v]``); False when the
        stage did not finish here (interrupted, or cells busy elsewhere or left for later)."""
        self.rounds += 1
        self.exp = dataclasses.replace(self.exp, seeds=tuple(seeds), seed_counts={self.baseline: len(seeds), **counts})
        summary = self.execute(self.exp)
        self.total.records += summary.records
        self.total.skipped += [c for c in summary.skipped if c not in self.total.skipped]
        self.total.busy, self.total.remaining = summary.busy, summary.remaining
        self.total.errors = self.total.errors + summary.errors
        if summary.interrupted or summary.busy or summary.remaining:
            self.total.interrupted = summary.interrupted
            self.why = "interrupted" if summary.interrupted else "cells still running elsewhere or left for later"
            return False
        return True

    def differences(self, seeds: list[int]) -> Any:
        """Paired differences (points), shape (variants, seeds), NaN where a pair is not ok."""
        # Read through the analysis side (manifest + run records), as the report will read them.
        data = load_experiment_data(self.results, self.exp.name, baseline=self.baseline)
        return ad.paired_matrix(data.runs, self.baseline, self.others, seeds, ad.PRIMARY_METRIC)


def _run_stein(st: _Stages, *, precision: float, pilot: int, max_seeds: int) -> dict[str, Any] | None:
    """Stein's two stages: the pilot for every variant, then each variant up to its own N."""
    seeds = ad.seed_list(st.exp.seeds, max_seeds)
    if not st.run(seeds[:pilot], {}):
        return None
    n0, s0, n = ad.stein_plan(st.differences(seeds[:pilot]), precision, max_seeds)
    last = max([pilot, *(int(x) for x in n)])
    if last > pilot and not st.run(seeds[:last], {v: int(x) for v, x in zip(st.others, n)}):
        return None
    d = st.differences(seeds[:last])
    mean, half, pairs = ad.stein_interval(d, n, s0, n0)
    tq = sps.t.ppf(0.5 + ad.CONFIDENCE / 2.0, np.maximum(n0 - 1, 1))
    variants: dict[str, Any] = {}
    for i, v in enumerate(st.others):
        need = (tq[i] * s0[i] / precision) ** 2 if n0[i] >= 2 else np.inf
        if n0[i] < 2:
            why = (
                f"fewer than 2 paired ok pilot seeds ({int(n0[i])}): seeds added up to --max-seeds {max_seeds}, no "
                "Stein interval"
            )
        elif need > max_seeds:
            why = (
                f"max seeds reached: N would be {int(np.ceil(need))}, capped at {max_seeds}, so the interval is "
                f"wider than ±{precision:g}"
            )
        else:
            why = f"precision planned: N = {int(n[i])}"
        if n0[i] >= 2 and pairs[i] < n[i]:
            why += f"; {int(n[i] - pairs[i])} of its pairs are not ok, so the interval uses {int(pairs[i])}"
        variants[v] = {
            "pilot_pairs": int(n0[i]),
            "s0": float(s0[i]),
            "seeds": int(n[i]),
            "pairs": int(pairs[i]),
            "mean": float(mean[i]),
            "half_width": float(half[i]),
            "low": float(mean[i] - half[i]),
            "high": float(mean[i] + half[i]),
            "stopped": why,
        }
    capped = [v for v, r in variants.items() if not r["stopped"].startswith("precision planned")]
    stopped = (
        f"Stein: pilot {pilot} seeds, then "
        + ", ".join(f"{v} {r['seeds']}" for v, r in variants.items())
        + (
            f"; max seeds reached: {len(capped)} variant(s) capped at --max-seeds {max_seeds}"
            if capped
            else f"; every interval within ±{precision:g}"
        )
    )
    return {
        "design": ad.STEIN,
        "precision": precision,
        "pilot": pilot,
        "max_seeds": max_seeds,
        "confidence": ad.CONFIDENCE,
        "variants": variants,
        "stopped": stopped,
        "reason": "max seeds reached" if capped else "precision reached",
    }


def _run_sequential(st: _Stages, looks: tuple[int, ...]) -> dict[str, Any] | None:
    """Group-sequential looks: every undecided comparison gets the next look's seeds."""
    seeds = ad.seed_list(st.exp.seeds, looks[-1])
    if not st.others:
        return {
            "design": ad.GROUP_SEQUENTIAL,
            "looks": list(looks),
            "variants": {},
            "stopped": "nothing to compare: the experiment has a single variant",
        }
    design = ad.SequentialDesign(looks=tuple(looks), m=len(st.others))
    status = np.full(len(st.others), ad.ACTIVE)
    counts: dict[str, int] = {}
    info: dict[str, dict[str, Any]] = {v: {"t_by_look": []} for v in st.others}
    for k, n_k in enumerate(looks):
        active = [v for v, s in zip(st.others, status) if s == ad.ACTIVE]
        counts.update({v: n_k for v in active})
        if not st.run(seeds[:n_k], dict(counts)):
            return None
        before = status.copy()
        status, look = ad.sequential_look(st.differences(seeds[:n_k])[None], k, design, status[None])
        status, look = status[0], {key: val[0] for key, val in look.items()}
        for i, v in enumerate(st.others):
            if before[i] != ad.ACTIVE:
                continue
            info[v]["t_by_look"].append(float(look["t"][i]))
            if status[i] == ad.ACTIVE:
                continue
            low, high = ad.repeated_interval(
                float(look["mean"][i]), float(look["sd"][i]), float(look["n"][i]), float(look["t_boundary"][i])
            )
            why = {ad.BETTER: "efficacy", ad.WORSE: "efficacy", ad.FUTILITY: "futility", ad.MAX_SEEDS: "max seeds"}[
                int(status[i])
            ]
            info[v].update(
                {
                    "seeds": n_k,
                    "stop_look": k + 1,
                    "stopped": why,
                    "verdict": {ad.BETTER: "better", ad.WORSE: "worse"}.get(int(status[i]), "no detectable difference"),
                    "pairs": int(look["n"][i]),
                    "mean": float(look["mean"][i]),
                    "sd": float(look["sd"][i]),
                    "level": design.alpha / int(look["level_j"][i]),
                    "z_boundary": float(look["z_boundary"][i]),
                    "t_boundary": float(look["t_boundary"][i]),
                    "rci_low": low,
                    "rci_high": high,
                    "conditional_power": float(look["conditional_power"][i]),
                }
            )
        if not (status == ad.ACTIVE).any():
            break
    by_why: dict[str, list[str]] = {}
    for v in st.others:
        by_why.setdefault(f"{info[v]['verdict']} by {info[v]['stopped']} at {info[v]['seeds']} seeds", []).append(v)
    stopped = "; ".join(f"{', '.join(vs)}: {why}" for why, vs in by_why.items())
    return {**design.record(), "variants": info, "stopped": stopped}
