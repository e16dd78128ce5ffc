"""``ablate report`` redoes only what changed (#28 item 14): a report whose run files, manifest,
ablate version and options are those its stamp names, and whose files are intact, is left as it
is; anything else, or ``--force``, makes it again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ablate.report.incremental as incremental
from ablate.cli import app
from ablate.report.incremental import STAMP

from helpers.planted import POOLING, Outcome, write_planted, write_pooling_study


@pytest.fixture
def built(monkeypatch) -> list[str]:
    """The experiments whose report was built (not left unchanged), in order."""
    names: list[str] = []
    real = incremental.build_report

    def counting(results, experiment, *args, **kwargs):
        names.append(experiment)
        return real(results, experiment, *args, **kwargs)

    monkeypatch.setattr(incremental, "build_report", counting)
    return names


def _two_studies(results: Path) -> None:
    write_pooling_study(results, seeds=[0, 1, 2])
    write_planted(results, "other", POOLING, [0, 1, 2], lambda axes, seed: Outcome(final_val_acc=0.6 + 0.01 * seed))


def _report(cli, results: Path, out: Path, *args: str):
    result = cli.invoke(app, ["report", *args, "--results", str(results), "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result


def test_an_unchanged_report_is_left_as_it_is_and_a_changed_one_is_made_again(cli, tmp_path, built) -> None:
    results, out = tmp_path / "results", tmp_path / "reports"
    _two_studies(results)
    _report(cli, results, out)
    assert built == ["other", "pool"] and (out / "pool" / STAMP).is_file()
    readme = out / "pool" / "README.md"
    written = readme.stat().st_mtime_ns

    built.clear()
    again = _report(cli, results, out)
    assert built == [] and readme.stat().st_mtime_ns == written
    assert again.output.count("unchanged since its report was written") == 2, again.output
    assert (out / "README.md").is_file()  # the index is still written

    # One run file of one experiment changes: that experiment only.
    run = next((results / "other" / "runs").glob("*.json"))
    record = json.loads(run.read_text())
    record["summary"]["final_val_acc"] = 0.61
    run.write_text(json.dumps(record))
    built.clear()
    _report(cli, results, out)
    assert built == ["other"]

    # Another option: both again; then the same option: neither.
    built.clear()
    _report(cli, results, out, "--ci", "bootstrap")
    assert built == ["other", "pool"]
    built.clear()
    _report(cli, results, out, "--ci", "bootstrap")
    assert built == []

    # A report file deleted or edited since: made again.
    (out / "pool" / "learning_curves.png").unlink()
    (out / "other" / "summary.csv").write_text("edited\n")
    built.clear()
    _report(cli, results, out, "--ci", "bootstrap")
    assert built == ["other", "pool"] and (out / "pool" / "learning_curves.png").is_file()

    # --force: every report, whatever the stamp says.
    built.clear()
    _report(cli, results, out, "--ci", "bootstrap", "--force")
    assert built == ["other", "pool"]


def test_a_new_ablate_version_remakes_the_report(cli, tmp_path, built, monkeypatch) -> None:
    results, out = tmp_path / "results", tmp_path / "reports"
    write_pooling_study(results, seeds=[0, 1, 2])
    _report(cli, results, out, "pool")
    monkeypatch.setattr(incremental, "__version__", "999.0")
    built.clear()
    _report(cli, results, out, "pool")
    assert built == ["pool"]


def test_an_unchanged_report_still_gives_its_notes(cli, tmp_path, built) -> None:
    """The notes of the results' reading (a damaged run file here) are said every time."""
    results, out = tmp_path / "results", tmp_path / "reports"
    write_pooling_study(results, seeds=[0, 1, 2])
    (results / "pool" / "runs" / "damaged.json").write_text("{not json")
    first = _report(cli, results, out, "pool")
    built.clear()
    second = _report(cli, results, out, "pool")
    assert built == [] and "damaged.json" in first.output and "damaged.json" in second.output, second.output


def test_a_damaged_stamp_remakes_the_report(cli, tmp_path, built) -> None:
    results, out = tmp_path / "results", tmp_path / "reports"
    write_pooling_study(results, seeds=[0, 1, 2])
    _report(cli, results, out, "pool")
    (out / "pool" / STAMP).write_text("[1, 2")
    built.clear()
    _report(cli, results, out, "pool")
    assert built == ["pool"] and json.loads((out / "pool" / STAMP).read_text())["format"] == 1
