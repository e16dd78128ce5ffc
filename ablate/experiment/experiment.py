"""Experiment files: TOML -> validated, frozen :class:`Experiment` -> list of :class:`Cell`.

Validation (:class:`ablate.experiment.validate.Validator`, called from here and nowhere else): any problem
stops with an :class:`ExperimentError` whose message is one line naming the file, the key, the
value given and what is allowed (with a "did you mean" where a name is close), before any data is
loaded or any model trained.

``--set key=value`` overrides are applied to the parsed TOML before validation, so they are
checked exactly like the file. The optional ``[gpu]`` table holds overrides (same dotted keys)
applied only when the experiment runs on a CUDA device: the full-size study beside the CPU-sized
defaults. The order is: the file, then ``[gpu]`` (on CUDA), then ``--set``; ``--set gpu.KEY=...``
edits the ``[gpu]`` table itself. The ``[gpu]`` values are validated on every device.

Beyond each setting's own rule, every number is checked generically: floats must be finite
(``inf``/``nan`` are TOML literals, and would pass a rule such as ``lr > 0``), and integers lie
within ``[-INT_MAX, INT_MAX]`` (seeds within ``0..SEED_MAX``), so that a value which passes here
cannot crash a run later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from ablate.config import DataConfig, TrainConfig
from ablate.experiment.errors import ExperimentError
from ablate.experiment.validate import Validator, show_value
from ablate.variant import Variant

DESIGNS = ("grid", "one-at-a-time")
TOP_LEVEL_KEYS = ("name", "description", "seeds", "design", "model", "axes", "data", "train", "gpu")
EXPERIMENT_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# The folder of `ablate bench` under results/ and reports/: reserved, so no experiment may be named so.
BENCH_NAME = "bench"
# Experiment names become folder names (results/<name>/, reports/<name>/): keep them short.
NAME_MAX = 100
NAME_RULE = (
    f"letters, digits, '.', '_' and '-', starting with a letter or digit, at most {NAME_MAX} characters "
    f"(not {BENCH_NAME!r}, which holds `ablate bench` results)"
)
# An experiment file is a few hundred bytes; refuse to read something huge (or endless, like a
# device or a pipe) into memory.
MAX_FILE_BYTES = 1_000_000
# Cells (variants x seeds) an experiment may have unless `--max-cells` raises the limit: far above
# any study one machine or cluster trains, far below what makes listing the cells slow.
MAX_CELLS = 10_000


# [train] settings that do not identify a run (see Cell.run_id).
_NOT_IDENTITY = frozenset(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("identity") is False)
# Settings added after results existed: left out of the run id while at their default, so that
# results from before they existed keep their ids (and are not retrained).
_OMIT_AT_DEFAULT = {
    section: {f.name: f.default for f in dataclasses.fields(cls) if f.metadata.get("identity_at_default") is False}
    for section, cls in (("data", DataConfig), ("train", TrainConfig))
}


# --- the result -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One training run to do: a variant, a seed, and the resolved data and training settings."""

    experiment: str
    variant: Variant
    seed: int
    data: DataConfig
    train: TrainConfig

    def config(self) -> dict[str, Any]:
        """The resolved configuration that identifies this run (hashed into ``run_id``)."""
        return {
            "variant": self.variant.axes(),
            "seed": self.seed,
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
        }

    @property
    def run_id(self) -> str:
        """Hash of the resolved config: same config -> same id (skipped on rerun), any change -> new id.
        Bookkeeping settings (field metadata ``identity: False``, e.g. how often to checkpoint)
        cannot change results, so they are left out."""
        config = self.config()
        config["train"] = {k: v for k, v in config["train"].items() if k not in _NOT_IDENTITY}
        for section, defaults in _OMIT_AT_DEFAULT.items():
            config[section] = {k: v for k, v in config[section].items() if k not in defaults or v != defaults[k]}
        blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    seeds: tuple[int, ...]
    design: str
    baseline: Variant
    axes: Mapping[str, tuple[Any, ...]]
    data: DataConfig
    train: TrainConfig
    path: str
    # True when the [gpu] overrides were applied (the experiment targets a CUDA device).
    gpu_overrides_applied: bool = False
    # Adaptive designs: variant slug -> how many of ``seeds`` (a prefix) that variant uses; a variant
    # not listed uses them all. Every variant uses a prefix of one list, so pairing by seed holds.
    seed_counts: Mapping[str, int] | None = None
    # The adaptive design's record for the manifest (its plan while it runs, then how it ended), so
    # that every manifest a stage writes keeps it: a rerun can tell which design the folder holds.
    adaptive: Mapping[str, Any] | None = None
    # Earlier designs of the same cells that a run replaced (``--new-design``), oldest first: the
    # manifest keeps them, and the report says that the designs' error rates no longer hold.
    design_changes: tuple[Mapping[str, Any], ...] = ()

    def variants(self) -> list[Variant]:
        """The variants to train, baseline first where the design includes it, without repeats."""
        if self.design == "grid":
            names = list(self.axes)
            combos = itertools.product(*(self.axes[n] for n in names))
            found = [self.baseline.replace(**dict(zip(names, combo))) for combo in combos]
        else:  # one-at-a-time: the baseline, then each listed value alone
            found = [self.baseline] + [
                self.baseline.replace(**{axis: value}) for axis, values in self.axes.items() for value in values
            ]
        if self.baseline in found:
            found.remove(self.baseline)
            found.insert(0, self.baseline)
        return list(dict.fromkeys(found))

    def cell_count(self) -> int:
        """How many cells :meth:`cells` gives at most, counted without making them (a grid's
        variants are the product of its axes' lengths, before repeats are dropped)."""
        if self.design == "grid":
            variants = math.prod(len(values) for values in self.axes.values())
        else:
            variants = 1 + sum(len(values) for values in self.axes.values())
        return variants * len(self.seeds)

    def check_size(self, max_cells: int = MAX_CELLS) -> None:
        """Refuse, with one line, an experiment of more than ``max_cells`` cells: a typo in a grid
        (2,000 seeds x 2,000 values) would otherwise spend minutes and gigabytes of memory just
        listing them."""
        n = self.cell_count()
        if n > max_cells:
            raise ExperimentError(
                self.path,
                None,
                f"{n:,} cells ({n // max(1, len(self.seeds)):,} variants x {len(self.seeds):,} seeds) is more than the "
                f"limit of {max_cells:,}; check [axes] and seeds, or raise the limit with --max-cells",
            )

    def manifest(self) -> dict[str, Any]:
        """What analysis needs to know about the experiment, as plain JSON-able data."""
        cells = self.cells()
        return {
            "name": self.name,
            "description": self.description,
            "design": self.design,
            "seeds": list(self.seeds),
            "baseline": self.baseline.axes(),
            "baseline_slug": self.baseline.slug(),
            "axes": {axis: list(values) for axis, values in self.axes.items()},
            "variants": [v.axes() for v in self.variants()],
            "run_ids": [c.run_id for c in cells],
            "cells": [{"run_id": c.run_id, "slug": c.variant.slug(), "seed": c.seed} for c in cells],
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "source": self.path,
            "gpu_overrides_applied": self.gpu_overrides_applied,
            **({"variant_seeds": {v.slug(): self.seeds_of(v) for v in self.variants()}} if self.seed_counts else {}),
            **({"adaptive": dict(self.adaptive)} if self.adaptive else {}),
            **({"design_changes": [dict(c) for c in self.design_changes]} if self.design_changes else {}),
        }

    def seeds_of(self, variant: Variant) -> list[int]:
        """The seeds ``variant`` is trained on: all of ``seeds``, or the prefix ``seed_counts`` gives it."""
        count = (self.seed_counts or {}).get(variant.slug(), len(self.seeds))
        return list(self.seeds[:count])

    def cells(self) -> list[Cell]:
        """Every variant x each of its seeds (:meth:`seeds_of`), seed-major so that early results
        already pair up by seed."""
        variants = [(v, len(self.seeds_of(v))) for v in self.variants()]
        return [
            Cell(self.name, v, s, self.data, self.train) for i, s in enumerate(self.seeds) for v, n in variants if i < n
        ]


# --- loading --------------------------------------------------------------------------------------
def load_experiment(path: str | Path, overrides: Sequence[str] = (), device_type: str = "cpu") -> Experiment:
    """Read, override and validate an experiment file. Raises :class:`ExperimentError`."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise ExperimentError(
                path, None, "is not a regular file (a device, pipe or socket); give an experiment file"
            )
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ExperimentError(path, None, f"is larger than {MAX_FILE_BYTES:,} bytes; not an experiment file")
        # utf-8-sig: accept (and drop) the byte-order mark some Windows editors write first.
        raw = tomllib.loads(data.decode("utf-8-sig"))
    except FileNotFoundError:
        raise ExperimentError(path, None, "no such file") from None
    except IsADirectoryError:
        raise ExperimentError(path, None, "is a directory, not an experiment file") from None
    except UnicodeDecodeError as e:
        raise ExperimentError(path, None, f"not a UTF-8 text file ({e.reason})") from None
    except tomllib.TOMLDecodeError as e:
        raise ExperimentError(path, None, f"malformed TOML: {e}") from None
    except RecursionError:
        raise ExperimentError(path, None, "malformed TOML: nested too deeply") from None
    except OSError as e:  # no permission, a broken link, a name too long, ...
        raise ExperimentError(path, None, f"cannot read: {e.strerror or e}") from None
    return parse_experiment(raw, path, overrides, device_type)


def parse_experiment(
    raw: dict[str, Any], path: str | Path, overrides: Sequence[str] = (), device_type: str = "cpu"
) -> Experiment:
    """Validate an already-parsed TOML document (see :func:`load_experiment`).

    The document is resolved in this order: the file, then its ``[gpu]`` table when
    ``device_type == "cuda"``, then the ``overrides``; an override of ``gpu.*`` edits the
    ``[gpu]`` table before it is applied. Raises :class:`ExperimentError`."""
    path = Path(path)
    v = Validator(path)
    try:
        raw = json.loads(json.dumps(raw, default=str))  # deep copy; TOML dates become strings
    except (RecursionError, ValueError):  # ValueError: a circular document built in Python
        raise ExperimentError(path, None, "nested too deeply") from None
    v.known_keys(raw, TOP_LEVEL_KEYS, "")
    parsed = [parse_override(item, path) for item in overrides]  # a malformed --set fails first
    cli_gpu = [(keys, value) for keys, value in parsed if keys[0] == "gpu"]
    cli_rest = [(keys, value) for keys, value in parsed if keys[0] != "gpu"]
    for keys, value in cli_gpu:
        v.from_cli.add(".".join(keys))
        _set_dotted(raw, keys, value, path)
    gpu = v.table(raw, "gpu")
    v.gpu_table(gpu)  # on every device, so that a typo there surfaces before the GPU run
    if device_type == "cuda":
        _deep_merge(raw, json.loads(json.dumps(gpu)))
    for keys, value in cli_rest:
        v.from_cli.add(".".join(keys))
        _set_dotted(raw, keys, value, path)
    v.known_keys(raw, TOP_LEVEL_KEYS, "")  # again: an override may add an unknown top-level key

    name = raw.get("name", path.stem)
    if "name" not in raw and not (isinstance(name, str) and _name_ok(name)):
        raise ExperimentError(
            path,
            "name",
            f"{show_value(name)}, taken from the file name because the file sets no name, is not allowed; expected "
            f"{NAME_RULE}; "
            'set one with name = "..." in the file or --set name=...',
        )
    v.check("name", name, str, _name_ok, NAME_RULE)
    description = raw.get("description", "")
    v.check("description", description, str)
    design = raw.get("design", "grid")
    v.check("design", design, str, lambda s: s in DESIGNS, " | ".join(DESIGNS))
    seeds = v.seeds(raw.get("seeds"))

    baseline = v.variant(v.table(raw, "model"))
    axes = v.axes(v.table(raw, "axes"))
    data = v.data_config(v.table(raw, "data"), "data")
    if data.root is not None:
        data = dataclasses.replace(data, root=_absolute(data.root))
    train = v.config(TrainConfig, v.table(raw, "train"), "train")

    return Experiment(
        name=name,
        description=description,
        seeds=seeds,
        design=design,
        baseline=baseline,
        axes=axes,
        data=data,
        train=train,
        path=str(path),
        gpu_overrides_applied=device_type == "cuda" and bool(gpu),
    )


def _name_ok(name: str) -> bool:
    return bool(EXPERIMENT_NAME_PATTERN.fullmatch(name)) and len(name) <= NAME_MAX and name != BENCH_NAME


def _absolute(root: str) -> str:
    """``data.root`` as an absolute path (user folder expanded, links resolved), so that a run's
    identity names the data it reads, not a path relative to wherever the command was started."""
    path = Path(root).expanduser()
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # a link loop: keep the links, still absolute
        return os.path.abspath(path)


def parse_override(item: str, path: str | Path = "--set") -> tuple[list[str], Any]:
    """``"train.lr=0.1"`` -> ``(["train", "lr"], 0.1)``. The value is read as a TOML literal; a
    value that is not one (a bare word such as ``shapes``) is taken as a string."""
    key, sep, text = item.partition("=")
    key, text = key.strip(), text.strip()
    keys = key.split(".")
    if not sep or not all(re.fullmatch(r"[A-Za-z0-9_-]+", k) for k in keys):
        raise ExperimentError(path, None, f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. train.lr=0.1")
    try:
        doc = tomllib.loads(f"value = {text}")
    except (tomllib.TOMLDecodeError, RecursionError):
        doc = {}
    # One literal only: "0.1\nseeds = [1]" is a string (and then refused), not 0.1 with the rest
    # silently dropped.
    value = doc["value"] if list(doc) == ["value"] else text
    return keys, value


def _set_dotted(doc: dict[str, Any], keys: list[str], value: Any, path: str | Path) -> None:
    node = doc
    for i, k in enumerate(keys[:-1]):
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise ExperimentError(path, ".".join(keys[: i + 1]), f"is a value, so --set cannot set {'.'.join(keys)}")
        node = child
    node[keys[-1]] = value


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for k, val in extra.items():
        if isinstance(val, dict) and isinstance(base.get(k), dict):
            _deep_merge(base[k], val)
        else:
            base[k] = val
