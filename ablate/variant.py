"""The Variant: one point in the ablation space, a frozen dataclass with one field per axis.

Variants are values: hashable, comparable, and printable as a short slug such as
``relu-overlap-lrn-drop``. Which builder each value maps to lives in the registries
(:mod:`ablate.registry`), so a field holds a registered name, not an object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Variant:
    # Architecture preset: "alexnet65" is the seed network (3x65x65 input, 48-128-192-192-128
    # convs, FC 2048); "alexnet" the 2012 paper's geometry (3x227x227, 96-256-384-384-256, FC 4096).
    arch: str = "alexnet65"
    # Non-linearity after every conv and hidden FC layer. The paper's claim: ReLU trains ~6x
    # faster than tanh. relu | tanh | sigmoid (or any registered activation).
    activation: str = "relu"
    # Max pooling after conv1, conv2 and conv5. The paper's claim: overlapping pooling lowers
    # error by 0.4 points. overlap (3x3, stride 2) | nonoverlap (2x2, stride 2).
    pooling: str = "overlap"
    # Normalization after the activation of conv1 and conv2 (the paper's LRN positions; BatchNorm
    # sits at the same place so that only the operation differs). none | lrn | batchnorm.
    norm: str = "none"
    # Dropout before the last two FC layers. The paper's claim: it curbs overfitting at the
    # price of roughly twice the iterations to converge.
    dropout: bool = True
    # Drop probability when dropout is on (the paper's 0.5).
    dropout_p: float = 0.5
    # Weight initialisation: "default" is PyTorch's; "paper" is N(0, 0.01) weights with biases
    # 1 in conv2, conv4, conv5 and the hidden FC layers, 0 elsewhere.
    init: str = "default"

    def slug(self) -> str:
        """Short unique name, e.g. ``relu-overlap-lrn-drop``; non-default arch, p and init are added."""
        parts = [self.activation, self.pooling, self.norm, "drop" if self.dropout else "nodrop"]
        if self.arch != "alexnet65":
            parts.insert(0, self.arch)
        if self.dropout and self.dropout_p != 0.5:
            parts[-1] = f"drop{self.dropout_p:g}"
        if self.init != "default":
            parts.append(f"init_{self.init}")
        return "-".join(parts)

    def axes(self) -> dict[str, Any]:
        """Axis name -> value, in declaration order (what result files store as ``variant``)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Variant":
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        return self.slug()


#: Names and Python types of the axes, in declaration order.
AXES: dict[str, type] = {
    "arch": str,
    "activation": str,
    "pooling": str,
    "norm": str,
    "dropout": bool,
    "dropout_p": float,
    "init": str,
}
assert list(AXES) == [f.name for f in dataclasses.fields(Variant)], "AXES must mirror Variant"
