"""Cluster mode on Ray: each cell is one Ray task; the results folder stays the only state.

Ray (an optional extra: ``pip install 'ablate[ray]'``) places tasks on nodes, gives each one GPU
(or ``1/K`` of one with ``--workers-per-device K``) or CPUs, and retries a task whose worker
died (``--max-retries``). Each task runs :func:`ablate.execute.runner.train_claimed_group`, exactly as a local
worker does: it claims the cell in the results folder, resumes its checkpoint, writes the run
file there and releases the claim. So the results root must be a filesystem every node mounts
at the same path; :func:`check_shared_folder` verifies that before any cell is submitted.

The driver keeps a bounded number of tasks in flight and reports to the same observer as the
other executors. Ray's own bookkeeping is never consulted to decide what is done.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ablate.data.sweep import Datasets
from ablate.execute import runner
from ablate.execute.errors import ExecutorError, import_extra
from ablate.execute.observer import RunObserver, TaskLog
from ablate.execute.options import SweepOptions, WorkOptions
from ablate.experiment.experiment import Cell, Experiment
from ablate.store.claims import HEARTBEAT_S, STALE_AFTER_S, claim_path, read_claim
from ablate.store.folder import read_run, run_path


class RayError(ExecutorError, RuntimeError):
    """Ray is missing, unreachable, or cannot see the results folder; ``str()`` is one line."""


def _ray() -> Any:
    return import_extra("ray", RayError, "--ray needs Ray", "ray")


def connect(address: str) -> Any:
    """Connect to Ray: ``auto`` (the running cluster), ``local`` (start one here) or an address.
    An already initialised Ray (e.g. a test's ``ray.init(num_gpus=2)``) is used as it is."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    if address not in ("auto", "local"):
        _reachable(address)
    # ray.init puts the driver's working directory first on every worker's import path: a
    # torch.py (or any module) lying there would be imported by the workers instead of the real
    # one. Start Ray from the folder ablate itself is imported from, which workers must import
    # from anyway. Nothing relies on the working directory meanwhile: the results folder, data
    # roots and the plugin folder are absolute paths by then.
    here = os.getcwd()
    try:
        os.chdir(Path(__file__).resolve().parent.parent)
        if address == "local":
            ray.init(include_dashboard=False, logging_level="warning", log_to_driver=False)
        else:
            ray.init(address=address, logging_level="warning", log_to_driver=False)
    except ConnectionError as e:
        hint = "start one with `ray start --head` (see docs/scaling.md) or use --ray local"
        raise RayError(f"no Ray cluster at {address!r} ({str(e).splitlines()[0]}); {hint}") from None
    except Exception as e:  # noqa: BLE001 - Ray raises many kinds; the user needs one line
        raise RayError(
            f"could not start or reach Ray at {address!r}: {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from None
    finally:
        os.chdir(here)
    return ray


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing listens at (Ray itself would retry for minutes)."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        host, port = hostport, "6379"  # Ray's default GCS port
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise RayError(
            f"no Ray cluster at {address!r} ({host}:{port}: {e.strerror or e}); start one with `ray start --head` "
            "(see docs/scaling.md), check the address, or use --ray auto / --ray local"
        ) from None


def _probe(probe: str, answer: str) -> tuple[str, str | None]:
    """On one node: can it see the driver's probe file, and write its own next to it?"""
    host = socket.gethostname()
    if not Path(probe).exists():
        return host, f"cannot see {probe}, which the driver wrote"
    try:
        Path(answer).write_text(host, encoding="utf-8")
    except OSError as e:
        return host, f"cannot write to {Path(answer).parent}: {e.strerror or e}"
    return host, None


def check_shared_folder(ray: Any, results: Path) -> int:
    """Check that every alive node sees and can write the results root; returns the node count.
    Raises :class:`RayError` naming the first node that cannot."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    probe = results / f".ablate-probe-{token}"
    probe.write_text("driver", encoding="utf-8")
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    remote = ray.remote(num_cpus=0)(_probe)
    try:
        refs = [
            remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                str(probe), str(results / f".ablate-probe-{token}-{i}")
            )
            for i, n in enumerate(nodes)
        ]
        for node, (host, problem) in zip(nodes, ray.get(refs, timeout=120)):
            if problem:
                raise RayError(
                    f"results folder {results} is not usable from node {node.get('NodeManagerAddress')} ({host}): "
                    f"{problem}; "
                    "use a folder on a filesystem every node mounts at the same path (--results)"
                )
        for i in range(len(nodes)):
            answer = results / f".ablate-probe-{token}-{i}"
            if not answer.exists():
                raise RayError(
                    f"results folder {results}: a node wrote {answer.name} but the driver cannot see it; "
                    "use a filesystem every node shares"
                )
            answer.unlink()
    finally:
        probe.unlink(missing_ok=True)
    return len(nodes)


_DATASETS: Datasets | None = None  # per Ray worker process, reused by the tasks it runs


def _cell_task(
    cell: Cell, pool: list[Cell], results: str, opts: WorkOptions, plugins: list[str], plugin_dir: str, wait_s: float
) -> dict[str, Any]:
    """One cell on a Ray worker (with ``fuse_seeds``, the cells of ``pool`` that it can fuse with
    too): claim, train (resume), write, release. ``wait_s``: how long to wait for a claim whose
    owner may be dead on another node (its heartbeat has to expire). ``members``: the run ids
    trained."""
    global _DATASETS
    import ray
    import torch

    from ablate.plugins import load_plugins

    load_plugins(plugins, directory=plugin_dir)
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    # Ray sets CUDA_VISIBLE_DEVICES to the GPU it assigned; with none (or fake ones) train on the CPU.
    device = torch.device("cuda:0" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu")
    if _DATASETS is None:
        _DATASETS = Datasets(use_cache=opts.use_cache)
    deadline = time.monotonic() + wait_s
    opts = dataclasses.replace(opts, worker=f"ray {socket.gethostname()} {device}")
    while True:
        records = runner.train_claimed_group(cell, pool, results, device, _DATASETS, opts, TaskLog())
        if records:
            return {"status": records[0]["status"], "trained": True, "members": [r["run_id"] for r in records]}
        if runner.is_finished(results, cell):
            return {"status": "done", "trained": False}
        claim = read_claim(claim_path(results, cell.experiment, cell.run_id))
        if claim is None or time.monotonic() >= deadline:
            return {"status": "busy", "trained": False}
        time.sleep(HEARTBEAT_S / 2)


@dataclass(frozen=True)
class RayOptions:
    """Where ``--ray`` sends the cells: the cluster, and how many tasks share a GPU."""

    address: str  # auto (the running cluster) | local (start Ray here) | a cluster's address
    per_device: int = 1  # tasks sharing each GPU (--workers-per-device): each asks for 1/K of one


def run_ray(
    exp: Experiment,
    results: str | Path,
    target: RayOptions,
    options: SweepOptions,
    *,
    observer: RunObserver | None = None,
    in_flight: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> runner.RunSummary:
    """Train the unfinished cells of ``exp`` as Ray tasks on ``target``'s cluster; see the module
    doc. ``options.device`` ``cpu`` asks Ray for ``options.threads`` CPUs per task (default 1);
    otherwise tasks ask for ``1/target.per_device`` GPU when the cluster has GPUs (CPUs when it
    has none). When
    ``should_stop`` turns True (the CLI's
    Ctrl-C / SIGTERM handler), the tasks in flight are cancelled (their claims released, their
    last checkpoints kept) and the summary says ``interrupted``."""
    observer = observer or RunObserver()
    results = Path(results).resolve()  # tasks on other nodes see the same absolute path
    results.mkdir(parents=True, exist_ok=True)
    # ray.init installs a SIGTERM handler that exits mid-loop (and Ray's core then aborts with a
    # C++ stack, leaving claims behind): keep the caller's, which asks this loop to stop.
    sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    ray = connect(target.address)
    if sigterm is not None:
        signal.signal(signal.SIGTERM, sigterm)
    check_shared_folder(ray, results)
    started = time.time()
    todo, summary = runner.start_sweep(exp, results, options, observer)
    per_device, threads = target.per_device, options.threads or 1
    gpus = ray.cluster_resources().get("GPU", 0) if options.device != "cpu" else 0
    resources = {"num_gpus": 1 / per_device, "num_cpus": 1} if gpus else {"num_cpus": threads}
    slots = int(gpus * per_device) if gpus else max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    in_flight = in_flight or 2 * slots
    task = ray.remote(_cell_task).options(max_retries=options.max_retries, retry_exceptions=False, **resources)
    opts = options.work(started)
    # A retried task may find the claim of its killed predecessor: on another node that claim
    # only expires after the heartbeat timeout, so tasks wait that long for it.
    wait_s = STALE_AFTER_S + 2 * HEARTBEAT_S
    # One task per group of seeds a worker would fuse (one cell each without fuse_seeds).
    queue, pending = runner.fusion_groups(todo), {}
    try:
        while queue or pending:
            if should_stop():
                _cancel(ray, pending)
                summary.interrupted = True
                runner.tell_new_warnings(summary, results, exp.name, options.sweep, observer)
                return summary
            while queue and len(pending) < in_flight:
                group = queue.pop(0)
                ref = task.remote(group[0], group, str(results), opts, list(options.plugins), os.getcwd(), wait_s)
                pending[ref] = group
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                group = pending.pop(ref)
                cell = group[0]
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the task raised: an error, not a dead worker
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    outcome = {"status": "error", "error": f"{type(cause).__name__}: {str(cause).splitlines()[0]}"}
                except Exception as e:  # noqa: BLE001 - its workers died more than --max-retries times
                    outcome = {"status": "died", "error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
                _collect(outcome, cell, results, summary, observer, len(todo), options.max_retries)
                members = set(outcome.get("members", []))
                for other in group[1:]:
                    if other.run_id in members:
                        _collect({"trained": True}, other, results, summary, observer, len(todo), options.max_retries)
                rest = [c for c in group[1:] if c.run_id not in members and not runner.is_finished(results, c)]
                if rest:  # members the task could not claim: a group of their own (smaller each time)
                    queue.append(rest)
                runner.tell_new_warnings(summary, results, exp.name, options.sweep, observer)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        summary.interrupted = True
        raise
    return summary


def _cancel(ray: Any, pending: dict[Any, list[Cell]], wait_s: float = 20.0) -> None:
    """Cancel the tasks in flight and give them ``wait_s`` to leave (a cancelled task raises
    KeyboardInterrupt in its cell, which releases the claim), so that the driver does not exit
    while they still hold claims."""
    for ref in pending:
        ray.cancel(ref)
    if pending:
        ray.wait(list(pending), num_returns=len(pending), timeout=wait_s)


def _collect(
    outcome: dict[str, Any],
    cell: Cell,
    results: Path,
    summary: runner.RunSummary,
    observer: RunObserver,
    total: int,
    max_retries: int,
) -> None:
    if outcome.get("trained"):
        record = read_run(run_path(results, cell.experiment, cell.run_id))
        if record is not None:
            summary.records.append(record)
            observer.on_cell_end(0, total, cell, record)
    elif outcome["status"] == "busy":
        summary.busy.append(cell)
    elif outcome["status"] == "died":
        # Retries used up: its workers kept dying. Recorded as failed, like the local pool does,
        # unless the last one died after writing the run file: then the cell is done.
        record = runner.record_worker_death(cell, results, outcome["error"], max_retries + 1)
        if record is None and runner.is_finished(results, cell):
            record = read_run(run_path(results, cell.experiment, cell.run_id))
        if record is not None:
            summary.records.append(record)
            observer.on_cell_end(0, total, cell, record)
        else:
            summary.errors.append(f"{cell.variant.slug()} seed {cell.seed}: {outcome['error']}")
    elif outcome["status"] == "error":
        summary.errors.append(f"{cell.variant.slug()} seed {cell.seed}: {outcome['error']}")
