"""Damaged results folders and unwritable outputs: one warning or error line, never a traceback,
never a damaged file counted as finished or silently overwritten, never a lost run."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from ablate.cli import app
from ablate.store.folder import StoreError, check_writable, scan_runs, write_run
from ablate.store.record import problem

from helpers import ROOT
from helpers.sweeps import tiny_sweep

DAMAGE = {
    "truncated": lambda good: good[: len(good) // 2],
    "not-json": lambda good: "this is not json at all",
    "binary": lambda good: "\udcff",  # replaced below by raw bytes
    "list": lambda good: "[1, 2, 3]",
    "seed-str": lambda good: good.replace('"seed": 0', '"seed": "a"'),
    "run-id-list": lambda good: json.dumps({**json.loads(good), "run_id": [1]}),
    "no-variant": lambda good: json.dumps({k: v for k, v in json.loads(good).items() if k != "variant"}),
    "epochs-str": lambda good: json.dumps({**json.loads(good), "epochs": "x"}),
    "metric-str": lambda good: json.dumps({**json.loads(good), "epochs": [{"epoch": 1, "val_acc": "high"}]}),
    "summary-str": lambda good: json.dumps({**json.loads(good), "summary": {"final_val_acc": "0.5"}}),
    "bad-status": lambda good: json.dumps({**json.loads(good), "status": "done"}),
    "steps-dict": lambda good: json.dumps({**json.loads(good), "steps": {"step": 1}}),
}


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """A finished tiny experiment (2 cells), trained once for the module."""
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("trained")
    (folder / "tiny.toml").write_text(tiny_sweep())  # the cells of conftest's tiny_experiment
    result = CliRunner().invoke(
        app, ["run", str(folder / "tiny.toml"), "--results", str(folder / "res"), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    return folder / "res"


@pytest.fixture
def trained(trained_once, tmp_path):
    """A fresh copy of the finished experiment, to damage."""
    shutil.copytree(trained_once, tmp_path / "res")
    return tmp_path / "res"


def damage(results, kind: str):
    """Damage the first run file in one way; returns its path."""
    path = sorted((results / "tiny" / "runs").glob("*.json"))[0]
    good = path.read_text()
    if kind == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage")
    else:
        path.write_text(DAMAGE[kind](good))
    return path


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_show_names_each_damaged_file_and_counts_it_not_done(cli, tiny_experiment, trained, kind):
    path = damage(trained, kind)
    result = cli.invoke(app, ["show", str(tiny_experiment), "--results", str(trained), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert path.name in result.output.replace("\n", "") and "not counted as a run" in result.output.replace("\n", "")
    assert "1 done" in result.output and "1 damaged" in result.output and "0 to run" in result.output
    assert len(scan_runs(trained, "tiny").unreadable) == 1


@pytest.mark.parametrize("kind", ["truncated", "seed-str", "metric-str"])
def test_run_moves_a_damaged_file_aside_then_retrains_the_cell(cli, tiny_experiment, trained, kind):
    path = damage(trained, kind)
    evidence = path.read_bytes()
    result = cli.invoke(app, ["run", str(tiny_experiment), "--results", str(trained), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "1 run(s): 1 ok" in result.output and "1 already done" in result.output
    moved = path.with_name(path.name + ".corrupt")
    assert moved.read_bytes() == evidence  # the evidence is kept, not overwritten
    assert problem(json.loads(path.read_text())) is None  # and the cell has a valid record again


@pytest.mark.parametrize("kind", ["not-json", "no-variant", "summary-str"])
def test_report_warns_about_damaged_files_and_goes_on(cli, trained, tmp_path, kind):
    path = damage(trained, kind)
    result = cli.invoke(app, ["report", "tiny", "--results", str(trained), "--out", str(tmp_path / "reports")])
    assert "Traceback" not in result.output
    assert path.name in result.output.replace("\n", "")
    assert result.exit_code == 0, result.output


def test_damaged_manifest_does_not_crash_show_or_report(cli, tiny_experiment, trained, tmp_path):
    (trained / "tiny" / "experiment.json").write_text("{truncated")
    shown = cli.invoke(app, ["show", str(tiny_experiment), "--results", str(trained), "--device", "cpu"])
    assert shown.exit_code == 0 and "Traceback" not in shown.output
    reported = cli.invoke(app, ["report", "tiny", "--results", str(trained), "--out", str(tmp_path / "reports")])
    assert "Traceback" not in reported.output and reported.exit_code in (0, 2), reported.output


@pytest.mark.parametrize("where", ["a-file", "read-only", "impossible", "too-long"])
def test_unwritable_results_folder_is_one_line_before_training(cli, tiny_experiment, tmp_path, where):
    if where == "a-file":
        target = tmp_path / "a-file"
        target.write_text("x")
    elif where == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root can write to read-only folders")
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(stat.S_IRUSR | stat.S_IXUSR)
    elif where == "impossible":
        target = __import__("pathlib").Path("/proc/ablate-cannot-exist/results")
    else:
        target = tmp_path / ("x" * 300)
    result = cli.invoke(app, ["run", str(tiny_experiment), "--results", str(target), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
    assert "epoch" not in result.output  # nothing trained


def test_write_failure_mid_sweep_rescues_the_record(tmp_path, monkeypatch):
    import ablate.store.folder as store

    record = {"run_id": "0123456789abcdef", "experiment": "exp", "status": "ok", "seed": 0}
    results = tmp_path / "results"
    results.mkdir()

    def broken(path, payload):
        if "rescued" not in path.name:
            raise OSError(28, "No space left on device")
        return real(path, payload)

    real = store.write_json_atomic
    monkeypatch.setattr(store, "write_json_atomic", broken)
    monkeypatch.setattr(store.time, "sleep", lambda s: None)
    with pytest.raises(StoreError) as info:
        write_run(results, record)
    message = str(info.value)
    assert "No space left on device" in message and "\n" not in message
    rescued = tmp_path / "ablate-rescued-exp-0123456789abcdef.json"
    assert rescued.exists() and json.loads(rescued.read_text())["run_id"] == record["run_id"]
    assert str(rescued) in message


def test_run_files_are_readable_by_the_team(trained):
    old = os.umask(0o022)
    try:
        for path in (trained / "tiny" / "runs").glob("*.json"):
            assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, oct(path.stat().st_mode)
        assert stat.S_IMODE((trained / "tiny" / "experiment.json").stat().st_mode) & 0o044 == 0o044
    finally:
        os.umask(old)


def test_check_writable_leaves_no_trace(tmp_path):
    check_writable(tmp_path / "new" / "results")
    assert not (tmp_path / "new").exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError):
        check_writable(tmp_path / "f" / "below")


@pytest.mark.parametrize("command", [["report"], ["export", "tensorboard"]])
def test_unwritable_report_or_export_out_is_one_line(cli, trained, tmp_path, command):
    (tmp_path / "a-file").write_text("x")
    result = cli.invoke(app, [*command, "--results", str(trained), "--out", str(tmp_path / "a-file")])
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder; give --out a folder" in result.output.replace("\n", " ")
    assert "Traceback" not in result.output


def test_batch_larger_than_the_training_set_is_refused_before_training(cli, tiny_experiment, tmp_path):
    result = cli.invoke(
        app,
        [
            "run",
            str(tiny_experiment),
            "--results",
            str(tmp_path / "res"),
            "--device",
            "cpu",
            "--set",
            "train.batch_size=100000",
        ],
    )
    assert result.exit_code == 2, result.output
    flat = result.output.replace("\n", " ")
    assert "train.batch_size = 100000 is larger than the training set (64 images" in flat and "Traceback" not in flat
    assert not list((tmp_path / "res").rglob("*.json"))  # nothing trained, nothing recorded


def test_the_documented_record_keys_are_exactly_the_schema():
    """docs/results-format.md's table of record keys and RunRecord (which problem() checks
    against) name the same keys, with the same JSON types, so neither can drift from the other."""
    import re
    import typing

    from ablate.store.record import REQUIRED, RunRecord, _json_types

    text = (ROOT / "docs" / "results-format.md").read_text(encoding="utf-8")
    documented = dict(re.findall(r"^\| `(\w+)` \| (str|int|object|list|str or null|int or null) \|", text, re.M))
    hints = typing.get_type_hints(RunRecord)
    assert set(documented) == set(hints)
    json_name = {str: "str", int: "int", dict: "object", list: "list"}
    for key, hint in hints.items():
        accepted = _json_types(hint)
        base = json_name[next(t for t in accepted if t is not type(None))]
        assert documented[key] == (f"{base} or null" if type(None) in accepted else base), key
    assert REQUIRED < set(hints)
    minimal = {
        "run_id": "r",
        "experiment": "e",
        "variant": {},
        "slug": "relu-overlap-none-drop",  # the slug of the variant {} (every axis at its default)
        "seed": 0,
        "status": "failed",
        "config": {},
        "epochs": [],
        "summary": {},
    }
    assert set(minimal) == REQUIRED and problem(minimal) is None
    for key in REQUIRED:
        assert problem({k: v for k, v in minimal.items() if k != key}) == f"no {key!r}"


def test_the_documented_epoch_and_step_keys_are_exactly_the_types():
    """docs/results-format.md's tables of ``epochs[]`` and ``steps[]`` keys name exactly the keys
    of EpochMetrics and StepPoint (which build_record types and problem() checks against)."""
    import re

    from ablate.store.record import EPOCH_KEYS, STEP_KEYS

    text = (ROOT / "docs" / "results-format.md").read_text(encoding="utf-8")
    for heading, keys in (("epochs[]", EPOCH_KEYS), ("steps[]", STEP_KEYS)):
        section = text.split(f"### `{heading}`", 1)[1].split("\n#", 1)[0]
        cells = re.findall(r"^\| ((?:`\w+`(?:, )?)+) \|", section, re.M)
        documented = [key for cell in cells for key in re.findall(r"`(\w+)`", cell)]
        assert sorted(documented) == sorted(keys), heading
        assert len(documented) == len(set(documented)), heading


def test_the_readmes_summary_of_epochs_and_steps_names_exactly_the_types_keys():
    """README.md's results-format table summarizes ``epochs`` and ``steps`` in one row each: those
    rows name every key of EpochMetrics and StepPoint and nothing else (it once lacked a key)."""
    import re

    from ablate.store.record import EPOCH_KEYS, STEP_KEYS

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, keys in (("epochs", EPOCH_KEYS), ("steps", STEP_KEYS)):
        row = re.search(rf"^\| `{name}` \| (.*) \|$", text, re.M)
        assert row, name
        named = set(re.findall(r"`(\w+)`", row[1]))
        assert named == set(keys), name


def test_problem_checks_epoch_and_step_entries_against_their_types():
    """An entry with a key its type does not declare, or a value that is not a number, makes the
    record unreadable; a complete entry of either kind passes."""
    from ablate.store.record import EPOCH_KEYS, STEP_KEYS

    record = {
        "run_id": "r",
        "experiment": "e",
        "variant": {},
        "slug": "relu-overlap-none-drop",
        "seed": 0,
        "status": "ok",
        "config": {},
        "epochs": [dict.fromkeys(EPOCH_KEYS, 1)],
        "steps": [dict.fromkeys(STEP_KEYS, 0.5)],
        "summary": {"epochs_done": 1},
    }
    assert problem(record) is None
    assert (
        problem({**record, "epochs": [{"epoch": 1, "val_accuracy": 0.5}]})
        == "epochs[0].val_accuracy: not a key of epochs[] entries"
    )
    assert problem({**record, "steps": [{"step": "3"}]}) == "steps[0].step is str"
    assert problem({**record, "steps": [[1, 2]]}) == "steps[0] is list"


HOSTILE = {  # what a hostile or broken writer could put in an ok run file (#28, item 10)
    "val-acc-nan": lambda r: r["epochs"][-1].update(val_acc=float("nan")) or r["summary"].update(final_val_acc=None),
    "val-acc-inf": lambda r: r["summary"].update(final_val_acc=float("inf")),
    "val-acc-null": lambda r: r["epochs"][-1].update(val_acc=None) or r["summary"].update(final_val_acc=None),
    "negative": lambda r: r["epochs"][-1].update(val_acc=-5.0) or r["summary"].update(final_val_acc=-5.0),
    "huge": lambda r: r["epochs"][-1].update(val_acc=1e308) or r["summary"].update(final_val_acc=1e308),
    "slug": lambda r: r.update(slug="relu-nonoverlap-none-drop"),
    "config-seed-str": lambda r: r["config"].update(seed="0"),
    "variant-not-config": lambda r: r["config"].update(variant={**r["variant"], "pooling": "nonoverlap"}),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_metrics_and_identity_make_a_run_file_unreadable_named_in_one_note(tmp_path, kind, recwarn):
    """Out-of-range or non-finite metrics, and an identity that disagrees with its config, are
    refused by the one record check: the file is named in one note and its cell counts as missing
    (summary and comparison agree on n), never as an ok run of some variant."""
    from ablate.analysis import compare_to_baseline, load_experiment_data, metrics_for, summary_frame

    from helpers.planted import Outcome, write_planted

    write_planted(
        tmp_path,
        "p",
        {"pooling": ["overlap", "nonoverlap"]},
        [0, 1, 2, 3, 4],
        lambda axes, seed: Outcome(final_val_acc=0.6 + 0.01 * seed + 0.02 * (axes["pooling"] == "nonoverlap")),
    )
    base = next(r for r in scan_runs(tmp_path, "p").records if r["slug"] == "relu-overlap-none-drop" and r["seed"] == 1)
    path = tmp_path / "p" / "runs" / f"{base['run_id']}.json"
    HOSTILE[kind](base)
    path.write_text(json.dumps(base))  # Python's json writes NaN and Infinity as the bare literals
    assert problem(json.loads(path.read_text())) is not None
    data = load_experiment_data(tmp_path, "p")
    assert [n for n in data.notes if str(path) in n] == [n for n in data.notes if "not counted as a run" in n]
    assert len([n for n in data.notes if str(path) in n]) == 1
    summary = summary_frame(data).set_index("variant")
    assert summary.loc["relu-overlap-none-drop", "n"] == 4 and summary.loc["relu-nonoverlap-none-drop", "n"] == 5
    comparisons = compare_to_baseline(data, metrics_for(data.targets))
    primary = comparisons[comparisons["metric"] == "final_val_acc"].iloc[0]
    assert primary["n"] == 4 and abs(primary["diff"] - 0.02) < 1e-9  # paired on the 4 seeds left
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
