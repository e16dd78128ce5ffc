"""Run many cells: claim each one, train it (resuming a checkpoint), store it, release it.

:func:`train_claimed` is the one way a cell gets trained, whatever the executor: in this process
(:func:`run_experiment`), in local worker processes (:mod:`ablate.execute.local`), as Ray tasks
(:mod:`ablate.execute.ray`) or in Slurm array tasks (:mod:`ablate.execute.slurm.array`). It goes
through the results folder only: a cell is done when its run file exists, running while a live
claim exists, resumable while a checkpoint exists, so any mix of executors agrees on what is left
to do. :func:`start_sweep` is the one way a sweep starts, whatever the executor: it decides which
cells this command trains (``--limit N``: the first N unfinished cells no live claim holds),
loads their data once and writes the manifest.

The runner never prints: it reports through a :class:`RunObserver` (the CLI draws progress bars
from it) and returns a :class:`RunSummary`.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ablate.data import ImageSplits
from ablate.data.sweep import Datasets
from ablate.execute.observer import RunObserver
from ablate.execute.options import SweepOptions, WorkOptions
from ablate.experiment.experiment import Cell, Experiment
from ablate.runtime.provenance import environment
from ablate.store import checkpoints as checkpoint
from ablate.store.claims import HeldClaim, list_claims
from ablate.store.folder import (
    append_event,
    check_run_file,
    checkpoint_path,
    finished_run_ids,
    read_events,
    run_path,
    set_aside,
    write_manifest,
    write_run,
)
from ablate.store.leftovers import clean_leftovers
from ablate.store.record import FINISHED, RunRecord, failed_record, identity_of, with_parts
from ablate.train.loop import CellOutOfMemory, Interrupted, train_group
from ablate.train.resume import CellHooks


@dataclass
class RunSummary:
    experiment: str
    records: list[RunRecord] = field(default_factory=list)  # runs done in this invocation
    skipped: list[Cell] = field(default_factory=list)  # already finished before
    remaining: list[Cell] = field(default_factory=list)  # left for a later command (--limit)
    busy: list[Cell] = field(default_factory=list)  # claimed by another live worker
    errors: list[str] = field(default_factory=list)  # executor errors (a worker's, a task's), one line each
    warnings: list[str] = field(default_factory=list)  # the cells' warnings, wherever they ran (events.jsonl)
    interrupted: bool = False

    def counts(self) -> dict[str, int]:
        """Runs done now by status: {"ok": 3, "failed": 1, "diverged": 0}."""
        out = {"ok": 0, "failed": 0, "diverged": 0}
        for r in self.records:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def plan(exp: Experiment, results: str | Path, force: bool = False) -> tuple[list[Cell], list[Cell]]:
    """Split the experiment's cells into (to run, already finished). A damaged run file does
    not count as finished (see :func:`ablate.store.folder.scan_runs`)."""
    done = set() if force else finished_run_ids(results, exp.name)
    cells = exp.cells()
    return [c for c in cells if c.run_id not in done], [c for c in cells if c.run_id in done]


def start_sweep(
    exp: Experiment, results: str | Path, options: SweepOptions, observer: RunObserver
) -> tuple[list[Cell], RunSummary]:
    """What every executor does first, the in-process one included: the cells this command is to
    train, their data loaded once here so that a data error stops the run before any cell starts
    (and the disk cache is warm for the workers), the manifest written, the observer told.

    With ``options.limit`` N: the first N unfinished cells that no live claim of another worker
    holds (those are ``busy``; the rest are ``remaining``), so that ``--limit N`` trains at most N
    cells in this command whichever executor runs it. Returns the cells to train and the summary
    to fill."""
    todo, skipped = plan(exp, results, options.force)
    if options.handled:  # trained or tried earlier in this command (an adaptive design's stages): not again
        todo = [c for c in todo if c.run_id not in options.handled]
        skipped = [c for c in skipped if c.run_id not in options.handled]
    summary = RunSummary(exp.name, skipped=skipped)
    if options.limit is not None:
        busy = {c.run_id for c in running_elsewhere(exp, results, todo)}
        free = [c for c in todo if c.run_id not in busy]
        summary.busy = [c for c in todo if c.run_id in busy]
        todo, summary.remaining = free[: options.limit], free[options.limit :]
    _clean(results, exp, observer)
    Datasets(observer, options.use_cache).preload(todo)
    write_manifest(results, {**exp.manifest(), "updated": now()})
    observer.on_start(todo, skipped)
    return todo, summary


def _clean(results: str | Path, exp: Experiment, observer: RunObserver) -> None:
    """Remove what killed runs left behind (see :class:`ablate.store.leftovers.Leftovers`), and say so in one line."""
    removed = clean_leftovers(results, exp.name)
    if removed.paths():
        observer.on_warning(f"removed {removed.describe()} from {Path(results) / exp.name}")


_Data = Callable[[Cell], ImageSplits]


def run_cell(cell: Cell, device: torch.device, train: Callable[[], RunRecord]) -> RunRecord:
    """Run ``train`` (a training of ``cell`` on ``device``, e.g. a :func:`~ablate.train.loop.train_cell`
    call) and wrap any failure into a ``failed`` record instead of raising (a stop request,
    :class:`~ablate.train.loop.Interrupted`, still propagates); the record gets the run's environment.

    It takes the training as a call so that what a training needs is said once, by ``train_cell``."""
    return run_group([cell], device, lambda: [train()])[0]


def run_group(cells: Sequence[Cell], device: torch.device, train: Callable[[], list[RunRecord]]) -> list[RunRecord]:
    """:func:`run_cell` for a fused group: ``train`` returns the records of ``cells`` in order; a
    failure becomes a ``failed`` record for each (a group fails as one model), each record gets
    the run's environment."""
    started = now()
    try:
        records = train()
    except (KeyboardInterrupt, SystemExit, Interrupted):
        raise
    except CellOutOfMemory as e:
        records = [failed_record(identity_of(cell), str(e)) for cell in cells]
        _free(device)
    except Exception as e:  # noqa: BLE001 - one bad cell must not end the sweep
        if isinstance(e, torch.OutOfMemoryError):
            e = CellOutOfMemory(f"out of memory on {device} (outside the training loop)")
        records = [failed_record(identity_of(cell), e) for cell in cells]
        _free(device)
    env = {**environment(device), "started": started, "finished": now()}
    return [with_parts(record, env=env) for record in records]


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def train_claimed(
    cell: Cell,
    results: str | Path,
    device: torch.device,
    data: _Data,
    opts: WorkOptions | None = None,
    observer: RunObserver | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunRecord | None:
    """Claim ``cell``, train it (from its checkpoint when one is usable), write its run file,
    release the claim. Returns the record, or None when the cell is finished already or a live
    claim of another worker holds it. Raises :class:`~ablate.train.loop.Interrupted` when
    ``should_stop`` asks to stop mid-cell (its checkpoint is saved, its claim released)."""
    records = train_claimed_group(cell, (), results, device, data, opts, observer, should_stop)
    return records[0] if records else None


def fusable_with(cell: Cell, pool: Sequence[Cell]) -> list[Cell]:
    """``cell`` and, after it, the cells of ``pool`` (in their order) that differ from it only in
    the seed: the cells a worker may train fused with it."""
    key = (cell.experiment, cell.variant, cell.data, cell.train)
    seen, out = {cell.run_id}, [cell]
    for c in pool:
        if c.run_id not in seen and (c.experiment, c.variant, c.data, c.train) == key:
            seen.add(c.run_id)
            out.append(c)
    return out


def _fuse_k(cell: Cell) -> int:
    """Seeds to fuse with ``cell``: its ``[train] fuse_seeds`` (``auto`` is resolved by the command
    line, which probes the device; left unresolved, as by a library caller, it trains alone)."""
    return cell.train.fuse_seeds if isinstance(cell.train.fuse_seeds, int) else 1


def fusion_groups(cells: Sequence[Cell]) -> list[list[Cell]]:
    """``cells`` cut into the groups a worker would train fused (each cell's ``[train] fuse_seeds``
    K): runs of up to K cells that differ only in the seed, in the order of their first cell."""
    groups: list[list[Cell]] = []
    placed: set[str] = set()
    for cell in cells:
        if cell.run_id in placed:
            continue
        k = _fuse_k(cell)
        group = fusable_with(cell, [c for c in cells if c.run_id not in placed] if k > 1 else ())[:k]
        placed.update(c.run_id for c in group)
        groups.append(group)
    return groups


def train_claimed_group(
    cell: Cell,
    pool: Sequence[Cell],
    results: str | Path,
    device: torch.device,
    data: _Data,
    opts: WorkOptions | None = None,
    observer: RunObserver | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[RunRecord]:
    """Claim ``cell`` and, with ``[train] fuse_seeds`` K > 1, up to K - 1 more unfinished cells of
    ``pool`` that differ from it only in the seed (:func:`fusable_with`; never one a live claim of
    another worker holds), train them as one fused model (:func:`~ablate.train.loop.train_group`:
    each member resumes its own checkpoint), write each member's run file as soon as it is final,
    and release each claim. Returns the records written, ``cell``'s first; empty when ``cell`` is
    finished already or held elsewhere. Raises :class:`~ablate.train.loop.Interrupted` when
    ``should_stop`` asks to stop mid-training (every member's checkpoint saved, claims released)."""
    observer, opts = observer or RunObserver(), opts or WorkOptions()
    k = _fuse_k(cell)
    held: list[tuple[Cell, HeldClaim]] = []
    try:
        for candidate in fusable_with(cell, pool if k > 1 else ()):
            if len(held) == k:
                break
            claim = _claim(candidate, results, opts, observer)
            if claim is not None:
                held.append((candidate, claim))
            elif candidate is cell:
                return []
        if not held:
            return []
        return _train_held(held, results, device, data, opts, observer, should_stop)
    finally:
        for _, claim in held:
            claim.release()


def _claim(cell: Cell, results: str | Path, opts: WorkOptions, observer: RunObserver) -> HeldClaim | None:
    """Claim ``cell`` for training: its claim, or None when it is finished or held elsewhere. A
    damaged run file is set aside and a take-over is logged; the ``start`` event is written."""
    if _done(results, cell, opts):
        return None
    held = HeldClaim(results, cell.experiment, cell.run_id, opts.worker)
    if not held.acquire():
        return None
    if _done(results, cell, opts):  # finished while we were claiming
        held.release()
        return None
    path = run_path(results, cell.experiment, cell.run_id)
    if path.exists() and check_run_file(path)[0] is None:
        moved = set_aside(path)  # never overwrite evidence of what went wrong
        warn = warn_of(cell, results, opts, observer)
        warn(f"{path}: damaged run file moved to {moved.name}; training the cell again")
    if held.took_over is not None:
        old = held.took_over
        append_event(
            results,
            cell.experiment,
            "take-over",
            cell.run_id,
            previous={"host": old.host, "pid": old.pid, "worker": old.worker},
        )
    # Whether the cell continues from its checkpoint is known once the checkpoint has been
    # checked (a damaged one is refused): the "resume" event says so, not this one.
    append_event(results, cell.experiment, "start", cell.run_id, worker=opts.worker)
    return held


def _train_held(
    held: list[tuple[Cell, HeldClaim]],
    results: str | Path,
    device: torch.device,
    data: _Data,
    opts: WorkOptions,
    observer: RunObserver,
    should_stop: Callable[[], bool],
) -> list[RunRecord]:
    """Train the claimed cells (one, or a fused group) and write each one's run file as it is final."""
    cells = [c for c, _ in held]
    claims = {c.run_id: h for c, h in held}
    handled: set[str] = set()  # members whose final record came (stored, or left to a new owner)
    written: dict[str, RunRecord] = {}  # the run files this worker wrote
    started = now()

    warns = {c.run_id: warn_of(c, results, opts, observer) for c in cells}

    def left_to_new_owner(cell: Cell) -> None:
        append_event(results, cell.experiment, "lost-claim", cell.run_id)
        warns[cell.run_id](
            f"{cell.variant.slug()} seed {cell.seed}: claim lost (paused past the timeout?); left to its new owner"
        )

    def finish(cell: Cell, record: RunRecord) -> None:
        """Store one member's final record (at once: a member that diverged need not wait for the rest)."""
        if cell.run_id in handled:
            return
        claim = claims[cell.run_id]
        handled.add(cell.run_id)
        # The heartbeat only notices a lost claim every few seconds, and a process paused during
        # the last epoch wakes up here: ask the claim file itself before writing anything.
        if not claim.held():
            left_to_new_owner(cell)
            return
        # kept_checkpoint: whether the checkpoint left beside a finished run is wanted
        # (--keep-checkpoints), so that a clean-up removes only leftovers.
        record = with_parts(
            record,
            env=record.get("env") or {**environment(device), "started": started, "finished": now()},
            worker={
                "label": opts.worker,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "kept_checkpoint": opts.keep_checkpoints,
            },
        )
        written[cell.run_id] = record
        write_run(results, record)
        append_event(
            results,
            cell.experiment,
            "finish",
            cell.run_id,
            status=record["status"],
            resumed=len(record.get("resumed", [])),
        )
        # Paused between the run file and here? Then the checkpoint may be the new owner's.
        if record["status"] in FINISHED and not opts.keep_checkpoints and claim.held():
            checkpoint.remove(checkpoint_path(results, cell.experiment, cell.run_id))
        claim.release()

    def resumed_from(cell: Cell, resumed: dict[str, Any]) -> None:
        append_event(
            results,
            cell.experiment,
            "resume",
            cell.run_id,
            epoch=resumed["epoch"],
            step_in_epoch=resumed["step_in_epoch"],
            done_steps=resumed["done_steps"],
        )
        observer.on_resume(cell, resumed)

    def hooks_of(cell: Cell) -> CellHooks:
        claim = claims[cell.run_id]
        return CellHooks(
            checkpoint=checkpoint_path(results, cell.experiment, cell.run_id),
            checkpoint_every_s=cell.train.checkpoint_minutes * 60,
            should_stop=lambda: should_stop() or claim.lost,
            # A trainer that lost its claim must not save over the checkpoint its successor uses.
            may_save=lambda: not claim.lost and claim.held(),
            on_warning=warns[cell.run_id],
            on_resume=lambda resumed: resumed_from(cell, resumed),
            on_finish=lambda record: finish(cell, record),
        )

    try:
        # Inside this try (a cancel while the data loads is an interruption of started cells), but
        # outside run_group: data that cannot be loaded stops the sweep, it is no failed run.
        splits = [data(c) for c in cells]
        hooks = [hooks_of(c) for c in cells]
        records = run_group(cells, device, lambda: train_group(cells, splits, device, observer, hooks))
    except (Interrupted, KeyboardInterrupt) as stopped:
        # KeyboardInterrupt: a second Ctrl-C, or Ray cancelling its task (SIGTERM to the driver);
        # it always goes on up, the members still held logged as interrupted.
        unfinished = [c for c in cells if c.run_id not in handled]
        lost = [c for c in unfinished if claims[c.run_id].lost or not claims[c.run_id].held()]
        for cell in lost:  # another worker owns it now: leave the cell to it
            left_to_new_owner(cell)
        rest = [c for c in unfinished if c not in lost]
        if isinstance(stopped, Interrupted) and (not rest or not should_stop()):
            # No stop was asked: a member's lost claim stopped the group, and the rest resume later.
            return [written[c.run_id] for c in cells if c.run_id in written]
        for cell in rest:
            append_event(results, cell.experiment, "interrupted", cell.run_id)
        raise
    for cell, record in zip(cells, records):
        finish(cell, record)  # failed records, and any a training did not hand over
    return [written[c.run_id] for c in cells if c.run_id in written]


def warn_of(cell: Cell, results: str | Path, opts: WorkOptions, observer: RunObserver) -> Callable[[str], None]:
    """How warnings about ``cell`` are told: to events.jsonl too, where a driver that does not see
    this process (Slurm, Ray) reads them back (:func:`sweep_warnings`), and to the observer."""

    def warn(message: str) -> None:
        record_warning(results, cell.experiment, cell.run_id, message, worker=opts.worker, sweep=opts.sweep)
        observer.on_warning(message)

    return warn


def record_warning(
    results: str | Path, experiment: str, run_id: str, message: str, *, worker: str = "", sweep: str = ""
) -> None:
    """A ``warning`` event in events.jsonl (``sweep``: the command's token, by which its driver
    finds it). Best effort: the warning may be about a full disk, which must not turn it into an error."""
    try:
        append_event(results, experiment, "warning", run_id, worker=worker, sweep=sweep, message=message)
    except OSError:
        pass


def sweep_warnings(results: str | Path, experiment: str, sweep: str) -> list[str]:
    """The warnings the cells of the sweep tagged ``sweep`` wrote to events.jsonl, wherever they
    ran, in order (each prefixed by who trained the cell)."""
    if not sweep:
        return []
    return [
        (f"{e['worker']}: " if e.get("worker") else "") + str(e.get("message", ""))
        for e in read_events(results, experiment)
        if e.get("event") == "warning" and e.get("sweep") == sweep
    ]


def tell_new_warnings(
    summary: RunSummary, results: str | Path, experiment: str, sweep: str, observer: RunObserver
) -> None:
    """For a driver whose cells run where it cannot see them (Slurm, Ray): read the sweep's
    warnings back from events.jsonl, tell the observer each new one, and keep them all in
    ``summary.warnings``."""
    found = sweep_warnings(results, experiment, sweep)
    for message in found[len(summary.warnings) :]:
        observer.on_warning(message)
    summary.warnings = found


def record_worker_death(cell: Cell, results: str | Path, how: str, deaths: int) -> RunRecord | None:
    """Record a cell whose worker process died ``deaths`` times (``how``: "signal 9", ...) as
    ``failed``, under its claim; None when a live worker holds the cell meanwhile, or when the
    cell has a valid run file (the worker died after writing it: a result is never overwritten)."""
    held = HeldClaim(results, cell.experiment, cell.run_id, "executor")
    if not held.acquire():
        return None
    try:
        if check_run_file(run_path(results, cell.experiment, cell.run_id))[0] is not None:
            return None
        record = failed_record(
            identity_of(cell),
            f"worker process died ({how}) while training this cell, {deaths} "
            "time(s); see the system log (e.g. the out-of-memory killer)",
        )
        record = with_parts(record, env={**environment(torch.device("cpu")), "started": now(), "finished": now()})
        write_run(results, record)
        append_event(results, cell.experiment, "give-up", cell.run_id, deaths=deaths, how=how)
        return record
    finally:
        held.release()


def _done(results: str | Path, cell: Cell, opts: WorkOptions) -> bool:
    """Whether ``cell`` needs no training: finished, or with ``--force``, finished since the
    sweep started (by another --force run on the same folder)."""
    if not opts.force:
        return is_finished(results, cell)
    if opts.forced_since is None:
        return False
    try:
        written = run_path(results, cell.experiment, cell.run_id).stat().st_mtime
    except OSError:
        return False
    return written >= opts.forced_since and is_finished(results, cell)


def is_finished(results: str | Path, cell: Cell) -> bool:
    """Whether ``cell`` has a valid run file with a finished status (ok, diverged)."""
    record, _ = check_run_file(run_path(results, cell.experiment, cell.run_id))
    return record is not None and record["status"] in FINISHED


def running_elsewhere(exp: Experiment, results: str | Path, cells: list[Cell]) -> list[Cell]:
    """The cells among ``cells`` that a live claim holds."""
    claims = list_claims(results, exp.name)
    return [c for c in cells if c.run_id in claims and not claims[c.run_id].stale()]


def run_in_process(
    exp: Experiment,
    results: str | Path,
    device: torch.device,
    options: SweepOptions,
    observer: RunObserver | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunSummary:
    """Train the cells :func:`start_sweep` hands out, one after the other in this process, and
    store each result. Cells that another live worker holds are left to it (``busy``)."""
    observer = observer or RunObserver()
    if options.threads:
        torch.set_num_threads(options.threads)
    started = time.time()
    todo, summary = start_sweep(exp, results, options, observer)
    data = Datasets(observer, options.use_cache)
    opts = options.work(started, worker=f"{device} (in-process)")
    by_id = {c.run_id: c for c in todo}
    trained: set[str] = set()
    for cell in todo:
        if cell.run_id in trained:  # trained fused with an earlier cell of its variant
            continue
        observer.on_cell_start(0, len(todo), cell)
        try:
            records = train_claimed_group(cell, todo, results, device, data, opts, observer, should_stop)
        except Interrupted:
            summary.interrupted = True
            break
        if not records and not is_finished(results, cell):
            summary.busy.append(cell)
        for record in records:
            trained.add(record["run_id"])
            summary.records.append(record)
            observer.on_cell_end(0, len(todo), by_id[record["run_id"]], record)
    summary.warnings = sweep_warnings(results, exp.name, options.sweep)  # told to the observer as they came
    return summary


def run_experiment(
    exp: Experiment,
    device: torch.device,
    results: str | Path = "results",
    *,
    force: bool = False,
    limit: int | None = None,
    observer: RunObserver | None = None,
    use_cache: bool = True,
    keep_checkpoints: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunSummary:
    """Train every unfinished cell of ``exp`` in this process (at most ``limit`` of them) and
    store each result: the library's entry point, :func:`run_in_process` with these options.
    ``use_cache=False`` bypasses the on-disk cache of decoded datasets."""
    options = SweepOptions(
        device=str(device), force=force, limit=limit, use_cache=use_cache, keep_checkpoints=keep_checkpoints
    )
    return run_in_process(exp, results, device, options, observer, should_stop)
