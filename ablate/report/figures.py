"""What every report figure shares when it is saved: resolution, seaborn style, the PNG written without
a timestamp (so rerunning a report rewrites identical files) and the legend below the axes.

Imports no ablate module: the figure modules (:mod:`ablate.report.plots`, :mod:`ablate.report.effect_plots`) sit on
it side by side, neither importing the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

DPI = 120
STYLE = "whitegrid"


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def legend_below(fig: Figure, handles: list[Any], labels: list[str]) -> None:
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), frameon=False, fontsize=9)
