"""FLOPs per image of a model, forward and training (forward + backward), by counting.

Counted with PyTorch's ``FlopCounterMode`` on the meta device (shapes only, no arithmetic, so it
is instant even for the 227-pixel preset). It counts the matrix work (convolutions, linear
layers: 2 FLOPs per multiply-add) and ignores elementwise ops (activations, pooling, LRN,
BatchNorm, the optimizer), which are memory-bound and a rounding error in FLOPs. This is the
number to compare with a GPU's matrix peak (TFLOP/s) to see how much of the chip a loop uses.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def flops_per_image(model: nn.Module, input_size: int, channels: int = 3) -> dict[str, int]:
    """``{"forward": f, "train": t}``: FLOPs per image of a forward pass and of a training step's
    forward + backward (the weight update is not counted)."""
    batch = 2  # any batch works (FLOPs are linear in it); 2 keeps BatchNorm's train mode legal
    meta = copy.deepcopy(model).to("meta")
    meta.train()
    x = torch.empty(batch, channels, input_size, input_size, device="meta")
    with FlopCounterMode(display=False) as forward_only:
        with torch.no_grad():
            meta(x)
    with FlopCounterMode(display=False) as training:
        meta(x).sum().backward()
    return {"forward": forward_only.get_total_flops() // batch, "train": training.get_total_flops() // batch}
