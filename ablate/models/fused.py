"""K models of one variant as one model (horizontal fusion, as in HFTA): :func:`fuse_models`.

The seeds of a variant are K copies of one small network. Fused, they run as one network whose
every layer does the K members' work in one kernel: a convolution becomes one grouped convolution
(``groups = K``), a linear layer one batched matrix product, BatchNorm and GroupNorm one norm over
K times the channels, LRN one window sum per channel block. Nothing in a fused layer mixes
members: member k computes what its own model would, from its own weights and its own images.

Layout. In the convolutional part an activation is ``N x (K*C) x H x W``: member k's channels are
the k-th block of C (its images are its own batch: each member has its own data order). After the
flatten it is ``K x N x F``: member k is row k. Every fused tensor of dimension >= 1 (weights,
biases, running statistics, and so the optimizer's state of each) is the K members' tensors
concatenated along dim 0; a 0-dim tensor (BatchNorm's ``num_batches_tracked``) is shared, as every
member has taken the same number of steps. :func:`member_tensor` takes member k's part of one,
so a member's state dict is its solo model's, key for key.

The first convolution also takes one batch that all members see (``N x 3 x H x W``, evaluation
on a shared split): it is then one ordinary convolution with K times the output channels.

Which layers fuse is a table (:data:`FUSERS`, by exact type): the AlexNet skeleton (containers,
convolutions, linear layers, flatten), the norms, ablate's :class:`SeededDropout`, and
parameter-free layers that act on each value or each channel alone (activations, pooling). A
layer of any other type (say a user-registered activation class) makes :func:`fuse_models` raise
:class:`CannotFuse` with one line naming it: the caller trains those seeds one by one.
``register_fuser`` adds a type.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ablate.models.alexnet import AlexNet
from ablate.models.dropout import SeededDropout, apply_keep, draw_keep
from ablate.models.lrn import LocalResponseNorm


class CannotFuse(ValueError):
    """The members cannot be one fused model; ``str()`` is one line naming the layer and why."""


Fuser = Callable[[list[nn.Module]], nn.Module]
#: Exact module type -> how to fuse K members of it (each the same layer of one member's model).
FUSERS: dict[type, Fuser] = {}


def register_fuser(*types: type) -> Callable[[Fuser], Fuser]:
    """Decorator: ``@register_fuser(MyLayer)`` above ``fuse(members) -> nn.Module``. The fused
    module takes and returns the layouts above, and its tensors follow the convention above
    (dim 0 = the members' tensors concatenated; 0-dim = shared), so that checkpoints work."""

    def add(fuser: Fuser) -> Fuser:
        for t in types:
            if t in FUSERS:
                raise ValueError(f"a fuser for {t.__name__} is already registered")
            FUSERS[t] = fuser
        return fuser

    return add


def fuse_models(models: Sequence[nn.Module]) -> nn.Module:
    """One model computing ``models`` (K >= 1 models of one variant, each from ``build_model``)
    side by side, from copies of their weights and buffers. Raises :class:`CannotFuse`."""
    if not models:
        raise ValueError("no models to fuse")
    return _fuse(list(models), "model")


def why_not_fusable(model: nn.Module) -> str | None:
    """Why models like ``model`` cannot be fused (one line naming the first layer that cannot),
    or None when they can; checks the layer types only, copies nothing."""
    for name, module in model.named_modules():
        if type(module) not in FUSERS:
            return f"{name or 'the model'} ({type(module).__name__}) has no fused form"
    return None


def _fuse(members: list[nn.Module], name: str) -> nn.Module:
    kind = type(members[0])
    if any(type(m) is not kind for m in members):
        raise CannotFuse(f"{name}: the members' layers differ in type")
    fuser = FUSERS.get(kind)
    if fuser is None:
        raise CannotFuse(f"{name} ({kind.__name__}) has no fused form")
    return fuser(members)


def member_count(model: nn.Module) -> int:
    """K of a fused model (1 for any other model)."""
    return model.k if isinstance(model, FusedAlexNet) else 1


def member_tensor(t: torch.Tensor, index: int, k: int) -> torch.Tensor:
    """Member ``index``'s part of a fused tensor of ``k`` members (a view): its block of dim 0, or
    ``t`` itself when 0-dim (shared)."""
    return t.unflatten(0, (k, -1))[index] if t.dim() else t


def member_state_dict(model: nn.Module, index: int) -> dict[str, torch.Tensor]:
    """Member ``index``'s weights and buffers as its solo model's state dict (copies), key for key."""
    k = member_count(model)
    return {key: member_tensor(t, index, k).clone() for key, t in model.state_dict().items()}


def stack_states(states: Sequence[dict[str, torch.Tensor]], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fused tensors of ``states`` (one dict per member, solo shapes, same keys as ``like``,
    a fused state dict): concatenated along dim 0 in ``like``'s memory layout; 0-dim ones must agree."""
    out = {}
    for key, ref in like.items():
        parts = [s[key] for s in states]
        if ref.dim() == 0:
            if any(not torch.equal(p, parts[0]) for p in parts):
                raise ValueError(f"{key}: the members' values differ, but a fused model shares it")
            out[key] = parts[0].clone()
        else:
            out[key] = torch.empty_like(ref).copy_(torch.cat([p.to(ref.device) for p in parts]).view(ref.shape))
    return out


def set_dropout_generators(model: nn.Module, generators: Sequence[torch.Generator]) -> None:
    """Give every dropout of ``model`` its run's generator: one for a solo model (each
    :class:`SeededDropout` draws from it, in forward order), one per member for a fused model."""
    if len(generators) != member_count(model):
        raise ValueError(f"{member_count(model)} member(s) need as many dropout generators, got {len(generators)}")
    for module in model.modules():
        if isinstance(module, SeededDropout):
            module.generator = generators[0]
        elif isinstance(module, FusedDropout):
            module.generators = list(generators)


# --- the fused layers ------------------------------------------------------------------------------
def _cat(members: list[nn.Module], attr: str) -> nn.Parameter | None:
    tensors = [getattr(m, attr) for m in members]
    if tensors[0] is None:
        return None
    return nn.Parameter(torch.cat([t.detach() for t in tensors]), requires_grad=tensors[0].requires_grad)


class FusedConv2d(nn.Module):
    """K ``nn.Conv2d`` as one grouped convolution; weight ``(K*out) x in/groups x kh x kw``."""

    def __init__(self, members: list[nn.Conv2d]) -> None:
        super().__init__()
        c = members[0]
        self.k, self.in_channels, self.out_channels = len(members), c.in_channels, c.out_channels
        self.stride, self.padding, self.dilation, self.groups = c.stride, c.padding, c.dilation, c.groups
        self.padding_mode, self._pad = c.padding_mode, c._reversed_padding_repeated_twice
        self.weight = _cat(members, "weight")
        self.bias = _cat(members, "bias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Per-member input (K blocks of channels) or one input every member sees.
        groups = self.groups * (self.k if x.shape[1] == self.k * self.in_channels else 1)
        if self.padding_mode != "zeros":
            x = F.pad(x, self._pad, mode=self.padding_mode)
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, groups)

    def extra_repr(self) -> str:
        return f"{self.k} x Conv2d({self.in_channels}, {self.out_channels}, stride={self.stride})"


class FusedLinear(nn.Module):
    """K ``nn.Linear`` as one batched matrix product on ``K x N x in``; weight ``(K*out) x in``."""

    def __init__(self, members: list[nn.Linear]) -> None:
        super().__init__()
        self.k, self.in_features, self.out_features = len(members), members[0].in_features, members[0].out_features
        self.weight = _cat(members, "weight")
        self.bias = _cat(members, "bias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # one input every member sees
            x = x.expand(self.k, *x.shape)
        w = self.weight.view(self.k, self.out_features, self.in_features).transpose(1, 2)
        if self.bias is None:
            return torch.bmm(x, w)
        return torch.baddbmm(self.bias.view(self.k, 1, self.out_features), x, w)

    def extra_repr(self) -> str:
        return f"{self.k} x Linear({self.in_features}, {self.out_features})"


class FusedFlatten(nn.Module):
    """``nn.Flatten(1)`` of each member: ``N x (K*C) x H x W`` -> ``K x N x (C*H*W)``, in the
    order each member's own flatten gives."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (self.k, -1)).flatten(2).transpose(0, 1)


class FusedDropout(nn.Module):
    """K :class:`SeededDropout`: member k's mask is drawn from member k's generator with the
    shape of its solo activations, exactly as its solo run draws it."""

    def __init__(self, p: float, k: int) -> None:
        super().__init__()
        self.p, self.k = p, k
        self.generators: list[torch.Generator] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.generators is None:
            raise RuntimeError("a fused dropout draws each member's masks from its generator; none were set")
        if x.dim() == 3:  # K x N x F: member k is row k
            keep = torch.stack([draw_keep(x.shape[1:], self.p, g, x.device) for g in self.generators])
        else:  # N x (K*C) x ...: member k is the k-th block of channels
            shape = (x.shape[0], x.shape[1] // self.k, *x.shape[2:])
            keep = torch.cat([draw_keep(shape, self.p, g, x.device) for g in self.generators], 1)
        return apply_keep(x, keep, self.p)

    def extra_repr(self) -> str:
        return f"{self.k} x p={self.p}"


class FusedAlexNet(nn.Module):
    """K :class:`~ablate.models.alexnet.AlexNet` of one variant: ``forward`` takes
    ``N x (K*3) x H x W`` (member k's images in channels 3k..3k+2) or ``N x 3 x H x W`` (one batch
    for all) and returns ``K x N x classes``."""

    def __init__(self, members: list[AlexNet]) -> None:
        super().__init__()
        first = members[0]
        self.k = len(members)
        self.variant, self.input_size, self.num_classes = first.variant, first.input_size, first.num_classes
        self.features = _fuse([m.features for m in members], "features")
        self.flatten = _fuse([m.flatten for m in members], "flatten")
        self.classifier = _fuse([m.classifier for m in members], "classifier")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


# --- the table -------------------------------------------------------------------------------------
register_fuser(AlexNet)(FusedAlexNet)
register_fuser(nn.Conv2d)(FusedConv2d)
register_fuser(nn.Linear)(FusedLinear)


@register_fuser(nn.Sequential)
def _sequential(members: list[nn.Module]) -> nn.Module:
    names = list(members[0]._modules)
    if any(list(m._modules) != names for m in members):
        raise CannotFuse("the members' layers differ")
    return nn.Sequential(OrderedDict((n, _fuse([m._modules[n] for m in members], n)) for n in names))


@register_fuser(nn.Flatten)
def _flatten(members: list[nn.Module]) -> nn.Module:
    f = members[0]
    if (f.start_dim, f.end_dim) != (1, -1):
        raise CannotFuse(f"Flatten({f.start_dim}, {f.end_dim}) has no fused form (only Flatten(1))")
    return FusedFlatten(len(members))


@register_fuser(SeededDropout)
def _dropout(members: list[nn.Module]) -> nn.Module:
    return FusedDropout(members[0].p, len(members))


@register_fuser(nn.BatchNorm2d)
def _batchnorm(members: list[nn.Module]) -> nn.Module:
    b = members[0]
    fused = nn.BatchNorm2d(
        len(members) * b.num_features, b.eps, b.momentum, b.affine, b.track_running_stats, device="meta"
    )
    for attr in ("weight", "bias"):
        setattr(fused, attr, _cat(members, attr))
    if b.track_running_stats:
        fused.running_mean = torch.cat([m.running_mean for m in members])
        fused.running_var = torch.cat([m.running_var for m in members])
        fused.num_batches_tracked = b.num_batches_tracked.clone()
    return fused


@register_fuser(nn.GroupNorm)
def _groupnorm(members: list[nn.Module]) -> nn.Module:
    g = members[0]
    k = len(members)
    fused = nn.GroupNorm(k * g.num_groups, k * g.num_channels, g.eps, g.affine, device="meta")
    for attr in ("weight", "bias"):
        setattr(fused, attr, _cat(members, attr))
    return fused


@register_fuser(LocalResponseNorm)
def _lrn(members: list[nn.Module]) -> nn.Module:
    n = members[0]
    return LocalResponseNorm(n.size, n.alpha, n.beta, n.k, n.impl, groups=len(members) * n.groups)


# Layers without weights that act on each value, or on each channel of each image, alone: the
# fused model runs the layer itself on its fused activations.
_ONE_FOR_ALL = (
    nn.Identity,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.LogSigmoid,
    nn.Tanhshrink,
    nn.MaxPool2d,
    nn.AvgPool2d,
)


@register_fuser(*_ONE_FOR_ALL)
def _one_for_all(members: list[nn.Module]) -> nn.Module:
    return members[0]
