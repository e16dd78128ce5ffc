"""Peak memory: one definition for training and ``ablate bench`` (:mod:`ablate.runtime.memory`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from ablate.runtime import memory
from ablate.runtime.memory import peak_memory_kind, peak_memory_mb, reset_peak_memory

CPU = torch.device("cpu")
linux_proc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc"
)


@linux_proc
def test_a_reset_forgets_a_freed_allocation():
    reset_peak_memory(CPU)
    assert peak_memory_kind(CPU) == "host_peak_rss"
    before = peak_memory_mb(CPU)
    big = torch.ones(300 * 2**20 // 4)  # 300 MiB, every page written (torch.empty would not count)
    during = peak_memory_mb(CPU)
    del big  # large blocks go back to the system at once (mmap'd), so the resident set falls
    after_free = peak_memory_mb(CPU)
    assert during > before + 250 and after_free > before + 250  # a peak stays a peak until reset...
    reset_peak_memory(CPU)
    assert peak_memory_mb(CPU) < after_free - 250  # ...and a reset lowers it: each run gets its own


def test_without_a_resettable_peak_the_lifetime_figure_is_named_as_such(monkeypatch, tmp_path):
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs")  # the write fails
    monkeypatch.setattr(memory, "_rss_resettable", None)
    assert reset_peak_memory(CPU) == "host_max_rss" == peak_memory_kind(CPU)
    assert peak_memory_mb(CPU) > 10  # ru_maxrss: this process has been larger than 10 MiB


def test_the_kind_before_any_reset_is_the_lifetime_one(monkeypatch):
    monkeypatch.setattr(memory, "_rss_resettable", None)
    assert peak_memory_kind(CPU) == "host_max_rss"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_peak_is_the_allocator_peak_and_resets():
    device = torch.device("cuda")
    assert reset_peak_memory(device) == "cuda_allocated"
    big = torch.ones(256 * 2**20 // 4, device=device)
    del big
    assert peak_memory_mb(device) >= 256
    reset_peak_memory(device)
    assert peak_memory_mb(device) < 256
