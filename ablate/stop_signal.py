"""Ctrl-C and SIGTERM as a request to stop: training polls the flag between steps, saves a
checkpoint and leaves, instead of dying mid-step with its claim held.

One handler for the ``ablate run`` process and for each pool worker: the run process announces
the request and lets a second Ctrl-C interrupt at once; a worker stays quiet (the terminal's
Ctrl-C reaches every process of its group, and the parent speaks for them all).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """While entered, SIGINT and SIGTERM set a flag instead of raising; calling the object reads it.

    ``announce`` is called once, on the first signal. With ``escalate``, a second SIGINT raises
    KeyboardInterrupt (the user's way out of a step that does not end). Handlers are installed only
    from the main thread (Python allows no other) and restored on exit.
    """

    def __init__(self, announce: Callable[[], None] | None = None, *, escalate: bool = True) -> None:
        self.requested = False
        self._announce = announce
        self._escalate = escalate
        self._saved: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            if self._escalate and signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.requested = True
        if self._announce is not None:
            self._announce()

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()
