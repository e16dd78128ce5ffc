"""Dropout whose masks come from a generator of the run's own (:class:`SeededDropout`), and the two
functions every dropout mask of ablate is drawn and applied with, alone or fused.

Why not ``nn.Dropout``: it draws from the global RNG, so a run's masks depend on everything else
that drew from it in the process, and K seeds trained as one fused model
(:mod:`ablate.models.fused`) cannot each get the masks of their solo run. Here each run owns a
generator (:func:`ablate.runtime.seeding.dropout_generator`); a solo run draws a mask of its
activations' shape from it, a fused member draws the same shape from its own, and both apply it
with :func:`apply_keep`: the same numbers either way. Without a generator (a model built with
``build_model`` and trained by hand) it is ``nn.Dropout``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def draw_keep(shape: Sequence[int], p: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Which activations survive (bool, ``shape``): each with probability ``1 - p``, from float32
    uniform draws of ``generator`` (on its own device), in the tensor's logical order, so that the
    same shape gives the same mask whatever the layout and dtype of the activations."""
    u = torch.rand(tuple(shape), generator=generator, device=generator.device, dtype=torch.float32)
    return (u >= p).to(device)


def apply_keep(x: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """``x`` with the dropped activations zeroed and the kept ones scaled by ``1 / (1 - p)``."""
    if p >= 1:
        return x * 0
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p))


class SeededDropout(nn.Dropout):
    """``nn.Dropout`` that draws its masks from ``generator`` when one is set (training sets the
    run's, see :func:`ablate.train.setup.prepare`); without one, exactly ``nn.Dropout``."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.generator is None:
            return F.dropout(x, self.p, True)
        return apply_keep(x, draw_keep(x.shape, self.p, self.generator, x.device), self.p)
