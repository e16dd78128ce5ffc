"""``SweepObserver``: the observer of a sweep on any executor, which also hears a batch scheduler.

Apart from :mod:`ablate.execute.options` because it subclasses :class:`~ablate.execute.runner.RunObserver`,
and the options must not import the runner (see that module's doc).
"""

from __future__ import annotations

from typing import Any

from ablate.execute.runner import RunObserver


class SweepObserver(RunObserver):
    """A :class:`~ablate.execute.runner.RunObserver` that also hears what only a batch scheduler does."""

    def on_submit(self, submission: Any) -> None:
        """The sweep went to the scheduler as one job (Slurm: a ``Submission``, its id and logs)."""
