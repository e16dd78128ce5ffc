"""Ctrl-C / SIGTERM as a stop request (ablate.runtime.stop_signal), as the run process and pool workers use it."""

from __future__ import annotations

import signal

import pytest

from ablate.runtime.stop_signal import StopOnSignal


def test_first_signal_sets_the_flag_and_announces_once_second_sigint_interrupts():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    told: list[str] = []
    with StopOnSignal(lambda: told.append("stopping")) as stop:
        assert not stop()
        signal.raise_signal(signal.SIGTERM)
        assert stop() and told == ["stopping"]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)  # a second SIGTERM is not a way out: the checkpoint comes first
        assert told == ["stopping"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler in force, as in a terminal: a process started in the background
    by a non-interactive shell (``cmd &``) inherits SIGINT ignored, and Python then installs none."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_without_escalation_a_second_sigint_only_sets_the_flag(python_sigint):
    with StopOnSignal(escalate=False) as stop:
        for _ in range(3):
            signal.raise_signal(signal.SIGINT)
        assert stop()
    with pytest.raises(KeyboardInterrupt):  # restored: Python's own handler again
        signal.raise_signal(signal.SIGINT)
