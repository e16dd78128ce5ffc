"""On-disk cache of decoded, resized splits: decode once, start later runs from the cache.

An entry is one split of one dataset at one input size, saved with ``torch.save`` as plain tensors
(uint8 images, int64 labels, statistics) plus a little JSON-able metadata. Its file name is a hash
of everything the content depends on: the dataset, the split, the size, the identity of every
source file (path, byte size, modification time) and :data:`FORMAT`. Changing a source file, or
the code that decodes, therefore gives a new entry instead of silently reusing a stale one.

Location: ``$ABLATE_CACHE``, else ``$XDG_CACHE_HOME/ablate``, else ``~/.cache/ablate``. Caching can
be switched off for a block of code with :func:`caching` (the CLI's ``--no-cache``): entries are
then neither read nor written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from ablate.store.folder import write_atomic

CACHE_ENV = "ABLATE_CACHE"
# Bump whenever decoding, resizing or the entry layout changes: old entries are then ignored.
FORMAT = 1

# A context variable rather than a function argument, so that every registered dataset keeps the
# plain ``(cfg, input_size)`` signature and user datasets need not know about caching.
_ENABLED: ContextVar[bool] = ContextVar("ablate_cache_enabled", default=True)


def cache_root() -> Path:
    """Where entries live: ``$ABLATE_CACHE``, ``$XDG_CACHE_HOME/ablate`` or ``~/.cache/ablate``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    try:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    except RuntimeError:  # no $HOME and no password entry (some containers): a cache still helps
        base = tempfile.gettempdir()
    return Path(base).expanduser() / "ablate"


def cache_enabled() -> bool:
    return _ENABLED.get()


@contextmanager
def caching(enabled: bool) -> Iterator[None]:
    """Switch the cache on or off for the code inside the ``with`` block."""
    token = _ENABLED.set(enabled)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def file_identity(paths: Iterable[Path], relative_to: Path | None = None) -> list[list[Any]]:
    """``[path, bytes, mtime_ns]`` for each file: cheap to compute (one ``stat``), and it changes
    whenever a file is replaced or edited, which is what invalidates an entry."""
    out = []
    for p in paths:
        st = p.stat()
        name = str(p.relative_to(relative_to)) if relative_to is not None else str(p.resolve())
        out.append([name, st.st_size, st.st_mtime_ns])
    return out


@dataclass(frozen=True)
class CacheKey:
    """What a cached split depends on. ``sources`` is a :func:`file_identity` list (or anything
    JSON-able that changes when the inputs change); ``extra`` any further settings."""

    dataset: str
    split: str
    size: int
    sources: Any
    extra: Any = None

    def as_json(self) -> str:
        doc = {
            "format": FORMAT,
            "dataset": self.dataset,
            "split": self.split,
            "size": self.size,
            "sources": self.sources,
            "extra": self.extra,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    def path(self) -> Path:
        digest = hashlib.sha256(self.as_json().encode()).hexdigest()[:20]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.dataset)
        return cache_root() / safe / f"{self.split}-{self.size}px-{digest}.pt"


def load_or_build(key: CacheKey, build: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The entry for ``key``, built with ``build()`` (and stored) when it is not cached yet.

    Returns ``(payload, status)``; status is ``hit``, ``written``, ``off`` (caching disabled) or
    ``not written (<reason>)`` when the cache folder cannot be written: a read-only home must not
    stop a run, it only costs the decode next time.
    """
    if not cache_enabled():
        return build(), "off"
    path = key.path()
    cached = _read(path, key)
    if cached is not None:
        return cached, "hit"
    payload = build()
    try:
        # Atomic (a crash or a second process never leaves half an entry under the final name),
        # with the umask's permissions, so a cache shared by a team via $ABLATE_CACHE works for all.
        entry = {"key": key.as_json(), "payload": payload}
        write_atomic(path, lambda f: torch.save(entry, f), binary=True)
    except OSError as e:
        return payload, f"not written ({e.strerror or e})"
    return payload, "written"


def _read(path: Path, key: CacheKey) -> dict[str, Any] | None:
    try:
        if not path.is_file():  # may raise too: a cache folder we may not look into
            return None
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a truncated or foreign file is a cache miss, rebuilt below
        return None
    if not isinstance(entry, dict) or entry.get("key") != key.as_json():
        return None  # hash collision or an entry from another format: never trust it
    return entry["payload"]
