"""Validation of an experiment document: each value checked against its rule, one line per problem.

:class:`Validator` turns the parsed (and overridden) TOML tables of an experiment file into checked
values (seeds, a :class:`Variant`, axes, ``[data]`` and ``[train]`` configs) or raises an
:class:`ExperimentError` naming the file, the key, the value given and what is allowed, with a
"did you mean" where a name is close. :mod:`ablate.experiment.experiment` loads the file and calls it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ablate.config import INT_MAX, SEED_MAX, SEED_RANGE, DataConfig, TrainConfig
from ablate.experiment.errors import ExperimentError
from ablate.registry import ACTIVATIONS, ARCHS, DATASETS, INITS, NORMS, POOLINGS, Registry, suggest
from ablate.variant import AXES, Variant

GPU_KEYS = ("seeds", "data", "train")
AXIS_REGISTRIES: dict[str, Registry] = {
    "arch": ARCHS,
    "activation": ACTIVATIONS,
    "pooling": POOLINGS,
    "norm": NORMS,
    "init": INITS,
}


_TYPE_WORDS = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def _type_name(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def show_value(value: Any) -> str:
    """A value as the user would write it in TOML; non-ASCII text as is (no \\u escapes)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a table"
    # A message is one readable line: cut a very long value (a pasted blob, a 400-digit number).
    if isinstance(value, str) and len(value) > _SHOW_MAX:
        return json.dumps(value[: _SHOW_MAX - 20] + "...", ensure_ascii=False) + f" ({len(value)} characters)"
    if isinstance(value, (str, list)):
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (RecursionError, ValueError):
            return "a nested list"
    else:
        text = str(value)
    return text if len(text) <= _SHOW_MAX else f"{text[: _SHOW_MAX - 20]}... ({len(text)} characters)"


_SHOW_MAX = 80


_KINDS = {"str": str, "int": int, "float": float, "bool": bool}


def _kinds(annotation: Any) -> list[str]:
    """``"int | None"`` -> ``["int", "None"]``; ``float`` -> ``["float"]``."""
    return [t.strip() for t in annotation.split("|")] if isinstance(annotation, str) else [annotation.__name__]


def _matches(value: Any, annotation: Any) -> bool:
    """Does a TOML value fit a field annotation (str, int, float, bool, or a union of them)?"""
    kinds = set(_kinds(annotation))
    if isinstance(value, bool):
        return "bool" in kinds
    if isinstance(value, int):
        return "int" in kinds or "float" in kinds
    if isinstance(value, float):
        return "float" in kinds
    return isinstance(value, str) and "str" in kinds


class Validator:
    """Checks the values of one experiment file (``path``, named in every message); ``from_cli`` holds
    the keys set by ``--set``, so that a message says where a bad value came from."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self.from_cli: set[str] = set()

    def fail(self, key: str, value: Any, allowed: str, names: Iterable[str] = ()) -> None:
        hint = suggest(str(value), list(names)) if isinstance(value, str) else None
        origin = " (from --set)" if key in self.from_cli else ""
        msg = f"{show_value(value)}{origin} is not allowed; expected {allowed}"
        raise ExperimentError(self.path, key, msg + (f" (did you mean {hint!r}?)" if hint else ""))

    def check(self, key: str, value: Any, kind: Any, ok: Any = None, allowed: str = "", maximum: int = INT_MAX) -> None:
        """``value`` must fit ``kind``, be finite / within ``[-maximum, maximum]`` if it is a
        number, and satisfy ``ok``; else one line saying so (``allowed`` describes ``ok``)."""
        if not _matches(value, kind):
            word = " or ".join(_TYPE_WORDS[_KINDS[k]] for k in _kinds(kind) if k in _KINDS)
            what = allowed if allowed.startswith(("a ", "an ")) else word + (f" ({allowed})" if allowed else "")
            origin = " (from --set)" if key in self.from_cli else ""
            raise ExperimentError(
                self.path, key, f"{show_value(value)}{origin} is {_type_name(value)}; expected {what}"
            )
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and "int" not in _kinds(kind):  # a float setting: ints too must fit a float
            try:
                finite = math.isfinite(float(value))
            except OverflowError:
                finite = False
            if not finite:
                self.fail(
                    key, value, f"a finite number{f' ({allowed})' if allowed else ''}; inf and nan are never allowed"
                )
        if ok is not None and not ok(value):
            self.fail(key, value, allowed)
        if number and "int" in _kinds(kind) and not -maximum <= value <= maximum:
            self.fail(key, value, f"{allowed or 'an integer'}, at most {maximum}")

    def known_keys(self, table: Mapping[str, Any], allowed: Sequence[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                full = f"{prefix}.{key}" if prefix else key
                hint = suggest(key, list(allowed))
                where = f"in [{prefix}]" if prefix else "at the top level"
                msg = (
                    f"unknown key{f' (did you mean {hint!r}?)' if hint else ''}; allowed {where}: {', '.join(allowed)}"
                )
                raise ExperimentError(self.path, full, msg)

    def table(self, raw: Mapping[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            origin = " (from --set)" if prefix + key in self.from_cli else ""
            raise ExperimentError(
                self.path,
                prefix + key,
                f"{show_value(value)}{origin} is {_type_name(value)}; expected a table [{prefix + key}]",
            )
        return value

    def gpu_table(self, gpu: Mapping[str, Any]) -> None:
        """Check each value of ``[gpu]`` on its own, named ``gpu.<key>`` (whatever the device)."""
        self.known_keys(gpu, GPU_KEYS, "gpu")
        if "seeds" in gpu:
            self.seeds(gpu["seeds"], key_prefix="gpu.")
        if "data" in gpu:
            self.data_config(self.table(gpu, "data", "gpu."), "gpu.data")
        if "train" in gpu:
            self.config(TrainConfig, self.table(gpu, "train", "gpu."), "gpu.train")

    def seeds(self, seeds: Any, key_prefix: str = "") -> tuple[int, ...]:
        key = key_prefix + "seeds"
        origin = " (from --set)" if key in self.from_cli else ""
        if seeds is None:
            raise ExperimentError(self.path, key, "missing; give at least one seed, e.g. seeds = [0, 1, 2]")
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            # Refused, not read as [seeds]: "seeds = 3" reads as "three seeds" as easily as "seed 3".
            raise ExperimentError(
                self.path,
                key,
                f"{seeds}{origin} is an integer, not a list of seeds; write seeds = "
                f"[0, 1, 2] for three seeds, or seeds = [{seeds}] for the single seed {seeds}",
            )
        if not isinstance(seeds, list):
            raise ExperimentError(
                self.path,
                key,
                f"{show_value(seeds)}{origin} is {_type_name(seeds)}; expected a list of seeds, e.g. [0, 1, 2]",
            )
        if not seeds:
            raise ExperimentError(self.path, key, "is empty; give at least one seed, e.g. seeds = [0, 1, 2]")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= SEED_MAX:
                raise ExperimentError(
                    self.path, key, f"{show_value(s)}{origin} is not allowed; expected seeds, each {SEED_RANGE}"
                )
        if len(set(seeds)) != len(seeds):
            raise ExperimentError(self.path, key, f"{show_value(seeds)} repeats a seed; each seed once")
        return tuple(seeds)

    def axis_value(self, key: str, axis: str, value: Any) -> Any:
        kind = AXES[axis]
        if axis in AXIS_REGISTRIES:
            names = AXIS_REGISTRIES[axis].names()
            self.check(key, value, kind, allowed=" | ".join(names))
            if value not in names:
                self.fail(key, value, "one of " + " | ".join(names), names)
        elif axis == "dropout_p":
            self.check(key, value, float, lambda p: 0 <= p < 1, "a number in [0, 1)")
            value = float(value) + 0.0  # + 0.0: -0.0 is 0.0 (one slug, one run id)
        else:
            self.check(key, value, kind)
        return value

    def variant(self, model: Mapping[str, Any]) -> Variant:
        self.known_keys(model, list(AXES), "model")
        return Variant(**{axis: self.axis_value(f"model.{axis}", axis, value) for axis, value in model.items()})

    def axes(self, axes: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
        self.known_keys(axes, list(AXES), "axes")
        out: dict[str, tuple[Any, ...]] = {}
        for axis, values in axes.items():
            key = f"axes.{axis}"
            if not isinstance(values, list):
                values = [values]
            if not values:
                allowed = (
                    " | ".join(AXIS_REGISTRIES[axis].names()) if axis in AXIS_REGISTRIES else _TYPE_WORDS[AXES[axis]]
                )
                raise ExperimentError(
                    self.path, key, f"is an empty list; list at least one value ({allowed}), or remove the axis"
                )
            checked = [self.axis_value(key, axis, value) for value in values]
            if len(set(checked)) != len(checked):
                raise ExperimentError(self.path, key, f"{show_value(values)} lists a value twice; each value once")
            out[axis] = tuple(checked)
        return out

    def config(self, cls: type, table: Mapping[str, Any], prefix: str) -> Any:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        self.known_keys(table, list(fields), prefix)
        values: dict[str, Any] = {}
        for name, value in table.items():
            f, key = fields[name], f"{prefix}.{name}"
            meta = f.metadata
            self.check(key, value, f.type, meta.get("check"), meta.get("allowed", ""), meta.get("max", INT_MAX))
            # + 0.0 turns -0.0 into 0.0: the same setting must hash to the same run id.
            values[name] = float(value) + 0.0 if str(f.type) == "float" else value
        return cls(**values)

    def data_config(self, table: Mapping[str, Any], prefix: str) -> DataConfig:
        """:meth:`config` for ``[data]``, plus: the dataset must be registered."""
        data = self.config(DataConfig, table, prefix)
        if "dataset" in table and data.dataset not in DATASETS:
            self.fail(f"{prefix}.dataset", data.dataset, "one of " + " | ".join(DATASETS.names()), DATASETS.names())
        return data
