"""The networks: AlexNet presets and ``build_model``, the only way ablate makes a model.

Job: :mod:`.alexnet` (the presets, ``build_model``, init schemes), :mod:`.layers` (the builders
registered for each axis value), :mod:`.lrn` (the paper's local response normalization) and
:mod:`.flops` (FLOPs per image, by counting).

May import: the vocabulary (``ablate.variant``, ``ablate.registry``, ``ablate.config``).
Exports: ``AlexNet``, ``ArchSpec``, ``arch_spec``, ``build_model``, ``count_params``, ``layer_shapes``.
"""

from ablate.models.alexnet import AlexNet, ArchSpec, arch_spec, build_model, count_params, layer_shapes

__all__ = ["AlexNet", "ArchSpec", "arch_spec", "build_model", "count_params", "layer_shapes"]
