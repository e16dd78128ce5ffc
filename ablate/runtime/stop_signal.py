"""Ctrl-C and SIGTERM as a request to stop: training polls the flag between steps, saves a
checkpoint and leaves, instead of dying mid-step with its claim held.

One handler for the ``ablate run`` process and for each pool worker: the run process announces
the request and lets a second Ctrl-C interrupt at once; a worker stays quiet (the terminal's
Ctrl-C reaches every process of its group, and the parent speaks for them all), and quits at
once on a second Ctrl-C too (or the two SIGINTs its parent sends to say "now").

A worker must also stop when its parent dies (SIGKILL, a crash), or it would train on as an
orphan holding claims: :func:`watch_parent` asks Linux to send it SIGTERM then
(``PR_SET_PDEATHSIG``) and, on any system, polls ``os.getppid()``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


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


def watch_parent(parent_pid: int, poll_s: float = 1.0) -> Callable[[], bool]:
    """Notice the death of ``parent_pid`` (this process's parent). Returns a function that says
    whether it died. On Linux the kernel also sends this process SIGTERM at that moment (so a
    :class:`StopOnSignal` handler sees a stop request at once); everywhere a daemon thread polls
    ``os.getppid()`` (an orphan is re-parented) every ``poll_s`` seconds."""
    gone = threading.Event()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the poll below still notices

    def poll() -> None:
        while not gone.is_set():
            if os.getppid() != parent_pid:
                gone.set()
                return
            gone.wait(poll_s)

    if os.getppid() != parent_pid:  # died before the death signal was asked for
        gone.set()
        os.kill(os.getpid(), signal.SIGTERM)
    else:
        threading.Thread(target=poll, name="ablate-watch-parent", daemon=True).start()
    return gone.is_set
