"""Reports: markdown, CSV and seaborn figures under ``reports/<experiment>/``, the index, exports.

Job: :mod:`.build` (one experiment's report: ``build_report``), :mod:`.answer` (the Answer on one
screen), :mod:`.sections` and :mod:`.statistics` (the markdown), :mod:`.plots`,
:mod:`.effect_plots` and :mod:`.figures` (the PNGs), :mod:`.index` (``reports/README.md``),
:mod:`.text` (numbers and markdown tables as text), :mod:`.planned` (the plan against what
happened), :mod:`.incremental` (a report is made again only when its inputs changed: the stamp),
:mod:`.options` (the check of the report options) and :mod:`.export` (the run files into
trackers: TensorBoard, MLflow, W&B; one table of exporters).

May import: ``analysis``, ``store``, ``experiment`` and the vocabulary; never ``train``,
``execute``, ``data`` or ``models``.
Exports: nothing at import (plotting libraries load with :mod:`.build`); see the modules.
"""
