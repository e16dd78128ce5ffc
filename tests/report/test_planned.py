"""The report's line on ``ablate plan`` (ablate.report.planned): predicted against measured time and
planned against achieved MDD, and nothing without a plan."""

from __future__ import annotations

from ablate.analysis.planning import PlanCheck
from ablate.report.planned import plan_section


def test_no_plan_no_line():
    assert plan_section(None) == []


def test_the_line_gives_both_times_the_error_and_the_mdds():
    check = PlanCheck("2026-12-05T01:00:00+00:00", 6, 300.0, 240.0, [2.1, 2.4], [2.0, 2.6])
    line, blank = plan_section(check)
    assert blank == ""
    assert "the 6 finished cells were predicted to take 5.0 min and took 4.0 min (+25%)" in line
    assert "planned 2.10 to 2.40 points, achieved 2.00 to 2.60 points" in line


def test_without_comparisons_the_line_is_time_only():
    (line, _) = plan_section(PlanCheck("t", 2, 30.0, 40.0, [], []))
    assert "predicted to take 30 s and took 40 s (-25%)" in line and "detectable" not in line
