"""docs/architecture.md's module table is the import rule, and this test holds the code to it:
every module under ``ablate/`` has a row, imports only the ablate modules its row lists, and only
modules in rows above its own (imports go one way; the analysis side never reaches into
training, and training never into the analysis side except where a row says so)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "bench")  # sub-packages: one row each


def _table() -> list[tuple[str, set[str]]]:
    """(module, listed imports) per row, in the table's order (cli.py's "anything above" reads as {"anything"})."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([\w/.]+)` \| .*? \| ([^|]*) \|$", text, re.M)
    table = []
    for module, imports in rows:
        names = set()
        for item in re.split(r"[,;]", imports):
            word = item.strip().split(" ")[0].strip("`")
            if word and word != "-":
                names.add(word)
        table.append((module, names))
    return table


def _row_name(path: Path) -> str:
    rel = path.relative_to(ROOT / "ablate")
    return f"{rel.parts[0]}/" if rel.parts[0] in PACKAGES else rel.name


def _as_row(name: str) -> str | None:
    """``ablate.<name>`` as a row of the table (``data/``, ``train.py``), None if it is not a module."""
    if name in PACKAGES:
        return f"{name}/"
    return f"{name}.py" if (ROOT / "ablate" / f"{name}.py").is_file() else None


def _imports(path: Path, me: str) -> set[str]:
    """The ablate modules ``path`` (row ``me``) imports anywhere in it (top level or in functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "ablate":
                continue
            names = [a.name for a in node.names] if len(parts) == 1 else [parts[1]]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("ablate.")]
        else:
            continue
        found |= {row for row in map(_as_row, names) if row}
    return found - {me}


MODULES = sorted(ROOT.glob("ablate/**/*.py"))


def _rows_without_module(rows: set[str]) -> set[str]:
    """Rows naming a module that is not under ``ablate/`` (deleted or renamed, the row left behind)."""
    return rows - {_row_name(p) for p in MODULES}


def test_every_module_has_a_row_and_every_row_a_module():
    rows = {m for m, _ in _table()}
    assert {_row_name(p) for p in MODULES} <= rows
    orphans = _rows_without_module(rows)
    assert not orphans, f"rows of docs/architecture.md for modules that do not exist: {sorted(orphans)}"
    assert len(rows) == len(_table())  # no module listed twice


def test_a_row_for_a_missing_module_is_caught():
    """The check itself: a row for a module that is not under ``ablate/`` is reported."""
    assert _rows_without_module({m for m, _ in _table()} | {"claims.py"}) == {"claims.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT / "ablate").as_posix())
def test_module_imports_only_what_its_row_lists_and_only_rows_above(path):
    table = _table()
    order = {m: i for i, (m, _) in enumerate(table)}
    me = _row_name(path)
    listed = dict(table)[me]
    imports = _imports(path, me)
    if "anything" not in listed:  # cli.py: "anything above"
        unlisted = {m for m in imports if m.removesuffix(".py").removesuffix("/") not in listed}
        assert not unlisted, f"{path.name} imports {sorted(unlisted)}: not in its row of docs/architecture.md"
    if me != "__init__.py":  # the package: registers built-ins, loads results on first use
        below = sorted(m for m in imports if order[m] >= order[me])
        assert not below, f"{path.name} imports {below}, listed below it in docs/architecture.md (imports go up only)"


def test_the_rule_catches_a_violation(tmp_path):
    """The check itself: a training module importing the report, or the store importing training,
    would be caught (the first by its row's list, the second by the order too)."""
    fake = tmp_path / "fake.py"
    fake.write_text(
        "import torch\nfrom ablate.report import build_report\nimport ablate.data.loader\n"
        "def f():\n    from ablate import stats, __version__\n    from ablate.train import train_cell\n"
    )
    assert _imports(fake, "train.py") == {"report.py", "data/", "stats.py"}
    table = _table()
    order, listed = {m: i for i, (m, _) in enumerate(table)}, dict(table)
    assert "report" not in listed["train.py"]
    assert "train" not in listed["store.py"] and order["train.py"] > order["store.py"]
