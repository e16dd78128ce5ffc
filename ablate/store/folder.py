"""The results directory, the only state that executors, reports and exports share.

Layout under ``<root>/<experiment>/``:

- ``runs/<run_id>.json``: one record per run (see :mod:`ablate.store.record`), written atomically
  (temporary file in the same folder, fsync, ``os.replace``), so a crash never leaves a
  half-written result that a later run would mistake for a finished one.
- ``claims/<run_id>``: a live claim while some worker trains the cell (:mod:`ablate.store.claims`).
- ``checkpoints/<run_id>.pt``: the state of an unfinished cell (:mod:`ablate.store.checkpoints`).
- ``events.jsonl``: one line per claim, resume, take-over and finish, appended by every worker.
- ``experiment.json``: the manifest (design, baseline, cells), so analysis never needs the TOML.
- ``plan.json``: what ``ablate plan`` predicted (time, what the study can detect), for scripts,
  ``ablate run``'s first line and the report's comparison with what happened.

Files are created with the permissions the umask gives (a results folder shared by a team stays
readable to it), not the 0600 of a bare temporary file.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ablate.store.record import FINISHED, RunRecord, finite, problem


class StoreError(OSError):
    """The results folder cannot be used (not writable, disk full); ``str()`` is one line."""


def runs_dir(root: str | Path, experiment: str) -> Path:
    return Path(root) / experiment / "runs"


def run_path(root: str | Path, experiment: str, run_id: str) -> Path:
    return runs_dir(root, experiment) / f"{run_id}.json"


def claims_dir(root: str | Path, experiment: str) -> Path:
    return Path(root) / experiment / "claims"


def checkpoint_path(root: str | Path, experiment: str, run_id: str) -> Path:
    return Path(root) / experiment / "checkpoints" / f"{run_id}.pt"


def events_path(root: str | Path, experiment: str) -> Path:
    return Path(root) / experiment / "events.jsonl"


def manifest_path(root: str | Path, experiment: str) -> Path:
    return Path(root) / experiment / "experiment.json"


def plan_path(root: str | Path, experiment: str) -> Path:
    return Path(root) / experiment / "plan.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, fsync, rename.
    Readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the team
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    def dump(f: Any) -> None:
        json.dump(payload, f, indent=1, allow_nan=False, default=str)
        f.write("\n")

    write_atomic(path, dump)


def write_manifest(root: str | Path, manifest: dict[str, Any]) -> Path:
    """Store what the experiment file said (design, baseline, axes, seeds), so that analysis
    never needs the TOML: ``<root>/<experiment>/experiment.json``, rewritten on every run."""
    path = manifest_path(root, manifest["name"])
    try:
        write_json_atomic(path, manifest)
    except OSError as e:  # a full disk, a folder in the way: one line for the user
        raise StoreError(f"could not write {path} ({e.strerror or e})") from None
    return path


def write_plan(root: str | Path, plan: dict[str, Any]) -> Path:
    """Store what ``ablate plan`` predicted: ``<root>/<experiment>/plan.json``, replaced atomically."""
    path = plan_path(root, plan["experiment"])
    try:
        write_json_atomic(path, finite(plan))
    except OSError as e:
        raise StoreError(f"could not write {path} ({e.strerror or e})") from None
    return path


def read_plan(root: str | Path, experiment: str) -> dict[str, Any] | None:
    """The experiment's ``plan.json``, or None when there is none or it is not a readable plan."""
    try:
        plan = json.loads(plan_path(root, experiment).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) and plan.get("kind") == PLAN_KIND else None


PLAN_KIND = "ablate-plan"


def read_manifest(root: str | Path, experiment: str) -> dict[str, Any] | None:
    """The manifest, or None when it is missing or damaged (:func:`manifest_problem` says which)."""
    return _load_manifest(root, experiment)[0]


def manifest_problem(root: str | Path, experiment: str) -> str | None:
    """Why an existing manifest cannot be used: unreadable, or fields of the wrong shape (None when
    it is fine or does not exist)."""
    return _load_manifest(root, experiment)[1]


def _load_manifest(root: str | Path, experiment: str) -> tuple[dict[str, Any] | None, str | None]:
    path = manifest_path(root, experiment)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"{path}: unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    shape = _manifest_shape_problem(manifest)
    return (manifest, None) if not shape else (None, f"{path}: {shape}")


def _manifest_shape_problem(m: Any) -> str:
    """Why a manifest's fields lack the shapes every reader relies on, or "" when they have them
    (checked here, so that a damaged manifest reads as absent, the same way for every reader)."""
    if not isinstance(m, dict):
        return "not a JSON object"
    if not isinstance(m.get("variants", []), list) or not all(isinstance(v, dict) for v in m.get("variants", [])):
        return "'variants' is not a list of objects"
    try:
        [int(x) for x in m.get("seeds", [])]
    except (TypeError, ValueError):
        return "'seeds' is not a list of integers"
    if not isinstance(m.get("run_ids") or [], list):
        return "'run_ids' is not a list"
    cells = m.get("cells") or []
    if not isinstance(cells, list) or not all(
        isinstance(c, dict) and {"run_id", "slug", "seed"} <= set(c) for c in cells
    ):
        return "'cells' is not a list of {run_id, slug, seed}"
    axes = m.get("axes") or {}
    if not isinstance(axes, dict) or not all(isinstance(v, list) for v in axes.values()):
        return "'axes' is not an object of lists"
    for key in ("baseline", "data", "train", "adaptive"):
        if m.get(key) is not None and not isinstance(m[key], dict):
            return f"'{key}' is not an object"
    return ""


def write_run(root: str | Path, record: RunRecord, attempts: int = 3) -> Path:
    """Store one run record; returns its path.

    A write that fails (disk full, folder removed) is retried; if it still fails, the record is
    saved to a rescue file (next to the results folder, else in the temporary directory) and a
    :class:`StoreError` says where, so the run just trained is never lost."""
    path = run_path(root, record["experiment"], record["run_id"])
    payload = finite(record)
    for attempt in range(attempts):
        try:
            write_json_atomic(path, payload)
            return path
        except OSError as e:
            error = e
            time.sleep(0.2 * (attempt + 1))
    rescued = _rescue(root, payload)
    raise StoreError(
        f"could not write {path} ({type(error).__name__}: {error.strerror or error}); "
        + (
            f"the record is saved in {rescued}: copy it to {path} when the folder is writable again"
            if rescued
            else "and no rescue location was writable either"
        )
    )


def _rescue(root: str | Path, payload: dict[str, Any]) -> Path | None:
    name = f"ablate-rescued-{payload['experiment']}-{payload['run_id']}.json"
    for folder in (Path(root).resolve().parent, Path(tempfile.gettempdir())):
        try:
            write_json_atomic(folder / name, payload)
            return folder / name
        except OSError:
            continue
    return None


def read_run(path: Path) -> RunRecord | None:
    """One record, or None when the file is not a valid run record (see :func:`check_run_file`)."""
    record, _problem = check_run_file(path)
    return record


def check_run_file(path: Path) -> tuple[RunRecord | None, str | None]:
    """``(record, None)`` for a valid run file, ``(None, problem)`` otherwise."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        return None, f"unreadable ({e.strerror or e})"
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as e:
        return None, f"not JSON ({str(e).splitlines()[0]})"
    why = problem(record)
    if why is None and record["run_id"] != path.stem:
        why = f"run_id {record['run_id']!r} does not match the file name"
    return (None, why) if why else (record, None)


@dataclass
class RunScan:
    """The run files of one experiment: valid records, and the files that are not."""

    records: list[RunRecord] = field(default_factory=list)
    # (path, what is wrong with it), for one warning line each.
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    def warnings(self) -> list[str]:
        return [f"{path}: {why}; not counted as a run" for path, why in self.unreadable]


def scan_runs(root: str | Path, experiment: str) -> RunScan:
    """Read every ``runs/*.json`` of an experiment through the one schema check."""
    scan = RunScan()
    folder = runs_dir(root, experiment)
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            record, why = check_run_file(path)
            if record is not None:
                scan.records.append(record)
            else:
                scan.unreadable.append((path, why or "invalid"))
    return scan


def iter_runs(root: str | Path, experiment: str) -> Iterator[RunRecord]:
    """Valid records only; :func:`scan_runs` also names the files that are not."""
    yield from scan_runs(root, experiment).records


def finished_run_ids(root: str | Path, experiment: str) -> set[str]:
    return {r["run_id"] for r in iter_runs(root, experiment) if r.get("status") in FINISHED}


def set_aside(path: Path) -> Path:
    """Move a damaged run file out of the way (``<name>.corrupt``, numbered if taken), so that a
    retrained cell never overwrites the evidence. Returns the new path."""
    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt{n}")
    os.replace(path, target)
    return target


def append_event(root: str | Path, experiment: str, event: str, run_id: str, **details: Any) -> None:
    """One line in ``events.jsonl`` (O_APPEND writes of one short line do not interleave)."""
    line = json.dumps(
        {
            "time": round(time.time(), 3),
            "event": event,
            "run_id": run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **details,
        },
        default=str,
    )
    path = events_path(root, experiment)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_events(root: str | Path, experiment: str) -> list[dict[str, Any]]:
    """Every well-formed line of ``events.jsonl`` (a torn last line from a kill is skipped)."""
    try:
        lines = events_path(root, experiment).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def check_writable(root: str | Path) -> None:
    """Fail now, with one line, when results cannot be written under ``root``: it is a file, a
    read-only or impossible path, or a name the filesystem refuses. Leaves no trace: folders it
    had to create for the test are removed again."""
    root = Path(root)
    created: list[Path] = []
    try:
        if root.is_symlink() and not root.exists():
            raise StoreError(f"{root} is a symbolic link to nothing (dangling, or a loop); give --results a folder")
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} is a file, not a folder; give --results a folder")
        missing = [p for p in [root, *root.parents] if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".ablate-write-check-")
        os.close(fd)
        os.unlink(probe)
    except StoreError:
        raise
    except OSError as e:
        raise StoreError(f"cannot write to {root}: {e.strerror or e}") from None
    finally:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass


def check_layout(root: str | Path, experiment: str) -> None:
    """Fail now, with one line, when something is in the way in ``<root>/<experiment>/``: a folder
    where a file belongs (``experiment.json``, ``events.jsonl``) or a file where a folder belongs
    (``runs``, ``claims``, ``checkpoints``), which would otherwise break a run halfway (after
    training, or between a run file and its checkpoint's removal)."""
    base = Path(root) / experiment
    if base.exists() and not base.is_dir():
        raise StoreError(f"{base} is a file, not a folder; move it away")
    for path in (manifest_path(root, experiment), events_path(root, experiment)):
        if path.is_dir():
            raise StoreError(f"{path} is a folder where ablate keeps a file; move it away")
    for path in (
        runs_dir(root, experiment),
        claims_dir(root, experiment),
        checkpoint_path(root, experiment, "x").parent,
    ):
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path} is a file where ablate keeps a folder; move it away")


def experiments(root: str | Path) -> list[str]:
    """Names of the experiments with a runs/ folder under ``root``, sorted."""
    root = Path(root)
    return sorted(p.parent.name for p in root.glob("*/runs") if p.is_dir()) if root.is_dir() else []
