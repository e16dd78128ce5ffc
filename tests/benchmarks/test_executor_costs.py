"""What the executors' bookkeeping costs: a claim per cell, a checkpoint per epoch, and the
step-level log points (``log_every``) inside the training loop.

Measured with ``pytest tests/benchmarks/test_executor_costs.py --benchmark-only``; under plain
``pytest -q`` each runs once as a smoke test (see conftest.py).
"""

from __future__ import annotations

import dataclasses
import statistics

import pytest
import torch

from ablate.bench.timing import interleave
from ablate.execute.runner import Datasets
from ablate.experiment.experiment import parse_experiment
from ablate.store import checkpoints as checkpoint
from ablate.store.claims import HeldClaim
from ablate.store.folder import append_event
from ablate.train.hooks import CellHooks
from ablate.train.loop import train_epoch
from ablate.train.resume import save_checkpoint
from ablate.train.setup import prepare


def test_claim_overhead_per_cell(benchmark, tmp_path):
    """Everything the claim protocol adds to one cell: create the claim (temporary file + hard
    link), start the heartbeat thread, the start and finish events, release (read, unlink)."""
    n = iter(range(10**9))

    def one_cell() -> None:
        run_id = f"{next(n):016x}"
        lease = HeldClaim(tmp_path, "exp", run_id)
        assert lease.acquire()
        append_event(tmp_path, "exp", "start", run_id)
        append_event(tmp_path, "exp", "finish", run_id, status="ok")
        lease.release()

    benchmark.group = "executor bookkeeping"
    benchmark.pedantic(one_cell, rounds=200, warmup_rounds=5, iterations=1)
    benchmark.extra_info.update({"kind": "claim per cell", "filesystem": str(tmp_path)})


@pytest.fixture(scope="module")
def alexnet65_run():
    """A prepared AlexNet-65 cell (10 classes, Adam) one epoch in, so the optimizer holds state."""
    raw = {
        "name": "cost",
        "seeds": [0],
        "data": {"train_size": 256, "val_size": 32},
        "train": {"epochs": 2, "batch_size": 32, "optimizer": "adam", "lr": 3e-4},
    }
    cell = parse_experiment(raw, "cost.toml").cells()[0]
    splits = Datasets()(cell)
    run = prepare(cell, splits, torch.device("cpu"))
    train_epoch(run, 1)
    return cell, splits, run


def test_checkpoint_cost_per_epoch(benchmark, alexnet65_run, tmp_path):
    """One end-of-epoch checkpoint of AlexNet-65 with Adam: weights, two moment buffers, RNGs."""
    cell, _splits, run = alexnet65_run
    hooks = run.members[0].hooks = CellHooks(checkpoint=tmp_path / "c.pt")
    sizes: list[int] = []
    hooks.on_checkpoint = lambda saved, why: sizes.append(saved.bytes)
    benchmark.group = "executor bookkeeping"
    benchmark.pedantic(lambda: save_checkpoint(run, "epoch", None), rounds=5, warmup_rounds=1, iterations=1)
    state = checkpoint.load(tmp_path / "c.pt", cell.run_id, torch.device("cpu"))
    assert state is not None and state["done_steps"] == run.done_steps
    benchmark.extra_info.update(
        {
            "kind": "checkpoint per epoch",
            "variant": cell.variant.slug(),
            "optimizer": "adam",
            "megabytes": sizes[-1] / 2**20,
            "params": sum(p.numel() for p in run.model.parameters()),
        }
    )


def test_log_every_costs_under_two_percent(benchmark, alexnet65_run):
    """Training throughput with the default step logging against none, epochs taking turns."""
    cell, splits, _ = alexnet65_run
    runs = {
        "default": prepare(cell, splits, torch.device("cpu")),
        "off": prepare(
            dataclasses.replace(cell, train=dataclasses.replace(cell.train, log_every=0)), splits, torch.device("cpu")
        ),
    }
    assert runs["default"].log_every > 0 and runs["off"].log_every == 0
    epochs = {name: 0 for name in runs}

    def epoch_of(name: str):
        def measure() -> float:
            epochs[name] += 1
            done = train_epoch(runs[name], epochs[name])
            return done["timed_images"] / done["timed_seconds"] if done["timed_seconds"] else float("nan")

        return measure

    rounds = 7 if benchmark.enabled else 1
    benchmark.group = "executor bookkeeping"
    got = benchmark.pedantic(lambda: interleave({n: epoch_of(n) for n in runs}, rounds), rounds=1, iterations=1)
    ratios = [a / b for a, b in zip(got["default"][1:], got["off"][1:])] or [float("nan")]  # first round warms up
    benchmark.extra_info.update(
        {
            "kind": "log_every default vs 0",
            "images_per_s": got,
            "ratio per round": ratios,
            "median ratio": statistics.median(ratios),
            "log_every": runs["default"].log_every,
        }
    )
    assert runs["default"].members[0].steps and not runs["off"].members[0].steps
