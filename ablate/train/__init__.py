"""One cell's training: setup, the loop, checkpoints and resume, the optimizer.

Job: :mod:`.setup` (seed, model, optimizer, schedule and device-resident batches of one cell:
the :class:`~ablate.train.setup.Training`), :mod:`.loop` (train and evaluate one cell into its run
record, ``train_cell``), :mod:`.resume` (checkpoint a cell's training and continue it) and
:mod:`.optim` (the optimizer a ``[train]`` section asks for and its learning-rate schedule).

May import: ``experiment``, ``models``, ``runtime``, ``store``, ``data`` and the vocabulary; never
``analysis`` or ``report``.
Exports: ``train_cell``, ``Interrupted``, ``CellOutOfMemory``, ``TrainObserver``.
"""

from ablate.train.loop import CellOutOfMemory, Interrupted, TrainObserver, train_cell

__all__ = ["CellOutOfMemory", "Interrupted", "TrainObserver", "train_cell"]
