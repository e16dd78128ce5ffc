"""Run an ``ablate bench`` sweep: time every (variant, batch size, precision, mode, fused seeds)
case, timm ``benchmark.py`` style, one row per case, failures included.

For every case it builds the model (with ``fuse`` K > 1: K models of the variant fused into one,
as ``fuse_seeds`` trains them, each member on its own batch), feeds it one synthetic batch that
already sits on the device, and times one of two things:

* ``train``: :func:`ablate.train.loop.train_step` (forward, loss, backward, fused optimizer step) -
  the very function ``ablate run`` trains with;
* ``infer``: a forward pass under ``torch.inference_mode``.

Each case runs ``warmup`` untimed steps (cuDNN autotuning, torch.compile, allocator growth),
then ``repeats`` stretches of ``steps`` steps (:func:`ablate.bench.timing.time_steps`); the
reported step time is the median stretch's. Peak memory comes from :mod:`ablate.runtime.memory`, reset
at the start of each case (the kind it names is recorded with the figure). Parameters and FLOPs
per image come from :mod:`ablate.models.flops`. A case that raises (out of memory, a broken user layer)
becomes a row with ``status`` ``oom`` or ``failed`` and the error, and the sweep goes on.

Images/s: ``images_per_s`` counts every member's images (what the device does), and
``member_images_per_s`` one member's (how fast each seed trains); they are equal at K = 1.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ablate.bench.settings import BenchSettings
from ablate.bench.timing import time_steps
from ablate.config import TrainConfig
from ablate.models.alexnet import arch_spec, build_model, count_params
from ablate.models.flops import flops_per_image
from ablate.models.fused import fuse_models, set_dropout_generators
from ablate.runtime.device import resolve_precision
from ablate.runtime.memory import peak_memory_kind, peak_memory_mb, reset_peak_memory
from ablate.runtime.precision import autocast_for
from ablate.runtime.seeding import dropout_generator
from ablate.train.loop import train_step
from ablate.train.optim import make_optimizer
from ablate.train.setup import place_model
from ablate.variant import Variant


def _case(
    variant: Variant,
    batch: int,
    precision: str,
    mode: str,
    device: torch.device,
    settings: BenchSettings,
    k: int = 1,
) -> dict[str, Any]:
    """Time one case; returns the measured fields (raises on failure). With ``k`` > 1 the model
    is ``k`` models of the variant fused into one (as ``fuse_seeds`` trains them), each member
    fed its own batch of ``batch`` images."""
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(build_model(variant, settings.num_classes))
    model, step_model = place_model(
        fuse_models(models) if k > 1 else models[0], device, settings.channels_last, settings.compile
    )
    set_dropout_generators(model, [dropout_generator(seed, device) for seed in range(k)])
    size = arch_spec(variant.arch).input_size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3 * k, size, size, generator=g).to(device).contiguous(memory_format=memory_format)
    y = torch.randint(0, settings.num_classes, (k, batch) if k > 1 else (batch,), generator=g).to(device)
    autocast = autocast_for(precision, device)
    if mode == "train":
        # A small learning rate keeps many steps on one batch finite (no NaN/denormal slow paths).
        optimizer = make_optimizer(model, TrainConfig(optimizer=settings.optimizer, lr=1e-4, weight_decay=0.0))
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        model.train()

        def fn() -> Any:
            return train_step(step_model, optimizer, scaler, autocast, x, y)
    else:
        model.eval()

        def fn() -> Any:
            with torch.inference_mode(), autocast():
                return step_model(x)

    kind = reset_peak_memory(device)
    times = time_steps(fn, device, settings.warmup, settings.steps, settings.repeats)
    step = statistics.median(times)
    return {
        "step_time_ms": step * 1e3,
        "step_times_ms": [t * 1e3 for t in times],
        # Every member's images: what the device does per second.
        "images_per_s": k * batch / step,
        # One member's: how fast each seed trains.
        "member_images_per_s": batch / step,
        "peak_memory_mb": peak_memory_mb(device),
        "peak_memory_kind": kind,
    }


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_bench(
    variants: Sequence[Variant],
    device: torch.device,
    settings: BenchSettings,
    on_case: Callable[[dict[str, Any], int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Time every (variant, batch size, precision, mode, fused seeds); one row per case, failures
    included.

    ``on_case(row, index, total)`` is called after each case (progress display)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as in training (cudnn_benchmark defaults on)
    cases = list(itertools.product(variants, settings.batch_sizes, settings.precisions, settings.modes, settings.fuse))
    rows: list[dict[str, Any]] = []
    described: dict[Variant, dict[str, Any]] = {}
    if cases:
        # Once per process, untimed: the first backward passes of a fresh process are slow on
        # the CPU (allocator growth, oneDNN primitive creation), which would otherwise count
        # against whichever case happens to come first.
        variant, batch, asked, _, _ = cases[0]
        warm = dataclasses.replace(settings, warmup=max(settings.warmup, 3), steps=1, repeats=1)
        try:
            _case(variant, batch, resolve_precision(TrainConfig(precision=asked), device), "train", device, warm)
        except Exception:  # noqa: BLE001 - the real case below records the error
            pass
        finally:
            _free(device)
    for index, (variant, batch, asked, mode, k) in enumerate(cases):
        row = measure_case(variant, batch, asked, mode, k, device, settings, described)
        rows.append(row)
        if on_case:
            on_case(row, index, len(cases))
    return rows


def measure_case(
    variant: Variant,
    batch: int,
    asked: str,
    mode: str,
    k: int,
    device: torch.device,
    settings: BenchSettings,
    described: dict[Variant, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One case as a row: what it is, what it measured, or (status ``oom`` / ``failed``) the error.
    ``described`` caches each variant's parameter and FLOP counts between calls."""
    described = {} if described is None else described
    precision = resolve_precision(TrainConfig(precision=asked), device)
    row: dict[str, Any] = {
        "slug": variant.slug(),
        **{f"axis_{key}": v for key, v in variant.axes().items()},
        "device": str(device),
        "batch_size": batch,
        "precision": precision,
        "mode": mode,
        "fuse": k,
        "channels_last": settings.channels_last,
        "compile": settings.compile,
        "status": "ok",
        "error": None,
        "step_time_ms": None,
        "step_times_ms": None,
        "images_per_s": None,
        "member_images_per_s": None,
        "peak_memory_mb": None,
        "peak_memory_kind": peak_memory_kind(device),
    }
    try:
        if variant not in described:
            model = build_model(variant, settings.num_classes)
            flops = flops_per_image(model, arch_spec(variant.arch).input_size)
            described[variant] = {
                "params": count_params(model),
                "flops_forward": flops["forward"],
                "flops_train": flops["train"],
            }
        row.update(described[variant])
        row.update(_case(variant, batch, precision, mode, device, settings, k))
        flops_key = "flops_train" if mode == "train" else "flops_forward"
        row["achieved_tflops"] = row[flops_key] * row["images_per_s"] / 1e12
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - one bad case must not end the sweep (timm does the same)
        oom = isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()
        row["status"] = "oom" if oom else "failed"
        row["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
    finally:
        _free(device)
    return row
