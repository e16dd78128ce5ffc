"""What the tests share: experiment files that train in seconds (:mod:`.sweeps`), result folders with
planted effects (:mod:`.planted`), the ablate command line in a child process (:mod:`.process`),
small datasets on disk (:mod:`.data`) and the plugins that kill their own worker (:mod:`.plugins`).
``tests/`` is on the path (pyproject's pytest ``pythonpath``), so a test imports ``helpers.x``."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project's root: docs/, experiments/, results/, scripts/
