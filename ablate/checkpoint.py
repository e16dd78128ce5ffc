"""Checkpoints of an unfinished cell: save atomically, load safely, never trust a stranger's.

A checkpoint is a plain dict of tensors and Python scalars written with ``torch.save`` and read
with ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects: a checkpoint
file from elsewhere cannot run code. It is valid for one cell only: its ``run_id`` (the hash of
the resolved config) must match, else it is ignored with a warning and training starts over.

It carries a SHA-256 of its contents (every tensor's bytes, dtype and shape, every scalar), made
before the save and checked after the load: damaged bytes inside a tensor leave a file that
``torch.load`` reads without complaint (torch does not check its zip entries' CRCs), and resuming
from it would train on garbage. A mismatch is refused like any unusable checkpoint. The digest
covers the values rather than the file's bytes so that the file stays a plain ``torch.save``
dict, loadable with ``torch.load`` (``--keep-checkpoints`` keeps the final weights for users).

What goes in is decided by :mod:`ablate.train` (weights, optimizer, schedule, scaler, counters,
metrics so far, the position inside the epoch); this module adds every global RNG state
(Python, NumPy, torch CPU and CUDA) and does the file work.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.store import write_atomic

# 2: with the ``sha256`` of the contents (1 had none and is refused: it cannot be checked).
FORMAT = 2


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


def digest(value: Any) -> str:
    """SHA-256 of a checkpoint's contents: tensors by dtype, shape and bytes; dicts, lists and
    tuples (one kind: a round trip may turn one into the other) by their items in order; other
    values by type and ``repr``."""
    h = hashlib.sha256()

    def walk(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"t{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, dict):
            h.update(f"d{len(v)}".encode())
            for k, item in v.items():
                walk(k)
                walk(item)
        elif isinstance(v, (list, tuple)):
            h.update(f"l{len(v)}".encode())
            for item in v:
                walk(item)
        else:
            h.update(f"v{type(v).__name__}:{v!r};".encode())

    walk(value)
    return h.hexdigest()


def save(path: Path, run_id: str, state: dict[str, Any]) -> Saved:
    """Write ``state`` (plus the global RNG states) for cell ``run_id`` with the digest of it all;
    atomic, fsynced."""
    start = time.perf_counter()
    payload = {"format": FORMAT, "run_id": run_id, "saved_at": time.time(), "rng": global_rng_state(), **state}
    payload["sha256"] = digest(payload)
    write_atomic(path, lambda f: torch.save(payload, f), binary=True)
    return Saved(time.perf_counter() - start, path.stat().st_size)


def load(path: Path, run_id: str, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint of cell ``run_id``, or None when there is none. Raises
    :class:`CheckpointError` (one line) for a file that is damaged or belongs to another config;
    the caller warns and starts over."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, garbage, refused pickle: all "unusable"
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not an ablate checkpoint (format {state.get('format') if isinstance(state, dict) else '?'})"
        )
    if state.get("run_id") != run_id:
        raise CheckpointError(f"{path}: saved for another config (run_id {state.get('run_id')!r}, expected {run_id!r})")
    stored = state.pop("sha256", None)
    if stored != digest(state):
        raise CheckpointError(f"{path}: damaged checkpoint (its contents do not match the sha256 saved with them)")
    return state


def remove(path: Path) -> None:
    """Delete a finished cell's checkpoint; one that cannot be deleted now is left to the next
    run's clean-up (the run file is written already: nothing may fail after it)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
