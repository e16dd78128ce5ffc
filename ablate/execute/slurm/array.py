"""Cluster mode on Slurm through submitit: one array job whose tasks are workers.

``ablate run FILE --slurm`` submits one Slurm job array (through submitit, an optional extra:
``pip install 'ablate[slurm]'``). Every array task is a worker like a local pool worker: it walks
the sweep's cells and trains each one it can claim (:func:`ablate.execute.runner.train_claimed_group`) until
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
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ablate.data.sweep import Datasets
from ablate.execute.observer import RunObserver, TaskLog
from ablate.execute.options import SweepOptions, WorkOptions
from ablate.execute.runner import RunSummary, start_sweep, tell_new_warnings, train_claimed_group
from ablate.execute.slurm.cluster import (
    DEFAULT_MAX_TASKS,
    SBATCH_TIMEOUT_S,
    SIGNAL_DELAY_S,
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
# squeue that does not answer (a restarting or unreachable controller) is asked again, waiting
# twice as long each time up to SQUEUE_BACKOFF_MAX_S; after SQUEUE_PATIENCE_S without an answer the
# driver stops waiting and says so (the job may well still be running).
SQUEUE_BACKOFF_MAX_S = 30.0
SQUEUE_PATIENCE_S = 600.0
# Below this much free space on the results folder's filesystem, a job that ended early is said
# to have met a full disk (its logs, run files and checkpoints all live there).
FULL_DISK_BYTES = 1 << 20


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
                            cell, self.cells, self.results, device, datasets, opts, TaskLog(), should_stop=stop.is_set
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
    root = _ablate_root()
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
    executor = _timed_executor(submitit)(folder=folder)
    params: dict[str, Any] = dict(
        job_name=name,
        time=options.time_min,
        cpus_per_task=options.cpus_per_task,
        ntasks_per_node=options.processes,
        nodes=1,
        array_parallelism=options.tasks,
        signal_delay_s=SIGNAL_DELAY_S,  # said here, so that --time is checked against it (cluster.parse_time)
        # The job's python is this python (submitit's default); the job imports this ablate, and
        # never the folder it was submitted from: `python -m submitit.core._submit` would put that
        # folder first on the import path (a numpy.py there would replace numpy), PYTHONSAFEPATH
        # keeps it off (Python >= 3.11; earlier ones run the job in ablate's own folder instead).
        setup=[f"export PYTHONPATH={_shell_quote(_pythonpath())}", "export PYTHONSAFEPATH=1"],
    )
    if options.gpus_per_task:
        params["gpus_per_node"] = options.gpus_per_task
    if options.partition:
        params["partition"] = options.partition
    extra = dict(options.extra)
    if sys.version_info < (3, 11):  # no PYTHONSAFEPATH: start where only ablate's own code lies
        extra.setdefault("chdir", _ablate_root())
    if extra:
        params["additional_parameters"] = extra
    try:
        executor.update_parameters(**params)
    except ValueError as e:
        raise SlurmError(f"--slurm options: {str(e).splitlines()[0]}") from None
    worker = SlurmWorker(
        todo, str(results), opts, plugins, os.getcwd(), since, options.gpus_per_task, options.cpus_per_task, use_gpu
    )
    began = time.monotonic()
    try:
        # submitit prints sbatch's complaint to stderr as well as raising it: keep it to one line.
        with contextlib.redirect_stderr(io.StringIO()):
            jobs = executor.map_array(worker, range(options.tasks))
    except Exception as e:  # noqa: BLE001 - sbatch's refusal arrives wrapped; the user needs its line
        if time.monotonic() - began >= SBATCH_TIMEOUT_S:
            raise SlurmError(
                f"sbatch did not answer within {SBATCH_TIMEOUT_S:g} s (stopped); is slurmctld up? (scontrol ping)"
            ) from None
        raise SlurmError(f"sbatch refused the job: {_sbatch_reason(str(e))}") from None
    job_id = str(jobs[0].job_id).split("_")[0]
    return Submission(job_id, options.tasks, folder, len(todo)), since


def _timed_executor(submitit: Any) -> Any:
    """submitit's Slurm executor, with sbatch stopped after ``SBATCH_TIMEOUT_S`` (coreutils'
    ``timeout``): a controller that never answers must not hang ``ablate run --slurm`` for ever."""

    class TimedSlurmExecutor(submitit.SlurmExecutor):  # type: ignore[misc,name-defined]
        def _make_submission_command(self, submission_file_path: Path) -> list[str]:
            sbatch = super()._make_submission_command(submission_file_path)
            return ["timeout", "--kill-after=5", f"{SBATCH_TIMEOUT_S:g}", *sbatch]

    return TimedSlurmExecutor


def _ablate_root() -> str:
    """The folder this ablate is imported from (its package's parent)."""
    import ablate

    return str(Path(ablate.__file__).resolve().parent.parent)


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


@dataclasses.dataclass
class QueueAnswer:
    """What ``squeue`` said about a job: its tasks' (state, reason), empty once the job has left
    the queue; or, when squeue gave no answer, why (``states`` None)."""

    states: list[tuple[str, str]] | None
    problem: str = ""


def job_states(job_id: str) -> QueueAnswer:
    """(state, reason) of each task of the job still known to ``squeue`` (pending, running,
    completing; none once it has left the queue), or why squeue did not answer: it timed out, or
    failed otherwise than "Invalid job id" (which means Slurm has forgotten the job: it is over)."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T|%r"], capture_output=True, text=True, timeout=SBATCH_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return QueueAnswer(None, f"no answer within {SBATCH_TIMEOUT_S:g} s")
    except OSError as e:
        return QueueAnswer(None, e.strerror or str(e))
    if out.returncode != 0:
        said = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        if "invalid job id" in said.lower():
            return QueueAnswer([])
        return QueueAnswer(None, said.removeprefix("squeue: ").removeprefix("error: "))
    return QueueAnswer([tuple(line.split("|", 1)) for line in out.stdout.splitlines() if "|" in line])  # type: ignore[misc]


def wait(
    submission: Submission,
    todo: list[Cell],
    results: Path,
    since: float,
    summary: RunSummary,
    observer: RunObserver,
    poll_s: float = POLL_S,
    sweep: str = "",
) -> RunSummary:
    """Follow the job through the results folder until every cell of ``todo`` has a run file
    written in this sweep, or the job has left the queue; cells it left unfinished, and the
    workers' errors, become ``summary.errors`` (so ``ablate run`` exits 1). The cells' warnings
    (events of the sweep tagged ``sweep``) are told to the observer as they are written. An
    ``squeue`` that does not answer is asked again with growing pauses; when it has not answered
    for ``SQUEUE_PATIENCE_S``, the driver stops waiting and says that it cannot reach Slurm."""
    left = {c.run_id: c for c in todo}
    experiment = todo[0].experiment
    ended = False
    silent_since: float | None = None  # when squeue last stopped answering
    pause = poll_s
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
        tell_new_warnings(summary, results, experiment, sweep, observer)
        if not left or ended:
            break
        answer = job_states(submission.job_id)
        if answer.states is None:
            silent_since = silent_since if silent_since is not None else time.monotonic()
            if time.monotonic() - silent_since >= SQUEUE_PATIENCE_S:
                summary.errors.append(
                    f"cannot reach Slurm: squeue has not answered for {time.monotonic() - silent_since:.0f} s "
                    f"({answer.problem}); job {submission.job_id} may still be running: follow it with "
                    f"'ablate show', or rerun this command once Slurm answers (finished cells are kept)"
                )
                return summary
            pause = min(pause * 2, SQUEUE_BACKOFF_MAX_S)
            time.sleep(pause)
            continue
        silent_since, pause = None, poll_s
        states = answer.states
        ended = states == []
        stuck = sorted({reason for state, reason in states if state == "PENDING" and reason in NEVER_STARTS})
        if stuck and all(state == "PENDING" for state, _ in states):
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
    if left:
        why = why_job_ended(submission, results)
        for cell in left.values():
            summary.errors.append(
                f"{cell.variant.slug()} seed {cell.seed}: not finished when Slurm job {submission.job_id} "
                f"ended ({why}; see {submission.folder}); rerun to resume it"
            )
    return summary


def why_job_ended(submission: Submission, results: Path) -> str:
    """The likeliest reason a job ended with cells left, for the user: a full disk under the
    results folder (where the tasks write their logs, run files and checkpoints), else the last
    error line of a task's log, else Slurm's usual suspects."""
    try:
        free = shutil.disk_usage(results).free
    except OSError:
        free = None
    if free is not None and free < FULL_DISK_BYTES:
        return f"the disk of {results} is full ({free:,} bytes free): free some space"
    line = last_error_line(submission)
    if line:
        return f"a task's log ends with: {line}"
    return "cancelled, failed or out of time"


# Lines of a task's log that say what went wrong: first a Python exception (the last line of a
# traceback), else a tool's "error:" line (srun's, Slurm's) or the out-of-memory killer's.
_EXCEPTION_LINE = re.compile(r"^\w+(\.\w+)*(Error|Exception|Interrupt|Exit)\b.*$")
_ERROR_LINE = re.compile(r"^.*(\berror:|\bKilled\b|\bCANCELLED\b|\bDUE TO TIME LIMIT\b).*$")


def last_error_line(submission: Submission) -> str:
    """The last line that reads as an error in the job's task logs (submitit's ``*_log.err`` in
    ``submission.folder``, the most recently written first): a Python exception before any other
    error line; "" when there is none."""
    logs = sorted(
        submission.folder.glob(f"{submission.job_id}_*_log.err"),
        key=lambda p: p.stat().st_mtime if p.exists() else 0.0,
        reverse=True,
    )
    texts = []
    for log in logs:
        try:
            texts.append([ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()[-200:]])
        except OSError:
            continue
    for pattern in (_EXCEPTION_LINE, _ERROR_LINE):
        for lines in texts:
            found = [ln for ln in lines if ln and pattern.match(ln)]
            if found:
                return found[-1][:300]
    return ""


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
    # One task per cell at most: a task with no cell to claim would only start and stop.
    target = dataclasses.replace(target, tasks=min(len(todo), target.tasks or DEFAULT_MAX_TASKS))
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
    return wait(submission, todo, results, since, summary, observer, sweep=options.sweep)
