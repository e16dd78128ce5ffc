"""Named registries: every axis value, architecture preset, init scheme and dataset is looked up here.

Modelled on timm's ``_registry.py`` and torchvision's ``_api.py``: module-level tables filled by
decorators at import time, so user code can add a value (say a ``gelu`` activation) without editing
ablate. Registering a name twice is refused, and an unknown name fails with the allowed names and a
"did you mean" suggestion.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

# Names end up in slugs, file names of plots and tables, TOML values and terminal output: keep
# them to one short word (letters, digits, '_', '.', '+', '-'), as every built-in name is.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}")


class RegistryError(ValueError):
    """A name was registered twice, or looked up but never registered."""


class UnknownNameError(RegistryError, KeyError):
    """Lookup of a name that is not registered. ``str()`` is a one-line message for users."""

    def __init__(self, kind: str, name: object, allowed: list[str]) -> None:
        self.kind, self.name, self.allowed = kind, name, allowed
        hint = suggest(str(name), allowed)
        msg = f"unknown {kind} {name!r}; allowed: {', '.join(allowed)}"
        super().__init__(msg + (f" (did you mean {hint!r}?)" if hint else ""))

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return self.args[0]


def suggest(name: str, allowed: list[str]) -> str | None:
    """The closest allowed name to ``name``, if one is close enough to be a likely typo."""
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    return close[0] if close else None


class Registry(Generic[T]):
    """A name -> object table for one kind of thing (activations, presets, datasets, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@ACTIVATIONS.register("gelu")`` above a builder function or class."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise RegistryError(
                f"{self.kind} name {name!r} is not allowed; use up to 40 letters, digits, '_', '.', '+' or '-', "
                "starting with a letter or digit"
            )

        def add(obj: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def unregister(self, name: str) -> None:
        """Remove a name (for tests and interactive sessions)."""
        self.get(name)
        del self._items[name]

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names in registration order, filtered by a shell-style pattern."""
        return [n for n in self._items if fnmatch.fnmatchcase(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


# One registry per ablation axis plus the presets, init schemes and datasets. Layers and models
# register their built-in values when ``ablate`` is imported; user code adds more the same way.
ACTIVATIONS: Registry[Callable] = Registry("activation")
POOLINGS: Registry[Callable] = Registry("pooling")
NORMS: Registry[Callable] = Registry("norm")
ARCHS: Registry[object] = Registry("arch")
INITS: Registry[Callable] = Registry("init")
DATASETS: Registry[Callable] = Registry("dataset")

register_activation = ACTIVATIONS.register
register_pooling = POOLINGS.register
register_norm = NORMS.register
register_arch = ARCHS.register
register_init = INITS.register
register_dataset = DATASETS.register
