"""Where and how a run computes: the device (``auto | cpu | cuda | cuda:N``), the precision
``auto`` resolves to, and the process-wide backend flags (cuDNN autotuning, TF32) a run asks for.
"""

from __future__ import annotations

from typing import Any

import torch

from ablate.config import TrainConfig


class DeviceError(ValueError):
    """The requested device does not exist here; one line for users."""


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU) | ``cpu`` | ``cuda`` | ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DeviceError(f"unknown device {spec!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {spec!r} asked for, but this machine has no CUDA device (use --device cpu or auto)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"device {spec!r} asked for, but this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}"
            )
        return torch.device("cuda", device.index or 0)
    if device.type != "cpu":
        raise DeviceError(f"unsupported device {spec!r}; expected auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(train: TrainConfig, device: torch.device) -> str:
    """The precision a run trains in: ``[train] precision``, with ``auto`` as bf16 on a CUDA device
    that supports it, else fp32."""
    if train.precision != "auto":
        return train.precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def apply_speed_settings(train: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Set the process-wide backend flags a run asks for; returns what is in force, for the record."""
    settings: dict[str, Any] = {"cudnn_benchmark": None, "tf32_conv": None, "tf32_matmul": None}
    if device.type == "cuda":
        # Autotuning picks the fastest conv algorithm per shape in the first steps (left out of
        # the timing); the choice can differ between runs, so it is off for deterministic runs.
        torch.backends.cudnn.benchmark = train.cudnn_benchmark and not train.deterministic
        settings["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
        # PyTorch's defaults (TF32 convolutions on, TF32 matmuls off) are left alone but recorded:
        # they decide what "fp32" means on Ampere and later GPUs.
        settings["tf32_conv"] = bool(torch.backends.cudnn.allow_tf32)
        settings["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return settings
