"""The experiment a command works on: the file loaded with its ``--set`` overrides for the device
that will train it, its size checked against ``--max-cells``; what is wrong ends the command in
one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ablate.cli.console import fail
from ablate.experiment.errors import ExperimentError
from ablate.experiment.experiment import MAX_CELLS, Experiment, load_experiment
from ablate.runtime.device import DeviceError, resolve_device


def load(file: Path, overrides: list[str], device: str, max_cells: int = MAX_CELLS) -> tuple[Experiment, Any]:
    """The experiment as ``device`` trains it ([gpu] overrides on CUDA), and the resolved device."""
    try:
        dev = resolve_device(device)
        exp = load_experiment(file, overrides, dev.type)
        exp.check_size(max_cells)
        return exp, dev
    except (ExperimentError, DeviceError) as e:
        raise fail(str(e)) from None


def load_for_cuda(file: Path, overrides: list[str], max_cells: int = MAX_CELLS) -> tuple[Experiment, Any]:
    """The experiment as GPU tasks will train it ([gpu] overrides applied), from a login node
    that may have no GPU itself."""
    try:
        exp = load_experiment(file, overrides, "cuda")
        exp.check_size(max_cells)
        return exp, torch.device("cuda")
    except ExperimentError as e:
        raise fail(str(e)) from None
