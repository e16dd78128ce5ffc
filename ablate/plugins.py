"""Load user code that registers axis values, presets or datasets before an experiment runs.

Two ways, both explicit: modules named on the command line (``ablate --plugin my_layers run ...``,
found in the working directory or installed), and installed packages that declare an entry point
in the ``ablate.plugins`` group (``[project.entry-points."ablate.plugins"] mine = "mypkg.layers"``).

Nothing else is imported from the working directory. Putting it on ``sys.path`` for the whole
command would let any file there (a ``seaborn.py``, a ``json.py``) replace the real module the
next time ablate imports it, so the working directory is added only while a named plugin is
imported, at the end of the path (what is installed always wins), and a plugin whose name is
also that of an installed or standard-library module is refused instead of guessed between.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import keyword
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Sequence

ENTRY_POINT_GROUP = "ablate.plugins"


class PluginError(ImportError):
    """A plugin could not be imported, or was refused; one line for users."""


def load_plugins(
    modules: Sequence[str] = (), *, use_entry_points: bool = True, directory: str | Path | None = None
) -> list[str]:
    """Import the named modules, then the entry-point plugins; return the names loaded.

    A named module is looked for in ``directory`` (default: the working directory) and among the
    installed modules; see the module docstring for why the directory is on ``sys.path`` only
    during that import. Registering an existing name fails loudly there."""
    folder = Path(directory if directory is not None else Path.cwd()).resolve()
    loaded: list[str] = []
    for name in modules:
        _import_plugin(name, folder)
        loaded.append(name)
    if use_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as e:  # noqa: BLE001
                raise PluginError(f"plugin entry point {ep.name!r} ({ep.value}) failed: {type(e).__name__}: {e}") from e
            loaded.append(ep.value)
    return loaded


def _import_plugin(name: str, folder: Path) -> None:
    if name.endswith(".py"):
        raise PluginError(f"plugin {name!r}: give the module name ({name[:-3]!r}), not the file name")
    parts = name.split(".")
    if not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        raise PluginError(f"plugin {name!r} is not a module name; expected dotted Python names, e.g. my_layers")
    top = parts[0]
    local = _local_module(top, folder)
    other = _found_elsewhere(top, folder, local)
    if local is not None and other is not None:
        raise PluginError(
            f"plugin {name!r}: {local} has the name of {other}; rename your module (a plugin may not "
            "shadow an installed or standard-library module)"
        )
    entry = str(folder)
    added = local is not None and entry not in sys.path
    if added:
        sys.path.append(entry)  # last: nothing the plugin imports can be shadowed from here
    try:
        importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - any error in user code becomes one clear line
        raise PluginError(f"plugin {name!r} could not be imported: {type(e).__name__}: {e}") from e
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def _local_module(top: str, folder: Path) -> Path | None:
    """The file or package ``top`` in ``folder``, if there is one."""
    for candidate in (folder / f"{top}.py", folder / top / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _found_elsewhere(top: str, folder: Path, local: Path | None) -> str | None:
    """What else ``top`` names, other than ``local``: a description, or None if nothing."""
    if top in sys.builtin_module_names or top in getattr(sys, "stdlib_module_names", ()):
        return f"the standard-library module {top!r}"
    elsewhere = [p for p in sys.path if not _is_folder(p, folder)]
    spec = importlib.machinery.PathFinder.find_spec(top, elsewhere)
    if spec is None:
        module = sys.modules.get(top)
        if module is None or _same_module(getattr(module, "__file__", None), local):
            return None
        return f"the installed module {top!r}"
    where = (
        spec.origin
        if spec.origin not in (None, "namespace")
        else next(iter(spec.submodule_search_locations or []), None)
    )
    if _same_module(where, local):  # e.g. an editable install of the project in this very folder
        return None
    return f"the installed module {top!r} ({where})"


def _is_folder(entry: str, folder: Path) -> bool:
    try:
        return Path(entry or ".").resolve() == folder
    except (OSError, RuntimeError, ValueError):
        return False


def _same_module(path: str | None, local: Path | None) -> bool:
    """Is ``path`` (a module's file, or a package's folder) the local module itself?"""
    if not path or local is None:
        return False
    try:
        found = Path(path).resolve()
        return (
            found in (local.resolve(), local.parent.resolve())
            if local.name == "__init__.py"
            else found == local.resolve()
        )
    except (OSError, RuntimeError, ValueError):
        return False
