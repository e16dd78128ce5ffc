"""What a report's learning curves cost as variants grow (#28 item 14): 12 and 36 variants of a
grid, each its own small panel. Times should grow in proportion to the variants (3x from 12 to
36); through seaborn, constrained layout and shared axes they grew 4-5x.

    pytest tests/benchmarks/test_report_costs.py --benchmark-only
"""

from __future__ import annotations

import pytest

from helpers.planted import Outcome, write_planted

GRIDS = {
    12: {"activation": ["relu", "tanh", "sigmoid"], "norm": ["none", "lrn"], "dropout": [True, False]},
    36: {
        "activation": ["relu", "tanh", "sigmoid"],
        "pooling": ["overlap", "nonoverlap"],
        "norm": ["none", "lrn", "batchnorm"],
        "dropout": [True, False],
    },
}


@pytest.mark.parametrize("variants", sorted(GRIDS))
def test_learning_curves_of_many_variants(benchmark, tmp_path, variants) -> None:
    from ablate.analysis import load_experiment_data
    from ablate.report import plots

    write_planted(tmp_path, "grid", GRIDS[variants], [0, 1, 2], lambda axes, seed: Outcome(0.6 + 0.01 * seed))
    data = load_experiment_data(tmp_path, "grid")
    assert len(data.variants) == variants
    colors = plots.variant_colors(data.variants)
    path = benchmark(plots.learning_curves, data, colors, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
