"""Export run files to Weights & Biases (``pip install 'ablate[wandb]'``): this module holds W&B's calls.

One W&B run per ablate run (``docs/trackers.md`` lists every field):

* id ``<experiment>-<run_id>`` (so that exporting again finds it), name ``<variant slug> seed<k>``,
  ``group`` = the variant slug and ``job_type`` = the experiment, so that W&B's grouping shows a
  variant's mean and spread over seeds; ``tags`` = its status;
* config = the resolved config (the variant's axes, ``seed``, ``data``, ``train``) and
  ``ablate`` (run id, experiment, variant, status, executor, device, git commit, ablate version and
  ``record``, a digest of the run file);
* history: a row per logged step (``step`` = the global step, ``step/<field>``) and per finished
  epoch (``epoch`` = its 0-based index, ``epoch/<field>``), in training order, ``epoch/*`` and
  ``step/*`` plotted against their own axis (``define_metric``);
* summary: the run's own numbers under ``load_results``'s column names (``final_val_acc``, ...)
  and ``status``; a run that is not ``ok`` finishes with exit code 1 (W&B shows it failed).

``offline`` mode (the default when no API key is found) writes run folders under
``<dir>/wandb/offline-run-*`` that ``wandb sync`` uploads later; nothing goes to the network.
Exporting again reads those folders' transaction logs (``run-<id>.wandb``: W&B's records in
LevelDB's log format) for what they hold: a run whose record is unchanged is left alone, and a
changed one (a failed run trained again) gets a resumed segment with only the rows it lacks, at
W&B steps after the ones already written, which ``wandb sync`` uploads in order. Online, W&B's
own resume (``resume="allow"``) tells what the server holds.
"""

from __future__ import annotations

import hashlib
import json
import netrc
import os
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

from ablate.report.export.walk import (
    ExperimentView,
    ExportedRun,
    ExportError,
    ExtraMissing,
    digest,
    epoch_points,
    identity_tags,
    resolved_config,
    run_values,
    step_points,
)
from ablate.store.folder import StoreError, check_writable
from ablate.store.record import RunRecord

MODES = ("offline", "online")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class WandbTarget:
    """Where to export: a W&B project, offline or online, and W&B's local folder (``dir/wandb/``)."""

    project: str = "ablate"
    mode: str = "offline"
    dir: Path = Path(".")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ExportError(f"--mode {self.mode!r}: expected offline or online")


def default_mode() -> str:
    """``WANDB_MODE`` when it says offline or online; else online with an API key
    (``WANDB_API_KEY``, or the netrc entry ``wandb login`` writes), offline without one."""
    env = os.environ.get("WANDB_MODE", "")
    if env in MODES:
        return env
    return "online" if _api_key() else "offline"


def _api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or ""
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):  # no ~/.netrc, or one W&B did not write
        return False


def library() -> SimpleNamespace:
    """The W&B SDK and its record format, imported only here (an optional dependency)."""
    try:
        import wandb
        from wandb.proto import wandb_internal_pb2
    except ImportError:
        raise ExtraMissing("wandb", "wandb") from None
    return SimpleNamespace(wandb=wandb, pb=wandb_internal_pb2)


def run_key(experiment: str, run_id: str) -> str:
    """The W&B run id of an ablate run: ``<experiment>-<run_id>`` (run ids are hashes of the
    config, which two experiments may share); odd characters of the name become ``_`` and a hash
    of the name keeps two such names apart."""
    safe = _ID_UNSAFE.sub("_", experiment)[:40]
    if safe != experiment:
        safe += "_" + hashlib.sha256(experiment.encode()).hexdigest()[:6]
    return f"{safe}-{_ID_UNSAFE.sub('_', run_id)}"


@dataclass
class Logged:
    """What W&B holds of one run: its history rows' epochs and steps, the next W&B step, and
    the digest of the record last exported (None: nothing yet)."""

    epochs: set[int] = field(default_factory=set)
    steps: set[int] = field(default_factory=set)
    next_step: int = 0
    record: str | None = None
    segments: int = 0


class WandbSink:
    """W&B runs, offline folders or online; see the module docstring."""

    def __init__(self, target: WandbTarget) -> None:
        self.lib = library()
        self.target = target
        try:
            check_writable(target.dir)
        except StoreError as e:
            why = str(e).replace("give --results a folder", "choose another --dir")
            raise ExportError(f"cannot write W&B's folder {target.dir / 'wandb'}: {why}") from None
        (target.dir / "wandb").mkdir(parents=True, exist_ok=True)
        # The mode everywhere in this process while the sink is open, so that no part of the SDK goes online.
        self._saved = {k: os.environ.get(k) for k in ("WANDB_MODE", "WANDB_SILENT")}
        os.environ.update(WANDB_MODE=target.mode, WANDB_SILENT="true")
        self.settings = self.lib.wandb.Settings(
            silent=True,
            console="off",  # the run's output is in the run file; the export prints nothing of its own
            save_code=False,
            disable_git=True,  # the git commit is the run's, in its config, not the exporter's
            x_disable_stats=True,  # no system metrics of the exporting process
            x_disable_meta=True,
        )

    def close(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def experiment(self, view: ExperimentView) -> None:
        """Nothing: W&B groups a variant's runs and draws their mean and spread itself."""

    def run(self, view: ExperimentView, record: RunRecord) -> ExportedRun:
        wid = run_key(view.name, str(record["run_id"]))
        mine = digest(record)
        logged = offline_logged(self.target.dir, wid, self.lib.pb) if self.target.mode == "offline" else Logged()
        slug = str(record.get("slug") or "")
        name = f"{slug} seed{record.get('seed')}"
        if logged.record == mine:
            return ExportedRun.of(view.name, record, name, created=False, points=0)
        tags = identity_tags(view.name, record)
        try:
            run = self.lib.wandb.init(
                project=self.target.project,
                id=wid,
                name=name,
                group=slug,
                job_type=view.name,
                config={**resolved_config(record), "ablate": {**tags, "record": mine}},
                tags=[tags["status"]],
                mode=self.target.mode,
                dir=str(self.target.dir),
                resume="allow",
                settings=self.settings,
            )
        except Exception as e:  # noqa: BLE001 - the SDK raises its own errors and those of the network: one line
            raise ExportError(f"W&B refused the export of {wid}: {str(e).splitlines()[0] if str(e) else e!r}") from None
        created = logged.segments == 0
        if self.target.mode == "online" and run.resumed:  # what the server holds, from W&B's resume
            created = False
            summary = dict(run.summary)
            logged = Logged(
                epochs=set(range(int(summary.get("epoch", -1)) + 1)),
                steps={s for s, _, _ in step_points(record) if s <= int(summary.get("step", -1))},
                next_step=int(run.starting_step),
                record=(run.config.get("ablate") or {}).get("record"),
            )
        rows = [
            row for kind, key, row in history(record) if key not in (logged.epochs if kind == "epoch" else logged.steps)
        ]
        if logged.record == mine:
            rows = []
        run.define_metric("epoch")
        run.define_metric("epoch/*", step_metric="epoch")
        run.define_metric("step")
        run.define_metric("step/*", step_metric="step")
        step = logged.next_step
        for row in rows:
            run.log(row, step=step)
            step += 1
        run.summary.update({**run_values(record), "status": tags["status"]})
        log = Path(run.settings.sync_file)
        run.finish(exit_code=0 if record.get("status") == "ok" else 1)
        if self.target.mode == "offline":
            self._written(log)
        return ExportedRun.of(view.name, record, name, created=created, points=len(rows))

    def _written(self, log: Path, timeout: float = 60.0) -> None:
        """Wait until W&B's service has written the run's exit record: ``finish()`` returns before
        the transaction log is on disk, and the next look at it must see the whole run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.is_file() and any(m.WhichOneof("record_type") == "exit" for m in read_records(log, self.lib.pb)):
                return
            time.sleep(0.02)
        raise ExportError(f"W&B did not finish writing {log} within {timeout:.0f} s")


def history(record: RunRecord) -> list[tuple[str, int, dict[str, float]]]:
    """``(kind, key, row)`` in training order: each epoch's step rows (``kind`` "step", key = the
    global step), then its epoch row ("epoch", key = its 0-based index); the steps of an epoch
    that did not finish (a diverged run) at the end."""
    by_epoch: dict[int | None, list[tuple[str, int, dict[str, float]]]] = {}
    for step, epoch, values in step_points(record):
        by_epoch.setdefault(epoch, []).append(
            ("step", step, {"step": step, **{f"step/{k}": v for k, v in values.items()}})
        )
    out: list[tuple[str, int, dict[str, float]]] = []
    for index, values in epoch_points(record):
        out += by_epoch.pop(index + 1, [])
        out.append(("epoch", index, {"epoch": index, **{f"epoch/{k}": v for k, v in values.items()}}))
    for rest in by_epoch.values():
        out += rest
    return out


# --- reading offline run folders -------------------------------------------------------------------
def segments(dir: Path, wid: str) -> list[Path]:
    """The transaction logs of run ``wid`` under ``dir/wandb/`` (one per offline segment)."""
    return sorted(
        p / f"run-{wid}.wandb" for p in (dir / "wandb").glob("offline-run-*") if (p / f"run-{wid}.wandb").is_file()
    )


def offline_logged(dir: Path, wid: str, pb: Any) -> Logged:
    """What the offline segments of run ``wid`` hold (all of them, in the order they started)."""
    logged = Logged()
    parts = []
    for path in segments(dir, wid):
        started, record = 0.0, None
        for message in read_records(path, pb):
            kind = message.WhichOneof("record_type")
            if kind == "run":
                started = message.run.start_time.seconds + message.run.start_time.nanos / 1e9
                record = _ablate_record(message.run.config.update) or record
            elif kind == "config":
                record = _ablate_record(message.config.update) or record
            elif kind == "history":
                row = history_row(message)
                if "epoch" in row:
                    logged.epochs.add(int(row["epoch"]))
                if "step" in row:
                    logged.steps.add(int(row["step"]))
                logged.next_step = max(logged.next_step, int(row.get("_step", message.history.step.num)) + 1)
        parts.append((started, record))
    logged.segments = len(parts)
    if parts:
        logged.record = max(parts, key=lambda p: p[0])[1]
    return logged


def history_row(message: Any) -> dict[str, Any]:
    """One history record as ``{key: value}`` (values decoded from W&B's JSON)."""
    return {(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in message.history.item}


def _ablate_record(updates: Any) -> str | None:
    for item in updates:
        if (item.key or "/".join(item.nested_key)) == "ablate":
            value = json.loads(item.value_json)
            return value.get("record") if isinstance(value, dict) else None
    return None


_BLOCK = 32 * 1024  # LevelDB log blocks
_HEADER = struct.Struct("<IHB")  # crc32c, length, chunk type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_records(path: Path, pb: Any) -> Iterator[Any]:
    """The records of a W&B transaction log: a 7-byte header (``:W&B``, magic, version), then
    LevelDB log chunks of protobuf ``Record`` s. A torn end (an export that was killed) ends the
    reading, as ``wandb sync`` ends its upload there."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        return
    pos, pending = 7, b""
    while pos + _HEADER.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER.size:  # the block's zero-filled trailer
            pos += left
            continue
        _crc, length, kind = _HEADER.unpack_from(data, pos)
        if kind == 0 and length == 0:  # padding to the end of the block
            pos += left
            continue
        chunk = data[pos + _HEADER.size : pos + _HEADER.size + length]
        if len(chunk) < length:
            return
        pos += _HEADER.size + length
        if kind in (_FULL, _LAST):
            message = pb.Record()
            try:
                message.ParseFromString((pending if kind == _LAST else b"") + chunk)
            except Exception:  # noqa: BLE001 - protobuf's DecodeError: a damaged record ends the log
                return
            pending = b""
            yield message
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
