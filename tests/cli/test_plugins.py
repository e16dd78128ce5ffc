"""A hostile working directory (issue #10 item 8): only --plugin imports from it, only for its own
import, and a plugin named like an installed or standard-library module is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.cli import app
from ablate.plugins import PluginError, load_plugins
from ablate.registry import ACTIVATIONS

# Modules ablate imports only when a command needs them (report: pandas, seaborn, matplotlib,
# scipy), i.e. after the CLI has started: the ones a file in the working directory could replace.
LAZY = ("pandas", "seaborn", "matplotlib", "scipy")


def _hostile(folder: Path, names=LAZY) -> None:
    for name in names:
        (folder / f"{name}.py").write_text(
            f"open({str(folder / ('pwned-' + name))!r}, 'w').close()\nraise SystemExit('HOSTILE-RAN {name}')\n"
        )


def _on_path(folder: Path) -> list[str]:
    return [p for p in sys.path if Path(p or ".").resolve() == folder.resolve()]


def test_report_in_a_hostile_folder_imports_nothing_from_it(tmp_path):
    """End to end, in a fresh interpreter started the way users start ablate (the console script)."""
    _hostile(tmp_path)
    script = Path(sys.executable).with_name("ablate")
    assert script.exists(), f"console script not installed next to {sys.executable}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    done = subprocess.run(
        [str(script), "report", "--results", str(tmp_path / "results")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "HOSTILE-RAN" not in done.stderr + done.stdout, done.stderr
    assert not list(tmp_path.glob("pwned-*"))
    assert done.returncode == 2 and "no results under" in done.stderr  # it ran, with the real modules


def test_commands_leave_sys_path_alone(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    result = cli.invoke(app, ["report", "--results", str(tmp_path / "results")])
    assert result.exit_code == 2
    assert sys.path == before and not _on_path(tmp_path)


def test_plugin_is_imported_from_the_working_directory_and_the_path_restored(
    cli, tmp_path, monkeypatch, write_experiment
):
    (tmp_path / "probe_plugin.py").write_text(
        "from torch import nn\nfrom ablate import register_activation\n"
        "@register_activation('probe_act')\ndef probe_act():\n    return nn.Softplus()\n"
    )
    monkeypatch.chdir(tmp_path)
    path = write_experiment('seeds = [0]\n[model]\nactivation = "probe_act"\n')
    before = list(sys.path)
    try:
        shown = cli.invoke(app, ["--plugin", "probe_plugin", "show", str(path), "--device", "cpu"])
        assert shown.exit_code == 0, shown.output
        assert "probe_act-overlap-none-drop" in shown.output
    finally:
        if "probe_act" in ACTIVATIONS:
            ACTIVATIONS.unregister("probe_act")
        sys.modules.pop("probe_plugin", None)
    assert sys.path == before


def test_plugin_imports_cannot_be_shadowed(tmp_path):
    (tmp_path / "probe_plugin2.py").write_text(
        "import importlib.machinery\nORIGIN = importlib.machinery.PathFinder.find_spec('colorsys').origin\n"
    )
    (tmp_path / "colorsys.py").write_text("raise SystemExit('HOSTILE-RAN colorsys')\n")
    try:
        load_plugins(["probe_plugin2"], use_entry_points=False, directory=tmp_path)
        origin = Path(sys.modules["probe_plugin2"].ORIGIN)
    finally:
        sys.modules.pop("probe_plugin2", None)
    assert origin.parent != tmp_path and origin.name == "colorsys.py"
    assert not _on_path(tmp_path)


@pytest.mark.parametrize(
    "name,files,expected",
    [
        ("seaborn", ["seaborn.py"], "has the name of the installed module 'seaborn'"),
        ("json", ["json.py"], "has the name of the standard-library module 'json'"),
        ("torch.evil", ["torch/__init__.py", "torch/evil.py"], "has the name of the installed module 'torch'"),
        ("sys", ["sys.py"], "standard-library module 'sys'"),
        ("my_layers.py", [], "give the module name ('my_layers'), not the file name"),
        ("../evil", [], "is not a module name"),
        ("", [], "is not a module name"),
        ("no_such_plugin_xyz", [], "could not be imported: ModuleNotFoundError"),
    ],
)
def test_plugins_that_shadow_or_are_not_module_names_are_refused(cli, tmp_path, monkeypatch, name, files, expected):
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("raise SystemExit('HOSTILE-RAN module')\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PluginError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_plugins([name], use_entry_points=False)
    result = cli.invoke(app, ["--plugin", name, "list"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "HOSTILE-RAN" not in result.output and not _on_path(tmp_path)
