"""Experiment files: TOML -> validated, frozen :class:`Experiment` -> the cells (variant x seed) to train.

Job: read one experiment file (with ``--set`` overrides and the ``[gpu]`` table), check every key
once (:mod:`.validate`, one line per problem, :class:`ExperimentError`), and expand it into
:class:`Cell` s whose ``run_id`` hashes their resolved settings.

May import: the vocabulary (``ablate.variant``, ``ablate.registry``, ``ablate.config``).
Exports: ``Experiment``, ``Cell``, ``load_experiment``, ``parse_experiment``, ``parse_override``,
``ExperimentError``, ``MAX_CELLS``.
"""

from ablate.experiment.errors import ExperimentError
from ablate.experiment.experiment import MAX_CELLS, Cell, Experiment, load_experiment, parse_experiment, parse_override

__all__ = [
    "MAX_CELLS",
    "Cell",
    "Experiment",
    "ExperimentError",
    "load_experiment",
    "parse_experiment",
    "parse_override",
]
