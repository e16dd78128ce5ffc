"""Faults at the edges (issue 19) as the command line meets them: one line and exit 2 for a
problem the user can fix, never a traceback; user-given strings shown as they are (no markup)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from ablate.cli import app
from ablate.store.record import problem

from helpers.planted import Outcome, write_planted
from helpers.sweeps import tiny_sweep


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and result.output.rstrip().endswith(lines[0]), result.output  # the last word, one line
    return lines[0]


@pytest.mark.parametrize("blocker", ["experiment.json/", "events.jsonl/", "claims", "checkpoints", "runs"])
def test_something_in_the_way_in_the_results_folder_is_one_line(cli, write_experiment, tmp_path, blocker):
    """Item 12: a folder where a file belongs, or a file where a folder belongs: exit 2 before training."""
    path = write_experiment(tiny_sweep("tiny"), "tiny.toml")
    exp_dir = tmp_path / "res" / "tiny"
    exp_dir.mkdir(parents=True)
    if blocker.endswith("/"):
        (exp_dir / blocker.rstrip("/")).mkdir()
    else:
        (exp_dir / blocker).write_text("in the way")
    result = cli.invoke(app, ["run", str(path), "--device", "cpu", "--results", str(tmp_path / "res")])
    assert "move it away" in one_line_error(result)
    assert not (exp_dir / "runs").is_dir() or not list((exp_dir / "runs").iterdir())  # nothing trained


def test_a_full_disk_at_the_start_is_one_line(cli, write_experiment, tmp_path, monkeypatch):
    """Item 12: ENOSPC while writing the manifest is one line, not OSError's traceback."""
    import ablate.store.folder

    path = write_experiment(tiny_sweep("tiny"), "tiny.toml")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ablate.store.folder.os, "fsync", full)
    result = cli.invoke(app, ["run", str(path), "--device", "cpu", "--results", str(tmp_path / "res")])
    assert "No space left on device" in one_line_error(result)


def test_a_claim_that_cannot_be_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Item 12: a claim written on a full disk fails in one line (StoreError) and leaves nothing."""
    from ablate.store.claims import HeldClaim
    from ablate.store.folder import StoreError

    real = Path.write_text

    def full(self, *args, **kw):
        real(self, "")  # the file is created, then the write fails
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(StoreError, match="No space left on device"):
        HeldClaim(tmp_path, "exp", "abc").acquire()
    assert not list((tmp_path / "exp" / "claims").iterdir())


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_broken_symlink_as_results_says_so(cli, write_experiment, tmp_path, kind):
    """Item 12: not "cannot write to X: File exists"."""
    path = write_experiment(tiny_sweep("tiny"), "tiny.toml")
    link = tmp_path / "res"
    if kind == "dangling":
        link.symlink_to(tmp_path / "nowhere")
    else:
        link.symlink_to(link)
    result = cli.invoke(app, ["run", str(path), "--device", "cpu", "--results", str(link)])
    assert "symbolic link to nothing" in one_line_error(result)


def test_export_into_a_file_is_one_line(cli, tmp_path):
    """Item 12: `export tensorboard` when OUT/<experiment> is a file."""
    write_planted(tmp_path / "res", "planted", {"norm": ["lrn"]}, [0], lambda axes, seed: Outcome(), epochs=2)
    out = tmp_path / "tb"
    out.mkdir()
    (out / "planted").write_text("in the way")
    result = cli.invoke(app, ["export", "tensorboard", "--results", str(tmp_path / "res"), "--out", str(out)])
    assert "is a file, not a folder" in one_line_error(result)


@pytest.mark.parametrize(
    "change, why",
    [
        ({"seed": 10**30}, "seed"),
        ({"seed": -1}, "seed"),
        ({"config": {"train": "x"}}, "config.train"),
        ({"config": {"data": [1]}}, "config.data"),
    ],
)
def test_hostile_run_files_are_damaged_files(tmp_path, change, why):
    """Item 12: a seed beyond 0..2**32-1 (OverflowError in report) or a config section that is not
    an object (AttributeError in export) make the record unusable, one warning like any damage."""
    import json

    write_planted(tmp_path, "planted", {"norm": ["lrn"]}, [0], lambda axes, seed: Outcome(), epochs=2)
    record = json.loads(next((tmp_path / "planted" / "runs").glob("*.json")).read_text())
    assert problem(record) is None
    record.update(change)
    assert why in (problem(record) or "")


def flat(text: str) -> str:
    """Text without whitespace: rich wraps long paths at the terminal width."""
    return "".join(text.split())


@pytest.mark.parametrize("name", ["res-m[/]x", "res-m[bold]y"])
def test_paths_with_rich_markup_are_printed_as_they_are(cli, write_experiment, tmp_path, name):
    """Item 11: a results or output folder whose name reads as rich markup is text: no MarkupError
    (after training, in show, report, export), no wrong path."""
    from ablate.experiment.experiment import load_experiment
    from ablate.store.folder import write_run
    from ablate.store.record import failed_record, identity_of

    results = tmp_path / name
    path = write_experiment(tiny_sweep("tiny"), "tiny.toml")
    overrides = ["seeds=[0]", 'axes.pooling=["overlap"]']
    for cell in load_experiment(path, overrides).cells():  # finished: run prints its closing lines only
        write_run(results, {**failed_record(identity_of(cell), "planted"), "status": "ok", "error": None})
    ran = cli.invoke(
        app,
        ["run", str(path), "--device", "cpu", "--results", str(results), "--set", overrides[0], "--set", overrides[1]],
    )
    assert ran.exit_code == 0, ran.output
    assert flat(f"results in {results / 'tiny' / 'runs'}") in flat(ran.output)
    shown = cli.invoke(app, ["show", str(path), "--device", "cpu", "--results", str(results)])
    assert shown.exit_code == 0 and flat(str(results / "tiny" / "runs")) in flat(shown.output), shown.output

    write_planted(results, "planted", {"norm": ["lrn"]}, [0, 1, 2], lambda axes, seed: Outcome(), epochs=2)
    out = tmp_path / f"out-{name}"
    reported = cli.invoke(app, ["report", "planted", "--results", str(results), "--out", str(out)])
    assert reported.exit_code == 0, reported.output
    assert flat(f"report: {out / 'planted' / 'README.md'}") in flat(reported.output)
    exported = cli.invoke(
        app, ["export", "tensorboard", "planted", "--results", str(results), "--out", str(out / "tb")]
    )
    assert exported.exit_code == 0 and flat(f"--logdir {out / 'tb'}") in flat(exported.output), exported.output


def test_a_plugin_error_over_several_lines_is_one_line(cli, tmp_path, monkeypatch):
    """Item 11: the plugin's exception text has a newline; the error stays one line."""
    (tmp_path / "twolines.py").write_text('raise ValueError("first line\\nsecond line")\n')
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, ["--plugin", "twolines", "list"])
    line = one_line_error(result)
    assert "first line" in line and "second line" in line


def test_a_run_of_one_more_seed_does_not_hide_the_others(tmp_path):
    """Item 15: `ablate run exp.toml --set 'seeds=[3]'` on a finished folder rewrites the manifest
    with seed 3 only; runs of seeds 0-2 with the same settings still count, runs with other
    settings are still left out."""
    from ablate.analysis import load_experiment_data

    write_planted(tmp_path, "more", {"norm": ["none", "lrn"]}, [0, 1, 2], lambda axes, seed: Outcome(), epochs=2)
    write_planted(
        tmp_path, "more", {"norm": ["none", "lrn"]}, [7], lambda axes, seed: Outcome(), epochs=3
    )  # other settings
    write_planted(tmp_path, "more", {"norm": ["none", "lrn"]}, [3], lambda axes, seed: Outcome(), epochs=2)
    data = load_experiment_data(tmp_path, "more")
    assert data.seeds == [0, 1, 2, 3]
    assert sorted(data.runs.groupby("variant").size().tolist()) == [4, 4]
    assert data.stale_runs == 2 and any("2 run(s) from an older configuration" in n for n in data.notes)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_load_results_of_no_folder_is_an_error(tmp_path, kind):
    """Item 17: a mistyped results path is an error, not empty frames."""
    from ablate import load_results
    from ablate.analysis import ReportError

    root = tmp_path / "nonexistent"
    if kind == "file":
        root.write_text("x")
    with pytest.raises(ReportError, match="results folder .* (does not exist|is not a folder)"):
        load_results(root)


def test_an_experiment_of_millions_of_cells_is_refused_in_one_line(cli, write_experiment):
    """Item 14: 2,000 seeds x 2,000 dropout_p values (a 25 KB file) is refused at once, with the
    limit named; --max-cells raises it."""
    values = ", ".join(f"{i / 2000:.5f}" for i in range(2000))
    path = write_experiment(
        f'name = "huge"\nseeds = {list(range(2000))}\n[axes]\ndropout_p = [{values}]\n', "huge.toml"
    )
    result = cli.invoke(app, ["show", str(path), "--device", "cpu"])
    assert "4,000,000 cells" in one_line_error(result) and "--max-cells" in result.output
    small = write_experiment(tiny_sweep("small", seeds=(0, 1)), "small.toml")  # 4 cells
    assert "limit of 3" in one_line_error(
        cli.invoke(app, ["run", str(small), "--dry-run", "--max-cells", "3", "--device", "cpu"])
    )
    assert cli.invoke(app, ["show", str(small), "--max-cells", "4", "--device", "cpu"]).exit_code == 0
