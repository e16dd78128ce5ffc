"""Load user code that registers axis values, presets or datasets before an experiment runs.

Two ways, both explicit: modules named on the command line (``ablate --plugin my_layers run ...``,
importable from the working directory), and installed packages that declare an entry point in
the ``ablate.plugins`` group (``[project.entry-points."ablate.plugins"] mine = "mypkg.layers"``).
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points
from pathlib import Path

ENTRY_POINT_GROUP = "ablate.plugins"


class PluginError(ImportError):
    """A plugin could not be imported; one line for users."""


def load_plugins(modules: list[str] = (), *, use_entry_points: bool = True) -> list[str]:
    """Import the named modules (working directory first on the path) and the entry-point
    plugins; return the names loaded. Registering an existing name fails loudly there."""
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    loaded: list[str] = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any error in user code becomes one clear line
            raise PluginError(f"plugin {name!r} could not be imported: {type(e).__name__}: {e}") from e
        loaded.append(name)
    if use_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as e:  # noqa: BLE001
                raise PluginError(f"plugin entry point {ep.name!r} ({ep.value}) failed: {type(e).__name__}: {e}") from e
            loaded.append(ep.value)
    return loaded
