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
from helpers.plugins import NO_SPACE_FOR_CHECKPOINTS
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


def test_a_time_limit_under_slurms_warning_is_refused_in_one_line(cli, tmp_path):
    """#28 item 15: Slurm warns a task 90 s before its limit (submitit's checkpoint-and-requeue);
    --time 1 would stop every start soon after it began, until "timed-out too many times"."""
    write(tmp_path, "s.toml", FOUR_CELLS)
    for limit in ("1", "2", "0:90"):
        result = cli.invoke(
            app, ["run", str(tmp_path / "s.toml"), "--slurm", "--time", limit, "--results", str(tmp_path / "res")]
        )
        assert result.exit_code == 2, result.output
        text = result.output.replace("\n", " ")
        assert "Slurm warns each task 90 s before its time limit" in text and "at least --time 3" in text, text
        assert len(result.output.strip().splitlines()) <= 3 and "Traceback" not in text


def _fake_slurm(folder: Path, squeue: str = "exit 0", sbatch: str = "exit 0") -> Path:
    """sbatch, squeue and sinfo as shell scripts (a one-node partition "debug" of 2 CPUs)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    sinfo = 'case "$*" in *-N*) echo "debug*|2|(null)";; *) echo "debug*";; esac'
    for tool, body in (("sbatch", sbatch), ("squeue", squeue), ("sinfo", sinfo)):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    return bin_dir


def test_sbatch_that_never_answers_is_stopped_with_one_line(cli, tmp_path, monkeypatch):
    """#28 item 4: an sbatch that hangs (an unreachable controller) no longer blocks for ever."""
    pytest.importorskip("submitit")
    import ablate.execute.slurm.array as array

    bin_dir = _fake_slurm(tmp_path, sbatch="exec sleep 600")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(array, "SBATCH_TIMEOUT_S", 1)
    write(tmp_path, "s.toml", tiny_sweep("one", seeds=(0,)))
    began = time.monotonic()
    result = cli.invoke(
        app,
        [
            "run",
            str(tmp_path / "s.toml"),
            "--slurm",
            "--set",
            "axes.pooling=['overlap']",
            "--results",
            str(tmp_path / "res"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert time.monotonic() - began < 60
    assert result.output.strip().splitlines()[-1] == (
        "error: sbatch did not answer within 1 s (stopped); is slurmctld up? (scontrol ping)"
    )


def _waiting(tmp_path: Path, monkeypatch, squeue: str):
    """wait() on a job of one cell that never writes its run file, with a fake squeue."""
    from ablate.execute.runner import RunSummary
    from ablate.execute.slurm.cluster import Submission
    from ablate.experiment.experiment import load_experiment

    monkeypatch.setenv("PATH", f"{_fake_slurm(tmp_path, squeue=squeue)}{os.pathsep}{os.environ['PATH']}")
    exp = load_experiment(write(tmp_path, "s.toml", tiny_sweep("one", seeds=(0,))))
    todo = exp.cells()[:1]
    folder = tmp_path / "res" / "one" / "slurm"
    folder.mkdir(parents=True)
    return Submission("26", 1, folder, 1), todo, RunSummary("one")


def test_wait_retries_a_failing_squeue_and_says_it_cannot_reach_slurm(tmp_path, monkeypatch):
    """#28 item 4: an squeue that fails ("Unable to contact slurm controller") is not a finished job."""
    import ablate.execute.slurm.array as array
    from ablate.execute.observer import RunObserver

    said = "echo 'squeue: error: Unable to contact slurm controller (connect failure)' >&2; exit 1"
    submission, todo, summary = _waiting(tmp_path, monkeypatch, said)
    monkeypatch.setattr(array, "SQUEUE_PATIENCE_S", 1.0)
    monkeypatch.setattr(array, "SQUEUE_BACKOFF_MAX_S", 0.2)
    array.wait(submission, todo, tmp_path / "res", 0.0, summary, RunObserver(), poll_s=0.05)
    assert len(summary.errors) == 1, summary.errors
    (error,) = summary.errors
    assert error.startswith("cannot reach Slurm: squeue has not answered for")
    assert "job 26 may still be running" in error
    assert "Unable to contact slurm controller (connect failure)" in error and "not finished" not in error


def test_wait_names_the_task_logs_last_error_a_full_disk_and_a_job_that_cannot_start(tmp_path, monkeypatch):
    """#28 items 12 and 13: the driver's line says why a job ended with cells left."""
    import shutil as shutil_module
    from collections import namedtuple

    import ablate.execute.slurm.array as array
    from ablate.execute.observer import RunObserver

    gone = "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"
    submission, todo, summary = _waiting(tmp_path, monkeypatch, gone)
    (submission.folder / "26_0_0_log.err").write_text(
        "submitit INFO (2026-01-01) Starting with JobEnvironment\nTraceback (most recent call last):\n"
        '  File "x.py", line 1\nImportError: BAD numpy.py imported\n'
        "srun: error: node: task 0: Exited with exit code 1\n"
        "submitit INFO (2026-01-01) Job completed\n"
    )
    array.wait(submission, todo, tmp_path / "res", 0.0, summary, RunObserver(), poll_s=0.01)
    (error,) = summary.errors
    assert "not finished when Slurm job 26 ended (a task's log ends with: ImportError: BAD numpy.py imported;" in error
    (submission.folder / "26_0_0_log.err").write_text("srun: error: node: task 0: Exited with exit code 1\n")
    summary.errors.clear()
    array.wait(submission, todo, tmp_path / "res", 0.0, summary, RunObserver(), poll_s=0.01)
    assert "(a task's log ends with: srun: error: node: task 0: Exited with exit code 1;" in summary.errors[0]
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(250 << 20, 250 << 20, 0))
    summary.errors.clear()
    array.wait(submission, todo, tmp_path / "res", 0.0, summary, RunObserver(), poll_s=0.01)
    assert f"ended (the disk of {tmp_path / 'res'} is full (0 bytes free): free some space;" in summary.errors[0]
    (tmp_path / "x").mkdir()
    submission, todo, summary = _waiting(tmp_path / "x", monkeypatch, "echo 'PENDING|PartitionConfig'")
    array.wait(submission, todo, tmp_path / "x" / "res", 0.0, summary, RunObserver(), poll_s=0.01)
    assert summary.errors == [
        "Slurm job 26 cannot start (pending, reason PartitionConfig: it asks for more than the partition allows); "
        "scancel 26 and resubmit with fewer CPUs or GPUs per task, a shorter --time, or another --partition"
    ]


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


def test_more_cpus_per_task_than_any_node_has_is_refused_before_submitting(cluster, cli, tmp_path, monkeypatch):
    """#28 item 15: Slurm would accept such a job and leave it pending for ever; sinfo says how
    many CPUs the partition's nodes have, so it is refused in one line, and nothing is submitted.
    (A job that can never start for other reasons, e.g. a QOS limit, still ends the wait: see
    test_wait_names_the_task_logs_last_error_a_full_disk_and_a_job_that_cannot_start.)"""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "s.toml", FOUR_CELLS)
    cpus = subprocess.run(["sinfo", "-h", "-N", "-o", "%c"], capture_output=True, text=True).stdout.split()
    most = max(int(c) for c in cpus)
    result = cli.invoke(
        app,
        ["run", str(tmp_path / "s.toml"), "--slurm", "--cpus-per-task", str(most + 1), "--results", "r"],
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: --cpus-per-task {most + 1} = {most + 1} CPUs per array task, but the largest node of the default "
        f"partition (debug) has {most} (sinfo); ask for fewer, or choose another --partition"
    )
    assert not (tmp_path / "r" / "slurm4").exists()


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
    assert [e["event"] for e in log] == ["start", "interrupted", "start", "resume", "finish"]
    assert log[3]["done_steps"] > 0 and log[4]["resumed"] == 1
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


def test_a_job_from_a_folder_with_numpy_py_trains_and_its_warnings_reach_log_events_and_driver(cluster, tmp_path):
    """#28 items 12, 3 and 15 in one job: a numpy.py in the folder the job is submitted from is
    not what the task imports (it would end the job at once); a checkpoint that cannot be saved
    (a full disk, here a plugin's) is one warning in the task's log, in events.jsonl and in the
    driver's output; and --tasks 3 for one cell submits one task."""
    script = shutil.which("ablate", path=str(Path(sys.executable).parent))
    if script is None:  # `python -m ablate` would import ./numpy.py itself: Python's rule for -m
        pytest.skip("no ablate console script next to this Python")
    (tmp_path / "numpy.py").write_text('raise ImportError("BAD numpy.py imported")\n')
    (tmp_path / "nospace.py").write_text(NO_SPACE_FOR_CHECKPOINTS)
    write(tmp_path, "one.toml", tiny_sweep("one", seeds=(0,)))
    args = ["--plugin", "nospace", "run", "one.toml", "--set", "axes.pooling=['overlap']", "--slurm"]
    proc = subprocess.Popen(
        [script, *args, "--tasks", "3", "--wait", "--results", "res"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    code, out = finish(proc)
    assert code == 0, out
    assert "1 array task(s) for 1 cell(s)" in out and "1 run(s): 1 ok" in out
    said = "could not save a checkpoint (No space left on device); this cell goes on without checkpoints"
    assert said in out and "1 warning(s)" in out, out
    warned = [e for e in events(tmp_path / "res", "one") if e["event"] == "warning"]
    assert len(warned) == 1 and said in warned[0]["message"] and warned[0]["worker"].startswith("slurm ")
    logs = "".join(p.read_text() for p in (tmp_path / "res" / "one" / "slurm").glob("*_log.err"))
    assert "ablate warning: " in logs and said in logs and "BAD numpy.py" not in logs
