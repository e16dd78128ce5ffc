"""FLOPs per image of a model, forward and training (forward + backward), by counting.

Counted with PyTorch's ``FlopCounterMode`` on the meta device (shapes only, no arithmetic, so it
is instant even for the 227-pixel preset), inside the convolution and linear layers (2 FLOPs per
multiply-add). Everything else (activations, pooling, LRN, BatchNorm, the optimizer) is left out:
it is memory-bound and a rounding error in FLOPs. This is the
number to compare with a GPU's matrix peak (TFLOP/s) to see how much of the chip a loop uses.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

MATRIX_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _layer_flops(counter: FlopCounterMode, model: nn.Module) -> int:
    """FLOPs counted inside convolution and linear layers only: a norm layer's own matrix
    products (the LRN's banded window sum) are an implementation detail, not model work."""
    counts = counter.get_flop_counts()
    root = type(model).__name__
    keys = [f"{root}.{name}" for name, m in model.named_modules() if isinstance(m, MATRIX_LAYERS)]
    return sum(sum(counts.get(key, {}).values()) for key in keys)


def flops_per_image(model: nn.Module, input_size: int, channels: int = 3) -> dict[str, int]:
    """``{"forward": f, "train": t}``: FLOPs per image of the convolution and linear layers in
    a forward pass and in a training step's forward + backward (the weight update is not counted)."""
    batch = 2  # any batch works (FLOPs are linear in it); 2 keeps BatchNorm's train mode legal
    meta = copy.deepcopy(model).to("meta")
    meta.train()
    x = torch.empty(batch, channels, input_size, input_size, device="meta")
    with FlopCounterMode(display=False) as forward_only:
        with torch.no_grad():
            meta(x)
    with FlopCounterMode(display=False) as training:
        meta(x).sum().backward()
    return {"forward": _layer_flops(forward_only, meta) // batch, "train": _layer_flops(training, meta) // batch}
