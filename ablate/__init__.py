"""ablate: ablation studies of AlexNet-style CNNs, from one registry to tables and plots.

Public API::

    from ablate import Variant, build_model
    model = build_model(Variant(norm="lrn"), num_classes=10)

    from ablate import load_results          # results as pandas frames (see ablate.analysis.results)
    runs = load_results("results", ["pooling"]).runs
"""

from typing import Any

from ablate import data as _data  # noqa: F401  (registers the built-in datasets)
from ablate._version import __version__
from ablate.models import layers as _layers  # noqa: F401  (registers the built-in axis values)
from ablate.models.alexnet import AlexNet, ArchSpec, build_model, count_params, layer_shapes
from ablate.registry import (
    ACTIVATIONS,
    ARCHS,
    DATASETS,
    INITS,
    NORMS,
    POOLINGS,
    Registry,
    RegistryError,
    UnknownNameError,
    register_activation,
    register_arch,
    register_dataset,
    register_init,
    register_norm,
    register_pooling,
)
from ablate.variant import AXES, Variant


def __getattr__(name: str) -> Any:
    # Loaded on first use: the frames API pulls in pandas and the analysis code, which
    # `import ablate` (training, the CLI's other commands) does not need.
    if name in ("load_results", "Results"):
        from ablate.analysis import results

        return getattr(results, name)
    raise AttributeError(f"module 'ablate' has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS",
    "ARCHS",
    "AXES",
    "DATASETS",
    "INITS",
    "NORMS",
    "POOLINGS",
    "AlexNet",
    "ArchSpec",
    "Registry",
    "RegistryError",
    "UnknownNameError",
    "Variant",
    "build_model",
    "count_params",
    "layer_shapes",
    "register_activation",
    "register_arch",
    "register_dataset",
    "register_init",
    "register_norm",
    "register_pooling",
    "__version__",
    "load_results",
    "Results",
]
