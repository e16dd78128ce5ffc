"""``ablate bench``: steady-state speed of variants (train step and inference), timm
``benchmark.py`` style.

One module per job:

* :mod:`~ablate.bench.settings`: what a sweep is asked to do (:class:`BenchSettings`, defaults);
* :mod:`~ablate.bench.variants`: which variants (catalogue, single-axis set, user selection);
* :mod:`~ablate.bench.timing`: how things are timed (stretches of steps, interleaved turns),
  on training's clock;
* :mod:`~ablate.bench.cases`: running the sweep, one row per case, failures recorded;
* :mod:`~ablate.bench.storage`: ``<results>/bench/*.json`` and ``.csv``, and reading them back;
* :mod:`~ablate.bench.report`: the markdown page and plot under ``<reports>/bench/``.

The names below are the package's public API (the CLI and the report import them from here).
"""

from ablate.bench.cases import run_bench
from ablate.bench.report import write_bench_report
from ablate.bench.settings import MODES, PRECISIONS, BenchError, BenchSettings, default_settings
from ablate.bench.storage import BENCH_DIR, bench_dir, load_bench, save_bench
from ablate.bench.timing import HookClock, interleave, seconds, time_steps
from ablate.bench.variants import catalogue, select_variants, single_axis_variants

__all__ = [
    "BENCH_DIR",
    "MODES",
    "PRECISIONS",
    "BenchError",
    "BenchSettings",
    "HookClock",
    "bench_dir",
    "catalogue",
    "default_settings",
    "interleave",
    "load_bench",
    "run_bench",
    "save_bench",
    "seconds",
    "select_variants",
    "single_axis_variants",
    "time_steps",
    "write_bench_report",
]
