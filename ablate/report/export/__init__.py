"""Exports: the run files into the trackers researchers already look at (TensorBoard, MLflow, W&B).

Job: :mod:`.walk` (the one walk over the run files every exporter shares, and what a run is in a
tracker's terms), :mod:`.exporters` (the table of exporters, one pass with ``export`` and
``--follow`` with ``follow``), and one module per tracker holding only that tracker's calls:
:mod:`.tensorboard`, :mod:`.mlflow`, :mod:`.wandb`. Each tracker is an optional extra, imported
when its row runs; training never imports any of them.

May import: ``analysis``, ``store`` and the vocabulary (it is part of ``report``).
Exports: nothing at import; see the modules.
"""
