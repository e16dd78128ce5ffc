"""Every --help reads cleanly (issue #10 item 10): no text lost to markup, no typer placeholders
such as ``<bool>`` or ``{file}``, and ``ablate --version`` works on its own."""

from __future__ import annotations

import re

import pytest
import typer.main

import ablate
from ablate.cli import app

# typer's type placeholders (``--force <bool>``, ``--set <list[str]>``, ``<int range>``); text such
# as OUT/<experiment>/ in a help string is not one of them.
PLACEHOLDER = re.compile(r"<(bool|str|int|float|path|text|integer|choice|datetime|uuid|file|list\[[^\]]*\]|\w+ range)>")
USAGE_BRACES = re.compile(r"\{\w+\}")  # typer's usage line: ablate run [OPTIONS] {file}
MARKUP_LOSS = re.compile(r"\(\s*\)|'s \)|\\\[")  # "(default: the experiment's )", "\[gpu]"


def _paths(command, prefix=()):
    """Every command path of the app, groups included: (), ("run",), ("export", "tensorboard"), ..."""
    yield prefix, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _paths(sub, (*prefix, name))


PATHS = list(_paths(typer.main.get_command(app)))


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_every_command_is_covered():
    names = {" ".join(p) for p, _ in PATHS}
    assert {"", "run", "show", "list", "report", "bench"} <= names


@pytest.mark.parametrize("path,command", PATHS, ids=[" ".join(p) or "ablate" for p, _ in PATHS])
def test_help_reads_cleanly(cli, path, command):
    result = cli.invoke(app, [*path, "--help"], terminal_width=100)
    out = result.output
    assert result.exit_code == 0, out
    assert not PLACEHOLDER.search(out), PLACEHOLDER.search(out).group(0)
    usage = out.strip().splitlines()[0]
    assert usage.startswith("Usage: ") and not USAGE_BRACES.search(usage), usage
    assert not MARKUP_LOSS.search(out), MARKUP_LOSS.search(out).group(0)
    # no text vanished: every help string of the command is in the output (line breaks aside)
    for param in command.params:
        text = (getattr(param, "help", None) or "").replace("\\[", "[")
        assert _squash(text) in _squash(out), f"{param.name}: {text!r} not in\n{out}"
    doc = (command.help or "").replace("\\[", "[").strip().split("\n\n")[0]
    assert _squash(doc) in _squash(out), f"{doc!r} not in\n{out}"


def test_flags_show_no_value_and_options_a_metavar(cli):
    out = cli.invoke(app, ["run", "--help"], terminal_width=200).output
    assert re.search(r"--force\s{2,}Rerun", out), out
    assert "--set KEY=VALUE" in out and "--device DEVICE" in out and "Usage: ablate run [OPTIONS] FILE" in out
    report = cli.invoke(app, ["report", "--help"], terminal_width=200).output
    assert "(default: the experiment's [model])" in report
    assert "Usage: ablate report [OPTIONS] [EXPERIMENT]..." in report


def test_version_alone_and_before_a_command(cli):
    for args in (["--version"], ["--version", "list"]):
        result = cli.invoke(app, args)
        assert result.exit_code == 0 and result.output.strip() == f"ablate {ablate.__version__}", result.output
