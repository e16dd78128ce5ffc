"""``ablate bench``: steady-state speed of variants (train step and inference), timm
``benchmark.py`` style.

One module per job:

* :mod:`~ablate.bench.settings`: what a sweep is asked to do (:class:`BenchSettings`, defaults);
* :mod:`~ablate.bench.variants`: which variants (catalogue, single-axis set, user selection);
* :mod:`~ablate.bench.timing`: how things are timed (stretches of steps, interleaved turns),
  on training's clock;
* :mod:`~ablate.bench.cases`: running the sweep, one row per case, failures recorded;
* :mod:`~ablate.bench.fuse`: how many seeds to fuse into one model (``fuse_seeds = "auto"``);
* :mod:`~ablate.bench.storage`: ``<results>/bench/*.json`` and ``.csv``, and reading them back;
* :mod:`~ablate.bench.report`: the markdown page and plot under ``<reports>/bench/``.

The names below are the package's public API (the CLI and the report import them from here).
"""

from ablate.bench.cases import measure_case, run_bench
from ablate.bench.fuse import CANDIDATES, MIN_GAIN, FuseChoice, choose_fuse, pick_fuse, probe_settings
from ablate.bench.report import write_bench_report
from ablate.bench.settings import MODES, PRECISIONS, BenchError, BenchSettings, default_settings
from ablate.bench.storage import BENCH_DIR, bench_dir, load_bench, save_bench
from ablate.bench.timing import HookClock, interleave, seconds, time_steps
from ablate.bench.variants import catalogue, select_variants, single_axis_variants

__all__ = [
    "BENCH_DIR",
    "CANDIDATES",
    "MIN_GAIN",
    "MODES",
    "PRECISIONS",
    "BenchError",
    "BenchSettings",
    "FuseChoice",
    "HookClock",
    "bench_dir",
    "catalogue",
    "choose_fuse",
    "default_settings",
    "interleave",
    "load_bench",
    "measure_case",
    "pick_fuse",
    "probe_settings",
    "run_bench",
    "save_bench",
    "seconds",
    "select_variants",
    "single_axis_variants",
    "time_steps",
    "write_bench_report",
]
