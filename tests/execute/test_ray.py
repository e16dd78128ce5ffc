"""Cluster mode through a local Ray instance with two fake GPUs (no hardware needed): a sweep
runs as Ray tasks, a task that kills its worker is retried, and Ray's absence is one line."""

from __future__ import annotations

import textwrap

import pytest

from ablate.cli import app
from ablate.store.folder import read_events, scan_runs

from helpers.plugins import NO_SPACE_FOR_CHECKPOINTS, killer_plugin
from helpers.sweeps import tiny_sweep

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

SWEEP = tiny_sweep("cluster", seeds=(0, 1))

KILL_ONCE = killer_plugin(once="killonce-ray", always=None)


def test_unreachable_cluster_address_is_one_line_not_a_hang(cli, tmp_path):
    # Runs before the module's cluster starts (an initialised Ray is used as it is).
    assert not ray.is_initialized()
    (tmp_path / "cluster.toml").write_text(textwrap.dedent(SWEEP))
    result = cli.invoke(
        app, ["run", str(tmp_path / "cluster.toml"), "--ray", "127.0.0.1:1", "--results", str(tmp_path / "res")]
    )
    assert result.exit_code == 2, result.output
    assert "no Ray cluster at '127.0.0.1:1'" in result.output.replace("\n", " ") and "Traceback" not in result.output


@pytest.fixture(scope="module")
def fake_gpu_cluster():
    # Two GPU slots without hardware: tasks ask for a GPU each, and train on the CPU.
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_sweep_through_ray_with_a_task_that_kills_itself_once(fake_gpu_cluster, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "killer_ray.py").write_text(textwrap.dedent(KILL_ONCE))
    (tmp_path / "cluster.toml").write_text(textwrap.dedent(SWEEP))
    args = ["--plugin", "killer_ray", "run", "cluster.toml", "--ray", "auto", "--results", "res"]
    args += ["--set", 'model.activation="killonce-ray"']
    result = cli.invoke(app, [*args, "--max-retries", "2"])
    assert result.exit_code == 0, result.output
    assert "Ray tasks" in result.output
    assert (tmp_path / "killed-once").exists()  # one task did die
    records = scan_runs(tmp_path / "res", "cluster").records
    assert len(records) == 4 and {r["status"] for r in records} == {"ok"}
    assert all(r["worker"]["label"].startswith("ray ") for r in records)
    events = read_events(tmp_path / "res", "cluster")
    starts = [e["run_id"] for e in events if e["event"] == "start"]
    assert len(starts) == 5 and len(set(starts)) == 4  # the killed cell was started twice...
    assert [e["event"] for e in events].count("take-over") == 1  # ...taking its dead claim over
    assert not list((tmp_path / "res" / "cluster" / "claims").iterdir())
    # Rerunning trains nothing: the results folder says every cell is done.
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "0 run(s)" in again.output and "4 already done" in again.output


def test_results_folder_must_be_writable_before_ray_starts(cli, tmp_path):
    (tmp_path / "cluster.toml").write_text(textwrap.dedent(SWEEP))
    (tmp_path / "afile").write_text("x")
    result = cli.invoke(
        app, ["run", str(tmp_path / "cluster.toml"), "--ray", "auto", "--results", str(tmp_path / "afile")]
    )
    assert result.exit_code == 2 and "is a file, not a folder" in result.output


def test_missing_ray_is_one_line(cli, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    (tmp_path / "cluster.toml").write_text(textwrap.dedent(SWEEP))
    result = cli.invoke(
        app, ["run", str(tmp_path / "cluster.toml"), "--ray", "local", "--results", str(tmp_path / "res")]
    )
    assert result.exit_code == 2
    assert "pip install 'ablate[ray]'" in result.output and "Traceback" not in result.output


def test_ray_workers_ignore_the_drivers_folder_and_sigterm_stops_the_driver_like_ctrl_c(tmp_path):
    """Issue 19 items 10 and 8, on one local Ray instance: a torch.py in the folder `ablate run
    --ray local` starts from is not what the workers import (Ray puts the driver's working
    directory on their import path), and SIGTERM to the driver cancels the tasks (claims
    released) and exits 130, not with Ray's C++ stack and 134."""
    import json
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = shutil.which("ablate", path=str(Path(sys.executable).parent))
    if script is None:  # `python -m ablate` would import ./torch.py itself: Python's rule for -m
        pytest.skip("no ablate console script next to this Python")
    (tmp_path / "torch.py").write_text('raise ImportError("this is ./torch.py, not torch")\n')
    (tmp_path / "long.toml").write_text(textwrap.dedent(tiny_sweep("long", seeds=(0,), epochs=200)))
    proc = subprocess.Popen(
        [script, "run", "long.toml", "--ray", "local", "--device", "cpu", "--results", "res"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    claims = tmp_path / "res" / "long" / "claims"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not (claims.is_dir() and list(claims.iterdir())):
        time.sleep(0.1)
    started = claims.is_dir() and [json.loads(p.read_text())["pid"] for p in claims.iterdir()]
    if started:
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=180)
    assert started and "this is ./torch.py" not in out, out  # the tasks imported the real torch and train
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "stack" not in out.lower() and "stopping" in out, out
    assert not list(claims.iterdir()), [json.loads(p.read_text()) for p in claims.iterdir()]  # released
    logged = [e["event"] for e in read_events(tmp_path / "res", "long")]
    # #28 item 11: said in the log, once for each cell a task had started (one or both, by timing)
    assert "finish" not in logged and logged.count("interrupted") == logged.count("start") >= 1, logged


def test_limit_with_ray_local_trains_exactly_that_many_cells(fake_gpu_cluster, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluster.toml").write_text(textwrap.dedent(SWEEP))
    result = cli.invoke(app, ["run", "cluster.toml", "--ray", "local", "--results", "res", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "Ray tasks (local)" in result.output and "2 left for a later run" in result.output.replace("\n", " ")
    assert len(scan_runs(tmp_path / "res", "cluster").records) == 2
    assert [e["event"] for e in read_events(tmp_path / "res", "cluster")].count("start") == 2


def test_ray_trains_the_seeds_of_a_variant_fused_in_one_task(fake_gpu_cluster, cli, tmp_path, monkeypatch):
    """--fuse-seeds 2: one Ray task per variant trains its two seeds as one fused model."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluster.toml").write_text(textwrap.dedent(SWEEP))
    result = cli.invoke(app, ["run", "cluster.toml", "--ray", "auto", "--results", "res", "--fuse-seeds", "2"])
    assert result.exit_code == 0, result.output
    records = scan_runs(tmp_path / "res", "cluster").records
    assert len(records) == 4 and {r["status"] for r in records} == {"ok"}
    groups: dict[str, set[str]] = {}
    for r in records:
        assert r["runtime"]["fused"]["k"] == 2
        groups.setdefault(r["runtime"]["fused"]["group"], set()).add(r["slug"])
    assert len(groups) == 2 and all(len(slugs) == 1 for slugs in groups.values())
    assert [e["event"] for e in read_events(tmp_path / "res", "cluster")].count("start") == 4


def test_a_ray_tasks_warnings_reach_events_and_the_drivers_summary(fake_gpu_cluster, cli, tmp_path, monkeypatch):
    """#28 item 3: a checkpoint a Ray task cannot save (a full disk; here a plugin's) is one
    warning in events.jsonl and in the driver's output, which counts it."""
    from ablate.store import checkpoints

    monkeypatch.chdir(tmp_path)
    # The plugin replaces checkpoints.save in this process too (the driver imports it): undone after the test.
    monkeypatch.setattr(checkpoints, "save", checkpoints.save)
    (tmp_path / "nospace_ray.py").write_text(NO_SPACE_FOR_CHECKPOINTS)
    (tmp_path / "cluster.toml").write_text(textwrap.dedent(SWEEP))
    args = ["--plugin", "nospace_ray", "run", "cluster.toml", "--ray", "auto", "--results", "res", "--limit", "1"]
    result = cli.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    said = "could not save a checkpoint (No space left on device); this cell goes on without checkpoints"
    assert said in result.output and "1 warning(s)" in result.output, result.output
    warned = [e for e in read_events(tmp_path / "res", "cluster") if e["event"] == "warning"]
    assert len(warned) == 1 and said in warned[0]["message"] and warned[0]["worker"].startswith("ray ")
