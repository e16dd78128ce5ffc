"""Builders for the per-axis layers (activation, pooling, normalization); the paper's LRN lives in
:mod:`ablate.models.lrn` and is re-exported here.

Each builder is registered under the axis value it implements; :mod:`ablate.models.alexnet` only ever
asks the registries, so a value registered from user code is used exactly like a built-in one.
"""

from __future__ import annotations

from torch import nn

from ablate.models.lrn import LocalResponseNorm  # noqa: F401  (re-exported: ablate.models.layers.LocalResponseNorm)
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
@register_norm("none")
def no_norm(channels: int) -> nn.Module:
    return nn.Identity()


@register_norm("lrn")
def lrn(channels: int) -> nn.Module:
    return LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


@register_norm("batchnorm")
def batchnorm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels)
