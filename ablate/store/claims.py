"""Claims: which worker is training which cell, kept in the results folder.

Before training a cell, a worker creates ``<root>/<experiment>/claims/<run_id>`` atomically (the
claim is written to a temporary file and hard-linked into place, which fails if the name exists,
also on NFS), refreshes its modification time every :data:`HEARTBEAT_S` seconds while it trains,
and removes it after the run file is written. Every executor goes through this (one process,
local workers, Ray tasks, two terminals, two machines on one shared folder), so no cell is
trained twice at the same time, and no executor keeps its own list of what is running.

A claim is *stale*, and may be taken over, when its owner is on this host and its process is
gone, or when its heartbeat is older than the timeout (an owner on another host that stopped
beating: killed, or its machine lost). A take-over happens under a short lock file, so two
workers that find the same stale claim cannot both take it. The timeout must exceed the longest
pause a live worker can have (swap, a stopped process): the default is six heartbeats.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.store.folder import StoreError, claims_dir

HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0
# A take-over lock older than this belongs to a worker that died while taking over.
LOCK_STALE_S = 30.0


@dataclass(frozen=True)
class Claim:
    """What a claim file says about its owner."""

    path: Path
    host: str
    pid: int
    started: float
    heartbeat: float  # the file's modification time
    worker: str  # free text: "cuda:0 #1", "ray task ...", for `ablate show`
    token: str  # unique per claim, so an owner recognises its own

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.heartbeat

    def owner_alive(self) -> bool | None:
        """True/False when the owner is on this host, None (unknown) on another host."""
        if self.host != socket.gethostname():
            return None
        return pid_alive(self.pid)

    def stale(self, timeout: float = STALE_AFTER_S) -> bool:
        return self.owner_alive() is False or self.age() > timeout


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def claim_path(root: str | Path, experiment: str, run_id: str) -> Path:
    return claims_dir(root, experiment) / run_id


def read_claim(path: Path) -> Claim | None:
    """The claim at ``path``; None when there is none. A claim file that cannot be parsed (a
    disk error) reads as a claim by nobody with its file's age, so it expires like any other."""
    try:
        mtime = path.stat().st_mtime
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        data = json.loads(text)
        return Claim(
            path,
            str(data["host"]),
            int(data["pid"]),
            float(data["started"]),
            mtime,
            str(data.get("worker", "")),
            str(data["token"]),
        )
    except (ValueError, KeyError, TypeError):
        return Claim(path, "?", -1, mtime, mtime, "unreadable claim", "")


def list_claims(root: str | Path, experiment: str) -> dict[str, Claim]:
    """Every claim of an experiment, by run id (take-over locks and temporaries left out)."""
    folder = claims_dir(root, experiment)
    found: dict[str, Claim] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(".") or path.suffix:
                continue
            claim = read_claim(path)
            if claim is not None:
                found[path.name] = claim
    return found


def _create(path: Path, payload: dict[str, Any]) -> bool:
    """Atomically create ``path`` with ``payload``; False when it already exists."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(payload), encoding="utf-8")  # a full disk fails here, after creating tmp
        os.link(tmp, path)  # fails with FileExistsError when someone holds the name
        return True
    except FileExistsError:
        return False
    except OSError as e:
        raise StoreError(f"cannot create the claim {path} ({e.strerror or e})") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


class HeldClaim:
    """A claim held by this process: :meth:`acquire`, then :meth:`release` (or use ``with``).

    While held, a daemon thread refreshes the heartbeat. If the claim disappears or is taken
    over (this process was paused past the timeout), :attr:`lost` becomes True and the trainer
    stops at its next step: two owners must never go on training one cell.
    """

    def __init__(
        self,
        root: str | Path,
        experiment: str,
        run_id: str,
        worker: str = "",
        timeout: float = STALE_AFTER_S,
        heartbeat: float = HEARTBEAT_S,
    ) -> None:
        self.path = claim_path(root, experiment, run_id)
        self.worker, self.timeout, self.heartbeat_s = worker, timeout, heartbeat
        self.token = uuid.uuid4().hex
        self.took_over: Claim | None = None  # the stale claim this one replaced, if any
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _payload(self) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
            "worker": self.worker,
            "token": self.token,
        }

    def acquire(self) -> bool:
        """Claim the cell; False when a live claim of someone else holds it."""
        if not _create(self.path, self._payload()):
            current = read_claim(self.path)
            if current is not None and not current.stale(self.timeout):
                return False
            if not self._take_over(current):
                return False
        self._thread = threading.Thread(target=self._beat, name=f"ablate-claim-{self.path.name}", daemon=True)
        self._thread.start()
        return True

    def _take_over(self, judged: Claim | None) -> bool:
        lock = self.path.with_name(f".{self.path.name}.takeover")
        if not _create(lock, self._payload()):
            try:
                if time.time() - lock.stat().st_mtime <= LOCK_STALE_S:
                    return False  # someone else is taking it over right now
                lock.unlink()  # left by a worker that died mid-take-over
            except FileNotFoundError:
                pass
            if not _create(lock, self._payload()):
                return False
        try:
            current = read_claim(self.path)
            # Still the claim we judged stale (not a fresh one someone made meanwhile)?
            if current is not None and (
                judged is None or current.token != judged.token or not current.stale(self.timeout)
            ):
                return False
            self.path.unlink(missing_ok=True)
            if not _create(self.path, self._payload()):
                return False
            self.took_over = current
            return True
        finally:
            lock.unlink(missing_ok=True)

    def held(self) -> bool:
        current = read_claim(self.path)
        return current is not None and current.token == self.token

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self.held():
                self.lost = True
                return
            try:
                os.utime(self.path)
            except OSError:
                self.lost = True
                return

    def release(self) -> None:
        """Stop the heartbeat and remove the claim if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "HeldClaim":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
