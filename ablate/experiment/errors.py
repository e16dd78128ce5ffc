"""The error an experiment file or an override can raise: one line for the user, naming the file and
the key (exit code 2 on the command line)."""

from __future__ import annotations

from pathlib import Path


class ExperimentError(ValueError):
    """A problem with an experiment file or an override; ``str()`` is one line for the user."""

    def __init__(self, path: str | Path, key: str | None, problem: str) -> None:
        self.path, self.key, self.problem = str(path), key, problem
        # File names and TOML keys may hold newlines or other control characters: escape them,
        # so that the message stays one line whatever the user's input.
        super().__init__(_printable(f"{path}: {key}: {problem}" if key else f"{path}: {problem}"))


def _printable(text: str) -> str:
    """``text`` with non-printable characters (newlines, control and separator characters) as
    escapes; everything printable, non-ASCII letters included, as is."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
