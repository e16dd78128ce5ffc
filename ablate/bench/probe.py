"""The time probe of ``ablate plan``: a few timed steps of the experiment's own cells on the device
they will train on, and the costs around them, measured in seconds.

Per distinct model (variants that differ only in what costs nothing, such as ``init``, are one),
on the experiment's real data and settings, through the code a run uses
(:func:`ablate.train.setup.prepare`, :func:`ablate.train.loop.train_step`,
:func:`ablate.train.loop.evaluate`, :func:`ablate.train.resume.save_checkpoint`):

* ``build_s``: :func:`~ablate.train.setup.prepare` (seeding, model, optimizer, device batches);
* the first :data:`~ablate.train.setup.WARMUP_STEPS` steps one by one (``warmup_extra_s``: what they
  cost beyond steady state), then stretches of steady-state steps timed with ``ablate bench``'s
  :func:`ablate.bench.timing.time_steps` (``step_s``: the median stretch's step);
* one evaluation batch at ``train.eval_batch_size`` (``eval_image_s``: per image);
* one checkpoint save into a temporary folder (``checkpoint_s``).

Around the cells: a fresh process importing what ``ablate run`` imports (``start_s``, timed in a
child process), loading the data as a run will (``data_s``: a cache hit when the first load wrote
the cache), and a cell's bookkeeping (``record_s``: the environment record and an atomic run file).
Generated data (``info["source"] == "generated"``: rendered image by image, never cached) of a
stated size is generated at :data:`SAMPLE_IMAGES` images a split (at least a batch) and its time
scaled by the image count, and the models are timed on that sample: generating 1,900 images took
40 s of the probe on a busy 2-core machine.

A grid with more distinct models than :data:`MAX_DIRECT` is probed at the baseline and each
single-axis change of it, and the others' costs are the baseline's plus each axis' difference
(additive; said in each cost's ``source``). Step and evaluation times can instead come from
``ablate bench`` results in the results folder when they cover every model at the experiment's
batch sizes on this device (:func:`probe` ``use_bench``); the rest is still measured.

Everything is measured where it runs, so a busy machine gives slower numbers, as it would give a
slower run; the probe records the machine's load average (``load``) and says when it exceeded the
cores, since a run under another load takes another time. Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ablate.bench.storage import load_bench
from ablate.bench.timing import seconds, time_steps
from ablate.data.loader import DeviceBatches
from ablate.data.sweep import Datasets, data_key
from ablate.experiment.experiment import Cell, Experiment
from ablate.runtime.clock import sync
from ablate.runtime.device import resolve_precision
from ablate.runtime.provenance import device_name, environment
from ablate.store.folder import write_json_atomic
from ablate.train.loop import evaluate, train_step
from ablate.train.resume import save_checkpoint
from ablate.train.setup import WARMUP_STEPS, prepare
from ablate.variant import Variant

# Probe every distinct model up to this many; beyond, the baseline and its single-axis changes.
MAX_DIRECT = 8
# Steady-state stretches per model, and the time one stretch aims at (steps adapt to it).
REPEATS = 2
STRETCH_S = 0.6
MIN_STEPS, MAX_STEPS = 2, 20
# Seconds the whole probe aims at: the models share what start-up and data left of it (each gets
# at least its warm-up, one evaluation batch and one timed step, so a busy machine can pass it).
BUDGET_S = 45.0
# Images per split the probe generates of a generated dataset (its load time is scaled to the full size).
SAMPLE_IMAGES = 256
# What a fresh ``ablate run`` process (or a worker) imports before its first cell.
START_IMPORTS = "import torch, ablate.cli.app, ablate.execute.runner, ablate.execute.local"

PROBED = "probe"
ADDITIVE = "additive"
BENCH = "bench"


class ProbeError(ValueError):
    """The probe cannot run (no cell to probe); ``str()`` is one line."""


@dataclass(frozen=True)
class ModelCost:
    """What one model costs on the probed device, in seconds."""

    slug: str
    build_s: float  # prepare(): seeding, model, optimizer, device batches
    step_s: float  # one steady-state training step at train.batch_size
    warmup_extra_s: float  # the run's first WARMUP_STEPS steps beyond steady state
    eval_image_s: float  # evaluation per image at train.eval_batch_size
    checkpoint_s: float  # one checkpoint save
    source: str  # PROBED | ADDITIVE (from single-axis probes) | BENCH (steps from ablate bench results)
    detail: str = ""  # e.g. which bench file

    def record(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DataCost:
    """Loading one dataset (one data setting at one input size)."""

    key: str
    seconds: float  # what a run's load costs (a cache hit when the cache is used)
    first_s: float  # the probe's own first load (decode and cache write when the cache was cold)
    cache: str  # hit | written | none (not a cached dataset) | ... | generated (scaled from first_s's sample)
    train_images: int
    val_images: int


@dataclass(frozen=True)
class Probe:
    """Everything the time estimate needs, measured on one device at one thread count."""

    device: str
    device_name: str
    threads: int | None  # torch intra-op threads the cells will use (CPU)
    start_s: float  # a fresh process importing what `ablate run` imports
    record_s: float  # a cell's bookkeeping: environment record, atomic run file
    data: dict[str, DataCost]  # data key -> cost
    models: dict[str, ModelCost]  # variant slug -> cost (every variant of the experiment)
    probed: list[str]  # slugs actually run
    seconds: float  # how long the probe took
    method: str  # one sentence: how the model costs were obtained
    load: float | None = None  # the 1-minute load average at the end of the probe (None: not known here)
    cores: int | None = None
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["data"] = {k: dict(v.__dict__) for k, v in self.data.items()}
        out["models"] = {k: v.record() for k, v in self.models.items()}
        return out


def cost_key(variant: Variant) -> tuple:
    """What decides a model's cost: its axes except those that change no step (init, dropout_p)."""
    return (variant.arch, variant.activation, variant.pooling, variant.norm, variant.dropout)


def data_label(cell: Cell) -> str:
    cfg, size = data_key(cell)
    return f"{cfg.dataset} {cfg.train_size or 'all'}/{cfg.val_size or 'all'} images at {size}px"


def start_seconds(device: torch.device) -> float:
    """Wall seconds of a fresh Python process importing what ``ablate run`` imports (and starting
    CUDA where the cells will train on it)."""
    code = START_IMPORTS + ("; torch.cuda.init()" if device.type == "cuda" else "")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def record_seconds(device: torch.device) -> float:
    """A cell's bookkeeping after training: its environment record (a git call) and an atomic run
    file of a typical size."""
    started = time.perf_counter()
    env = environment(device)
    with tempfile.TemporaryDirectory(prefix="ablate-probe-") as tmp:
        payload = {"env": env, "steps": [{"step": i, "train_loss": 1.0 / (i + 1)} for i in range(200)]}
        write_json_atomic(Path(tmp) / "run.json", payload)
    return time.perf_counter() - started


def machine_load() -> tuple[float | None, int | None]:
    """The 1-minute load average and the number of cores (None where the system does not say)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return load, os.cpu_count()


def _load(datasets: Datasets, cell: Cell) -> tuple[Any, float]:
    started = time.perf_counter()
    splits = datasets(cell)
    return splits, time.perf_counter() - started


def _sample(cell: Cell) -> Cell | None:
    """The cell with its generated data cut to :data:`SAMPLE_IMAGES` a split (at least a training and
    an evaluation batch), or None when the sizes are not stated, the training set is redrawn per
    seed, or the data is no larger than the sample."""
    cfg = cell.data
    if cfg.train_size is None or cfg.val_size is None or cfg.resample:
        return None
    train = min(cfg.train_size, max(SAMPLE_IMAGES, cell.train.batch_size))
    val = min(cfg.val_size, max(SAMPLE_IMAGES, cell.train.eval_batch_size))
    if (train, val) == (cfg.train_size, cfg.val_size):
        return None
    return dataclasses.replace(cell, data=dataclasses.replace(cfg, train_size=train, val_size=val))


def _load_data(cell: Cell, datasets: Datasets) -> tuple[DataCost, Any]:
    """A dataset's cost as a run sees it (module docstring), and the splits to time the models on."""
    label = data_label(cell)
    sample = _sample(cell)
    if sample is not None:
        splits, took = _load(Datasets(), sample)
        if splits.info.get("source") == "generated":
            n = int(splits.train_x.shape[0]) + int(splits.val_x.shape[0])
            full = cell.data.train_size + cell.data.val_size
            return DataCost(label, took * full / n, took, "generated", cell.data.train_size, cell.data.val_size), splits
    splits, first = _load(datasets, cell)
    cache = _cache_status(splits.info)
    again = first
    if cache == "written":  # a run will read the cache this load just wrote
        _, again = _load(Datasets(), cell)
    return DataCost(label, again, first, cache, int(splits.train_x.shape[0]), int(splits.val_x.shape[0])), splits


def _cache_status(info: dict[str, Any]) -> str:
    cache = info.get("cache")
    if not isinstance(cache, dict):
        return "none"
    values = set(cache.values())
    return "written" if "written" in values else ("hit" if values == {"hit"} else ", ".join(sorted(values)))


def _cycle(batches: DeviceBatches) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from batches


def _stretches(per_step: float, left_s: float) -> tuple[int, int]:
    """(steps per stretch, stretches) for steady-state timing: :data:`REPEATS` stretches of about
    :data:`STRETCH_S` each where the time left allows, fewer steps where it does not (never none)."""
    wanted = int(min(MAX_STEPS, max(MIN_STEPS, round(STRETCH_S / per_step))))
    affordable = int(max(0.0, left_s) // per_step)
    if affordable >= REPEATS * wanted:
        return wanted, REPEATS
    if affordable >= REPEATS * MIN_STEPS:
        return affordable // REPEATS, REPEATS
    return max(1, min(wanted, affordable)), 1


def _probe_model(
    cell: Cell, splits: Any, device: torch.device, bench_steps: tuple[float, float] | None, allowance_s: float
) -> ModelCost:
    """Time one model on the experiment's data (see the module docstring). The steady-state
    stretches get what is left of ``allowance_s`` (at least one stretch of one step; at most
    :data:`REPEATS` of :data:`MAX_STEPS`), so that a busy machine does not stretch the probe."""
    started = time.perf_counter()
    run = prepare(cell, splits, device)
    sync(device)
    build_s = time.perf_counter() - started
    member = run.members[0]
    batches = _cycle(member.train_batches)

    def step() -> Any:
        x, y = next(batches)
        out = train_step(run.step_model, run.optimizer, run.scaler, run.autocast, x, y)
        run.scheduler.step()
        return out

    first = [seconds(step, device) for _ in range(WARMUP_STEPS)]
    if bench_steps is None:
        k = min(cell.train.eval_batch_size, splits.val_x.shape[0])
        sample = DeviceBatches(
            splits.val_x[:k],
            splits.val_y[:k],
            splits.mean,
            splits.std,
            device,
            k,
            channels_last=cell.train.channels_last,
        )
        # evaluate() reads each member's val_batches: a run whose one member evaluates the sample.
        sampled = dataclasses.replace(run, members=[dataclasses.replace(member, val_batches=sample)])
        eval_image_s = seconds(lambda: evaluate(sampled, "val"), device) / k
        per = max(first[-1], 1e-4)
        steps, repeats = _stretches(per, allowance_s - (time.perf_counter() - started))
        step_s = statistics.median(time_steps(step, device, warmup=0, steps=steps, repeats=repeats))
    else:
        step_s, eval_image_s = bench_steps
    warmup_extra = max(0.0, sum(first) - WARMUP_STEPS * step_s)
    with tempfile.TemporaryDirectory(prefix="ablate-probe-") as tmp:
        member.hooks.checkpoint = Path(tmp) / "probe.pt"  # one timed save, thrown away with the folder
        save_checkpoint(run, "epoch", None)
        checkpoint_s = member.checkpoint_s
    return ModelCost(
        cell.variant.slug(),
        build_s,
        step_s,
        warmup_extra,
        eval_image_s,
        checkpoint_s,
        BENCH if bench_steps else PROBED,
    )


def models_to_probe(exp: Experiment) -> tuple[list[Variant], str]:
    """The variants to time, and how the others' costs follow from them."""
    distinct: dict[tuple, Variant] = {}
    for v in exp.variants():
        distinct.setdefault(cost_key(v), v)
    if len(distinct) <= MAX_DIRECT:
        return list(distinct.values()), f"every distinct model timed ({len(distinct)})"
    base = exp.baseline
    chosen = {cost_key(base): base}
    for axis, values in exp.axes.items():
        for value in values:
            v = base.replace(**{axis: value})
            chosen.setdefault(cost_key(v), v)
    return (
        list(chosen.values()),
        f"the baseline and its {len(chosen) - 1} single-axis changes timed; the other "
        f"{len(distinct) - len(chosen)} models' costs are the baseline's plus each axis' difference (additive)",
    )


def _additive(exp: Experiment, measured: dict[tuple, ModelCost], variant: Variant) -> ModelCost:
    """A model's cost from the baseline's and its single-axis changes' (never below 0)."""
    base = measured[cost_key(exp.baseline)]
    fields = ("build_s", "step_s", "warmup_extra_s", "eval_image_s", "checkpoint_s")
    total = {f: getattr(base, f) for f in fields}
    for axis in exp.axes:
        if getattr(variant, axis) == getattr(exp.baseline, axis):
            continue
        single = measured.get(cost_key(exp.baseline.replace(**{axis: getattr(variant, axis)})))
        if single is not None:
            for f in fields:
                total[f] += getattr(single, f) - getattr(base, f)
    return ModelCost(variant.slug(), *(max(0.0, total[f]) for f in fields), source=ADDITIVE)


def bench_costs(results: str | Path, exp: Experiment, device: torch.device, variants: list[Variant]) -> dict[str, Any]:
    """Steady-state step and per-image evaluation times from ``ablate bench`` results, when they
    cover every variant at ``train.batch_size`` (train) and ``train.eval_batch_size`` (infer) on a
    device of this name, precision, layout and compile mode; else empty."""
    frame = load_bench(results)
    needed = ("status", "device_name", "precision", "channels_last", "compile", "slug", "mode", "batch_size")
    if frame.empty or any(c not in frame for c in needed):
        return {}
    ok = frame[
        (frame["status"] == "ok")
        & (frame["device_name"] == device_name(device))
        & (frame["precision"] == resolve_precision(exp.train, device))
        & (frame["channels_last"] == exp.train.channels_last)
        & (frame["compile"] == exp.train.compile)
    ]
    out = {}
    for v in variants:
        mine = ok[ok["slug"] == v.slug()]
        train = mine[(mine["mode"] == "train") & (mine["batch_size"] == exp.train.batch_size)]
        infer = mine[(mine["mode"] == "infer") & (mine["batch_size"] == exp.train.eval_batch_size)]
        if train.empty or infer.empty:
            return {}
        out[v.slug()] = (
            float(train["step_time_ms"].iloc[-1]) / 1e3,
            float(infer["step_time_ms"].iloc[-1]) / 1e3 / exp.train.eval_batch_size,
            f"{train['file'].iloc[-1]}, {infer['file'].iloc[-1]}",
        )
    return out


def probe(
    exp: Experiment,
    device: torch.device,
    *,
    threads: int | None = None,
    results: str | Path | None = None,
    use_bench: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> Probe:
    """Measure what ``exp``'s cells cost on ``device`` with ``threads`` intra-op threads (CPU; None:
    torch's default), step and evaluation times from ``ablate bench`` results under ``results``
    when ``use_bench`` and they cover every model. ``on_step(what)`` is told what is measured next."""
    say = on_step or (lambda what: None)
    started = time.perf_counter()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        say("start-up of a fresh process")
        start_s = start_seconds(device)
        say("a cell's bookkeeping")
        record_s = record_seconds(device)
        cells = exp.cells()
        if not cells:
            raise ProbeError(f"{exp.name}: no cells to probe")
        data: dict[str, DataCost] = {}
        splits_of: dict[str, Any] = {}
        datasets = Datasets()
        for cell in cells:
            label = data_label(cell)
            if label in data:
                continue
            say(f"data: {label}")
            data[label], splits_of[label] = _load_data(cell, datasets)
        variants, method = models_to_probe(exp)
        from_bench = bench_costs(results, exp, device, variants) if use_bench and results is not None else {}
        if from_bench:
            files = sorted({name for b in from_bench.values() for name in b[2].split(", ")})
            method += f"; step and evaluation times from ablate bench results ({', '.join(files)})"
        first_cell = {cost_key(c.variant): c for c in reversed(cells)}
        measured: dict[tuple, ModelCost] = {}
        for i, v in enumerate(variants):
            cell = first_cell.get(cost_key(v)) or dataclasses.replace(cells[0], variant=v)
            say(f"model: {v.slug()}")
            bench = from_bench.get(v.slug())
            allowance = (BUDGET_S - (time.perf_counter() - started)) / (len(variants) - i)
            cost = _probe_model(cell, splits_of[data_label(cell)], device, bench[:2] if bench else None, allowance)
            if bench:
                cost = dataclasses.replace(cost, detail=bench[2])
            measured[cost_key(v)] = cost
        models = {}
        for v in exp.variants():
            cost = measured.get(cost_key(v)) or _additive(exp, measured, v)
            models[v.slug()] = dataclasses.replace(cost, slug=v.slug())
        load, cores = machine_load()
        notes = []
        if load is not None and cores and load > cores:
            notes.append(
                f"the machine was busy during the probe (load average {load:.1f} on {cores} cores): times are for "
                "that load, and scale with it"
            )
        return Probe(
            device=str(device),
            device_name=device_name(device),
            threads=torch.get_num_threads() if device.type == "cpu" else threads,
            start_s=start_s,
            record_s=record_s,
            data=data,
            models=models,
            probed=[v.slug() for v in variants],
            seconds=time.perf_counter() - started,
            method=method,
            load=load,
            cores=cores,
            notes=notes,
        )
    finally:
        torch.set_num_threads(before)
