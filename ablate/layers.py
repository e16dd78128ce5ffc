"""Builders for the per-axis layers (activation, pooling, normalization) and the paper's LRN.

Each builder is registered under the axis value it implements; :mod:`ablate.models` only ever
asks the registries, so a value registered from user code is used exactly like a built-in one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ablate.registry import register_activation, register_norm, register_pooling


# --- activation: () -> module --------------------------------------------------------------------
@register_activation("relu")
def relu() -> nn.Module:
    return nn.ReLU(inplace=True)


@register_activation("tanh")
def tanh() -> nn.Module:
    return nn.Tanh()


@register_activation("sigmoid")
def sigmoid() -> nn.Module:
    return nn.Sigmoid()


# --- pooling: () -> module -----------------------------------------------------------------------
# Both keep the seed's feature-map sizes (55 -> 27 -> 13 -> 6), so only the overlap differs.
@register_pooling("overlap")
def overlapping_max_pool() -> nn.Module:
    return nn.MaxPool2d(kernel_size=3, stride=2)


@register_pooling("nonoverlap")
def non_overlapping_max_pool() -> nn.Module:
    return nn.MaxPool2d(kernel_size=2, stride=2)


# --- normalization: (channels) -> module ---------------------------------------------------------
class LocalResponseNorm(nn.Module):
    """Local response normalization with the paper's constants and the paper's formula.

    ``b[c] = a[c] / (k + alpha * sum_{c' in window(c)} a[c']^2) ** beta`` with a window of ``size``
    channels centred on ``c``. Note: ``torch.nn.LocalResponseNorm`` divides alpha by ``size``; here
    alpha is the paper's (1e-4), so the torch module needs ``alpha=size * 1e-4`` to agree.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.local_response_norm(x, self.size, alpha=self.alpha * self.size, beta=self.beta, k=self.k)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


@register_norm("none")
def no_norm(channels: int) -> nn.Module:
    return nn.Identity()


@register_norm("lrn")
def lrn(channels: int) -> nn.Module:
    return LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


@register_norm("batchnorm")
def batchnorm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels)
