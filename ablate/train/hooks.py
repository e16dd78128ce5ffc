"""What the runner asks of a cell's training beyond the cell itself (:class:`CellHooks`): where its
checkpoint goes, when to stop, whom to tell. One per cell, whether it trains alone or fused.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.store import checkpoints as checkpoint


@dataclass
class CellHooks:
    """What the runner asks of a cell's training beyond the cell itself. In a fused group each
    member has its own; a stop asked by any member's ``should_stop`` stops the group (each member
    saving its own checkpoint, if its ``may_save`` allows)."""

    # Where to keep this cell's checkpoint; None = no checkpoints (and no resume).
    checkpoint: Path | None = None
    # Seconds between mid-epoch checkpoints (one is also saved after every epoch); 0 = epochs only.
    checkpoint_every_s: float = 600.0
    # Polled after every optimizer step: True stops training (checkpoint first), raising Interrupted.
    should_stop: Callable[[], bool] = lambda: False
    # Asked before every save: False means the checkpoint file is no longer this trainer's (its
    # claim was taken over) and nothing is written.
    may_save: Callable[[], bool] = lambda: True
    # Told of every checkpoint saved: (cost, why: "epoch" | "timer" | "stop").
    on_checkpoint: Callable[[checkpoint.Saved, str], None] | None = None
    # Told of a checkpoint that could not be used (one line); default: warnings.warn.
    on_warning: Callable[[str], None] | None = None
    # Told when training continues from a checkpoint (the entry added to record["resumed"]).
    on_resume: Callable[[dict[str, Any]], None] | None = None
    # Told of this cell's record as soon as it is final: a fused member that diverges is done
    # before its group is, and its run file need not wait for the others.
    on_finish: Callable[[dict[str, Any]], None] | None = None

    def warn(self, message: str) -> None:
        """Say one line through ``on_warning`` (default: ``warnings.warn``)."""
        if self.on_warning is not None:
            self.on_warning(message)
        else:
            warnings.warn(message, stacklevel=3)
