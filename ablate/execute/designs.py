"""Which design a results folder holds, and whether a run may change it.

An adaptive design (:mod:`ablate.execute.adaptive`) keeps its error rate only if it is run once, as
planned: a folder that stopped for futility at 4 seeds, rerun with other looks until it says
"better", is optional continuation. So the design a folder's manifest records (``adaptive``: its
plan, and how it ended) is final for the cells it covers: a run that would put another design on
them (other looks, another precision, the other design, or fixed seeds) is refused in one line,
unless the user says ``--new-design``. Then the run goes ahead and the manifest keeps the replaced
design under ``design_changes``, so that the report can say that the error rates no longer hold.

Light on purpose: the command line checks this before a plain run, which should not pay for the
statistics of :mod:`ablate.analysis.adaptive`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ablate.execute.errors import ExecutorError
from ablate.experiment.experiment import Experiment
from ablate.store.folder import read_manifest

STEIN = "stein"
GROUP_SEQUENTIAL = "group-sequential"


class DesignChanged(ExecutorError):
    """A run would replace the design the results folder holds; ``str()`` is one line."""


def plan_key(plan: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """What identifies a design's plan, from the options (``run_adaptively``'s keywords) or from a
    manifest's record: Stein's precision, pilot and maximum; the group-sequential looks; () for
    fixed seeds."""
    if not plan:
        return ()
    if plan.get("design") == STEIN:
        return (STEIN, float(plan.get("precision", 0)), int(plan.get("pilot", 0)), int(plan.get("max_seeds", 0)))
    if plan.get("design") == GROUP_SEQUENTIAL:
        return (GROUP_SEQUENTIAL, tuple(int(n) for n in plan.get("looks") or ()))
    return (str(plan.get("design")),)


def describe_plan(plan: Mapping[str, Any] | None) -> str:
    """The options that give ``plan``: ``--until-decided --looks 3,6,10``, ``--until-precise 2
    --pilot 3 --max-seeds 6``, or ``fixed seeds``."""
    key = plan_key(plan)
    if not key:
        return "fixed seeds"
    if key[0] == STEIN:
        return f"--until-precise {key[1]:g} --pilot {key[2]} --max-seeds {key[3]}"
    if key[0] == GROUP_SEQUENTIAL:
        return "--until-decided --looks " + ",".join(str(n) for n in key[1])
    return str(key[0])


def check_design(
    results: str | Path, exp: Experiment, plan: Mapping[str, Any] | None, new_design: bool
) -> tuple[dict[str, Any], ...]:
    """The ``design_changes`` a run of ``exp`` under ``plan`` (None: fixed seeds) carries into the
    manifest: those the folder's manifest holds, plus the design this run replaces when it is
    another one and ``new_design`` allows it. Raises :class:`DesignChanged` when the folder holds
    an adaptive design of the same cells and ``plan`` is another one, without ``new_design``."""
    manifest = read_manifest(results, exp.name)
    if not manifest or not set(manifest.get("run_ids") or []) & {c.run_id for c in exp.cells()}:
        return ()  # nothing recorded for these cells (another configuration, or a fresh folder)
    changes = tuple(dict(c) for c in manifest.get("design_changes") or [] if isinstance(c, dict))
    held = manifest.get("adaptive") if isinstance(manifest.get("adaptive"), dict) else None
    if held is None or plan_key(held) == plan_key(plan):
        return changes
    folder = Path(results) / exp.name
    stopped = str(held.get("stopped") or "not decided")
    if not new_design:
        raise DesignChanged(
            f"{folder} holds the seeds of {describe_plan(held)} ({stopped}); {describe_plan(plan)} would put another "
            "design on them, and rerunning a design until it says something else voids its error rate: rerun "
            "with the same options, or add --new-design to run it anyway (the report will say so)"
        )
    return (*changes, {"from": describe_plan(held), "to": describe_plan(plan), "stopped": stopped})


def as_recorded(results: str | Path, exp: Experiment) -> Experiment:
    """``exp`` with the seeds its adaptive design gave each variant, as the folder's manifest
    records them (the stage under way included, after a kill), so that ``ablate show`` lists the
    cells the design added; ``exp`` itself when the manifest records no such design of these cells."""
    manifest = read_manifest(results, exp.name)
    planned = (manifest or {}).get("variant_seeds")
    if not isinstance(planned, dict):
        return exp
    try:
        seeds = tuple(int(s) for s in manifest.get("seeds") or ())
        counts = {str(slug): len(list(v)) for slug, v in planned.items()}
    except (TypeError, ValueError):
        return exp
    recorded = dataclasses.replace(exp, seeds=seeds, seed_counts=counts)
    if [c.run_id for c in recorded.cells()] != list(manifest.get("run_ids") or []):
        return exp  # another configuration of the experiment: the file's cells are the ones to show
    return recorded
