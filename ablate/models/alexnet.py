"""AlexNet presets and ``build_model``, the only way ablate makes a model.

Laid out like torchvision's ``models/alexnet.py``: ``features`` (convs and pools) then
``classifier`` (FC layers), readable top to bottom. Every axis-dependent layer comes from a
registry, and every layer has a name (``conv1``, ``act1``, ``norm1``, ``pool1``, ..., ``fc3``) so
that init schemes and tests can address it.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ablate.models.dropout import SeededDropout
from ablate.registry import ACTIVATIONS, ARCHS, INITS, NORMS, POOLINGS, register_arch, register_init
from ablate.variant import Variant

# Where normalization goes, for every preset: after the activation of these convs, before their
# pooling (the paper's LRN positions). BatchNorm is placed identically so that a norm ablation
# changes the operation only, not where it acts.
NORM_AFTER: tuple[str, ...] = ("conv1", "conv2")


@dataclass(frozen=True)
class ArchSpec:
    # Side of the square RGB input the geometry is built for.
    input_size: int
    # Output channels of conv1..conv5.
    channels: tuple[int, int, int, int, int]
    # conv1 kernel size, stride and padding (conv2 is 5x5 pad 2, conv3-5 are 3x3 pad 1).
    conv1_kernel: int
    conv1_stride: int
    conv1_padding: int
    # Width of the two hidden FC layers.
    fc_width: int
    # Side of the last feature map (after pool3), which sets the first FC layer's input size.
    final_size: int
    # One line for `ablate list`.
    description: str


ALEXNET65 = ArchSpec(
    input_size=65,
    channels=(48, 128, 192, 192, 128),
    conv1_kernel=11,
    conv1_stride=1,
    conv1_padding=0,
    fc_width=2048,
    final_size=6,
    description="the seed network: 3x65x65, convs 48-128-192-192-128, FC 2048-2048",
)
register_arch("alexnet65")(ALEXNET65)
# The paper's geometry is the seed network scaled up: what differs is written out, the rest is shared
# (an 11x11 conv1 without padding, a 6x6 last feature map).
register_arch("alexnet")(
    dataclasses.replace(
        ALEXNET65,
        input_size=227,
        channels=(96, 256, 384, 384, 256),
        conv1_stride=4,
        fc_width=4096,
        description="Krizhevsky et al. 2012 geometry (one GPU): 3x227x227, convs 96-256-384-384-256, FC 4096-4096",
    )
)


def arch_spec(name: str) -> ArchSpec:
    spec = ARCHS.get(name)
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"arch {name!r} is registered with a {type(spec).__name__}, not an ArchSpec")
    return spec


class AlexNet(nn.Module):
    """An AlexNet-style CNN assembled from a preset and a :class:`Variant`."""

    def __init__(self, variant: Variant, num_classes: int) -> None:
        super().__init__()
        spec = arch_spec(variant.arch)
        self.variant, self.input_size, self.num_classes = variant, spec.input_size, num_classes
        act, pool, norm = ACTIVATIONS.get(variant.activation), POOLINGS.get(variant.pooling), NORMS.get(variant.norm)
        c1, c2, c3, c4, c5 = spec.channels

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        convs = [
            nn.Conv2d(3, c1, spec.conv1_kernel, stride=spec.conv1_stride, padding=spec.conv1_padding),
            nn.Conv2d(c1, c2, 5, padding=2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.Conv2d(c3, c4, 3, padding=1),
            nn.Conv2d(c4, c5, 3, padding=1),
        ]
        pool_after = {1: "pool1", 2: "pool2", 5: "pool3"}
        for i, conv in enumerate(convs, start=1):
            layers[f"conv{i}"] = conv
            layers[f"act{i}"] = act()
            if f"conv{i}" in NORM_AFTER:
                layers[f"norm{i}"] = norm(conv.out_channels)
            if i in pool_after:
                layers[pool_after[i]] = pool()
        self.features = nn.Sequential(layers)
        self.flatten = nn.Flatten(1)

        # Dropout before the last two FC layers, as in the seed network.
        drop = (lambda: SeededDropout(variant.dropout_p)) if variant.dropout else nn.Identity
        self.classifier = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(c5 * spec.final_size**2, spec.fc_width),
                act6=act(),
                drop1=drop(),
                fc2=nn.Linear(spec.fc_width, spec.fc_width),
                act7=act(),
                drop2=drop(),
                fc3=nn.Linear(spec.fc_width, num_classes),
            )
        )
        INITS.get(variant.init)(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


def build_model(variant: Variant, num_classes: int) -> AlexNet:
    """Build the model for ``variant`` with ``num_classes`` outputs, initialised per ``variant.init``."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return AlexNet(variant, num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def layer_shapes(model: AlexNet) -> list[tuple[str, tuple[int, ...]]]:
    """Output shape (without batch) of every named layer, for one input of the preset's size."""
    shapes: list[tuple[str, tuple[int, ...]]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, name=name: shapes.append((name, tuple(out.shape[1:]))))
        for seq in (model.features, model.classifier)
        for name, m in seq.named_children()
    ]
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, 3, model.input_size, model.input_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return shapes


# --- weight initialisation: (model) -> None -------------------------------------------------------
@register_init("default")
def default_init(model: AlexNet) -> None:
    """PyTorch's own initialisation (Kaiming-uniform with a=sqrt(5)), left as constructed."""


@register_init("paper")
def paper_init(model: AlexNet) -> None:
    """Krizhevsky et al. 2012, section 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and
    the hidden FC layers (to give ReLUs positive inputs early on), 0 elsewhere."""
    ones = {"conv2", "conv4", "conv5", "fc1", "fc2"}
    for name, m in [*model.features.named_children(), *model.classifier.named_children()]:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            nn.init.constant_(m.bias, 1.0 if name in ones else 0.0)


@register_init("kaiming")
def kaiming_init(model: AlexNet) -> None:
    """He-normal weights (fan-out, ReLU gain) and zero biases: trains deep ReLU stacks quickly."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(
                m.weight, mode="fan_out" if isinstance(m, nn.Conv2d) else "fan_in", nonlinearity="relu"
            )
            nn.init.zeros_(m.bias)
