"""The published studies: every committed report is what `ablate report` makes of the committed
results today, so reports never drift from the code (or the code from the reports).

Markdown and CSV files must match byte for byte; figures must exist and be PNGs (their bytes
depend on the installed matplotlib and fonts, not on ablate).
"""

from __future__ import annotations

import pytest

from ablate.report.incremental import STAMP
from ablate.report.index import write_report_index
from ablate.store.folder import experiments

from helpers import ROOT

RESULTS, REPORTS = ROOT / "results", ROOT / "reports"
PUBLISHED = [name for name in experiments(RESULTS) if (REPORTS / name / "README.md").exists()]

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not PUBLISHED, reason="no published studies under results/ and reports/")
@pytest.mark.parametrize("name", PUBLISHED)
def test_committed_report_is_regenerated_identically(name, tmp_path):
    from ablate.report.build import build_report

    build_report(RESULTS, name, tmp_path)
    made, committed = tmp_path / name, REPORTS / name
    made_files = sorted(p.relative_to(made).as_posix() for p in made.rglob("*") if p.is_file())
    committed_files = sorted(
        p.relative_to(committed).as_posix()
        for p in committed.rglob("*")
        if p.is_file() and p.name != STAMP  # a local `ablate report` leaves its stamp (not committed)
    )
    assert made_files == committed_files
    for rel in made_files:
        new, old = (made / rel).read_bytes(), (committed / rel).read_bytes()
        if rel.endswith(".png"):
            assert new[:8] == old[:8] == b"\x89PNG\r\n\x1a\n", rel
        else:
            assert new == old, f"reports/{name}/{rel} differs from what `ablate report {name}` writes now"


@pytest.mark.skipif(not PUBLISHED, reason="no published studies under results/ and reports/")
def test_committed_index_is_regenerated_identically(tmp_path):
    for name in PUBLISHED:  # the index reads each report's own files
        (tmp_path / name).mkdir()
        for path in (REPORTS / name).iterdir():
            (tmp_path / name / path.name).write_bytes(path.read_bytes())
    index = write_report_index(RESULTS, tmp_path)
    assert index is not None
    assert index.read_text() == (REPORTS / "README.md").read_text()


def _answer(readme: str) -> str:
    return readme.split("## Answer", 1)[1].split("\n## ", 1)[0] if "## Answer" in readme else ""


@pytest.mark.skipif(not PUBLISHED, reason="no published studies under results/ and reports/")
@pytest.mark.parametrize("name", PUBLISHED)
def test_no_published_interval_excludes_zero_unexplained(name):
    """Every Answer row (a variant, or a grid's main effect) whose 95% interval excludes 0 next to
    "no detectable difference" is marked, and the mark is explained."""
    import re

    answer = _answer((REPORTS / name / "README.md").read_text(encoding="utf-8"))
    rows = [line for line in answer.splitlines() if line.startswith("| `")]
    assert rows
    for line in rows:
        shown = re.search(r"\| [-+][\d.]+ \[([-+][\d.]+), ([-+][\d.]+)\]", line)
        if shown and "**no detectable difference**" in line and (float(shown[1]) > 0 or float(shown[2]) < 0):
            assert line.rstrip(" |").endswith("‡") and "‡ an interval seems to disagree" in answer, line


@pytest.mark.skipif(not PUBLISHED, reason="no published studies under results/ and reports/")
@pytest.mark.parametrize("name", PUBLISHED)
def test_published_answer_fits_on_one_screen(name):
    """At most 40 lines, one table row per main effect or variant, and the forest plot in it."""
    from ablate.report.answer import MAX_LINES

    answer = _answer((REPORTS / name / "README.md").read_text(encoding="utf-8"))
    assert 0 < len(answer.strip("\n").splitlines()) <= MAX_LINES
    assert "](effects.png)" in answer and (REPORTS / name / "effects.png").is_file()
