"""The error of reading and analysing results that a user can fix (an unknown experiment or baseline,
no results, report options that do not parse): one line, exit code 2 on the command line."""

from __future__ import annotations


class ReportError(ValueError):
    """Something a user can fix (unknown experiment or baseline, no results); one-line ``str()``."""
