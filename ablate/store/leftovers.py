"""What killed runs leave behind in an experiment's folder (temporary files of dead writers,
checkpoints of finished cells, claims of finished cells with a dead owner): find it
(:func:`find_leftovers`), remove it (:func:`clean_leftovers`, before every sweep and on
``ablate show --clean``), and say how much disk checkpoints hold (:func:`checkpoint_disk`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ablate.store.claims import LOCK_STALE_S, list_claims
from ablate.store.folder import iter_runs
from ablate.store.record import FINISHED


@dataclass
class Leftovers:
    """Files in an experiment's folder that nobody will use or remove: temporary files of writers
    that are gone (killed mid-write), checkpoints of finished cells (left by a kill between the
    run file and the checkpoint's removal, not kept on purpose), claims of finished cells whose
    owner is gone, and claim temporaries of a failed claim."""

    temporaries: list[Path] = field(default_factory=list)
    finished_checkpoints: list[Path] = field(default_factory=list)
    dead_claims: list[Path] = field(default_factory=list)
    sizes: dict[Path, int] = field(default_factory=dict)  # bytes of each, when found

    def paths(self) -> list[Path]:
        return [*self.temporaries, *self.finished_checkpoints, *self.dead_claims]

    def size(self) -> int:
        return sum(self.sizes.get(p, 0) for p in self.paths())

    def describe(self) -> str:
        """One line: what they are and how much disk they hold."""
        parts = [
            f"{len(items)} {what}"
            for items, what in (
                (self.temporaries, "temporary file(s) of killed writers"),
                (self.finished_checkpoints, "checkpoint(s) of finished cells"),
                (self.dead_claims, "claim(s) of finished cells with a dead owner"),
            )
            if items
        ]
        return ", ".join(parts) + f" ({megabytes(self.size())})"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def find_leftovers(results: str | Path, experiment: str, stale_tmp_s: float = LOCK_STALE_S) -> Leftovers:
    """What :func:`clean_leftovers` would remove. Only the owner of a live claim writes a cell's
    checkpoint or run file, so a temporary file of a cell without a live claim has no writer;
    claim temporaries (never part of a live claim) count once older than ``stale_tmp_s``."""
    root = Path(results) / experiment
    found = Leftovers()
    claims = list_claims(results, experiment)
    live = {run_id for run_id, claim in claims.items() if not claim.stale()}
    records = {r["run_id"]: r for r in iter_runs(results, experiment)}
    finished = {run_id for run_id, r in records.items() if r["status"] in FINISHED}
    for folder, suffix in ((root / "checkpoints", ".pt"), (root / "runs", ".json")):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            name = path.name
            if name.startswith(".") and name.endswith(".tmp") and f"{suffix}." in name:
                if name[1:].split(suffix + ".", 1)[0] not in live:  # .<run_id>.pt.<random>.tmp
                    found.temporaries.append(path)
            elif suffix == ".pt" and name.endswith(".pt") and path.stem in finished and path.stem not in live:
                # Records from before this field existed say nothing: such a checkpoint may have
                # been kept on purpose, so it stays.
                if (records[path.stem].get("worker") or {}).get("kept_checkpoint") is False:
                    found.finished_checkpoints.append(path)
    folder = root / "claims"
    if folder.is_dir():
        now = time.time()
        for path in folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                try:
                    if now - path.stat().st_mtime > stale_tmp_s:
                        found.temporaries.append(path)
                except OSError:
                    pass
    found.dead_claims = [claims[run_id].path for run_id in sorted(finished & set(claims)) if run_id not in live]
    found.sizes = {p: _size(p) for p in found.paths()}
    return found


def clean_leftovers(results: str | Path, experiment: str) -> Leftovers:
    """Remove the :class:`Leftovers` of an experiment (every executor's sweep does it first,
    ``ablate show --clean`` on request); returns what was removed."""
    found = find_leftovers(results, experiment)
    gone: set[Path] = set()
    for path in found.paths():
        try:
            path.unlink()
            gone.add(path)
        except OSError:
            continue
    return Leftovers(
        [p for p in found.temporaries if p in gone],
        [p for p in found.finished_checkpoints if p in gone],
        [p for p in found.dead_claims if p in gone],
        {p: found.sizes[p] for p in gone},
    )


def checkpoint_disk(results: str | Path, experiment: str) -> tuple[int, int]:
    """(files, bytes) in an experiment's checkpoints folder, temporary files included."""
    folder = Path(results) / experiment / "checkpoints"
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    return len(files), sum(_size(p) for p in files)
