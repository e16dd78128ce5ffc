"""The report's line on ``ablate plan``: what the plan (``plan.json``) predicted against what the runs
took and what they can detect (numbers from :func:`ablate.analysis.planning.check_plan`)."""

from __future__ import annotations

from ablate.analysis.planning import PlanCheck


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _points(values: list[float]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{low:.2f}" if abs(high - low) < 0.005 else f"{low:.2f} to {high:.2f}"


def plan_section(check: PlanCheck | None) -> list[str]:
    """One line (and a blank one) comparing the plan with the outcome; nothing without a plan."""
    if check is None:
        return []
    line = (
        f"**Plan against outcome** (`ablate plan`, {check.created}): the {check.cells} finished cells were "
        f"predicted to take {_minutes(check.predicted_s)} and took {_minutes(check.measured_s)} "
        f"({100 * check.time_error:+.0f}%)"
    )
    if check.planned_mdd:
        line += (
            f"; minimum detectable effect (80% power) planned {_points(check.planned_mdd)} points, achieved "
            f"{_points(check.achieved_mdd)} points"
        )
    return [line + ".", ""]
