"""Benchmarks measure only when asked to; otherwise they run once, as quick correctness tests.

``pytest -q`` (CI) runs every benchmark function once with timing disabled, so the suite checks
that each variant's forward/backward and each loop works without spending minutes timing them.
Timing happens with ``--benchmark-only`` or ``--benchmark-enable`` (or any option that saves or
compares results), e.g.::

    pytest tests/benchmarks --benchmark-only --benchmark-group-by=group

Done here rather than with ``--benchmark-disable`` in pytest's addopts because pytest-benchmark
refuses ``--benchmark-only`` together with ``--benchmark-disable``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The reference loops are maintainer tools kept beside the scripts that use them, outside the
# installed package; the benchmark suite imports them from there.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

MEASURE_OPTIONS = (
    "benchmark_only",
    "benchmark_enable",
    "benchmark_save",
    "benchmark_autosave",
    "benchmark_json",
    "benchmark_compare",
)


def measuring(config: pytest.Config) -> bool:
    return any(config.getoption(name, default=None) for name in MEASURE_OPTIONS)


@pytest.fixture
def benchmark(benchmark, request: pytest.FixtureRequest):
    """pytest-benchmark's fixture, switched to run-once mode unless measurement was asked for."""
    if not measuring(request.config):
        benchmark.disabled = True  # the fixture then calls the function once and records nothing
    return benchmark
