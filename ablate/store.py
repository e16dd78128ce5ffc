"""The results directory: ``<root>/<experiment>/runs/<run_id>.json``, one file per run.

Files are written atomically (temporary file in the same folder, then ``os.replace``), so a crash
or Ctrl-C never leaves a half-written result that a later run would mistake for a finished one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

# Statuses of runs that are done: rerunning the experiment skips them. A "failed" run (an
# exception, e.g. out of memory) is kept for the record but tried again on the next run.
FINISHED = ("ok", "diverged")


def runs_dir(root: str | Path, experiment: str) -> Path:
    return Path(root) / experiment / "runs"


def run_path(root: str | Path, experiment: str, run_id: str) -> Path:
    return runs_dir(root, experiment) / f"{run_id}.json"


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1, allow_nan=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def manifest_path(root: str | Path, experiment: str) -> Path:
    return Path(root) / experiment / "experiment.json"


def write_manifest(root: str | Path, manifest: dict[str, Any]) -> Path:
    """Store what the experiment file said (design, baseline, axes, seeds), so that analysis
    never needs the TOML: ``<root>/<experiment>/experiment.json``, rewritten on every run."""
    path = manifest_path(root, manifest["name"])
    write_json_atomic(path, manifest)
    return path


def read_manifest(root: str | Path, experiment: str) -> dict[str, Any] | None:
    try:
        return json.loads(manifest_path(root, experiment).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_run(root: str | Path, record: dict[str, Any]) -> Path:
    """Store one run record; returns its path."""
    path = run_path(root, record["experiment"], record["run_id"])
    write_json_atomic(path, _finite(record))
    return path


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null (a diverged metric is 'no value')."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read_run(path: Path) -> dict[str, Any] | None:
    """One record, or None when the file is not a readable run record."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "run_id" in record else None


def iter_runs(root: str | Path, experiment: str) -> Iterator[dict[str, Any]]:
    folder = runs_dir(root, experiment)
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            record = read_run(path)
            if record is not None:
                yield record


def finished_run_ids(root: str | Path, experiment: str) -> set[str]:
    return {r["run_id"] for r in iter_runs(root, experiment) if r.get("status") in FINISHED}


def experiments(root: str | Path) -> list[str]:
    """Names of the experiments with a runs/ folder under ``root``, sorted."""
    root = Path(root)
    return sorted(p.parent.name for p in root.glob("*/runs") if p.is_dir()) if root.is_dir() else []
