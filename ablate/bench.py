"""``ablate bench``: steady-state speed of variants, timm ``benchmark.py`` style; reference loops.

For every (variant, batch size, precision) it builds the model, feeds it one synthetic batch
that already sits on the device, and times two things:

* ``train``: :func:`ablate.train.train_step` (forward, loss, backward, fused optimizer step) -
  the very function ``ablate run`` trains with;
* ``infer``: a forward pass under ``torch.inference_mode``.

Each case runs ``warmup`` untimed steps (cuDNN autotuning, torch.compile, allocator growth),
then ``repeats`` stretches of ``steps`` steps, each between two device-synchronized clock reads;
the reported step time is the median stretch's. Peak memory is the CUDA allocator's peak for
the case, or on the CPU the process's peak resident set during the case (which includes the
interpreter and everything else the process holds). Parameters and FLOPs per image come from
:mod:`ablate.flops`. A case that raises (out of memory, a broken user layer) becomes a row with
``status`` ``oom`` or ``failed`` and the error, and the sweep goes on.

Results go to ``<results>/bench/<time>-<device>.json`` (rows plus settings and environment)
and a ``.csv`` beside it; :func:`write_bench_report` turns every file there into a markdown
table and a seaborn plot.

The module also holds the two reference loops the harness is compared with
(:class:`HandLoop`, :class:`BlogLoop`) and :class:`AblateLoop`, which drives ablate's own epoch
loop, so that ``scripts/compare_loops.py`` and the pytest-benchmark suite time all three alike.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import math
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ablate.config import DataConfig, TrainConfig
from ablate.data import ImageSplits
from ablate.env import environment
from ablate.experiment import Cell, load_experiment
from ablate.flops import flops_per_image
from ablate.models import arch_spec, build_model, count_params
from ablate.registry import ACTIVATIONS, ARCHS, NORMS, POOLINGS, suggest
from ablate.store import write_json_atomic
from ablate.train import (
    Training,
    autocast_for,
    make_optimizer,
    prepare,
    resolve_precision,
    sync,
    train_epoch,
    train_step,
)
from ablate.variant import Variant

BENCH_DIR = "bench"
MODES = ("train", "infer")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class BenchError(ValueError):
    """A bench request that cannot be run (no variant matches, bad setting); one line for users."""


# --- which variants -------------------------------------------------------------------------------
def catalogue(archs: Sequence[str] | None = None) -> list[Variant]:
    """Every combination of the registered activation, pooling and norm values and dropout on/off,
    for each architecture preset (36 per preset with the built-in values), default init."""
    out = []
    for arch in archs or ARCHS.names():
        for act, pool, norm, drop in itertools.product(ACTIVATIONS.names(), POOLINGS.names(), NORMS.names(), (True, False)):
            out.append(Variant(arch=arch, activation=act, pooling=pool, norm=norm, dropout=drop))
    return out


def single_axis_variants(base: Variant | None = None) -> list[Variant]:
    """``base`` (default: the seed's AlexNet-65 baseline) followed by every variant that changes
    exactly one axis of it to another registered value (dropout: the other setting)."""
    base = base or Variant()
    out = [base]
    for axis, registry in (("activation", ACTIVATIONS), ("pooling", POOLINGS), ("norm", NORMS)):
        out += [base.replace(**{axis: v}) for v in registry.names() if v != getattr(base, axis)]
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


# --- settings --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchSettings:
    # Batch sizes to time; each is a separate case.
    batch_sizes: tuple[int, ...] = (32,)
    # auto | fp32 | bf16 | fp16, resolved per device as in training (auto: bf16 on CUDA, else fp32).
    precisions: tuple[str, ...] = ("auto",)
    # train (forward + backward + optimizer step) and/or infer (forward under inference_mode).
    modes: tuple[str, ...] = MODES
    # Model and batch in NHWC layout, as training does by default.
    channels_last: bool = True
    # torch.compile mode: off | default | max-autotune (compilation falls in the warm-up).
    compile: str = "off"
    # Untimed steps before timing.
    warmup: int = 3
    # Steps per timed stretch, and stretches; the median stretch's step time is reported.
    steps: int = 5
    repeats: int = 3
    # Outputs of the last layer (10 like the built-in shapes set).
    num_classes: int = 10
    # Optimizer of the train step (fused, as in training).
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        problems = []
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            problems.append(f"batch sizes must be integers >= 1, got {list(self.batch_sizes)}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            problems.append(f"precision {bad[0] if bad else '(none)'!r} is not one of {' | '.join(PRECISIONS)}")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            problems.append(f"mode {bad[0] if bad else '(none)'!r} is not one of {' | '.join(MODES)}")
        if self.compile not in ("off", "default", "max-autotune"):
            problems.append(f"compile {self.compile!r} is not one of off | default | max-autotune")
        if self.warmup < 0 or self.steps < 1 or self.repeats < 1:
            problems.append("warmup must be >= 0, steps and repeats >= 1")
        if problems:
            raise BenchError("; ".join(problems))


def default_settings(device: torch.device, **changes: Any) -> BenchSettings:
    """Sizes that give a stable number in reasonable time: a GPU step takes milliseconds, a CPU
    step at batch 32 about a second."""
    if device.type == "cuda":
        base = BenchSettings(batch_sizes=(256,), warmup=10, steps=20, repeats=5)
    else:
        base = BenchSettings(batch_sizes=(32,), warmup=2, steps=3, repeats=3)
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})


# --- memory ---------------------------------------------------------------------------------------
def _reset_peak(device: torch.device) -> bool:
    """Start a fresh peak-memory window; False where the platform cannot (then no peak is reported)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:  # Linux: writing 5 to clear_refs resets the process's peak resident set (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# --- timing ---------------------------------------------------------------------------------------
def time_steps(fn: Callable[[], Any], device: torch.device, warmup: int, steps: int, repeats: int) -> list[float]:
    """Seconds per call of ``fn`` in each of ``repeats`` stretches of ``steps`` calls, after
    ``warmup`` untimed calls; the device is synchronized before every clock read."""
    for _ in range(warmup):
        fn()
    per_step = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        per_step.append((time.perf_counter() - start) / steps)
    return per_step


def _case(
    variant: Variant, batch: int, precision: str, mode: str, device: torch.device, settings: BenchSettings
) -> dict[str, Any]:
    """Time one case; returns the measured fields (raises on failure)."""
    torch.manual_seed(0)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    model = build_model(variant, settings.num_classes).to(device=device, memory_format=memory_format)
    step_model = model if settings.compile == "off" else torch.compile(
        model, mode=None if settings.compile == "default" else settings.compile
    )
    size = arch_spec(variant.arch).input_size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device).contiguous(memory_format=memory_format)
    y = torch.randint(0, settings.num_classes, (batch,), generator=g).to(device)
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

    peak_ok = _reset_peak(device)
    times = time_steps(fn, device, settings.warmup, settings.steps, settings.repeats)
    step = statistics.median(times)
    return {
        "step_time_ms": step * 1e3,
        "step_times_ms": [t * 1e3 for t in times],
        "images_per_s": batch / step,
        "peak_memory_mb": _peak_mb(device) if peak_ok else None,
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
    """Time every (variant, batch size, precision, mode); one row per case, failures included.

    ``on_case(row, index, total)`` is called after each case (progress display)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as in training (cudnn_benchmark defaults on)
    cases = list(itertools.product(variants, settings.batch_sizes, settings.precisions, settings.modes))
    rows: list[dict[str, Any]] = []
    described: dict[Variant, dict[str, Any]] = {}
    if cases:
        # Once per process, untimed: the first backward passes of a fresh process are slow on
        # the CPU (allocator growth, oneDNN primitive creation), which would otherwise count
        # against whichever case happens to come first.
        variant, batch, asked, _ = cases[0]
        warm = dataclasses.replace(settings, warmup=max(settings.warmup, 3), steps=1, repeats=1)
        try:
            _case(variant, batch, resolve_precision(TrainConfig(precision=asked), device), "train", device, warm)
        except Exception:  # noqa: BLE001 - the real case below records the error
            pass
        finally:
            _free(device)
    for index, (variant, batch, asked, mode) in enumerate(cases):
        precision = resolve_precision(TrainConfig(precision=asked), device)
        row: dict[str, Any] = {
            "slug": variant.slug(), **{f"axis_{k}": v for k, v in variant.axes().items()},
            "device": str(device), "batch_size": batch, "precision": precision, "mode": mode,
            "channels_last": settings.channels_last, "compile": settings.compile,
            "status": "ok", "error": None,
            "step_time_ms": None, "step_times_ms": None, "images_per_s": None, "peak_memory_mb": None,
            "peak_memory_kind": "cuda_allocated" if device.type == "cuda" else "host_peak_rss",
        }
        try:
            if variant not in described:
                model = build_model(variant, settings.num_classes)
                flops = flops_per_image(model, arch_spec(variant.arch).input_size)
                described[variant] = {
                    "params": count_params(model), "flops_forward": flops["forward"], "flops_train": flops["train"],
                }
            row.update(described[variant])
            row.update(_case(variant, batch, precision, mode, device, settings))
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
        rows.append(row)
        if on_case:
            on_case(row, index, len(cases))
    return rows


# --- storage --------------------------------------------------------------------------------------
def bench_dir(results_root: str | Path) -> Path:
    return Path(results_root) / BENCH_DIR


def save_bench(
    rows: list[dict[str, Any]], device: torch.device, settings: BenchSettings, results_root: str | Path
) -> tuple[Path, Path]:
    """Write ``<results>/bench/<UTC time>-<device>.json`` (rows, settings, environment) and the
    rows as a ``.csv`` beside it; returns both paths."""
    import pandas as pd

    created = datetime.now(timezone.utc)
    folder = bench_dir(results_root)
    stem = f"{created.strftime('%Y%m%dT%H%M%S')}-{device.type}"
    for n in itertools.count(1):
        if not (folder / f"{stem}.json").exists():
            break
        stem = f"{created.strftime('%Y%m%dT%H%M%S')}-{device.type}-{n}"
    env = environment(device)
    payload = {
        "kind": "ablate-bench",
        "created": created.isoformat(timespec="microseconds"),  # orders files written in the same second
        "env": env,
        "settings": dataclasses.asdict(settings),
        "rows": [{**r, "device_name": env["device_name"], "torch": env["torch"]} for r in rows],
    }
    json_path = folder / f"{stem}.json"
    write_json_atomic(json_path, payload)
    frame = pd.DataFrame(payload["rows"])
    if "step_times_ms" in frame:
        frame["step_times_ms"] = frame["step_times_ms"].map(lambda v: ";".join(f"{t:.3f}" for t in v) if v else "")
    frame.insert(0, "created", payload["created"])
    csv_path = folder / f"{stem}.csv"
    frame.to_csv(csv_path, index=False)
    return json_path, csv_path


KEY = ("slug", "device_name", "mode", "precision", "batch_size", "channels_last", "compile")


def load_bench(results_root: str | Path) -> Any:
    """Every row of every bench file under ``<results>/bench``, as a pandas DataFrame with the
    file's ``created`` time; only the newest measurement of each case is kept. Empty frame if none."""
    import json

    import pandas as pd

    records = []
    folder = bench_dir(results_root)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(payload, dict) or payload.get("kind") != "ablate-bench":
            continue
        for row in payload.get("rows", []):
            records.append({**row, "created": payload.get("created", ""), "file": path.name})
    frame = pd.DataFrame(records)
    if frame.empty:
        return frame
    frame = frame.sort_values(["created", "file"], kind="stable")
    return frame.drop_duplicates(subset=[k for k in KEY if k in frame], keep="last").reset_index(drop=True)


# --- report ---------------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool]) -> list[str]:
    clean = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return lines


def _plot(frame: Any, path: Path) -> Path:
    """Images/s per variant (bars), one panel per mode, hue = precision x batch, per device."""
    import seaborn as sns
    from matplotlib.figure import Figure

    ok = frame[frame["status"] == "ok"].copy()
    ok["setting"] = ok["precision"] + ", batch " + ok["batch_size"].astype(str)
    if frame["device_name"].nunique() > 1:  # name the device only when there is a choice
        ok["setting"] = ok["device_name"].str.replace(r"\s*\(.*\)$", "", regex=True).str.slice(0, 24) + ": " + ok["setting"]
    modes = [m for m in MODES if m in set(ok["mode"])] or ["train"]
    slugs = list(dict.fromkeys(frame["slug"]))
    height = max(3.0, 0.32 * len(slugs) * max(1, ok["setting"].nunique()) ** 0.5 + 1.5)
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(6.0 * len(modes), height), layout="constrained")
        axes = fig.subplots(1, len(modes), squeeze=False)[0]
        for ax, mode in zip(axes, modes):
            part = ok[ok["mode"] == mode]
            if part.empty:
                ax.text(0.5, 0.5, f"no successful {mode} cases", ha="center", va="center", transform=ax.transAxes)
            else:
                sns.barplot(data=part, y="slug", x="images_per_s", hue="setting", order=slugs, ax=ax, orient="h")
                # Below the axes, so it never covers a bar.
                ax.legend(fontsize=8, title=None, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
            ax.set_title(f"{mode}: images/s (median of repeats)")
            ax.set_xlabel("images / s")
            ax.set_ylabel("")
            ax.tick_params(axis="y", labelsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png", metadata={"Software": None})
    return path


def write_bench_report(results_root: Path, out_root: Path) -> Path | None:
    """Write ``<out_root>/bench/README.md`` (a table per device and mode) and ``throughput.png``
    from the files under ``<results_root>/bench``; returns the README's path, or None when there
    is nothing to report."""
    frame = load_bench(results_root)
    if frame.empty:
        return None
    out = Path(out_root) / BENCH_DIR
    out.mkdir(parents=True, exist_ok=True)
    _plot(frame, out / "throughput.png")

    lines = [
        "# Speed benchmark (`ablate bench`)",
        "",
        "Steady-state speed per variant: synthetic batch already on the device, untimed warm-up steps, then",
        "repeated stretches of steps between device-synchronized clock reads; the step time is the median",
        "stretch's. `train` = forward + loss + backward + fused optimizer step (the function `ablate run` trains",
        "with); `infer` = forward under `torch.inference_mode`. FLOPs count convolutions and linear layers only",
        "(2 per multiply-add; `train` = forward + backward). Peak memory: CUDA allocator peak, or on the CPU the",
        "process's peak resident set during the case. Newest measurement of each case shown.",
        "",
        "![images per second](throughput.png)",
        "",
    ]
    frame = frame.assign(mode_order=frame["mode"].map({m: i for i, m in enumerate(MODES)}))
    frame = frame.sort_values(["device_name", "mode_order", "precision", "batch_size"], kind="stable")
    for (device_name, mode), part in frame.groupby(["device_name", "mode"], sort=False):
        torch_versions = ", ".join(sorted(part["torch"].dropna().astype(str).unique())) if "torch" in part else "?"
        lines += [f"## {device_name} · {mode}", "", f"torch {torch_versions}; measured {part['created'].max()[:19]} UTC.", ""]
        headers = ["variant", "precision", "batch", "images/s", "step ms", "peak MB", "params", "GFLOP/img", "TFLOP/s", "status"]
        right = [False, False, True, True, True, True, True, True, True, False]
        rows = []
        for r in part.to_dict("records"):
            flops = r.get("flops_train") if mode == "train" else r.get("flops_forward")
            status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('error') or ''}"
            rows.append([
                f"`{r['slug']}`", str(r["precision"]), str(r["batch_size"]), _fmt(r.get("images_per_s")),
                _fmt(r.get("step_time_ms"), 2), _fmt(r.get("peak_memory_mb")), _fmt(r.get("params")),
                _fmt(flops / 1e9 if isinstance(flops, (int, float)) and not math.isnan(flops) else None, 3),
                _fmt(r.get("achieved_tflops"), 2), status,
            ])
        lines += _md_table(headers, rows, right) + [""]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --- reference loops ------------------------------------------------------------------------------
def random_splits(images: int, size: int = 65, classes: int = 10, seed: int = 0) -> ImageSplits:
    """Random uint8 images and labels: speed does not depend on pixel values, and making them is
    instant (rendering tens of thousands of ``shapes`` images is not)."""
    from ablate.data import channel_stats

    g = torch.Generator().manual_seed(seed)
    train_x = torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8, generator=g)
    mean, std = channel_stats(train_x[:512])
    return ImageSplits(
        train_x=train_x, train_y=torch.randint(0, classes, (images,), generator=g),
        val_x=torch.randint(0, 256, (64, 3, size, size), dtype=torch.uint8, generator=g),
        val_y=torch.randint(0, classes, (64,), generator=g),
        classes=[str(i) for i in range(classes)], mean=mean, std=std, info={"source": "random"},
    )


def _dtype(precision: str) -> torch.dtype | None:
    if precision not in ("fp32", "bf16", "fp16"):
        raise BenchError(f"reference loops take precision fp32 | bf16 | fp16, got {precision!r}")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


class HandLoop:
    """A training loop written by hand in plain PyTorch with ablate's settings: images resident on
    the device as uint8, a seeded permutation per epoch, normalization on the device, autocast,
    channels_last, fused SGD with momentum and weight decay. No progress hooks, no running
    metrics, no schedule: the floor ablate's harness is measured against."""

    def __init__(
        self, variant: Variant, splits: ImageSplits, device: torch.device, batch_size: int,
        precision: str = "fp32", channels_last: bool = True, seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        self.device, self.batch_size, self.dtype = device, batch_size, _dtype(precision)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = build_model(variant, splits.num_classes).to(device=device, memory_format=self.memory_format)
        self.model.train()
        params = self.model.parameters()
        try:
            self.optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4, fused=True)
        except (RuntimeError, TypeError):
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        self.images = splits.train_x.contiguous().to(device)
        self.labels = splits.train_y.to(device)
        self.mean = torch.tensor(splits.mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(splits.std, device=device).view(1, -1, 1, 1) * 255
        self.gen = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.randperm(len(self.labels), generator=self.gen).to(device), 0
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype is torch.float16)

    def run(self, steps: int) -> None:
        """``steps`` optimizer steps, then wait for the device."""
        n, b = len(self.labels), self.batch_size
        for _ in range(steps):
            if self.pos + b > n:
                self.order, self.pos = torch.randperm(n, generator=self.gen).to(self.device), 0
            idx = self.order[self.pos : self.pos + b]
            self.pos += b
            x = ((self.images[idx].float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)
            y = self.labels[idx]
            with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
                loss = F.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        sync(self.device)


class _PerImage(torch.utils.data.Dataset):
    """What a tutorial's ``transforms.Compose([ToTensor(), Normalize(mean, std)])`` does, per image."""

    def __init__(self, splits: ImageSplits) -> None:
        self.images, self.labels = splits.train_x, splits.train_y
        self.mean = torch.tensor(splits.mean).view(-1, 1, 1)
        self.std = torch.tensor(splits.std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return (self.images[i].float().div(255) - self.mean) / self.std, int(self.labels[i])


class BlogLoop:
    """The loop of a typical tutorial or blog post: fp32, NCHW, images decoded per item in a
    ``DataLoader`` (shuffle, ``num_workers`` processes), each batch copied with ``.to(device)``,
    plain (for-each) SGD, ``nn.CrossEntropyLoss``, ``running_loss += loss.item()`` every step."""

    def __init__(
        self, variant: Variant, splits: ImageSplits, device: torch.device, batch_size: int,
        num_workers: int = 0, seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        self.device = device
        self.model = build_model(variant, splits.num_classes).to(device)
        self.model.train()
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        self.loader = torch.utils.data.DataLoader(
            _PerImage(splits), batch_size=batch_size, shuffle=True, drop_last=True,
            num_workers=num_workers, persistent_workers=num_workers > 0,
            generator=torch.Generator().manual_seed(seed),
        )
        self._batches: Iterator[Any] = iter(())
        self.running_loss = 0.0

    def _next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return next(self._batches)
        except StopIteration:
            self._batches = iter(self.loader)
            return next(self._batches)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            inputs, labels = self._next()
            inputs, labels = inputs.to(self.device), labels.to(self.device)
            self.optimizer.zero_grad()
            outputs = self.model(inputs)
            loss = self.criterion(outputs, labels)
            loss.backward()
            self.optimizer.step()
            self.running_loss += loss.item()
        sync(self.device)


class AblateLoop:
    """ablate's own training loop (:func:`ablate.train.train_epoch` on a :func:`prepare`-d cell),
    one epoch = ``steps_per_epoch`` steps, so that it can be timed beside the reference loops."""

    def __init__(
        self, variant: Variant, splits: ImageSplits, device: torch.device, batch_size: int,
        precision: str = "fp32", channels_last: bool = True, seed: int = 0,
    ) -> None:
        train = TrainConfig(
            epochs=1, batch_size=batch_size, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4,
            precision=precision, channels_last=channels_last,
        )
        cell = Cell("bench", variant, seed, DataConfig(), train)
        self.training: Training = prepare(cell, splits, device)
        self.epoch = 0

    @property
    def steps_per_epoch(self) -> int:
        return len(self.training.train_batches)

    def run_epoch(self) -> dict[str, Any]:
        self.epoch += 1
        return train_epoch(self.training, self.epoch)
