"""docs/architecture.md's table of rooms is the import rule, and this test holds the code to it: every
direct child of ``ablate/`` (a top-level module or a subpackage) has a row with a layer, and
imports only rooms on lower layers; the analysis side never reaches into training, data or model
code, and training never into the analysis side. The imports are counted by
``scripts/import_graph.py``, the same count the architecture page quotes."""

from __future__ import annotations

import re
import sys

import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import import_graph  # noqa: E402 - scripts/ is not a package

# Checked by name as well as by layer: a report never needs torch code, training never the report.
NEVER = {
    "analysis/": {"train/", "execute/", "data/", "models/"},
    "report/": {"train/", "execute/", "data/", "models/"},
    "train/": {"analysis/", "report/"},
}


def _layers() -> dict[str, int]:
    """room -> layer, from the table of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| `([\w/.]+)` \| [^|]+ \|$", text, re.M)
    assert rows, "no table of rooms in docs/architecture.md"
    layers: dict[str, int] = {}
    for layer, room in rows:
        assert room not in layers, f"{room} is listed twice in docs/architecture.md"
        layers[room] = int(layer)
    return layers


def _violations(layers: dict[str, int], arrows: frozenset[tuple[str, str]]) -> list[str]:
    out = []
    for a, b in sorted(arrows):
        if b in NEVER.get(a, set()):
            out.append(f"{a} imports {b}, which it must never import")
        elif layers[b] >= layers[a]:
            out.append(f"{a} (layer {layers[a]}) imports {b} (layer {layers[b]}): imports go to lower layers only")
    return out


def test_every_room_has_a_row_and_every_row_a_room() -> None:
    rooms, layers = set(import_graph.children()), _layers()
    assert rooms - set(layers) == set(), f"rooms without a row in docs/architecture.md: {sorted(rooms - set(layers))}"
    assert set(layers) - rooms == set(), f"rows for rooms that do not exist: {sorted(set(layers) - rooms)}"


def test_imports_go_down_the_layers_and_never_across_the_two_sides() -> None:
    assert _violations(_layers(), import_graph.arrows()) == []


def test_no_loops_between_rooms() -> None:
    assert import_graph.loops(import_graph.children(), import_graph.arrows()) == []


@pytest.mark.parametrize(
    "arrow, complaint",
    [
        (("report/", "train/"), "must never import"),
        (("analysis/", "data/"), "must never import"),
        (("train/", "analysis/"), "must never import"),
        (("store/", "execute/"), "imports go to lower layers only"),
        (("data/", "analysis/"), "imports go to lower layers only"),  # one layer: neither imports the other
    ],
)
def test_the_rule_catches_a_violation(arrow, complaint) -> None:
    """The check itself: each of these arrows would be reported."""
    found = _violations(_layers(), frozenset({arrow}))
    assert len(found) == 1 and complaint in found[0], found


def test_imports_inside_functions_and_relative_imports_count(tmp_path) -> None:
    fake = tmp_path / "ablate" / "train" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "import torch\nfrom ablate.report.build import build_report\nimport ablate.data.loader\n"
        "def f():\n    from ablate import variant, __version__\n"
        "    from . import loop\n    from ..store import record\n"
    )
    found = {import_graph.child_of(m) for m in import_graph.imported_modules(fake, tmp_path / "ablate")} - {None}
    assert found == {"report/", "data/", "variant.py", "train/", "store/"}
