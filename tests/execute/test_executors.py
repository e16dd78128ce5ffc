"""Executors on the CPU, as separate processes: concurrent runs on one folder, local workers,
SIGKILL mid-cell then resume, workers that die, Ctrl-C, out of memory."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from ablate import ACTIVATIONS, register_activation
from ablate.cli import app
from ablate.store.folder import read_events, scan_runs

from helpers.plugins import killer_plugin
from helpers.process import ablate, finish, write
from helpers.sweeps import RESUMABLE, tiny_sweep

pytestmark = pytest.mark.slow

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "train_eval_acc", "lr")

# Six tiny cells (2 variants x 3 seeds), one epoch of 4 steps each.
SIX_CELLS = tiny_sweep("six", seeds=(0, 1, 2))

# Activations that kill their own process: "killonce" the first time only, "killalways" every time.
KILLER_PLUGIN = killer_plugin()


def metrics(results: Path, experiment: str) -> dict[str, list[dict]]:
    scan = scan_runs(results, experiment)
    assert not scan.unreadable
    return {r["run_id"]: [{k: e[k] for k in METRICS} for e in r["epochs"]] for r in scan.records}


def starts(results: Path, experiment: str) -> Counter:
    return Counter(e["run_id"] for e in read_events(results, experiment) if e["event"] == "start")


def test_two_concurrent_runs_train_every_cell_exactly_once(tmp_path):
    write(tmp_path, "six.toml", SIX_CELLS)
    args = ("run", "six.toml", "--device", "cpu", "--results", "res", "--threads", "1")
    first, second = ablate(tmp_path, *args), ablate(tmp_path, *args)
    (code1, out1), (code2, out2) = finish(first), finish(second)
    assert code1 == 0 and code2 == 0, out1 + out2
    counts = starts(tmp_path / "res", "six")
    assert len(counts) == 6 and set(counts.values()) == {1}, counts  # each cell trained once
    finishes = [e for e in read_events(tmp_path / "res", "six") if e["event"] == "finish"]
    assert len(finishes) == 6 and {e["pid"] for e in finishes} == {first.pid, second.pid}  # both worked
    assert len(scan_runs(tmp_path / "res", "six").records) == 6
    assert not list((tmp_path / "res" / "six" / "claims").iterdir())  # every claim released
    assert not list((tmp_path / "res" / "six" / "checkpoints").glob("*.pt"))  # deleted once finished


def test_two_workers_give_the_same_metrics_as_one(tmp_path):
    write(tmp_path, "six.toml", SIX_CELLS)
    code, out = finish(
        ablate(
            tmp_path, "run", "six.toml", "--device", "cpu", "--results", "one", "--threads", "1", "--set", "seeds=[0,1]"
        )
    )
    assert code == 0, out
    code, out = finish(
        ablate(
            tmp_path, "run", "six.toml", "--device", "cpu", "--results", "two", "--workers", "2", "--set", "seeds=[0,1]"
        )
    )
    assert code == 0, out
    assert "2 workers on cpu" in out
    one, two = metrics(tmp_path / "one", "six"), metrics(tmp_path / "two", "six")
    assert len(one) == 4 and one == two
    records = scan_runs(tmp_path / "two", "six").records
    assert {r["worker"]["label"] for r in records} <= {"cpu #0", "cpu #1"}
    assert {r["runtime"]["cpu_threads"] for r in records} == {1}  # 2 cores split between 2 workers


def test_sigkill_mid_cell_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path):
    write(tmp_path, "resumable.toml", RESUMABLE)
    args = ("run", "resumable.toml", "--device", "cpu", "--threads", "1", "--keep-checkpoints")
    code, out = finish(ablate(tmp_path, *args, "--results", "whole"))
    assert code == 0, out
    proc = ablate(tmp_path, *args, "--results", "killed")
    checkpoint = tmp_path / "killed" / "resumable" / "checkpoints"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (checkpoint.is_dir() and any(checkpoint.glob("*.pt"))):
        time.sleep(0.05)
    time.sleep(0.5)  # a few more steps, so the kill lands mid-cell
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not scan_runs(tmp_path / "killed", "resumable").records  # killed before the cell finished
    code, out = finish(ablate(tmp_path, *args, "--results", "killed"))
    assert code == 0, out
    assert "resumed from its checkpoint" in out
    (record,) = scan_runs(tmp_path / "killed", "resumable").records
    assert record["resumed"] and record["resumed"][0]["done_steps"] > 0
    events = [e["event"] for e in read_events(tmp_path / "killed", "resumable")]
    assert events[:3] == ["start", "take-over", "start"]  # the dead owner's claim was taken over
    assert metrics(tmp_path / "killed", "resumable") == metrics(tmp_path / "whole", "resumable")
    # Final weights are bit-identical too (the kept end-of-run checkpoints).
    run_id = record["run_id"]
    a = torch.load(tmp_path / "whole" / "resumable" / "checkpoints" / f"{run_id}.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "killed" / "resumable" / "checkpoints" / f"{run_id}.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("executor", [[], ["--workers", "2"]], ids=["in-process", "pool"])
def test_sigint_stops_with_a_checkpoint_and_exit_130(tmp_path, executor):
    """Ctrl-C to `ablate run` (the parent alone, for the pool: its workers hear it through the
    parent's stop event): checkpoint, claims released, exit 130."""
    write(tmp_path, "resumable.toml", RESUMABLE.replace("checkpoint_minutes = 0.0001", "checkpoint_minutes = 0"))
    threads = [] if executor else ["--threads", "1"]
    proc = ablate(tmp_path, "run", "resumable.toml", "--device", "cpu", *threads, *executor, "--results", "res")
    events = tmp_path / "res" / "resumable" / "events.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not events.exists():
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc, timeout=120)
    assert code == 130, out
    assert "rerun the same command to continue" in out
    assert list((tmp_path / "res" / "resumable" / "checkpoints").glob("*.pt"))  # saved on the way out
    assert not list((tmp_path / "res" / "resumable" / "claims").iterdir())  # released
    assert read_events(tmp_path / "res", "resumable")[-1]["event"] == "interrupted"


def _claim_pids(claims: Path, n: int, timeout: float = 240) -> list[int]:
    """The pids of the workers holding ``n`` claims, once they all train."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for path in claims.iterdir() if claims.is_dir() else []:
            try:
                found.append(json.loads(path.read_text())["pid"])
            except (OSError, ValueError, KeyError):
                pass
        if len(found) == n:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{n} claims never appeared in {claims}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_pool_whose_parent_is_stopped_or_killed_leaves_no_worker_training(tmp_path, sig):
    """Issue 19 item 7: SIGTERM to the parent stops the pool like Ctrl-C (exit 130); after a SIGKILL
    the orphaned workers notice, checkpoint and release their claims instead of training on."""
    write(tmp_path, "long.toml", tiny_sweep("long", seeds=(0,), epochs=200))
    proc = ablate(tmp_path, "run", "long.toml", "--device", "cpu", "--results", "res", "--workers", "2")
    workers = _claim_pids(tmp_path / "res" / "long" / "claims", 2)
    try:
        time.sleep(0.5)
        proc.send_signal(sig)
        code, out = finish(proc, timeout=120)
        assert code == (130 if sig == signal.SIGTERM else -9), out
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "workers train on as orphans"
    finally:
        for pid in workers:  # never leave an orphan burning the CPU, whatever the outcome
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    events = read_events(tmp_path / "res", "long")
    assert [e["event"] for e in events].count("interrupted") == 2 and "finish" not in {e["event"] for e in events}
    assert not list((tmp_path / "res" / "long" / "claims").iterdir())  # released
    assert len(list((tmp_path / "res" / "long" / "checkpoints").glob("*.pt"))) == 2  # saved on the way out
    if sig == signal.SIGTERM:
        assert "stopping" in out and "rerun the same command to continue" in out


SLEEPY_PLUGIN = """
import time
from pathlib import Path
from torch import nn
from ablate import register_activation

class Sleepy(nn.ReLU):  # a step that does not end soon (a huge batch, a stuck data read)
    def forward(self, x):
        Path(__file__).with_name("sleeping").touch()
        time.sleep(60)
        return super().forward(x)

register_activation("sleepy")(Sleepy)
"""


def test_a_second_ctrl_c_quits_a_pool_at_once(tmp_path):
    """Issue 19 item 9: the first Ctrl-C says "stopping"; the second does not wait for workers stuck in a step."""
    write(tmp_path, "sleepy.py", SLEEPY_PLUGIN)
    write(tmp_path, "six.toml", SIX_CELLS)
    proc = ablate(
        tmp_path,
        "--plugin",
        "sleepy",
        "run",
        "six.toml",
        "--device",
        "cpu",
        "--results",
        "res",
        "--workers",
        "2",
        "--set",
        "seeds=[0]",
        "--set",
        'model.activation="sleepy"',
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (tmp_path / "sleeping").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc, timeout=120)
    assert code == 130 and "stopping" in out, out
    assert time.monotonic() - started < 15, "the second Ctrl-C waited for the workers"


def test_pool_replaces_a_killed_worker_and_retries_its_cell(tmp_path):
    write(tmp_path, "killer.py", KILLER_PLUGIN)
    write(tmp_path, "six.toml", SIX_CELLS)
    code, out = finish(
        ablate(
            tmp_path,
            "--plugin",
            "killer",
            "run",
            "six.toml",
            "--device",
            "cpu",
            "--results",
            "res",
            "--workers",
            "2",
            "--set",
            "seeds=[0]",
            "--set",
            'model.activation="killonce"',
        )
    )
    assert code == 0, out
    assert (tmp_path / "killed-once").exists()
    events = read_events(tmp_path / "res", "six")
    assert [e["event"] for e in events].count("worker-died") == 1
    assert {r["status"] for r in scan_runs(tmp_path / "res", "six").records} == {"ok"}
    assert len(scan_runs(tmp_path / "res", "six").records) == 2


def test_pool_gives_up_on_a_cell_that_always_kills_its_worker(tmp_path):
    write(tmp_path, "killer.py", KILLER_PLUGIN)
    write(tmp_path, "six.toml", SIX_CELLS)
    code, out = finish(
        ablate(
            tmp_path,
            "--plugin",
            "killer",
            "run",
            "six.toml",
            "--device",
            "cpu",
            "--results",
            "res",
            "--workers",
            "2",
            "--max-retries",
            "1",
            "--set",
            "seeds=[0]",
            "--set",
            'axes.pooling=["overlap"]',
            "--set",
            'model.activation="killalways"',
        )
    )
    assert code == 1, out
    (record,) = scan_runs(tmp_path / "res", "six").records
    assert (
        record["status"] == "failed"
        and "worker process died (signal 9)" in record["error"]
        and "2 time(s)" in record["error"]
    )


# Kills the first pool worker that writes a run file, right after writing it (before it can
# tell the parent): the moment a SIGKILL "right after the ok run file appears" lands.
KILL_AFTER_WRITE_PLUGIN = """
import multiprocessing, os, signal
from pathlib import Path
import ablate.execute.runner

MARK = Path(__file__).with_name("killed-after-write")
_write_run = ablate.execute.runner.write_run

def write_run(root, record, *args, **kw):
    path = _write_run(root, record, *args, **kw)
    if multiprocessing.current_process().name.startswith("ablate-worker"):
        try:
            os.close(os.open(MARK, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return path
        os.kill(os.getpid(), signal.SIGKILL)
    return path

ablate.execute.runner.write_run = write_run
"""


def test_a_worker_killed_after_writing_its_run_file_keeps_its_result(tmp_path):
    """Issue 19 item 2: the dead worker's cell is done; it is neither recorded failed over its
    ok run file nor counted twice."""
    write(tmp_path, "killer.py", KILL_AFTER_WRITE_PLUGIN)
    write(tmp_path, "six.toml", SIX_CELLS)
    code, out = finish(
        ablate(
            tmp_path,
            "--plugin",
            "killer",
            "run",
            "six.toml",
            "--device",
            "cpu",
            "--results",
            "res",
            "--workers",
            "2",
            "--max-retries",
            "0",
            "--set",
            "seeds=[0]",
            "--set",
            'axes.pooling=["overlap"]',
        )
    )
    assert (tmp_path / "killed-after-write").exists()
    assert code == 0, out
    (record,) = scan_runs(tmp_path / "res", "six").records
    assert record["status"] == "ok"
    assert "1 run(s): 1 ok, 0 failed" in " ".join(out.split())


class _OutOfMemory(torch.nn.ReLU):
    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture
def oom_activation():
    """An activation that runs out of memory, registered for one test only (the registry is global)."""
    register_activation("test-oom")(_OutOfMemory)
    yield "test-oom"
    ACTIVATIONS.unregister("test-oom")


def test_out_of_memory_is_a_failed_record_and_exit_1(cli, write_experiment, tmp_path, oom_activation):
    path = write_experiment(SIX_CELLS.replace("seeds = [0, 1, 2]", "seeds = [0]"), "six.toml")
    result = cli.invoke(
        app,
        [
            "run",
            str(path),
            "--device",
            "cpu",
            "--results",
            str(tmp_path / "res"),
            "--set",
            'model.activation="test-oom"',
            "--set",
            'axes.activation=["test-oom", "relu"]',
            "--set",
            'axes.pooling=["overlap"]',
        ],
    )
    assert result.exit_code == 1, result.output
    records = {r["slug"]: r for r in scan_runs(tmp_path / "res", "six").records}
    assert records["test-oom-overlap-none-drop"]["status"] == "failed"
    assert records["test-oom-overlap-none-drop"]["error"] == "out of memory at batch 1 on cpu"
    assert records["relu-overlap-none-drop"]["status"] == "ok"  # the sweep went on
    assert "1 ok, 1 failed, 0 diverged" in result.output


def test_precision_adds_seeds_until_the_rule_stops_and_a_rerun_trains_nothing(cli, write_experiment, tmp_path):
    # Two epochs: after one, both variants still predict one class (identical accuracies, and an
    # interval of width 0 would stop the rule at once).
    path = write_experiment(
        SIX_CELLS.replace("seeds = [0, 1, 2]", "seeds = [0, 1]").replace("epochs = 1", "epochs = 2"), "six.toml"
    )
    args = [
        "run",
        str(path),
        "--device",
        "cpu",
        "--results",
        str(tmp_path / "res"),
        "--until-precise",
        "0.001",
        "--max-seeds",
        "3",
    ]
    first = cli.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "max seeds reached" in first.output and "6 run(s)" in first.output.replace("\n", " ")
    manifest = json.loads((tmp_path / "res" / "six" / "experiment.json").read_text())
    assert manifest["seeds"] == [0, 1, 2] and manifest["adaptive"]["reason"] == "max seeds reached"
    assert {r["seed"] for r in scan_runs(tmp_path / "res", "six").records} == {0, 1, 2}  # seed 2 for every variant
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "0 run(s)" in again.output, again.output
    assert Counter(starts(tmp_path / "res", "six").values()) == Counter({1: 6})  # nothing trained twice


def test_limit_with_two_local_workers_trains_exactly_that_many_cells(tmp_path):
    write(tmp_path, "six.toml", SIX_CELLS)
    code, out = finish(
        ablate(tmp_path, "run", "six.toml", "--device", "cpu", "--results", "res", "--workers", "2", "--limit", "2")
    )
    assert code == 0, out
    assert "2 workers on cpu" in out and "4 left for a later run" in out.replace("\n", " "), out
    assert len(scan_runs(tmp_path / "res", "six").records) == 2
    assert sum(starts(tmp_path / "res", "six").values()) == 2
