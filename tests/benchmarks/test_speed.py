"""pytest-benchmark suite: forward and forward+backward of the alexnet65 baseline and each
single-axis variant, and three training loops on the same model (ablate's, a hand-written one and
a blog-style DataLoader one, from ``scripts/reference_loops.py``), on the CPU at a small batch and
on CUDA when present; plus the three loops taking turns (``ablate.bench.timing.interleave``, as
``scripts/compare_loops.py`` does), their ratios recorded in the benchmark's ``extra_info``.

    pytest tests/benchmarks --benchmark-only --benchmark-group-by=group

prints one table per group ("forward cpu b8 fp32", "loop cuda b256", ...), so variants, and the
loops, can be read against each other; every timed function ends with a device synchronization.
Without --benchmark-only each function runs once, as a correctness test (see conftest.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from reference_loops import AblateLoop, BlogLoop, HandLoop, random_splits, warmed  # scripts/ (see conftest.py)

from ablate.bench.timing import interleave
from ablate.bench.variants import single_axis_variants
from ablate.models.alexnet import build_model
from ablate.runtime.clock import sync
from ablate.runtime.precision import autocast_for
from ablate.variant import Variant


@dataclass(frozen=True)
class Setting:
    device: str
    batch: int
    precision: str
    rounds: int
    warmup_rounds: int
    loop_steps: int  # optimizer steps per timed round of a loop
    blog_workers: int

    @property
    def id(self) -> str:
        return f"{self.device}-b{self.batch}-{self.precision}"


CPU = Setting("cpu", batch=8, precision="fp32", rounds=5, warmup_rounds=2, loop_steps=4, blog_workers=0)
CUDA = Setting("cuda", batch=256, precision="bf16", rounds=20, warmup_rounds=3, loop_steps=20, blog_workers=4)
SETTINGS = [
    pytest.param(CPU, id=CPU.id),
    pytest.param(
        CUDA, id=CUDA.id, marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
    ),
]
VARIANTS = [pytest.param(v, id=v.slug()) for v in single_axis_variants()]
NUM_CLASSES = 10


def _model_and_batch(variant: Variant, s: Setting):
    device = torch.device(s.device)
    torch.manual_seed(0)
    model = build_model(variant, NUM_CLASSES).to(device=device, memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(s.batch, 3, model.input_size, model.input_size, generator=g)
    x = x.to(device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (s.batch,), generator=g).to(device)
    return device, model, x, y


def _describe(benchmark, kind: str, variant: str, s: Setting, **more) -> None:
    benchmark.group = f"{kind} {s.device} b{s.batch} {s.precision}"
    benchmark.extra_info.update(
        {
            "kind": kind,
            "variant": variant,
            "device": s.device,
            "batch": s.batch,
            "precision": s.precision,
            "channels_last": True,
            "torch": torch.__version__,
            **more,
        }
    )


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_forward(benchmark, variant: Variant, setting: Setting):
    device, model, x, _ = _model_and_batch(variant, setting)
    model.eval()
    autocast = autocast_for(setting.precision, device)

    def forward() -> torch.Tensor:
        with torch.inference_mode(), autocast():
            out = model(x)
        sync(device)
        return out

    _describe(benchmark, "forward", variant.slug(), setting)
    out = benchmark.pedantic(forward, rounds=setting.rounds, warmup_rounds=setting.warmup_rounds)
    assert out.shape == (setting.batch, NUM_CLASSES) and torch.isfinite(out.float()).all()


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_backward(benchmark, variant: Variant, setting: Setting):
    device, model, x, y = _model_and_batch(variant, setting)
    model.train()
    autocast = autocast_for(setting.precision, device)

    def forward_backward() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        sync(device)
        return loss

    _describe(benchmark, "forward+backward", variant.slug(), setting)
    loss = benchmark.pedantic(forward_backward, rounds=setting.rounds, warmup_rounds=setting.warmup_rounds)
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.fixture(scope="module")
def splits_by_size():
    made = {}

    def get(images: int):
        if images not in made:
            made[images] = random_splits(images)  # speed does not depend on pixel values
        return made[images]

    return get


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("loop", ["ablate", "hand", "blog"])
def test_training_loop(benchmark, loop: str, setting: Setting, splits_by_size):
    """The same model trained for ``loop_steps`` steps per round by three loops: ablate's
    (device-resident batches, train_step, running metrics, schedule, progress hook), a plain
    hand-written one with the same settings, and a tutorial's DataLoader loop (fp32, NCHW,
    per-image transforms, .to(device) per batch, loss.item() per step)."""
    device = torch.device(setting.device)
    splits = splits_by_size(setting.batch * setting.loop_steps)
    variant = Variant()
    if loop == "ablate":
        runner = AblateLoop(variant, splits, device, setting.batch, setting.precision)
        assert runner.steps_per_epoch == setting.loop_steps
        model, run = runner.training.model, runner.run_epoch
        precision, layout = setting.precision, "channels_last"
    elif loop == "hand":
        runner = HandLoop(variant, splits, device, setting.batch, setting.precision)
        model, run = runner.model, lambda: runner.run(setting.loop_steps)
        precision, layout = setting.precision, "channels_last"
    else:
        runner = BlogLoop(variant, splits, device, setting.batch, num_workers=setting.blog_workers)
        model, run = runner.model, lambda: runner.run(setting.loop_steps)
        precision, layout = "fp32", "contiguous"
    before = [p.detach().clone() for p in model.parameters()]

    benchmark.group = f"loop {setting.device} b{setting.batch}"
    benchmark.extra_info.update(
        {
            "kind": "loop",
            "loop": loop,
            "variant": variant.slug(),
            "device": setting.device,
            "batch": setting.batch,
            "precision": precision,
            "layout": layout,
            "steps_per_round": setting.loop_steps,
            "images_per_round": setting.batch * setting.loop_steps,
            "torch": torch.__version__,
        }
    )
    benchmark.pedantic(run, rounds=max(5, setting.rounds // 4), warmup_rounds=1)
    sync(device)
    changed = [not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters())]
    assert all(changed), "every parameter should have been updated"
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("setting", SETTINGS)
def test_loops_taking_turns(benchmark, setting: Setting, splits_by_size):
    """The three loops interleaved as ``scripts/compare_loops.py`` runs them (one epoch each per
    round, order reversed every other round), each on its own clock: ablate's from
    ``train_epoch``, the others from ``StepTimer`` around their steps. The per-round ratios to the
    hand-written loop go into ``extra_info``; the benchmark's own time is the whole comparison."""
    device = torch.device(setting.device)
    splits = splits_by_size(setting.batch * setting.loop_steps)
    variant = Variant()
    loops = {
        "ablate": AblateLoop(variant, splits, device, setting.batch, setting.precision),
        "hand": HandLoop(variant, splits, device, setting.batch, setting.precision),
        "blog": BlogLoop(variant, splits, device, setting.batch, num_workers=setting.blog_workers),
    }
    rounds = max(3, setting.rounds // 4) if benchmark.enabled else 1  # run-once mode: a smoke test

    def compare() -> dict[str, list[float]]:
        return interleave({name: warmed(loop) for name, loop in loops.items()}, rounds)

    benchmark.group = f"loops interleaved {setting.device} b{setting.batch}"
    got = benchmark.pedantic(compare, rounds=1, iterations=1)
    assert all(len(v) == rounds and all(math.isfinite(x) and x > 0 for x in v) for v in got.values()), got
    benchmark.extra_info.update(
        {
            "kind": "loops-interleaved",
            "variant": variant.slug(),
            "device": setting.device,
            "batch": setting.batch,
            "precision": setting.precision,
            "rounds": rounds,
            "images_per_s": got,
            **{
                f"{name}/hand per round": [a / b for a, b in zip(got[name], got["hand"])] for name in ("ablate", "blog")
            },
            "torch": torch.__version__,
        }
    )
