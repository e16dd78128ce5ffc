"""Peak memory of one run or benchmark case: reset a window, read its peak, name what was read.

One definition for training and ``ablate bench``, so that a ``peak_memory_mb`` figure means the
same thing wherever it is recorded:

* CUDA: the caching allocator's peak of memory held by tensors (``cuda_allocated``), since
  :func:`reset_peak_memory`;
* CPU on Linux: the process's peak resident set since :func:`reset_peak_memory`
  (``host_peak_rss``). Writing ``5`` to ``/proc/self/clear_refs`` resets the kernel's high-water
  mark ``VmHWM`` to the current resident set; ``/proc/self/status`` reports it. The figure
  includes everything the process holds (interpreter, libraries, data), not only the run;
* CPU elsewhere (or where ``/proc`` is read-only): ``ru_maxrss``, the peak over the process's
  whole life, which no call can reset (``host_max_rss``). In a sweep every later run inherits the
  largest earlier peak, so that figure is an upper bound, and its different name says so.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")

CUDA_KIND = "cuda_allocated"
RESETTABLE_RSS_KIND = "host_peak_rss"
LIFETIME_RSS_KIND = "host_max_rss"

# Whether this process can reset its resident-set peak; None until the first attempt. Decided
# once: a /proc that refuses the write refuses it every time.
_rss_resettable: bool | None = None


def _reset_rss_peak() -> bool:
    global _rss_resettable
    if _rss_resettable is not False:
        try:
            _CLEAR_REFS.write_text("5")
            _rss_resettable = _vm_hwm_kib() is not None
        except OSError:
            _rss_resettable = False
    return _rss_resettable


def _vm_hwm_kib() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_memory(device: torch.device) -> str:
    """Start a fresh peak-memory window on ``device``; returns the kind :func:`peak_memory_mb`
    will then report (see :func:`peak_memory_kind`)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        _reset_rss_peak()
    return peak_memory_kind(device)


def peak_memory_kind(device: torch.device) -> str:
    """``cuda_allocated`` | ``host_peak_rss`` (since the last reset) | ``host_max_rss`` (whole
    process life: this platform cannot reset it, or no reset was attempted yet)."""
    if device.type == "cuda":
        return CUDA_KIND
    return RESETTABLE_RSS_KIND if _rss_resettable else LIFETIME_RSS_KIND


def peak_memory_mb(device: torch.device) -> float:
    """The peak in MiB of the kind :func:`peak_memory_kind` names."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if _rss_resettable:
        kib = _vm_hwm_kib()
        if kib is not None:
            return kib / 1024
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024
