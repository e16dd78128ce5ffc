"""The one check of the report options (``--ci``, ``--effect``), apart from the report's assembly so
that the command line can check them without loading the plotting libraries (an unchanged report,
:mod:`ablate.report.incremental`, never needs them)."""

from __future__ import annotations

import math

from ablate.analysis import CI_METHODS, ReportError


def check_report_options(ci: str, effect_points: float | None) -> None:
    """The one check of ``--ci`` and ``--effect`` (the command line calls it before reading any
    results; :func:`~ablate.report.build.build_report` for library callers). Raises :class:`ReportError`."""
    if ci not in CI_METHODS:
        raise ReportError(f"--ci {ci}: expected one of {', '.join(CI_METHODS)}")
    if effect_points is not None and not (math.isfinite(effect_points) and 0 < effect_points < 100):
        raise ReportError(f"--effect {effect_points:g}: expected percentage points between 0 and 100, e.g. 0.5")
