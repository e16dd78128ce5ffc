"""One function that seeds every random number generator a run touches."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and all GPUs); optionally force deterministic kernels.

    ``deterministic`` also sets ``CUBLAS_WORKSPACE_CONFIG``, which deterministic cuBLAS needs, and
    turns cuDNN autotuning off; it is a no-op for CPU reproducibility, which holds regardless.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A private torch generator, so that data order and augmentation never depend on how much
    of the global RNG a variant's layers (dropout, init) have consumed."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def named_generator(name: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator seeded from a string (e.g. ``"ablate/shapes/0/train"``), so that streams
    named differently (train vs val split, generation vs subsetting) are independent draws."""
    digest = hashlib.sha256(name.encode()).digest()
    return generator(int.from_bytes(digest[:8], "little"), device)


def dropout_generator(seed: int, device: torch.device) -> torch.Generator:
    """The run's own stream of dropout masks, on ``device`` (a CUDA generator for a CUDA run: no
    host synchronization). Every run of seed ``seed`` draws the same masks whether it trains alone
    or fused with other seeds (:mod:`ablate.models.fused`), and never from the global RNG, whose
    state would depend on what else the process did."""
    return named_generator(f"ablate/dropout/{seed}", device if device.type == "cuda" else "cpu")
