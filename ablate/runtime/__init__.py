"""Where and how a run computes, and what it ran on.

Job: the device (:mod:`.device`: ``auto | cpu | cuda | cuda:N``, speed flags), the precision
(:mod:`.precision`: ``fp32 | bf16 | fp16`` to dtypes and autocast), seeding (:mod:`.seeding`),
the step clock every throughput figure is read on (:mod:`.clock`), peak memory (:mod:`.memory`),
what a run ran on (:mod:`.provenance`: versions, device, host, git commit, stored with every
result) and Ctrl-C / SIGTERM as a request to stop (:mod:`.stop_signal`).

May import: the vocabulary (``ablate.config``) and torch.
Exports: ``DeviceError``, ``resolve_device``, ``seed_everything``, ``StepTimer``, ``StopOnSignal``.
"""

from ablate.runtime.clock import StepTimer
from ablate.runtime.device import DeviceError, resolve_device
from ablate.runtime.seeding import seed_everything
from ablate.runtime.stop_signal import StopOnSignal

__all__ = ["DeviceError", "StepTimer", "StopOnSignal", "resolve_device", "seed_everything"]
