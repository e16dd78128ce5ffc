"""Checkpoints of an unfinished cell: save atomically, load safely, never trust a stranger's.

A checkpoint is a plain dict of tensors and Python scalars written with ``torch.save`` and read
with ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects: a checkpoint
file from elsewhere cannot run code. It is valid for one cell only: its ``run_id`` (the hash of
the resolved config) must match, else it is ignored with a warning and training starts over.

Damaged bytes are caught by the CRC-32 that ``torch.save`` writes for every entry of its zip
file, checked with :mod:`zipfile` before the load: ``torch.load`` itself does not check them, so a
file with damaged bytes inside a tensor loads without complaint, and resuming from it would train
on garbage. A mismatch is refused like any unusable checkpoint. Saving costs nothing extra (torch
computes the CRCs as it writes) and the file stays a plain ``torch.save`` dict, loadable with
``torch.load`` (``--keep-checkpoints`` keeps the final weights for users).

What goes in is decided by :mod:`ablate.train.loop` (weights, optimizer, schedule, scaler, counters,
metrics so far, the position inside the epoch); this module adds every global RNG state
(Python, NumPy, torch CPU and CUDA) and does the file work.
"""

from __future__ import annotations

import contextlib
import random
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.store.folder import write_atomic

# 4: holds the run's dropout generator (dropout masks no longer come from the global RNG) and,
# for a member of a fused group, where it was fused (ablate.train.resume). 3: checked by its zip
# CRCs. 2 also carried a SHA-256 of its contents, computed on every save (0.1 s for AlexNet-65
# with Adam); 1 had no cpu_threads. torch wrote the CRCs of all of them, so all are checked and
# read (2's SHA-256 is dropped); training refuses 1-3 for a cell with dropout, whose masks came
# from the global RNG and cannot be continued.
FORMAT = 4
READABLE_FORMATS = (1, 2, 3, 4)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; ``str()`` is one line saying why."""


@dataclass(frozen=True)
class Saved:
    """What one save cost."""

    seconds: float
    bytes: int


def global_rng_state() -> dict[str, Any]:
    """Every process-wide RNG state a run's remaining steps depend on (dropout, init, shuffles)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        # NumPy's state holds an ndarray, which weights_only loading refuses: store it as a tensor.
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_global_rng(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) != torch.cuda.device_count():
            raise CheckpointError(
                f"saved with {len(state['cuda'])} CUDA device(s) visible, now {torch.cuda.device_count()}"
            )
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value: Any) -> Any:
    """random.setstate wants tuples where a round trip may have produced lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def damaged_entry(path: Path) -> str | None:
    """The first entry of ``path``'s zip whose bytes do not match the CRC-32 written with them
    (None: every entry matches). Raises :class:`zipfile.BadZipFile` and ``OSError`` as
    :mod:`zipfile` does."""
    with zipfile.ZipFile(path) as archive:
        return archive.testzip()


@contextlib.contextmanager
def _crcs_written() -> Iterator[None]:
    """``torch.save`` with CRC-32s in the file even where someone turned them off
    (``torch.serialization.set_crc32_options``, torch 2.6+), since :func:`load` checks them."""
    get = getattr(torch.serialization, "get_crc32_options", None)
    if get is None or get():
        yield
        return
    torch.serialization.set_crc32_options(True)
    try:
        yield
    finally:
        torch.serialization.set_crc32_options(False)


def save(path: Path, run_id: str, state: dict[str, Any]) -> Saved:
    """Write ``state`` (plus the global RNG states) for cell ``run_id``; atomic, fsynced, with a
    CRC-32 per zip entry."""
    start = time.perf_counter()
    payload = {"format": FORMAT, "run_id": run_id, "saved_at": time.time(), "rng": global_rng_state(), **state}
    with _crcs_written():
        write_atomic(path, lambda f: torch.save(payload, f), binary=True)
    return Saved(time.perf_counter() - start, path.stat().st_size)


def load(path: Path, run_id: str, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint of cell ``run_id``, or None when there is none. Raises
    :class:`CheckpointError` (one line) for a file that is damaged or belongs to another config;
    the caller warns and starts over."""
    if not path.exists():
        return None
    try:
        damaged = damaged_entry(path)
        if damaged is not None:
            raise CheckpointError(f"{path}: damaged checkpoint (its entry {damaged} does not match its CRC-32)")
        state = torch.load(path, map_location=device, weights_only=True)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated zip, garbage, refused pickle: all "unusable"
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise CheckpointError(
            f"{path}: not an ablate checkpoint (format {state.get('format') if isinstance(state, dict) else '?'})"
        )
    if state.get("run_id") != run_id:
        raise CheckpointError(f"{path}: saved for another config (run_id {state.get('run_id')!r}, expected {run_id!r})")
    state.pop("sha256", None)  # format 2's; the CRCs checked above cover the same bytes
    return state


def remove(path: Path) -> None:
    """Delete a finished cell's checkpoint; one that cannot be deleted now is left to the next
    run's clean-up (the run file is written already: nothing may fail after it)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
