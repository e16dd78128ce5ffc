"""Sizes that pass validation but cannot be made (issue #10 item 7): refused with one line."""

from __future__ import annotations

import pytest

from ablate.config import INT_MAX, DataConfig
from ablate.data import DataError, load_splits
from ablate.data import shapes


def test_generated_set_larger_than_memory_is_refused_before_generating():
    with pytest.raises(DataError, match=rf"shapes: data\.train_size = {INT_MAX} .* GiB of memory is available: use fewer images"):
        load_splits(DataConfig(train_size=INT_MAX), 65, use_cache=False)


def test_memory_check_uses_what_is_available(monkeypatch):
    monkeypatch.setattr(shapes, "available_memory", lambda: 100 * (3 * 16 * 16 + 16))
    with pytest.raises(DataError, match="use fewer images") as e:
        load_splits(DataConfig(train_size=90, val_size=11), 16, use_cache=False)
    assert "\n" not in str(e.value)
    splits = load_splits(DataConfig(train_size=90, val_size=10), 16, use_cache=False)  # exactly fits
    assert splits.train_x.shape[0] == 90
    monkeypatch.setattr(shapes, "available_memory", lambda: None)  # unknown: no check
    assert load_splits(DataConfig(train_size=20, val_size=10), 16, use_cache=False).val_x.shape[0] == 10


def test_available_memory_is_a_plausible_number():
    have = shapes.available_memory()
    assert have is None or 2**20 < have < 2**50
