"""`ablate run --slurm` against a real single-node Slurm (tests/slurm/start.sh; .ci/run starts it).

Without Slurm (no sbatch, as on a laptop) the cluster tests skip; with CI=true they must run and
fail when Slurm is not up. The one-line errors need no cluster. Every test trains tiny cells on the
CPU, so the whole module takes about two to three minutes, most of it Slurm's KillWait (10 s in
tests/slurm/slurm.conf.in) and the tiny trainings themselves.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from ablate.cli import app
from ablate.store.folder import read_events, scan_runs

from helpers import ROOT
from helpers.process import ablate, write
from helpers.process import finish as finish_process
from helpers.sweeps import RESUMABLE, tiny_sweep

pytestmark = pytest.mark.slow

CI = os.environ.get("CI", "").lower() == "true"
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "train_eval_acc", "lr")

FOUR_CELLS = tiny_sweep("slurm4", seeds=(0, 1))  # 2 variants x 2 seeds, one epoch of 4 steps each


def _unavailable(why: str) -> None:
    if CI:
        pytest.fail(f"CI=true but {why}: .ci/run installs and starts Slurm (tests/slurm/start.sh)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def cluster() -> None:
    """A Slurm that answers, and submitit; skips (fails under CI=true) otherwise."""
    if shutil.which("sbatch") is None:
        _unavailable("sbatch is not installed (no Slurm here)")
    try:
        import submitit  # noqa: F401
    except ImportError:
        _unavailable("submitit is not installed (pip install 'ablate[slurm]')")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if "is UP" not in ping.stdout:
        _unavailable("no Slurm controller answers `scontrol ping` (start one with tests/slurm/start.sh)")


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    return finish_process(proc, timeout)  # a Slurm job of these tiny cells ends well within 240 s


def job_id(output: str) -> str:
    found = re.search(r"submitted Slurm job (\d+)", output)
    assert found, output
    return found.group(1)


def squeue(job: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%i %T"], capture_output=True, text=True)
    return out.stdout.split("\n") if out.returncode == 0 and out.stdout.strip() else []


def wait_until(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def events(results: Path, experiment: str) -> list[dict]:
    return read_events(results, experiment)


def checkpoint_written(results: Path, experiment: str) -> bool:
    folder = results / experiment / "checkpoints"
    return folder.is_dir() and any(folder.glob("*.pt"))


def node_idle() -> bool:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip() == "idle"


def release_when_requeued(job: str) -> None:
    """Slurm holds a requeued job for 120 s (BeginTime); StartTime=now lets it start at once, but
    only once the node has cleaned up its previous run (else Slurm kills the restart at once:
    "Job credential revoked")."""
    wait_until(
        lambda: any("PENDING" in line for line in squeue(job)) and node_idle(),
        60,
        f"job {job} requeued (pending) and the node idle",
    )
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, capture_output=True)


def metrics(results: Path, experiment: str) -> dict[str, list[dict]]:
    scan = scan_runs(results, experiment)
    assert not scan.unreadable
    return {r["run_id"]: [{k: e[k] for k in METRICS} for e in r["epochs"]] for r in scan.records}


def final_weights(results: Path, experiment: str, run_id: str) -> dict:
    return torch.load(results / experiment / "checkpoints" / f"{run_id}.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The resumable cell trained in one go, in-process with 1 thread (as a 1-CPU Slurm task)."""
    folder = tmp_path_factory.mktemp("whole")
    write(folder, "resumable.toml", RESUMABLE)
    code, out = finish(
        ablate(
            folder,
            "run",
            "resumable.toml",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--keep-checkpoints",
            "--results",
            "res",
        )
    )
    assert code == 0, out
    return folder / "res"


# One-line errors: no cluster needed.


def test_no_sbatch_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    write(tmp_path, "s.toml", FOUR_CELLS)
    result = cli.invoke(app, ["run", str(tmp_path / "s.toml"), "--slurm", "--results", str(tmp_path / "res")])
    assert result.exit_code == 2, result.output
    assert "--slurm needs Slurm's sbatch, which is not on PATH" in result.output.replace("\n", " ")
    assert "Traceback" not in result.output
    assert not (tmp_path / "res" / "slurm4").exists()  # nothing loaded, nothing written


def test_missing_submitit_is_one_line(cli, tmp_path, monkeypatch):
    import builtins

    bin_dir = tmp_path / "bin"  # a Slurm as far as PATH can tell, so that submitit is what is missing
    bin_dir.mkdir()
    for tool in ("sbatch", "squeue", "sinfo"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    real_import = builtins.__import__

    def no_submitit(name, *args, **kwargs):
        if name == "submitit" or name.startswith("submitit."):
            raise ImportError("No module named 'submitit'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_submitit)
    write(tmp_path, "s.toml", FOUR_CELLS)
    result = cli.invoke(app, ["run", str(tmp_path / "s.toml"), "--slurm", "--results", str(tmp_path / "res")])
    assert result.exit_code == 2, result.output
    assert "--slurm needs submitit, which is not installed: pip install 'ablate[slurm]'" in result.output.replace(
        "\n", " "
    )
    assert "Traceback" not in result.output


def test_slurm_options_need_slurm_and_exclude_other_executors(cli, tmp_path):
    write(tmp_path, "s.toml", FOUR_CELLS)
    for args, message in (
        (["--partition", "gpu"], "--partition is an option of --slurm"),
        (["--slurm", "--workers", "2"], "--slurm and --workers choose two executors"),
        (["--slurm", "--time", "soon"], "--time soon: expected minutes"),
        (["--slurm", "--slurm-opt", "=x"], "--slurm-opt =x: expected KEY=VALUE"),
    ):
        result = cli.invoke(app, ["run", str(tmp_path / "s.toml"), "--results", str(tmp_path / "res"), *args])
        assert result.exit_code == 2 and message in result.output.replace("\n", " "), (args, result.output)
        assert "Traceback" not in result.output


def test_slurm_time_formats():
    from ablate.execute.slurm.cluster import parse_time

    assert [parse_time(t) for t in ("90", "45:30", "1:30:00", "2-00", "1-00:01:01")] == [90, 46, 90, 2880, 1442]


# Against the cluster.


def test_unknown_partition_is_one_line(cluster, cli, tmp_path):
    write(tmp_path, "s.toml", FOUR_CELLS)
    result = cli.invoke(
        app, ["run", str(tmp_path / "s.toml"), "--slurm", "--partition", "nosuch", "--results", str(tmp_path / "res")]
    )
    assert result.exit_code == 2, result.output
    text = result.output.replace("\n", " ")
    assert "--partition nosuch: no such Slurm partition; this cluster has debug" in text and "Traceback" not in text
    result = cli.invoke(
        app,
        [
            "run",
            str(tmp_path / "s.toml"),
            "--slurm",
            "--slurm-opt",
            "nosuchoption=1",
            "--results",
            str(tmp_path / "res"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert (
        result.output.strip().splitlines()[-1]
        == "error: sbatch refused the job: unrecognized option '--nosuchoption=1'"
    )


def test_wait_on_a_job_that_can_never_start_exits_1_at_once(cluster, tmp_path):
    """More CPUs per task than the node has: Slurm accepts the job and leaves it pending for ever."""
    write(tmp_path, "s.toml", FOUR_CELLS)
    code, out = finish(
        ablate(
            tmp_path,
            "run",
            "s.toml",
            "--slurm",
            "--tasks",
            "1",
            "--cpus-per-task",
            "1024",
            "--wait",
            "--results",
            "res",
        ),
        timeout=60,
    )
    job = job_id(out)
    subprocess.run(["scancel", job], check=True)
    assert code == 1, out
    assert f"Slurm job {job} cannot start (pending, reason PartitionConfig" in out.replace("\n", " ")


def test_four_cells_on_a_two_task_array_each_trained_once_shown_while_running(cluster, tmp_path):
    write(tmp_path, "s.toml", FOUR_CELLS)
    proc = ablate(tmp_path, "run", "s.toml", "--slurm", "--tasks", "2", "--wait", "--results", "res")
    # `ablate show` while the array runs: a cell is running on a Slurm task.
    shown = ""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        show = subprocess.run(
            [sys.executable, "-m", "ablate", "show", "s.toml", "--results", "res"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "300"},
        )
        assert show.returncode == 0, show.stderr
        if re.search(r"running on .*\(slurm \d+_[01] cpu\)", show.stdout):
            shown = show.stdout
            break
        time.sleep(0.3)
    code, out = finish(proc)
    assert code == 0, out
    assert shown, "ablate show never saw a cell running on a Slurm task"
    assert "submitted Slurm job" in out and "2 array task(s) for 4 cell(s)" in out
    assert "4 run(s): 4 ok, 0 failed" in out
    records = scan_runs(tmp_path / "res", "slurm4").records
    assert len(records) == 4 and {r["status"] for r in records} == {"ok"}
    assert {r["worker"]["label"].split()[1].split("_")[1] for r in records} <= {"0", "1"}
    log = events(tmp_path / "res", "slurm4")
    trained = Counter(e["run_id"] for e in log if e["event"] == "finish")
    assert sorted(trained.values()) == [1, 1, 1, 1]  # each cell trained exactly once
    assert Counter(e["run_id"] for e in log if e["event"] == "start") == trained
    assert not list((tmp_path / "res" / "slurm4" / "claims").iterdir())
    # Everything done: a second submission submits nothing and says so.
    again = ablate(tmp_path, "run", "s.toml", "--slurm", "--wait", "--results", "res")
    code, out = finish(again)
    assert code == 0 and "submitted" not in out and "4 already done" in out, out


def test_workers_per_device_packs_several_worker_processes_in_one_array_task(cluster, tmp_path):
    """--workers-per-device K: one array task runs K worker processes (Slurm tasks of one step;
    on a GPU they share it), each claiming cells. Here on CPUs: 2 cells, 1 array task, K = 2."""
    write(tmp_path, "p.toml", tiny_sweep("packed", seeds=(0,)))
    code, out = finish(
        ablate(
            tmp_path,
            "run",
            "p.toml",
            "--slurm",
            "--tasks",
            "1",
            "--workers-per-device",
            "2",
            "--wait",
            "--results",
            "res",
        )
    )
    assert code == 0, out
    assert "2 run(s): 2 ok" in out
    logs = sorted((tmp_path / "res" / "packed" / "slurm").glob("*_log.out"))
    assert len(logs) == 2 and all("Starting with JobEnvironment" in p.read_text() for p in logs)  # 2 processes
    finished = [e for e in events(tmp_path / "res", "packed") if e["event"] == "finish"]
    assert sorted(Counter(e["run_id"] for e in finished).values()) == [1, 1]
    assert all(
        re.fullmatch(r"slurm \d+ #[01] cpu", r["worker"]["label"])
        for r in scan_runs(tmp_path / "res", "packed").records
    )


def _requeued_cell_resumes(tmp_path: Path, uninterrupted: Path, interrupt) -> list[dict]:
    """Submit the resumable cell, ``interrupt(job)`` it mid-cell, let the requeued task start at
    once, wait for it: the cell must resume from its checkpoint and match the uninterrupted run."""
    write(tmp_path, "resumable.toml", RESUMABLE)
    code, out = finish(ablate(tmp_path, "run", "resumable.toml", "--slurm", "--keep-checkpoints", "--results", "res"))
    assert code == 0, out
    job = job_id(out)
    assert f"scancel {job}" in out and "ablate show resumable.toml --results res" in out
    res = tmp_path / "res"
    wait_until(lambda: checkpoint_written(res, "resumable"), 120, "a first checkpoint")
    time.sleep(0.5)
    interrupt(job)
    wait_until(lambda: any(e["event"] == "interrupted" for e in events(res, "resumable")), 60, "the stop")
    assert not list((res / "resumable" / "claims").iterdir())  # released at once, not after the hold
    release_when_requeued(job)

    last_release = [time.monotonic()]

    def finished_or_released_again() -> bool:
        # An update that reached Slurm before it had set the requeue hold is lost, and the job would
        # wait out the whole 120 s hold: release it again (every 10 s) while it is still pending.
        if time.monotonic() - last_release[0] > 10 and any("PENDING" in line for line in squeue(job)) and node_idle():
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
            last_release[0] = time.monotonic()
        return bool(scan_runs(res, "resumable").records)

    wait_until(finished_or_released_again, 300, "the requeued task to finish the cell")
    wait_until(lambda: not squeue(job), 60, "the job to leave the queue")
    (record,) = scan_runs(res, "resumable").records
    assert record["status"] == "ok" and len(record["resumed"]) == 1 and record["resumed"][0]["done_steps"] > 0
    assert metrics(res, "resumable") == metrics(uninterrupted, "resumable")
    a, b = (
        final_weights(uninterrupted, "resumable", record["run_id"]),
        final_weights(res, "resumable", record["run_id"]),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = events(res, "resumable")
    assert [e["event"] for e in log] == ["start", "interrupted", "start", "finish"]
    assert log[2]["checkpoint"] is True and log[3]["resumed"] == 1
    return log


def test_scontrol_requeue_mid_cell_resumes_from_the_checkpoint_bit_identical(cluster, tmp_path, uninterrupted):
    _requeued_cell_resumes(
        tmp_path,
        uninterrupted,
        lambda job: subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True),
    )


def test_preemption_signal_goes_through_submitits_checkpoint_and_requeue(cluster, tmp_path, uninterrupted):
    """submitit's own preemption signal (whichever this version uses): its hook calls
    SlurmWorker.checkpoint, which stops training at the next step, and submitit requeues."""
    from submitit.slurm.slurm import SlurmJobEnvironment

    def preempt(job: str) -> None:
        subprocess.run(["scancel", "--signal", SlurmJobEnvironment.USR_SIG, job], check=True, capture_output=True)

    _requeued_cell_resumes(tmp_path, uninterrupted, preempt)
    logs = "".join(p.read_text() for p in (tmp_path / "res" / "resumable" / "slurm").glob("*_log.*"))
    assert "this job is preempted" in logs and "Calling checkpoint method" in logs and "Requeued job" in logs


def test_scancel_loses_nothing_and_wait_exits_1_then_0_on_rerun(cluster, tmp_path):
    write(tmp_path, "resumable.toml", RESUMABLE)
    res = tmp_path / "res"
    proc = ablate(tmp_path, "run", "resumable.toml", "--slurm", "--wait", "--results", "res")
    wait_until(lambda: checkpoint_written(res, "resumable"), 120, "a first checkpoint")
    time.sleep(0.5)
    subprocess.run(["scancel", "--name", "ablate-resumable"], check=True)
    code, out = finish(proc, timeout=120)
    assert code == 1, out
    assert "not finished when Slurm job" in out.replace("\n", " ") and "rerun to resume it" in out.replace("\n", " ")
    assert not list((res / "resumable" / "claims").iterdir())  # released
    assert checkpoint_written(res, "resumable")  # kept
    assert [e["event"] for e in events(res, "resumable")] == ["start", "interrupted"]
    code, out = finish(ablate(tmp_path, "run", "resumable.toml", "--slurm", "--wait", "--results", "res"))
    assert code == 0, out
    (record,) = scan_runs(res, "resumable").records
    assert record["status"] == "ok" and len(record["resumed"]) == 1


def test_plain_sbatch_array_of_ablate_run_trains_each_cell_once(cluster, tmp_path):
    """The route without submitit (docs/scaling.md): every task of an sbatch array runs the same
    `ablate run`; the claims keep each cell trained once."""
    write(tmp_path, "s.toml", FOUR_CELLS)
    command = f"{sys.executable} -m ablate run s.toml --device cpu --threads 1 --results res"
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--array=0-1",
            "--cpus-per-task=1",
            "-o",
            "plain-%A_%a.log",
            f"--export=ALL,PYTHONPATH={ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "--wrap",
            f"srun {command}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    job = out.stdout.strip().split(";")[0]
    wait_until(lambda: not squeue(job), 180, f"sbatch array {job}")
    records = scan_runs(tmp_path / "res", "slurm4").records
    assert len(records) == 4 and {r["status"] for r in records} == {"ok"}, [
        p.read_text() for p in tmp_path.glob("*.log")
    ]
    trained = Counter(e["run_id"] for e in events(tmp_path / "res", "slurm4") if e["event"] == "finish")
    assert sorted(trained.values()) == [1, 1, 1, 1]
