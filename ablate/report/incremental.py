"""Reports that are not redone: a stamp in each report folder says what the report was made from.

``ablate report`` re-renders an experiment only when something its report depends on changed
since the report was written: the experiment's run files and manifest (their bytes; with a
``plan.json``, it and ``events.jsonl`` too, which the plan line compares), the ablate
version, or the report options (``--baseline``, the targets, ``--ci``, ``--effect``). The stamp,
``<out>/<experiment>/.report-stamp.json``, holds a hash of those inputs, a hash of each file the
report wrote (a report file deleted or edited since is made again) and the notes the report's
reading gave (damaged run files, stale runs), so that an unchanged report still says them.
``--force`` re-renders whatever the stamp says.

The stamp is written after the report's files, atomically: a report killed half-way has the old
stamp or none, and is made again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate._version import __version__
from ablate.analysis import Targets
from ablate.store.folder import runs_dir, write_json_atomic

if TYPE_CHECKING:
    from ablate.report.build import Report

STAMP = ".report-stamp.json"
STAMP_FORMAT = 1


@dataclass
class Unchanged:
    """A report left as it was: its inputs are those its stamp names, and its files are intact."""

    experiment: str
    folder: Path
    readme: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what reading the results said when it was made


def inputs_key(results: str | Path, experiment: str, options: dict[str, Any]) -> str:
    """A hash of everything ``experiment``'s report is made from: the manifest and every file under
    ``runs/`` (names and bytes), the ablate version and the report ``options``."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(json.dumps({"ablate": __version__, "options": options}, sort_keys=True).encode())
    folder = runs_dir(results, experiment).parent
    paths = [folder / "experiment.json", *sorted((folder / "runs").glob("*"))]
    if (folder / "plan.json").is_file():  # the report's plan line: plan.json against events.jsonl's times
        paths += [folder / "plan.json", folder / "events.jsonl"]
    for path in paths:
        if not path.is_file():
            continue
        digest.update(f"\0{path.relative_to(folder).as_posix()}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _file_hash(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def current(folder: Path, key: str) -> dict[str, Any] | None:
    """The stamp of the report in ``folder`` when it was made from inputs hashed ``key`` and every
    file it wrote is still as written; else None (no stamp, a damaged one, or anything changed)."""
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
        if stamp.get("format") != STAMP_FORMAT or stamp.get("inputs") != key:
            return None
        files = stamp["files"]
        if "README.md" not in files or not all(_file_hash(folder / name) == h for name, h in files.items()):
            return None
        return stamp
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_stamp(rep: Report, key: str) -> Path:
    """Record that ``rep`` was made from inputs hashed ``key`` (see :func:`inputs_key`)."""
    stamp = {
        "format": STAMP_FORMAT,
        "inputs": key,
        "files": {p.name: _file_hash(p) for p in rep.files},
        "notes": list(rep.data.notes),
    }
    path = rep.folder / STAMP
    write_json_atomic(path, stamp)
    return path


def build_report(*args: Any, **kwargs: Any) -> Report:
    """:func:`ablate.report.build.build_report`, imported only when a report is made: a run of
    ``ablate report`` with nothing changed never loads the plotting libraries."""
    from ablate.report import build

    return build.build_report(*args, **kwargs)


def report_if_changed(
    results: str | Path,
    experiment: str,
    out: str | Path = "reports",
    baseline: str | None = None,
    targets: Targets | None = None,
    *,
    ci: str = "t",
    effect_points: float | None = None,
    force: bool = False,
) -> Report | Unchanged:
    """:func:`~ablate.report.build.build_report`, unless the report in ``out/<experiment>/`` was made
    from the same inputs (see the module) and ``force`` is not given: then :class:`Unchanged`.
    Raises :class:`ablate.analysis.ReportError` as ``build_report`` does."""
    targets = targets or Targets()
    options = {"baseline": baseline, "targets": asdict(targets), "ci": ci, "effect_points": effect_points}
    key = inputs_key(results, experiment, options)
    folder = Path(out) / experiment
    stamp = None if force else current(folder, key)
    if stamp is not None:
        return Unchanged(
            experiment,
            folder,
            folder / "README.md",
            [folder / name for name in stamp["files"]],
            [str(n) for n in stamp.get("notes") or []],
        )
    (folder / STAMP).unlink(missing_ok=True)  # a report half made is never taken for the stamped one
    rep = build_report(results, experiment, out, baseline=baseline, targets=targets, ci=ci, effect_points=effect_points)
    write_stamp(rep, key)
    return rep
