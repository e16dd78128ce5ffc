"""One cell's training, or K seeds of one variant fused into one model: setup, the loop,
checkpoints and resume, fusing, the optimizer.

Job: :mod:`.setup` (seed, model, optimizer, schedule and device-resident batches of one cell or
of a fused group: the :class:`~ablate.train.setup.Training` of its members), :mod:`.loop` (train
and evaluate into run records: ``train_cell``, ``train_group``), :mod:`.resume` (checkpoint each
member and continue), :mod:`.fused` (whether cells can fuse, the members' parts of the optimizer
state, how resumed members regroup), :mod:`.hooks` (what the runner asks of a cell's training)
and :mod:`.optim` (the optimizer a ``[train]`` section asks for and its learning-rate schedule).

May import: ``experiment``, ``models``, ``runtime``, ``store``, ``data`` and the vocabulary; never
``analysis`` or ``report``.
Exports: ``train_cell``, ``train_group``, ``Interrupted``, ``CellOutOfMemory``, ``TrainObserver``.
"""

from ablate.train.loop import CellOutOfMemory, Interrupted, TrainObserver, train_cell, train_group

__all__ = ["CellOutOfMemory", "Interrupted", "TrainObserver", "train_cell", "train_group"]
