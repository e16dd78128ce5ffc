"""Cluster mode on Slurm through submitit: one array job whose tasks are workers.

``ablate run FILE --slurm`` submits one Slurm job array (through submitit, an optional extra:
``pip install 'ablate[slurm]'``). Every array task is a worker like a local pool worker: it walks
the sweep's cells and trains each one it can claim (:func:`ablate.execute.runner.train_claimed`) until
none is left. The claims in the results folder decide who trains what, so array tasks, a local
``--workers`` run, Ray tasks and a plain ``ablate run`` can share one results folder (which must
be on a filesystem every node mounts at the same path) and no cell is trained twice.

Preemption and time limits go through submitit's own hook: submitit calls
:meth:`SlurmWorker.checkpoint` when Slurm warns the task (whatever signal this submitit version
uses); it asks training to stop, training saves a checkpoint at its next step and releases its
claim, and the returned submission is requeued. ``scancel`` and ``scontrol requeue`` send SIGTERM,
which does the same (checkpoint, release) without the resubmission. Claims are *released*, never
kept across Slurm's hold of a requeued task: the checkpoint is what survives, and whichever worker
claims the cell next (the requeued task, a sibling still running, a later ``ablate run``) resumes it.

``--workers-per-device K`` with ``--gpus-per-task G`` makes each array task one job step of G x K
processes (Slurm tasks) sharing its G GPUs, each of them a worker as above.

The driver keeps no state of its own: with ``--wait`` it watches the run files (and ``squeue``
to know whether the job still runs), never submitit's job states, which need Slurm's accounting
database (without slurmdbd they read UNKNOWN).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import signal
import site
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ablate.data.sweep import Datasets
from ablate.execute.observer import RunObserver
from ablate.execute.options import SweepOptions, WorkOptions
from ablate.execute.runner import RunSummary, start_sweep, train_claimed_group
from ablate.execute.slurm.cluster import (
    DEFAULT_MAX_TASKS,
    SlurmError,
    SlurmOptions,
    Submission,
    check_cluster,
    submitit_module,
)
from ablate.experiment.experiment import Cell, Experiment
from ablate.store.folder import append_event, read_events, read_run, run_path
from ablate.train.loop import Interrupted

try:  # an optional extra: without it, run_slurm says how to install it before anything is pickled
    from submitit.helpers import Checkpointable
except ImportError:  # check_cluster stops first, in one line (tests/execute/test_slurm.py: missing submitit)
    Checkpointable = object  # type: ignore[assignment,misc]

# How long submitit's checkpoint hook waits for training to reach its next step and save; Slurm
# sends its warning signal_delay_s (90 s by default) before the end, so this leaves room to requeue.
STOP_WAIT_S = 60.0
POLL_S = 1.0
# After SIGTERM (training checkpointed, claim released) a task waits this long for Slurm's SIGKILL
# or submitit's preemption signal (Slurm's KillWait is 30 s by default) before it ends on its own.
LINGER_AFTER_SIGTERM_S = 120.0


def _job_label() -> str:
    """``12_0`` (array job _ task) or the plain job id, for claims and records."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "?")


class SlurmWorker(Checkpointable):
    """One array task: claim and train cells until none is left (submitit pickles this object).

    Training runs in a thread so that the main thread is free for signals: submitit calls
    :meth:`checkpoint` from its signal handler, which must wait for training to save and release
    its claim before the task is requeued and exits.
    """

    def __init__(
        self,
        cells: list[Cell],
        results: str,
        opts: WorkOptions,
        plugins: list[str],
        plugin_dir: str,
        since: float,
        gpus: int,
        threads: int,
        use_gpu: bool,
    ) -> None:
        self.cells, self.results, self.opts = cells, results, opts
        self.plugins, self.plugin_dir = plugins, plugin_dir
        self.since = since  # mtime of the sweep's marker: a run file newer than it was written by this sweep
        self.gpus, self.threads, self.use_gpu = gpus, threads, use_gpu
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The stop event and thread belong to one run of the task; a requeued copy starts afresh.
        return {k: v for k, v in self.__dict__.items() if k not in ("_stop", "_thread")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _stop=None, _thread=None)

    def __call__(self, index: int) -> dict[str, Any]:
        stop, terminated = threading.Event(), threading.Event()
        self._stop = stop

        def on_sigterm(signum: int, frame: Any) -> None:
            terminated.set()
            stop.set()

        # Installed after submitit's handlers: SIGTERM (scancel, scontrol requeue, the first signal
        # of a preemption) means "checkpoint at the next step and release the claim", not "ignore".
        signal.signal(signal.SIGTERM, on_sigterm)
        outcome: dict[str, Any] = {"task": index, "trained": [], "interrupted": False}
        self._thread = threading.Thread(target=self._work, args=(stop, outcome), name="ablate-slurm-worker")
        self._thread.start()
        while self._thread.is_alive():
            self._thread.join(0.5)  # short waits: signal handlers run in this thread between them
        if terminated.is_set():
            # Stay a while after SIGTERM: what follows it on Slurm is either SIGKILL (scancel, scontrol
            # requeue: Slurm ends or requeues the job itself) or, for a preemption, submitit's signal,
            # whose hook (checkpoint) requeues this task. Returning now would end the job as done.
            deadline = time.monotonic() + LINGER_AFTER_SIGTERM_S
            while time.monotonic() < deadline:
                time.sleep(0.5)
        return outcome

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's preemption / time-limit hook: stop training at its next step (it saves a
        checkpoint and releases its claim), then requeue this task unchanged; the requeued task
        claims cells again and resumes the interrupted one from its checkpoint."""
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)
        return super().checkpoint(*args, **kwargs)

    def _device(self) -> Any:
        import torch

        if self.use_gpu and self.gpus and torch.cuda.is_available():
            # The processes of one array task share its GPUs: K per GPU (--workers-per-device).
            local = int(os.environ.get("SLURM_LOCALID", "0"))
            return torch.device(f"cuda:{local % torch.cuda.device_count()}")
        return torch.device("cpu")

    def _written_this_sweep(self, cell: Cell) -> bool:
        try:
            return run_path(self.results, cell.experiment, cell.run_id).stat().st_mtime >= self.since
        except OSError:
            return False

    def _work(self, stop: threading.Event, outcome: dict[str, Any]) -> None:
        import torch

        from ablate.plugins import load_plugins

        job = _job_label()
        experiment = self.cells[0].experiment
        try:
            load_plugins(self.plugins, directory=self.plugin_dir)
            torch.set_num_threads(max(1, self.threads))
            device = self._device()
            # "slurm 12_0 cpu", or "slurm 12_0 #1 cuda:0" when the array task runs several processes.
            rank = f" #{os.environ.get('SLURM_PROCID', '0')}" if int(os.environ.get("SLURM_NTASKS", "1")) > 1 else ""
            opts = dataclasses.replace(self.opts, worker=f"slurm {job}{rank} {device}")
            datasets = Datasets(use_cache=opts.use_cache)
            # Passes over the cells until one trains nothing: a cell whose owner stopped (a
            # preempted sibling released it) is picked up by whoever is still running.
            while not stop.is_set():
                trained_now = 0
                for cell in self.cells:
                    if stop.is_set():
                        break
                    if self._written_this_sweep(cell):  # done (or failed) in this sweep: not again
                        continue
                    try:
                        records = train_claimed_group(
                            cell, self.cells, self.results, device, datasets, opts, should_stop=stop.is_set
                        )
                    except Interrupted:
                        outcome["interrupted"] = True
                        return
                    trained_now += len(records)  # with fuse_seeds, the other members of its group too
                    outcome["trained"] += [r["run_id"] for r in records]
                if not trained_now:
                    return
        except Exception as e:  # noqa: BLE001 - e.g. a data error: one line in events.jsonl for the driver
            line = f"{type(e).__name__}: {e}".splitlines()[0]
            outcome["error"] = line
            append_event(self.results, experiment, "slurm-error", "-", job=job, error=line)


def _pythonpath() -> str:
    """PYTHONPATH for the job: the folder this ablate is imported from comes first when it is not
    an installed package (a checkout), so that the tasks unpickle the same code."""
    import ablate

    root = str(Path(ablate.__file__).resolve().parent.parent)
    installed = {str(Path(p).resolve()) for p in site.getsitepackages() + [site.getusersitepackages()]}
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in installed and root not in parts:
        parts.insert(0, root)
    return os.pathsep.join(parts)


def submit(
    todo: list[Cell],
    results: Path,
    options: SlurmOptions,
    *,
    opts: WorkOptions,
    plugins: list[str],
    use_gpu: bool,
    name: str,
) -> tuple[Submission, float]:
    """Submit one array of ``options.tasks`` worker tasks for ``todo``; returns the submission and
    the sweep's start time on the results filesystem's clock."""
    submitit = submitit_module()
    experiment = todo[0].experiment
    folder = results / experiment / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    # The sweep starts now, by the clock of the filesystem the run files are written to (nodes'
    # clocks may differ): a run file newer than this marker was written by this sweep.
    marker = folder / f"sweep-{uuid.uuid4().hex[:8]}"
    marker.write_text(f"{socket.gethostname()} {os.getpid()}\n", encoding="utf-8")
    since = marker.stat().st_mtime
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = dict(
        name=name,
        timeout_min=options.time_min,
        cpus_per_task=options.cpus_per_task,
        tasks_per_node=options.processes,
        nodes=1,
        slurm_array_parallelism=options.tasks,
        # The job's python is this python (submitit's default); the job imports this ablate.
        slurm_setup=[f"export PYTHONPATH={_shell_quote(_pythonpath())}"],
    )
    if options.gpus_per_task:
        params["gpus_per_node"] = options.gpus_per_task
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.extra:
        params["slurm_additional_parameters"] = dict(options.extra)
    try:
        executor.update_parameters(**params)
    except ValueError as e:
        raise SlurmError(f"--slurm options: {str(e).splitlines()[0]}") from None
    worker = SlurmWorker(
        todo, str(results), opts, plugins, os.getcwd(), since, options.gpus_per_task, options.cpus_per_task, use_gpu
    )
    try:
        # submitit prints sbatch's complaint to stderr as well as raising it: keep it to one line.
        with contextlib.redirect_stderr(io.StringIO()):
            jobs = executor.map_array(worker, range(options.tasks))
    except Exception as e:  # noqa: BLE001 - sbatch's refusal arrives wrapped; the user needs its line
        raise SlurmError(f"sbatch refused the job: {_sbatch_reason(str(e))}") from None
    job_id = str(jobs[0].job_id).split("_")[0]
    return Submission(job_id, options.tasks, folder, len(todo)), since


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _sbatch_reason(message: str) -> str:
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for ln in lines:  # "sbatch: error: Invalid ...", "sbatch: unrecognized option '--x=1'"
        if ln.startswith("sbatch:"):
            return ln.removeprefix("sbatch:").strip().removeprefix("error:").strip()
    for ln in lines:
        if "error:" in ln:
            return ln.split("error:", 1)[1].strip()
    return lines[-1] if lines else "no reason given"


# squeue reasons of a pending job that waiting will not cure: the request exceeds what the
# partition, account or QOS allows (Slurm leaves such jobs pending rather than refusing them).
NEVER_STARTS = (
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "BadConstraints",
    "InvalidQOS",
    "InvalidAccount",
    "QOSMaxCpuPerJobLimit",
    "QOSMaxGRESPerJob",
    "AssocMaxCpuPerJobLimit",
)


def job_states(job_id: str) -> list[tuple[str, str]] | None:
    """(state, reason) of each task of the job still known to ``squeue`` (pending, running,
    completing; empty once it has left the queue); None when squeue does not answer in time."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T|%r"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None  # a busy controller: ask again later
    if out.returncode != 0:  # "Invalid job id": Slurm has forgotten it, so it is over
        return []
    return [tuple(line.split("|", 1)) for line in out.stdout.splitlines() if "|" in line]  # type: ignore[misc]


def wait(
    submission: Submission,
    todo: list[Cell],
    results: Path,
    since: float,
    summary: RunSummary,
    observer: RunObserver,
    poll_s: float = POLL_S,
) -> RunSummary:
    """Follow the job through the results folder until every cell of ``todo`` has a run file
    written in this sweep, or the job has left the queue; cells it left unfinished, and the
    workers' errors, become ``summary.errors`` (so ``ablate run`` exits 1)."""
    left = {c.run_id: c for c in todo}
    experiment = todo[0].experiment
    ended = False
    while True:
        for run_id, cell in list(left.items()):
            path = run_path(results, experiment, run_id)
            try:
                fresh = path.stat().st_mtime >= since
            except OSError:
                continue
            record = read_run(path) if fresh else None
            if record is not None:
                del left[run_id]
                summary.records.append(record)
                observer.on_cell_end(0, len(todo), cell, record)
        if not left or ended:
            break
        states = job_states(submission.job_id)
        ended = states == []
        stuck = sorted({reason for state, reason in states or [] if state == "PENDING" and reason in NEVER_STARTS})
        if stuck and all(state == "PENDING" for state, _ in states or []):
            summary.errors.append(
                f"Slurm job {submission.job_id} cannot start (pending, reason {', '.join(stuck)}: it asks "
                f"for more than the partition allows); scancel {submission.job_id} and resubmit with "
                "fewer CPUs or GPUs per task, a shorter --time, or another --partition"
            )
            return summary
        if not ended:  # once ended, look once more at once: run files written as its last task ended
            time.sleep(poll_s)
    for event in read_events(results, experiment):
        # Job ids restart on a fresh cluster: an error counts when its job id matches and it is not
        # older than the sweep (give or take a minute of clock difference between nodes).
        if (
            event["event"] == "slurm-error"
            and str(event.get("job", "")).split("_")[0] == submission.job_id
            and event.get("time", 0) >= since - 60
        ):
            summary.errors.append(f"Slurm task {event['job']}: {event.get('error')}")
    for cell in left.values():
        summary.errors.append(
            f"{cell.variant.slug()} seed {cell.seed}: not finished when Slurm job {submission.job_id} "
            f"ended (cancelled, failed or out of time; see {submission.folder}); rerun to resume it"
        )
    return summary


def run_slurm(
    exp: Experiment,
    results: str | Path,
    target: SlurmOptions,
    options: SweepOptions,
    *,
    observer: RunObserver | None = None,
) -> RunSummary | None:
    """Submit the unfinished cells of ``exp`` as one Slurm array asking for ``target``; see the
    module doc. Returns None right after submission, or with ``target.wait`` the summary once the
    cells are done (or the job ended). Nothing is submitted when no cell is left to do (a summary
    is returned)."""
    observer = observer or RunObserver()
    check_cluster(target)
    results = Path(results).resolve()  # tasks on other nodes see the same absolute path
    results.mkdir(parents=True, exist_ok=True)
    todo, summary = start_sweep(exp, results, options, observer)
    if not todo:
        return summary
    if target.tasks is None:
        target = dataclasses.replace(target, tasks=min(len(todo), DEFAULT_MAX_TASKS))
    # No forced_since: array tasks tell this sweep's run files by the marker's time (``since``).
    submission, since = submit(
        todo,
        results,
        target,
        opts=options.work(started=None),
        plugins=list(options.plugins),
        use_gpu=options.device != "cpu",
        name=f"ablate-{exp.name}",
    )
    observer.on_submit(submission)
    if not target.wait:
        return None
    return wait(submission, todo, results, since, summary, observer)
