"""Tiny experiment files for tests that train: a few seconds per cell on a 2-core CPU.

One definition, so that tests in different modules (and conftest's ``tiny_experiment``) train
the same cells; a module imports it as ``from tiny_sweeps import tiny_sweep`` (pytest puts the
tests folder on the path, as for ``planted``).
"""

from __future__ import annotations


def tiny_sweep(name: str = "tiny", seeds: tuple[int, ...] = (0,), epochs: int = 1) -> str:
    """An experiment file: AlexNet-65 on 64 generated images, overlapping vs non-overlapping
    pooling, ``epochs`` epochs of 4 Adam steps, one cell per variant and seed."""
    return f"""
name = "{name}"
seeds = [{", ".join(str(s) for s in seeds)}]
[axes]
pooling = ["overlap", "nonoverlap"]
[data]
train_size = 64
val_size = 32
[train]
epochs = {epochs}
batch_size = 16
optimizer = "adam"
lr = 3e-4
"""


# One cell, two epochs of 6 steps, checkpointed after every step (checkpoint_minutes ~ 0): a stop
# lands mid-cell. For the tests that stop, kill or requeue a cell and resume it.
RESUMABLE = """
name = "resumable"
seeds = [0]
[data]
train_size = 96
val_size = 32
[train]
epochs = 2
batch_size = 16
optimizer = "adam"
lr = 3e-4
checkpoint_minutes = 0.0001
"""
