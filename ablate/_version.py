"""The version of ablate: read by ``ablate.__version__``, the run records and ``pyproject.toml``."""

__version__ = "0.1.0"
