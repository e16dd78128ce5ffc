"""``reports/README.md``: the index of every experiment report, written by ``ablate report``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.cli import app
from ablate.report.index import render_index, write_report_index
from ablate.store.folder import write_run

from helpers.planted import Outcome, make_record, write_planted, write_pooling_study


def header_and_rows(text: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]

    def split(line: str) -> list[str]:
        return [c.strip() for c in line.strip("|").split(" | ")]

    rows = {}
    for line in lines[2:]:
        cells = split(line)
        rows[cells[0]] = cells
    return split(lines[0]), rows


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    # pooling: overlap 10 points better on every seed (with a little seed noise so the interval is real).
    write_pooling_study(root, [0, 1, 2], noise=lambda overlap, s: [0.0, 0.013, -0.007][s] * overlap)
    # a 3x2 grid (5 variants besides the baseline): counted, with best and worst. sigmoid-lrn failed
    # on two seeds: its one paired seed gives no interval, so it is not named worst.
    write_planted(
        root,
        "grid",
        {"activation": ["relu", "tanh", "sigmoid"], "norm": ["none", "lrn"]},
        [0, 1, 2],
        lambda a, s: Outcome(
            status="failed" if (a["activation"], a["norm"]) == ("sigmoid", "lrn") and s else "ok",
            final_val_acc=0.6
            - {"relu": 0.0, "tanh": 0.05, "sigmoid": 0.2}[a["activation"]]
            + 0.01 * s * (a["activation"] != "relu"),
        ),
    )
    return root


def test_report_writes_an_index_row_per_experiment(cli, results, tmp_path):
    out = tmp_path / "reports"
    result = cli.invoke(app, ["report", "--results", str(results), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"index of reports: {out / 'README.md'}" in result.output.replace("\n", "")
    text = (out / "README.md").read_text(encoding="utf-8")
    header, rows = header_and_rows(text)
    assert header == ["experiment", "headline", "data", "device", "seeds", "training time"]
    assert list(rows) == ["[grid](grid/README.md)", "[pool](pool/README.md)"]  # sorted, linked to each report
    pool = rows["[pool](pool/README.md)"]
    assert pool[1].startswith("vs `relu-overlap-none-drop`:<br>`pooling=nonoverlap`: worse (-10.")
    assert "claims: " in pool[1] and "supported" in pool[1]
    assert pool[2] == "shapes: 512 train / 128 val images"
    assert pool[3] == "test cpu"
    assert pool[4] == "0, 1, 2 (6/6 runs ok)"
    # planted wall time: 6 epochs x (2.0 + 0.1 seed) s per run, 2 variants x seeds 0, 1, 2
    assert pool[5] == f"{2 * sum(6 * (2.0 + 0.1 * s) for s in range(3)) / 60:.1f} min"
    grid = rows["[grid](grid/README.md)"]
    assert "5 variants: " in grid[1] and "worse" in grid[1]
    assert "best " not in grid[1] and "worst " not in grid[1]  # a grid's main effects answer instead
    assert grid[4] == "0, 1, 2 (16/18 runs ok)"
    # A grid of two axes also gives each level's main effect over the other axis, and the
    # interactions counted: tanh is 5, 4, 3 points below relu at every norm on seeds 0, 1, 2. The
    # grid's linear model uses all 16 ok runs (12 residual df), so that steady -4 is detected;
    # sigmoid's estimate is the least-squares mean around the two failed sigmoid-lrn runs.
    assert (
        "main effects (mean over the other axes):<br>`activation=tanh` vs `relu`: worse "
        "(-4.00 pts)<br>`activation=sigmoid` vs `relu`: worse (-19.20 pts)"
    ) in grid[1]
    assert "`norm=lrn` vs `none`: " not in grid[1] and "1 other(s): 1 no detectable difference" in grid[1]
    assert "2 interactions: " in grid[1]
    assert "main effects" not in pool[1]  # one axis: the comparisons are the main effects
    for exp in ("pool", "grid"):
        assert (out / exp / "README.md").is_file()


def test_index_is_byte_identical_for_the_same_results(cli, results, tmp_path):
    out = tmp_path / "reports"
    assert cli.invoke(app, ["report", "--results", str(results), "--out", str(out)]).exit_code == 0
    first = (out / "README.md").read_bytes()
    assert write_report_index(results, out) == out / "README.md"
    assert (out / "README.md").read_bytes() == first
    # Reporting one experiment keeps the others in the index.
    assert cli.invoke(app, ["report", "pool", "--results", str(results), "--out", str(out)]).exit_code == 0
    assert (out / "README.md").read_bytes() == first


def test_index_follows_the_results(results, tmp_path):
    """Device, seeds and time come from the run records: a new run on another device shows up."""
    out = tmp_path / "reports"
    for name in ("pool",):
        (out / name).mkdir(parents=True)
        (out / name / "README.md").write_text("# pool\n")
        (out / name / "summary.csv").write_text("variant\n")
    before = render_index(results, out, ["pool"])
    record = make_record("pool", {"pooling": "nonoverlap"}, 0, Outcome())
    record["env"].update(device="cuda:0", device_name="NVIDIA H200")
    write_run(results, record)  # replaces the cpu run of that cell
    _, rows = header_and_rows(render_index(results, out, ["pool"]))
    assert rows["[pool](pool/README.md)"][3] == "NVIDIA H200 (cuda:0)<br>test cpu"
    assert render_index(results, out, ["pool"]) != before
    assert rows["[pool](pool/README.md)"][1] == "-"  # no comparisons.csv in this hand-made report


def test_odd_names_are_linked_safely_and_bench_is_linked(results, tmp_path):
    out = tmp_path / "reports"
    for name in ("my exp|1", "bench"):
        (out / name).mkdir(parents=True)
        (out / name / "README.md").write_text("# x\n")
    (out / "my exp|1" / "summary.csv").write_text("variant\n")
    path = write_report_index(results, out)
    text = path.read_text()
    assert "[my exp\\|1](my%20exp%7C1/README.md)" in text  # escaped for the table, quoted for the link
    assert "| - | - | - | - | - |" in text  # no results for it: nothing invented
    assert "Speed benchmarks (`ablate bench`): [bench](bench/README.md)." in text
    assert "bench/README.md)" not in text.split("Speed benchmarks")[0]  # not a row of the table


def test_no_reports_no_index(results, tmp_path):
    assert write_report_index(results, tmp_path / "nothing") is None
    (tmp_path / "empty").mkdir()
    assert write_report_index(results, tmp_path / "empty") is None
    assert not (tmp_path / "empty" / "README.md").exists()


def test_reports_just_built_are_indexed_without_reading_their_runs_again(results, tmp_path, monkeypatch):
    """``loaded``: the data the reports read is passed on, and the index is the same as when it reads."""
    from ablate.report import index as report_index
    from ablate.report.build import build_report

    out = tmp_path / "reports"
    loaded = {name: build_report(results, name, out).data for name in ("grid", "pool")}
    expected = render_index(results, out, ["grid", "pool"])

    def no_second_read(*args, **kwargs):
        raise AssertionError("the run files were read again")

    monkeypatch.setattr(report_index, "current_records", no_second_read)
    assert render_index(results, out, ["grid", "pool"], loaded) == expected
