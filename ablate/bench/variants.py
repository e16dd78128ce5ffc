"""Which variants ``ablate bench`` times: every registered combination (:func:`catalogue`), the
baseline and its one-axis changes (:func:`single_axis_variants`), or what the user names
(:func:`select_variants`: experiment files or shell patterns on slugs)."""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Sequence
from pathlib import Path

from ablate.bench.settings import BenchError
from ablate.experiment.experiment import load_experiment
from ablate.experiment.validate import AXIS_REGISTRIES
from ablate.registry import suggest
from ablate.variant import Variant

# Axes whose registered values the bench combines. ``arch`` is looped over separately (one
# catalogue per preset) and ``init`` is left at its default: it changes no step's cost.
SWEPT_AXES = ("activation", "pooling", "norm")


def catalogue(archs: Sequence[str] | None = None) -> list[Variant]:
    """Every combination of the registered activation, pooling and norm values and dropout on/off,
    for each architecture preset (36 per preset with the built-in values), default init."""
    values = [AXIS_REGISTRIES[axis].names() for axis in SWEPT_AXES]
    out = []
    for arch in archs or AXIS_REGISTRIES["arch"].names():
        for *chosen, drop in itertools.product(*values, (True, False)):
            out.append(Variant(arch=arch, dropout=drop, **dict(zip(SWEPT_AXES, chosen))))
    return out


def single_axis_variants(base: Variant | None = None) -> list[Variant]:
    """``base`` (default: the seed's AlexNet-65 baseline) followed by every variant that changes
    exactly one axis of it to another registered value (dropout: the other setting)."""
    base = base or Variant()
    out = [base]
    for axis in SWEPT_AXES:
        out += [base.replace(**{axis: v}) for v in AXIS_REGISTRIES[axis].names() if v != getattr(base, axis)]
    out.append(base.replace(dropout=not base.dropout))
    return out


def select_variants(targets: Sequence[str], device_type: str = "cpu") -> list[Variant]:
    """Variants named by experiment files (``*.toml``: their variants) or shell-style patterns on
    slugs of :func:`catalogue` (e.g. ``"relu-*-lrn-*"``); none means :func:`single_axis_variants`.
    Order is kept, repeats dropped."""
    if not targets:
        return single_axis_variants()
    found: list[Variant] = []
    slugs = {v.slug(): v for v in catalogue()}
    for target in targets:
        if target.endswith(".toml") or Path(target).is_file():
            found += load_experiment(target, (), device_type).variants()
            continue
        matched = [v for slug, v in slugs.items() if fnmatch.fnmatchcase(slug, target)]
        if not matched:
            hint = suggest(target, list(slugs))
            raise BenchError(
                f"no variant slug matches {target!r} (slugs look like relu-overlap-lrn-drop; patterns use * and ?)"
                + (f"; did you mean {hint!r}?" if hint else "")
            )
        found += matched
    return list(dict.fromkeys(found))
