"""Local workers: N cells at a time, each in its own spawned process, pinned to one device.

Each worker process loads the datasets it needs (from the on-disk cache the parent filled),
then walks the experiment's cells and trains every one it can claim (:func:`ablate.execute.runner.
train_claimed`): the claims in the results folder, not the parent, decide who trains what, so
workers of two ``ablate run`` processes on one folder cooperate the same way.

The parent only starts workers, forwards their progress to an observer, and replaces a worker
that died (killed, out of host memory): the cell it held has a dead owner, so the next worker
takes its claim over and resumes its checkpoint. A cell that kills its worker more than
``max_retries`` times is recorded as ``failed``.

On CUDA each worker sees only its GPU (``CUDA_VISIBLE_DEVICES`` is set before the child starts,
so before torch can initialise CUDA); on the CPU the workers split the cores.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ablate.data.sweep import Datasets
from ablate.execute.errors import ExecutorError
from ablate.execute.observer import RunObserver
from ablate.execute.options import SweepOptions, WorkOptions
from ablate.execute.runner import (
    RunSummary,
    is_finished,
    record_worker_death,
    running_elsewhere,
    start_sweep,
    sweep_warnings,
    train_claimed_group,
)
from ablate.experiment.experiment import Cell, Experiment
from ablate.runtime.stop_signal import StopOnSignal, watch_parent
from ablate.store.folder import append_event, read_run, run_path
from ablate.train.loop import Interrupted

# Progress updates per second a worker sends at most (batch ticks are many and cheap to drop).
BATCH_UPDATES_PER_S = 5.0


class PoolError(ExecutorError, ValueError):
    """Bad worker or device settings; ``str()`` is one line for the user."""


@dataclass(frozen=True)
class Slot:
    """One worker: which device it trains on and how many CPU threads it may use."""

    index: int
    device: str  # "cpu" or "cuda:N" as this machine numbers its GPUs
    threads: int | None  # torch intra-op threads (CPU workers); None = torch's default

    @property
    def label(self) -> str:
        return f"{self.device} #{self.index}"


def parse_devices(spec: str | None) -> list[str] | None:
    """``"cuda:0,cuda:2"`` -> ``["cuda:0", "cuda:2"]``; ``"cpu"``; None -> None (decide later)."""
    if spec is None:
        return None
    devices = [d.strip() for d in spec.split(",") if d.strip()]
    for d in devices:
        if d != "cpu" and not (d.startswith("cuda:") and d[5:].isdigit()):
            raise PoolError(f"--devices {spec}: {d!r} is not cpu or cuda:N (e.g. --devices cuda:0,cuda:2)")
    if len(set(devices)) != len(devices):
        raise PoolError(f"--devices {spec}: a device is listed twice")
    if not devices:
        raise PoolError("--devices is empty; e.g. --devices cuda:0,cuda:1 or --devices cpu")
    if "cpu" in devices and len(devices) > 1:
        raise PoolError(f"--devices {spec}: mix of cpu and GPUs; run them as two commands on one results folder")
    count = torch.cuda.device_count() if any(d != "cpu" for d in devices) else 0
    for d in devices:
        if d != "cpu" and int(d[5:]) >= count:
            raise PoolError(f"--devices {spec}: {d} asked for, but this machine has {count} CUDA device(s)")
    return devices


def plan_slots(
    devices: list[str], workers: int | None, per_device: int = 1, threads: int | None = None, cores: int | None = None
) -> list[Slot]:
    """Workers over devices, round-robin. ``workers=None`` (auto): ``per_device`` per GPU, or 1
    on the CPU. CPU workers split the cores so that workers x threads <= cores."""
    if per_device < 1:
        raise PoolError(f"--workers-per-device {per_device}: expected an integer >= 1")
    gpu = devices != ["cpu"]
    n = workers if workers is not None else (len(devices) * per_device if gpu else 1)
    if n < 1:
        raise PoolError(f"--workers {n}: expected an integer >= 1 or auto")
    cores = cores or os.cpu_count() or 1
    if not gpu:
        if threads is None:
            threads = max(1, cores // n)
        elif threads * n > cores:
            raise PoolError(
                f"--threads {threads} x --workers {n} = {threads * n} threads on {cores} core(s); "
                f"use --threads {max(1, cores // n)} or fewer workers"
            )
    elif threads is None:
        threads = max(1, cores // n)  # a GPU worker's CPU side (batch prep, Python) needs little
    return [Slot(i, devices[i % len(devices)], threads) for i in range(n)]


@dataclass
class _WorkerSpec:
    """Everything a worker process needs, picklable (spawn)."""

    slot: Slot
    cells: list[Cell]
    results: str
    opts: WorkOptions
    plugins: list[str]
    events: Any  # multiprocessing queue
    stop: Any  # multiprocessing event
    parent: int = 0  # the parent's pid: a worker whose parent died stops (checkpoint, release)


class _QueueObserver(RunObserver):
    """Forwards a worker's progress to the parent, dropping batch ticks beyond a few per second."""

    def __init__(self, slot: int, events: Any) -> None:
        self.slot, self.events = slot, events
        self._last_batch = 0.0

    def send(self, kind: str, *payload: Any) -> None:
        self.events.put((self.slot, kind, *payload))

    def on_data(self, dataset: str, input_size: int) -> None:
        self.send("data", dataset, input_size)

    def on_batch(self, epoch: int, step: int, steps: int) -> None:
        t = time.monotonic()
        if step == steps or t - self._last_batch >= 1 / BATCH_UPDATES_PER_S:
            self._last_batch = t
            self.send("batch", epoch, step, steps)

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        self.send("epoch", {k: v for k, v in metrics.items() if isinstance(v, (int, float))})

    def on_warning(self, message: str) -> None:
        self.send("warning", message)

    def on_resume(self, cell: Cell, resumed: dict[str, Any]) -> None:
        self.send("resume", cell.run_id, resumed)


def _worker_main(spec: _WorkerSpec) -> None:
    """Entry point of a worker process: claim and train cells until none is left to claim."""
    # Ctrl-C reaches every process of the terminal's group: finish the step, checkpoint, exit.
    # Quiet (the parent announces); a second Ctrl-C, from the terminal or from the parent when
    # the user asks to quit at once, leaves the step now. SIGTERM never escalates: a dying parent
    # sends one per thread it had (Linux re-parents the worker to each in turn).
    with StopOnSignal() as stop_requested:
        parent_gone = watch_parent(spec.parent) if spec.parent else (lambda: False)
        from ablate.plugins import load_plugins

        load_plugins(spec.plugins)
        if spec.slot.threads:
            torch.set_num_threads(spec.slot.threads)
        device = torch.device("cpu" if spec.slot.device == "cpu" else "cuda:0")  # the one GPU it sees
        observer = _QueueObserver(spec.slot.index, spec.events)
        datasets = Datasets(observer, spec.opts.use_cache)

        def should_stop() -> bool:
            if spec.stop.is_set() or parent_gone():
                stop_requested.requested = True  # so that the parent's next SIGINT means "now"
            return stop_requested()

        try:
            for cell in spec.cells:
                if should_stop():
                    break
                observer.send("start", cell.run_id)
                try:
                    records = train_claimed_group(
                        cell, spec.cells, spec.results, device, datasets, spec.opts, observer, should_stop
                    )
                except Interrupted:
                    observer.send("interrupted", cell.run_id)
                    break
                except Exception as e:  # noqa: BLE001 - e.g. a data error: tell the parent, in one line
                    observer.send("error", cell.run_id, f"{type(e).__name__}: {e}".splitlines()[0])
                    break
                for record in records:  # with fuse_seeds, the other members of its group too
                    observer.send("end", record["run_id"], True)
                if not records:
                    observer.send("end", cell.run_id, False)
        except KeyboardInterrupt:  # the parent said "now": the claim is released, the last checkpoint kept
            observer.send("interrupted", None)
        if parent_gone():  # nobody reads the queue: do not wait at exit to flush it
            spec.events.cancel_join_thread()
        observer.send("exit")


@dataclass
class _Running:
    process: Any
    slot: Slot
    cell: str | None = None  # run id of the cell it is on


def run_pool(
    exp: Experiment,
    results: str | Path,
    slots: list[Slot],
    options: SweepOptions,
    *,
    observer: RunObserver | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunSummary:
    """Train the unfinished cells of ``exp`` on ``slots`` worker processes; see the module doc.
    When ``should_stop`` turns True (the CLI's Ctrl-C / SIGTERM handler), the workers finish
    their step, checkpoint, release their claims and exit, and the summary says ``interrupted``.
    A KeyboardInterrupt (a second Ctrl-C, or the first one without a handler) is raised after
    the workers have stopped: at once when a stop was already under way (they are told to quit
    now, and killed if they do not), else once they checkpointed (at most 30 s)."""
    observer = observer or RunObserver()
    started = time.time()
    todo, summary = start_sweep(exp, results, options, observer)
    crashes: dict[str, int] = {}  # run id -> worker deaths while on it
    by_id = {c.run_id: c for c in todo}
    ctx = mp.get_context("spawn")
    events, stop = ctx.Queue(), ctx.Event()
    running: dict[int, _Running] = {}
    given_up: set[str] = set()
    counted: set[str] = set()  # run ids whose records are in the summary
    deaths = 0

    def start(slot: Slot) -> None:
        cells = [c for c in todo if c.run_id not in given_up]
        spec = _WorkerSpec(
            slot,
            cells,
            str(results),
            options.work(started, slot.label),
            list(options.plugins),
            events,
            stop,
            os.getpid(),
        )
        before = os.environ.get("CUDA_VISIBLE_DEVICES")
        if slot.device != "cpu":
            os.environ["CUDA_VISIBLE_DEVICES"] = _physical(slot.device, before)
        try:
            process = ctx.Process(target=_worker_main, args=(spec,), name=f"ablate-worker-{slot.index}", daemon=True)
            process.start()
        finally:
            if before is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = before
        running[slot.index] = _Running(process, slot)

    def handle(event: tuple) -> None:
        slot, kind, *payload = event
        worker = running.get(slot)
        if kind == "start" and worker:
            worker.cell = payload[0]
            observer.on_cell_start(slot, len(todo), by_id[payload[0]])
        elif kind == "batch":
            observer.on_worker_batch(slot, *payload)
        elif kind == "epoch":
            observer.on_worker_epoch(slot, payload[0])
        elif kind == "warning":
            observer.on_warning(payload[0])
        elif kind == "resume":
            observer.on_resume(by_id[payload[0]], payload[1])
        elif kind == "data":
            observer.on_data(*payload)
        elif kind == "error":
            summary.errors.append(payload[1])
        elif kind == "interrupted":
            summary.interrupted = True
        elif kind == "end" and worker:
            worker.cell = None
            run_id, trained = payload
            if trained:
                collect(slot, run_id)

    def collect(slot: int, run_id: str) -> bool:
        """Count the run file of ``run_id`` once, if one was written; the results folder, not
        the message, says what was written."""
        record = read_run(run_path(results, exp.name, run_id))
        if record is None or run_id in counted:
            return record is not None
        counted.add(run_id)
        summary.records.append(record)
        observer.on_cell_end(slot, len(todo), by_id[run_id], record)
        return True

    for slot in slots:
        start(slot)
    try:
        while running:
            if should_stop() and not stop.is_set():
                stop.set()
                summary.interrupted = True
            try:
                handle(events.get(timeout=0.2))
                continue
            except queue.Empty:
                pass
            for index, worker in list(running.items()):
                if worker.process.is_alive():
                    continue
                worker.process.join()
                _drain(events, handle)
                del running[index]
                code = worker.process.exitcode
                if code == 0 or stop.is_set() or summary.interrupted:
                    continue
                # Died (killed, crashed): its cell has a dead owner now; retry or give up on it.
                if worker.cell is not None and is_finished(results, by_id[worker.cell]):
                    # Killed after writing its run file (before it could say so): the cell is
                    # done, and its good result must not be recorded as a death.
                    collect(index, worker.cell)
                    worker.cell = None
                deaths += 1
                if worker.cell is not None:
                    crashes[worker.cell] = crashes.get(worker.cell, 0) + 1
                    append_event(results, exp.name, "worker-died", worker.cell, exitcode=code, worker=worker.slot.label)
                    if crashes[worker.cell] > options.max_retries:
                        given_up.add(worker.cell)
                        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                        record = record_worker_death(by_id[worker.cell], results, how, crashes[worker.cell])
                        if record is not None:
                            counted.add(worker.cell)
                            summary.records.append(record)
                            observer.on_cell_end(index, len(todo), by_id[worker.cell], record)
                if deaths > options.max_retries * max(1, len(todo)) + len(slots):
                    summary.errors.append(f"workers keep dying (exit code {code}); stopped replacing them")
                    continue
                if any(c.run_id not in given_up and not is_finished(results, c) for c in todo):
                    start(worker.slot)
    except KeyboardInterrupt:
        now = stop.is_set()  # a second request: quit now, without waiting for checkpoints
        stop.set()
        if now:
            _quit_now(running)
        else:
            _wait_for(running, events, handle, seconds=30)
        summary.interrupted = True
        raise
    summary.busy = [c for c in running_elsewhere(exp, results, todo) if not is_finished(results, c)]
    summary.warnings = sweep_warnings(results, exp.name, options.sweep)  # the workers told the observer already
    return summary


def _drain(events: Any, handle: Any) -> None:
    while True:
        try:
            handle(events.get_nowait())
        except queue.Empty:
            return


def _wait_for(running: dict[int, _Running], events: Any, handle: Any, seconds: float) -> None:
    """Let workers checkpoint and exit; terminate those still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    while running and time.monotonic() < deadline:
        try:
            handle(events.get(timeout=0.2))
        except (queue.Empty, KeyboardInterrupt):
            pass
        for index in [i for i, w in running.items() if not w.process.is_alive()]:
            running.pop(index).process.join()
    for worker in running.values():
        worker.process.terminate()
        worker.process.join(5)


def _quit_now(running: dict[int, _Running], grace_s: float = 3.0) -> None:
    """Two SIGINTs tell each worker to leave its step at once, as a double Ctrl-C would (its
    claim is released on the way out); one still running after ``grace_s`` (stuck in a call that
    signals do not interrupt) is killed (its claim has a dead owner then, taken over at once by
    the next run)."""
    for _ in range(2):  # the first is a stop request unless the worker has seen one already
        for worker in running.values():
            if worker.process.is_alive():
                try:
                    os.kill(worker.process.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        time.sleep(0.1)
    deadline = time.monotonic() + grace_s
    for worker in running.values():
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(5)
    running.clear()


def _physical(device: str, visible: str | None) -> str:
    """The CUDA_VISIBLE_DEVICES entry for ``cuda:N`` as this process numbers it."""
    index = int(device.split(":")[1])
    if visible:
        entries = [v.strip() for v in visible.split(",") if v.strip()]
        return entries[index]
    return str(index)
