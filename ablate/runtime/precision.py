"""Precision names and what they mean in torch: the one map from ``fp32 | bf16 | fp16`` to dtypes.

Training, ``ablate bench``, the reference loops and the comparison scripts all turn a precision
name into a dtype or an autocast context here, so that "bf16" cannot mean two things.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch

#: Resolved precision name -> the dtype autocast computes in (fp32: no autocast at all).
PRECISION_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def precision_dtype(precision: str) -> torch.dtype:
    """The dtype of a resolved precision (``fp32 | bf16 | fp16``); ValueError for anything else,
    including ``auto``, which must be resolved for a device first."""
    try:
        return PRECISION_DTYPES[precision]
    except KeyError:
        raise ValueError(f"precision {precision!r} is not one of {' | '.join(PRECISION_DTYPES)}") from None


def autocast_for(precision: str, device: torch.device) -> Callable[[], Any]:
    """A zero-argument context factory: autocast to bf16/fp16, or nothing for fp32."""
    dtype = precision_dtype(precision)
    if dtype is torch.float32:
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)
