"""The ``ablate`` command line (typer + rich): one module per command, plus the consoles and options.

Job: parse, call the library, render. A problem the user can fix prints one line and exits 2.

May import: anything below it.
Exports: ``app`` (the typer application; ``ablate = "ablate.cli:app"``).
"""

from ablate.cli.app import app

__all__ = ["app"]
