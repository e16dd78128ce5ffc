"""Run an experiment under an adaptive replication design (:mod:`ablate.analysis.adaptive`'s rules) with
any executor: stage by stage, each stage's seeds decided by the finished results of the stages
before it, and the design's outcome recorded in the manifest.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from ablate.analysis import adaptive as ad
from ablate.analysis import load_experiment_data
from ablate.execute.runner import RunSummary, now
from ablate.experiment.experiment import Cell, Experiment
from ablate.store.claims import list_claims
from ablate.store.folder import read_run, run_path, write_manifest
from ablate.store.record import FINISHED, finite  # finite: NaN and infinities as null, strict JSON


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
    execute: Callable[[Experiment, frozenset[str]], RunSummary],
    *,
    design: str,
    max_seeds: int,
    precision: float | None = None,
    pilot: int | None = None,
    looks: tuple[int, ...] | None = None,
    notify: Callable[[str], None] = lambda message: None,
    poll_s: float = 2.0,
) -> tuple[RunSummary, AdaptiveOutcome]:
    """Run ``exp`` with ``execute`` (any executor) under an adaptive design of :mod:`ablate.analysis.adaptive`
    (``"stein"``: ``precision`` and ``pilot``; ``"group-sequential"``: ``looks``, the last being
    ``max_seeds``), giving each variant its own prefix of one seed list, and record the design,
    its boundaries and why each comparison stopped in the manifest (``"adaptive"``). Each stage's
    decision depends only on the finished results of the seeds planned before it, so a rerun of
    the same command replays the same decisions and trains nothing new.

    ``execute(exp, handled)`` runs one stage; ``handled``: the run ids this command has trained or
    tried in its earlier stages, which it must not train again (so ``--force`` retrains each cell
    once per command, and a cell that failed is not retried by a later look). Cells another runner
    holds are waited for (``notify`` says so; ``poll_s`` between looks at the folder), then the
    stage runs again, so that concurrent adaptive runners share the cells as fixed designs do."""
    plan: dict[str, Any] = {"design": design, "max_seeds": max_seeds}
    if design == ad.STEIN:
        assert precision is not None and pilot is not None
        plan.update(precision=precision, pilot=pilot)
    elif design == ad.GROUP_SEQUENTIAL:
        looks = tuple(looks or ad.default_looks(len(exp.seeds), max_seeds))
        plan.update(looks=list(looks))
    else:
        raise ValueError(f"unknown adaptive design {design!r}")
    runner = _Stages(exp, results, execute, plan, notify, poll_s)
    if design == ad.STEIN:
        record = _run_stein(runner, precision=float(precision), pilot=int(pilot), max_seeds=max_seeds)
    else:
        record = _run_sequential(runner, looks)
    if record is None:
        return runner.total, AdaptiveOutcome(
            list(runner.exp.seeds),
            f"not decided: {runner.why}; rerun the same command",
            runner.rounds,
            dict(runner.exp.seed_counts or {}),
        )
    final = runner.exp
    record["seeds"] = list(final.seeds)
    final = dataclasses.replace(final, adaptive=finite(record))
    write_manifest(results, {**final.manifest(), "updated": now()})
    return runner.total, AdaptiveOutcome(
        list(final.seeds), record["stopped"], runner.rounds, dict(final.seed_counts or {})
    )


# Why a comparison of the group-sequential design stopped, and its verdict, by its status.
STOPPED_BY = {
    ad.BETTER: "efficacy",
    ad.WORSE: "efficacy",
    ad.FUTILITY: "futility",
    ad.MAX_SEEDS: "max seeds",
    ad.NO_PAIRS: "no ok pair: every run of the variant or of the baseline failed or diverged",
    ad.TOO_FEW: "max seeds, fewer than 2 ok pairs",
}
VERDICTS = {ad.BETTER: "better", ad.WORSE: "worse", ad.NO_PAIRS: "no paired runs", ad.TOO_FEW: "not enough seeds"}


class _Stages:
    """Runs the stages of an adaptive design with one executor, summing what they trained."""

    def __init__(
        self,
        exp: Experiment,
        results: str | Path,
        execute: Callable[[Experiment, frozenset[str]], RunSummary],
        plan: dict[str, Any],
        notify: Callable[[str], None],
        poll_s: float,
    ) -> None:
        # Every manifest a stage writes holds the plan: a rerun knows which design the folder holds.
        self.exp = dataclasses.replace(exp, adaptive={**plan, "stopped": "not decided: running"})
        self.results, self.execute, self.notify, self.poll_s = results, execute, notify, poll_s
        self.total = RunSummary(exp.name)
        self.handled: set[str] = set()  # run ids trained or tried in this command
        self.rounds, self.why = 0, ""
        baseline = exp.baseline.slug()
        self.baseline = baseline
        self.others = [v.slug() for v in exp.variants() if v.slug() != baseline]

    def run(self, seeds: list[int], counts: dict[str, int]) -> bool:
        """Train the cells of ``seeds`` (variant ``v`` on the first ``counts[v]``); False when the
        stage did not finish here (interrupted, or cells left for later by ``--limit``). Cells another
        runner trains are waited for, and the stage is run again (one whose owner stopped is taken over)."""
        self.rounds += 1
        self.exp = dataclasses.replace(self.exp, seeds=tuple(seeds), seed_counts={self.baseline: len(seeds), **counts})
        while True:
            summary = self.execute(self.exp, frozenset(self.handled))
            self.total.records += summary.records
            self.handled |= {r["run_id"] for r in summary.records}
            known = {c.run_id for c in self.total.skipped}
            self.total.skipped += [c for c in summary.skipped if c.run_id not in known | self.handled]
            self.total.remaining = summary.remaining
            self.total.errors = self.total.errors + summary.errors
            self.total.warnings = summary.warnings  # the command's so far: every stage shares its sweep token
            if summary.interrupted or summary.remaining:
                self.total.interrupted = summary.interrupted
                self.total.busy = summary.busy
                self.why = "interrupted" if summary.interrupted else "cells left for later (--limit)"
                return False
            if not summary.busy:
                self.total.busy = []
                return True
            self._wait_for(summary.busy)

    def _wait_for(self, busy: list[Cell]) -> None:
        """Wait until another runner is done with ``busy``: each has a run file written meanwhile (a
        failed one counts as tried: this command does not retry it) or no live claim any more."""
        self.notify(
            f"{len(busy)} cell(s) of this stage are being trained by another runner on this folder; waiting for "
            "them (the decision needs their results)"
        )
        began = time.time()
        left = list(busy)
        while left:
            time.sleep(self.poll_s)
            claims = list_claims(self.results, self.exp.name)
            still = []
            for cell in left:
                path = run_path(self.results, cell.experiment, cell.run_id)
                record = read_run(path) if path.exists() and path.stat().st_mtime >= began - 1 else None
                if record is not None:
                    if record["status"] not in FINISHED:  # tried by the other runner: not retried by this one
                        self.handled.add(cell.run_id)
                elif cell.run_id in claims and not claims[cell.run_id].stale():
                    still.append(cell)
            left = still

    def differences(self, seeds: list[int]) -> Any:
        """Paired differences (points), shape (variants, seeds), NaN where a pair is not ok."""
        # Read through the analysis side (manifest + run records), as the report will read them.
        data = load_experiment_data(self.results, self.exp.name, baseline=self.baseline)
        return ad.paired_matrix(data.runs, self.baseline, self.others, seeds, ad.PRIMARY_METRIC)


def _run_stein(st: _Stages, *, precision: float, pilot: int, max_seeds: int) -> dict[str, Any] | None:
    """Stein's two stages: the pilot for every variant, then each variant up to its own N (never
    fewer than the pilot). A variant with no ok pilot pair stops after the pilot: more seeds of a
    variant whose every run failed or diverged would only fail again, and no interval can come of it."""
    seeds = ad.seed_list(st.exp.seeds, max_seeds)
    if not st.run(seeds[:pilot], {}):
        return None
    n0, s0, n = ad.stein_plan(st.differences(seeds[:pilot]), precision, max_seeds)
    n = np.where(n0 == 0, pilot, n)
    last = max([pilot, *(int(x) for x in n)])
    if last > pilot and not st.run(seeds[:last], {v: int(x) for v, x in zip(st.others, n)}):
        return None
    d = st.differences(seeds[:last])
    mean, half, pairs = ad.stein_interval(d, n, s0, n0)
    tq = sps.t.ppf(0.5 + ad.CONFIDENCE / 2.0, np.maximum(n0 - 1, 1))
    variants: dict[str, Any] = {}
    kinds: dict[str, list[str]] = {"planned": [], "capped": [], "no pilot pair": [], "one pilot pair": []}
    for i, v in enumerate(st.others):
        need = (tq[i] * s0[i] / precision) ** 2 if n0[i] >= 2 else np.inf
        if n0[i] == 0:
            kind = "no pilot pair"
            why = (
                "no ok pilot pair (every pilot run of the variant or of the baseline failed or diverged): stopped "
                "after the pilot, no interval"
            )
        elif n0[i] < 2:
            kind = "one pilot pair"
            why = (
                f"fewer than 2 paired ok pilot seeds ({int(n0[i])}): seeds added up to --max-seeds {max_seeds}, no "
                "Stein interval"
            )
        elif need > max_seeds:
            kind = "capped"
            why = (
                f"max seeds reached: N would be {int(np.ceil(need))}, capped at {max_seeds}, so the interval is "
                f"wider than ±{precision:g}"
            )
        else:
            kind = "planned"
            why = f"precision planned: N = {int(n[i])}"
        kinds[kind].append(v)
        if n0[i] >= 2 and pairs[i] < 2:
            why += f"; only {int(pairs[i])} of its {int(n[i])} pairs are ok, so it has no interval"
        elif n0[i] >= 2 and pairs[i] < n[i]:
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
    parts = []
    if kinds["capped"] or kinds["one pilot pair"]:
        capped = len(kinds["capped"]) + len(kinds["one pilot pair"])
        parts.append(f"max seeds reached: {capped} variant(s) capped at --max-seeds {max_seeds}")
    if kinds["no pilot pair"]:
        parts.append(f"no ok pilot pair: {len(kinds['no pilot pair'])} variant(s) stopped after the pilot")
    stopped = (
        f"Stein: pilot {pilot} seeds, then "
        + ", ".join(f"{v} {r['seeds']}" for v, r in variants.items())
        + "; "
        + ("; ".join(parts) if parts else f"every interval within ±{precision:g}")
    )
    return {
        "design": ad.STEIN,
        "precision": precision,
        "pilot": pilot,
        "max_seeds": max_seeds,
        "confidence": ad.CONFIDENCE,
        "variants": variants,
        "stopped": stopped,
        "reason": "max seeds reached" if parts else "precision reached",
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
            why = STOPPED_BY[int(status[i])]
            info[v].update(
                {
                    "seeds": n_k,
                    "stop_look": k + 1,
                    "stopped": why,
                    "verdict": VERDICTS.get(int(status[i]), "no detectable difference"),
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
        by_why.setdefault(
            f"{info[v]['verdict']} ({info[v]['stopped']}) at {info[v]['seeds']} seeds"
            if info[v]["stopped"] in (STOPPED_BY[ad.NO_PAIRS], STOPPED_BY[ad.TOO_FEW])
            else f"{info[v]['verdict']} by {info[v]['stopped']} at {info[v]['seeds']} seeds",
            [],
        ).append(v)
    stopped = "; ".join(f"{', '.join(vs)}: {why}" for why, vs in by_why.items())
    return {**design.record(), "variants": info, "stopped": stopped}
