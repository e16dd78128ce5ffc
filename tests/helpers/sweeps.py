"""Experiment files for the tests: tiny ones that train in a few seconds per cell on a 2-core CPU,
and the demo files the experiment tests parse.

One definition, so that tests in different modules (and conftest's ``tiny_experiment``) train
the same cells: ``from helpers.sweeps import tiny_sweep``.
"""

from __future__ import annotations


def tiny_sweep(name: str = "tiny", seeds: tuple[int, ...] = (0,), epochs: int = 1, optimizer: bool = True) -> str:
    """An experiment file: AlexNet-65 on 64 generated images, overlapping vs non-overlapping
    pooling, ``epochs`` epochs of 4 Adam steps, one cell per variant and seed. ``optimizer=False``
    leaves batch size, optimizer and learning rate at their defaults (a file that only has to load)."""
    text = f"""
name = "{name}"
seeds = [{", ".join(str(s) for s in seeds)}]
[axes]
pooling = ["overlap", "nonoverlap"]
[data]
train_size = 64
val_size = 32
[train]
epochs = {epochs}
"""
    return text + ('batch_size = 16\noptimizer = "adam"\nlr = 3e-4\n' if optimizer else "")


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


# The demo file the experiment tests parse (six variants, two seeds); the run ids of its cells are
# pinned by tests/experiment/test_hostile_experiment.py, so results of earlier runs stay "done".
DEMO = """
name = "demo"
description = "a demo"
seeds = [0, 1]
[model]
norm = "lrn"
[axes]
pooling = ["overlap", "nonoverlap"]
activation = ["relu", "tanh", "sigmoid"]
[data]
train_size = 64
val_size = 32
[train]
epochs = 2
lr = 0.1
"""

# The same with one axis and no [model] table: what most checks of a single key start from.
DEMO_POOLING = """
name = "demo"
seeds = [0, 1]
[axes]
pooling = ["overlap", "nonoverlap"]
[data]
train_size = 64
val_size = 32
[train]
epochs = 2
lr = 0.1
"""
