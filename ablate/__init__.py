"""ablate: ablation studies of AlexNet-style CNNs, from one registry to tables and plots.

Public API::

    from ablate import Variant, build_model
    model = build_model(Variant(norm="lrn"), num_classes=10)
"""

from ablate import layers as _layers  # noqa: F401  (registers the built-in axis values)
from ablate import data as _data  # noqa: F401  (registers the built-in datasets)
from ablate.models import AlexNet, ArchSpec, build_model, count_params, layer_shapes
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

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "ARCHS", "AXES", "DATASETS", "INITS", "NORMS", "POOLINGS",
    "AlexNet", "ArchSpec", "Registry", "RegistryError", "UnknownNameError", "Variant",
    "build_model", "count_params", "layer_shapes", "register_activation", "register_arch",
    "register_dataset", "register_init", "register_norm", "register_pooling", "__version__",
]
