"""``ablate bench --fuse``: K seeds fused into one model, timed as all members' and one member's
images/s; and ``fuse_seeds = "auto"``: the K its probe picks, and why."""

from __future__ import annotations

import json

import pytest
import torch

from ablate.bench import MIN_GAIN, BenchSettings, choose_fuse, load_bench, pick_fuse, run_bench, save_bench
from ablate.bench import fuse as fuse_module
from ablate.cli import app
from ablate.config import TrainConfig
from ablate.models.alexnet import ArchSpec
from ablate.registry import ARCHS, register_arch
from ablate.variant import Variant

CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def tiny():
    register_arch("tiny-bench-fuse")(ArchSpec(19, (8, 16, 16, 16, 8), 5, 1, 0, 32, 1, "tiny"))
    yield
    ARCHS.unregister("tiny-bench-fuse")


VARIANT = Variant(arch="tiny-bench-fuse", norm="lrn")


def test_fused_cases_count_every_members_images_and_one_members(tmp_path):
    settings = BenchSettings(batch_sizes=(4,), modes=("train", "infer"), fuse=(1, 3), warmup=1, steps=2, repeats=1)
    rows = run_bench([VARIANT], CPU, settings)
    assert [(r["mode"], r["fuse"], r["status"]) for r in rows] == [
        ("train", 1, "ok"),
        ("train", 3, "ok"),
        ("infer", 1, "ok"),
        ("infer", 3, "ok"),
    ]
    for r in rows:
        step = r["step_time_ms"] / 1e3
        assert r["images_per_s"] == pytest.approx(r["fuse"] * 4 / step)
        assert r["member_images_per_s"] == pytest.approx(4 / step)
        assert r["achieved_tflops"] == pytest.approx(
            r["flops_train" if r["mode"] == "train" else "flops_forward"] * r["images_per_s"] / 1e12
        )
    save_bench(rows, CPU, settings, tmp_path)
    frame = load_bench(tmp_path)
    assert sorted(frame["fuse"]) == [1, 1, 3, 3]  # one case per K: none replaces another


def test_rows_from_before_fuse_read_as_one_model(tmp_path):
    settings = BenchSettings(batch_sizes=(2,), modes=("infer",), warmup=0, steps=1, repeats=1)
    rows = run_bench([VARIANT], CPU, settings)
    path, _ = save_bench(rows, CPU, settings, tmp_path)
    payload = json.loads(path.read_text())
    for row in payload["rows"]:
        del row["fuse"], row["member_images_per_s"]
    path.write_text(json.dumps(payload))
    frame = load_bench(tmp_path)
    assert list(frame["fuse"]) == [1] and list(frame["member_images_per_s"]) == list(frame["images_per_s"])


def row(k: int, images_per_s: float, status: str = "ok") -> dict:
    return {"fuse": k, "mode": "train", "status": status, "images_per_s": images_per_s, "device": "cuda:0"}


def test_auto_takes_a_larger_k_only_for_a_real_gain():
    assert pick_fuse([row(1, 100), row(2, 180), row(4, 300), row(8, 310)]).k == 4
    choice = pick_fuse([row(1, 100), row(2, 100 * MIN_GAIN * 0.99)])
    assert choice.k == 1
    assert choice.note == (
        "fuse_seeds auto: K=1 on cuda:0 (K=2 trained 114 img/s against 100 at K=1: 1.14x, under the 1.15x a "
        "larger K must gain)"
    )
    assert pick_fuse([row(1, 100), row(2, 200), row(4, 0, "oom")]).note.endswith("(K=4 ran out of memory)")
    assert pick_fuse([row(1, 100), row(2, 200)]).note.endswith("(the largest K probed, 2.00x the img/s of K=1)")
    assert pick_fuse([row(1, 0, "failed")]).k == 1


def test_the_probe_stops_at_the_first_k_that_does_not_gain(monkeypatch):
    speeds = {1: 100.0, 2: 250.0, 4: 260.0, 8: 1000.0}
    tried: list[int] = []

    def fake(variant, batch, precision, mode, k, device, settings, described=None):
        tried.append(k)
        assert (batch, precision, mode, settings.optimizer) == (64, "bf16", "train", "adam")
        return {**row(k, speeds[k]), "device": str(device)}

    monkeypatch.setattr(fuse_module, "measure_case", fake)
    train = TrainConfig(batch_size=64, precision="bf16", optimizer="adam")
    choice = choose_fuse(VARIANT, train, CPU, seeds=10)
    assert tried == [1, 2, 4] and choice.k == 2 and len(choice.rows) == 3  # K=8 was never built
    tried.clear()
    assert choose_fuse(VARIANT, train, CPU, seeds=3).k == 2 and tried == [1, 2]  # no K above the seeds there are


def test_bench_command_fuse_list_and_auto(cli, tmp_path, write_experiment):
    exp = write_experiment('name = "b"\nseeds = [0]\n[model]\narch = "tiny-bench-fuse"\n', "b.toml")
    args = ["bench", str(exp), "--device", "cpu", "-b", "2", "--mode", "train", "--results", str(tmp_path)]
    out = cli.invoke(app, [*args, "--warmup", "0", "--steps", "1", "--repeats", "1", "--fuse", "1,2"])
    assert out.exit_code == 0, out.output
    assert "fuse_seeds auto: K=" in out.output  # what auto would take from these numbers
    out = cli.invoke(app, [*args, "--fuse", "auto"])
    assert out.exit_code == 0, out.output
    assert "batch 2: fuse_seeds auto: K=" in out.output and "on cpu (" in out.output
    bad = cli.invoke(app, [*args, "--fuse", "0"])
    assert bad.exit_code == 2 and "seeds per fused model must be integers >= 1" in bad.output
