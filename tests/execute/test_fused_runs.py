"""``ablate run --fuse-seeds K``: the executors claim up to K seeds of a variant together and train
them fused; each member's run file is its solo run's (apart from timing and the fused fields),
each cell is trained exactly once (local workers), and a group killed with SIGKILL mid-training
resumes bit-identically (CPU).

The cells use a tiny AlexNet (registered by a plugin, so that worker processes have it too), which
trains a cell in a fraction of a second: the processes' start-up is most of these tests' time.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest
import tomllib
import torch

from ablate.store.folder import read_events, scan_runs

from helpers.process import ablate, finish, write

pytestmark = pytest.mark.slow

# The tiny geometry of tests/train/test_fused.py, and (for the kill test) a checkpoint save that
# SIGKILLs its process once, before the 7th save: after two whole steps of a group of three.
TINY_PLUGIN = """
import os, signal
from pathlib import Path
from ablate.models.alexnet import ArchSpec
from ablate.registry import register_arch
from ablate.store import checkpoints

register_arch("tiny-run")(ArchSpec(input_size=19, channels=(8, 16, 16, 16, 8), conv1_kernel=5, conv1_stride=1,
    conv1_padding=0, fc_width=32, final_size=1, description="tiny"))

if os.environ.get("ABLATE_TEST_KILL_AT_SAVE"):
    MARK, AT, save, calls = Path(__file__).with_name("killed-once"), int(os.environ["ABLATE_TEST_KILL_AT_SAVE"]), \
        checkpoints.save, [0]

    def killing_save(*args, **kwargs):
        calls[0] += 1
        if calls[0] == AT:
            try:
                os.close(os.open(MARK, os.O_CREAT | os.O_EXCL))
                os.kill(os.getpid(), signal.SIGKILL)
            except FileExistsError:
                pass
        return save(*args, **kwargs)

    checkpoints.save = killing_save
"""


def sweep(name: str, seeds: int, axes: str = 'pooling = ["overlap", "nonoverlap"]', epochs: int = 2) -> str:
    return f"""
name = "{name}"
seeds = {list(range(seeds))}
[model]
arch = "tiny-run"
dropout = true
[axes]
{axes}
[data]
train_size = 48
val_size = 16
augment = "paper"
[train]
epochs = {epochs}
batch_size = 8
eval_batch_size = 8
optimizer = "adam"
lr = 1e-3
log_every = 1
checkpoint_minutes = 0.00001
"""


def run(folder: Path, *args: str) -> str:
    code, out = finish(ablate(folder, "--plugin", "tiny", "run", *args, "--device", "cpu", "--threads", "1"))
    assert code == 0, out
    return out


def records(results: Path, experiment: str) -> dict[str, dict]:
    scan = scan_runs(results, experiment)
    assert not scan.unreadable
    return {r["run_id"]: r for r in scan.records}


TIMING = {
    "epoch_time_s",
    "train_time_s",
    "train_images_per_s",
    "timed_steps",
    "peak_memory_mb",
    "time_s",
    "wall_time_s",
    "checkpoint_s",
}


def comparable(record: dict) -> dict:
    """A record without what differs between a fused and a solo run of one cell: the clocks, who
    trained it, where it was fused and the fuse_seeds setting (not part of the run id)."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    out = strip({k: v for k, v in record.items() if k not in ("env", "worker")})
    out["runtime"].pop("fused", None)
    out["config"]["train"].pop("fuse_seeds")
    return out


def close(a, b, rel: float, where: str = "") -> None:
    if isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in b:
            close(a[k], b[k], rel, f"{where}.{k}")
    elif isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, rel, f"{where}[{i}]")
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=rel, abs=rel, nan_ok=True), where
    else:
        assert a == b, where


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path, "tiny.py", TINY_PLUGIN)
    return tmp_path


def test_fused_run_files_are_the_solo_run_files_and_share_their_run_ids(cli, tmp_path, tiny_arch):
    from ablate.cli import app

    folder = tmp_path
    path = write(folder, "f.toml", sweep("f", seeds=3, axes='norm = ["batchnorm"]'))

    def run(*args: str) -> None:
        result = cli.invoke(app, ["run", str(path), "--device", "cpu", *args])
        assert result.exit_code == 0, result.output

    run("--results", str(folder / "solo"))
    run("--results", str(folder / "fused"), "--fuse-seeds", "3")
    a, b = records(folder / "fused", "f"), records(folder / "solo", "f")
    assert a.keys() == b.keys() and len(a) == 3  # same run ids: K is no part of a cell's identity
    groups = Counter(r["runtime"]["fused"]["group"] for r in a.values())
    assert sorted(groups.values()) == [3]  # the three seeds in one group
    for run_id, record in a.items():
        assert record["runtime"]["fused"]["k"] == 3 and record["config"]["train"]["fuse_seeds"] == 3
        assert "fused" not in b[run_id]["runtime"]
        close(comparable(record), comparable(b[run_id]), 1e-4, run_id)
    starts = [e for e in read_events(folder / "fused", "f") if e["event"] == "start"]
    assert len(starts) == 3 and not any(e.get("checkpoint") for e in starts)
    run("--results", str(folder / "fused"), "--fuse-seeds", "2")  # a rerun finds every cell done
    assert len([e for e in read_events(folder / "fused", "f") if e["event"] == "start"]) == 3


def test_two_workers_fusing_three_seeds_train_each_cell_exactly_once(folder):
    """The issue's fault test: 2 variants x 6 seeds, --fuse-seeds 3 --workers 2."""
    write(folder, "w.toml", sweep("w", seeds=6, epochs=1))
    run(folder, "w.toml", "--results", "res", "--fuse-seeds", "3", "--workers", "2")
    events = read_events(folder / "res", "w")
    fresh = Counter(e["run_id"] for e in events if e["event"] == "start" and not e.get("checkpoint"))
    assert len(fresh) == 12 and set(fresh.values()) == {1}, fresh
    assert not [e for e in events if e["event"] in ("take-over", "worker-died", "resume")]  # none resumed either
    done = records(folder / "res", "w")
    assert len(done) == 12 and {r["status"] for r in done.values()} == {"ok"}
    for record in done.values():  # every group: seeds of one variant, at most three
        group = [r for r in done.values() if r["runtime"]["fused"]["group"] == record["runtime"]["fused"]["group"]]
        assert len(group) == record["runtime"]["fused"]["k"] <= 3
        assert {r["slug"] for r in group} == {record["slug"]}
    assert {r["worker"]["label"] for r in done.values()} == {"cpu #0", "cpu #1"}  # both workers trained
    assert not list((folder / "res" / "w" / "claims").iterdir())


def test_a_group_killed_mid_training_resumes_bit_identically(folder, monkeypatch):
    """SIGKILL of the run after two whole steps of the group (6 member checkpoints saved); the rerun
    takes the dead owner's claims over, resumes the group and ends where the uninterrupted group
    ends, to the bit: metrics of every step and epoch, final weights and BatchNorm statistics."""
    write(folder, "k.toml", sweep("k", seeds=3, axes='norm = ["batchnorm"]'))
    args = ("k.toml", "--fuse-seeds", "3", "--keep-checkpoints")
    run(folder, *args, "--results", "whole")
    monkeypatch.setenv("ABLATE_TEST_KILL_AT_SAVE", "7")
    code, out = finish(
        ablate(folder, "--plugin", "tiny", "run", *args, "--results", "killed", "--device", "cpu", "--threads", "1")
    )
    monkeypatch.delenv("ABLATE_TEST_KILL_AT_SAVE")
    assert code == -9 and (folder / "killed-once").exists(), out
    assert not scan_runs(folder / "killed", "k").records
    run(folder, *args, "--results", "killed")
    events = [e["event"] for e in read_events(folder / "killed", "k")]
    assert events.count("take-over") == 3 and events.count("start") == 6, events
    whole, killed = records(folder / "whole", "k"), records(folder / "killed", "k")
    assert whole.keys() == killed.keys() and len(killed) == 3
    for run_id, record in killed.items():
        assert [r["done_steps"] for r in record["resumed"]] == [2]
        for key in ("epochs", "steps"):
            assert [{k: v for k, v in e.items() if k not in TIMING} for e in record[key]] == [
                {k: v for k, v in e.items() if k not in TIMING} for e in whole[run_id][key]
            ], (run_id, key)
        a, b = (
            torch.load(f / "k" / "checkpoints" / f"{run_id}.pt", weights_only=True)["model"]
            for f in (folder / "whole", folder / "killed")
        )
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def tiny_arch():
    from ablate.models.alexnet import ArchSpec
    from ablate.registry import ARCHS, register_arch

    spec = dict(input_size=19, channels=(8, 16, 16, 16, 8), conv1_kernel=5, conv1_stride=1, conv1_padding=0)
    register_arch("tiny-run")(ArchSpec(**spec, fc_width=32, final_size=1, description="tiny"))
    yield
    ARCHS.unregister("tiny-run")


def test_a_stopped_group_checkpoints_every_member_and_a_rerun_resumes_them_as_a_group(tmp_path, tiny_arch):
    """Ctrl-C / SIGTERM (the CLI's stop request): every member saves its checkpoint, every claim is
    released, each member logs ``interrupted``; the next run resumes the three as one group."""
    from ablate.execute.runner import run_experiment
    from ablate.experiment.experiment import parse_experiment

    exp = parse_experiment(tomllib.loads(sweep("s", seeds=3, axes='pooling = ["overlap"]')), "s.toml")
    exp = dataclasses.replace(exp, train=dataclasses.replace(exp.train, fuse_seeds=3))
    polls = {"n": 0}

    def stop_at_third_step() -> bool:
        polls["n"] += 1
        return polls["n"] >= 3 * 3  # each member's hook is asked after every step

    summary = run_experiment(exp, torch.device("cpu"), tmp_path, should_stop=stop_at_third_step)
    assert summary.interrupted and not summary.records
    folder = tmp_path / "s"
    assert len(list((folder / "checkpoints").glob("*.pt"))) == 3 and not list((folder / "claims").iterdir())
    assert [e["event"] for e in read_events(tmp_path, "s")].count("interrupted") == 3
    summary = run_experiment(exp, torch.device("cpu"), tmp_path)
    assert len(summary.records) == 3
    groups = {r["runtime"]["fused"]["group"] for r in summary.records}
    assert len(groups) == 1 and all(r["resumed"][0]["done_steps"] == 3 for r in summary.records)


def test_fuse_seeds_auto_probes_this_device_and_says_what_it_picked(cli, tmp_path, tiny_arch):
    from ablate.cli import app

    path = write(tmp_path, "a.toml", sweep("a", seeds=2, axes='pooling = ["overlap"]', epochs=1))
    result = cli.invoke(
        app, ["run", str(path), "--results", str(tmp_path / "r"), "--device", "cpu", "--fuse-seeds", "auto"]
    )
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("fuse_seeds auto:")]
    k = int(line.split("K=")[1].split()[0])
    assert k in (1, 2) and "on cpu (" in line
    done = records(tmp_path / "r", "a")
    assert len(done) == 2 and all(r["config"]["train"]["fuse_seeds"] == k for r in done.values())
    assert all(("fused" in r["runtime"]) == (k > 1) for r in done.values())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fuse-seeds", "0"], "--fuse-seeds 0: give an integer K >= 1, or auto"),
        (["--fuse-seeds", "many"], "--fuse-seeds many: give an integer K >= 1, or auto"),
        (
            ["--fuse-seeds", "auto", "--slurm"],
            "--fuse-seeds auto probes this machine's device; with --ray or --slurm give K",
        ),
    ],
)
def test_a_bad_fuse_seeds_is_one_line_and_exit_2(cli, tmp_path, tiny_arch, extra, message):
    from ablate.cli import app

    path = write(tmp_path, "b.toml", sweep("b", seeds=2))
    result = cli.invoke(app, ["run", str(path), "--results", str(tmp_path / "r"), "--device", "cpu", *extra])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "r").exists()


def test_a_partly_finished_group_trains_only_the_rest(tmp_path, tiny_arch):
    from ablate.execute.runner import run_experiment
    from ablate.experiment.experiment import parse_experiment

    exp = parse_experiment(tomllib.loads(sweep("p", seeds=3, axes='pooling = ["overlap"]', epochs=1)), "p.toml")
    first = run_experiment(exp, torch.device("cpu"), tmp_path, limit=1)  # seed 0 alone
    assert [r["seed"] for r in first.records] == [0] and "fused" not in first.records[0]["runtime"]
    fused = dataclasses.replace(exp, train=dataclasses.replace(exp.train, fuse_seeds=3))
    rest = run_experiment(fused, torch.device("cpu"), tmp_path)
    assert [r["seed"] for r in rest.records] == [1, 2] and [c.seed for c in rest.skipped] == [0]
    assert [r["runtime"]["fused"]["k"] for r in rest.records] == [2, 2]
    starts = [e["run_id"] for e in read_events(tmp_path, "p") if e["event"] == "start"]
    assert sorted(starts) == sorted(c.run_id for c in exp.cells())  # each cell started once
