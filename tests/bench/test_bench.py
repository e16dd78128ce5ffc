"""``ablate bench``: variant selection, timing, recorded failures, saved files and the report."""

from __future__ import annotations

import json
import statistics
import time

import pytest
import torch
from matplotlib.image import imread
from torch import nn

from ablate import NORMS, Variant, register_norm
from ablate.bench import (
    BenchError,
    BenchSettings,
    catalogue,
    interleave,
    load_bench,
    run_bench,
    save_bench,
    seconds,
    select_variants,
    single_axis_variants,
    time_steps,
    write_bench_report,
)
from ablate.cli import app
from ablate.runtime.memory import peak_memory_kind

TINY = ["--device", "cpu", "-b", "2", "--warmup", "1", "--steps", "1", "--repeats", "2"]


def test_bench_command_writes_results_and_the_report_renders_them(cli, tmp_path):
    results = tmp_path / "results"
    out = cli.invoke(
        app, ["bench", "relu-overlap-none-drop", "relu-overlap-lrn-drop", *TINY, "--results", str(results)]
    )
    assert out.exit_code == 0, out.output
    (json_file,) = (results / "bench").glob("*.json")
    (csv_file,) = (results / "bench").glob("*.csv")
    payload = json.loads(json_file.read_text())
    assert payload["kind"] == "ablate-bench" and payload["env"]["torch"] == torch.__version__
    rows = payload["rows"]
    assert [(r["slug"], r["mode"]) for r in rows] == [
        ("relu-overlap-none-drop", "train"),
        ("relu-overlap-none-drop", "infer"),
        ("relu-overlap-lrn-drop", "train"),
        ("relu-overlap-lrn-drop", "infer"),
    ]
    for r in rows:
        assert r["status"] == "ok" and r["precision"] == "fp32" and r["batch_size"] == 2
        assert len(r["step_times_ms"]) == 2
        assert r["step_time_ms"] == pytest.approx(statistics.median(r["step_times_ms"]))
        assert r["images_per_s"] == pytest.approx(2 / (r["step_time_ms"] / 1e3))
        assert r["params"] == 14_601_930 and r["flops_forward"] == 618_328_608
        assert r["flops_train"] > 2 * r["flops_forward"]
        assert r["peak_memory_mb"] is None or r["peak_memory_mb"] > 0
        assert r["peak_memory_kind"] == peak_memory_kind(torch.device("cpu"))  # one name, shared with training
    assert len(csv_file.read_text().strip().splitlines()) == 1 + len(rows)
    assert "relu-overlap-lrn-drop" in out.output and str(json_file) in out.output.replace("\n", "")

    readme = write_bench_report(results, tmp_path / "reports")
    assert readme == tmp_path / "reports" / "bench" / "README.md"
    text = readme.read_text()
    assert "| `relu-overlap-lrn-drop` | fp32 | 2 |" in text and "![images per second](throughput.png)" in text
    png = readme.parent / "throughput.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(png)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0  # a real, non-blank image


def test_ablate_report_includes_the_bench_results(cli, tmp_path):
    results, reports = tmp_path / "results", tmp_path / "reports"
    missing = cli.invoke(app, ["report", "bench", "--results", str(results), "--out", str(reports)])
    assert missing.exit_code == 2 and "no results under" in missing.output
    assert (
        cli.invoke(
            app, ["bench", "relu-overlap-none-drop", *TINY, "--mode", "infer", "--results", str(results)]
        ).exit_code
        == 0
    )
    for args in ([], ["bench"]):  # everything (here: only bench results), or bench by name
        shown = cli.invoke(app, ["report", *args, "--results", str(results), "--out", str(reports)])
        assert shown.exit_code == 0, shown.output
        assert "speed benchmark report" in shown.output
        assert (reports / "bench" / "README.md").is_file() and (reports / "bench" / "throughput.png").is_file()


def test_report_is_none_without_bench_results(tmp_path):
    assert write_bench_report(tmp_path / "results", tmp_path / "reports") is None
    (tmp_path / "results" / "bench").mkdir(parents=True)
    (tmp_path / "results" / "bench" / "junk.json").write_text("{not json")
    assert write_bench_report(tmp_path / "results", tmp_path / "reports") is None
    assert not (tmp_path / "reports" / "bench").exists()


@pytest.fixture
def broken_norm():
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("this layer always fails")

    register_norm("broken_for_bench")(lambda channels: Broken())
    yield "broken_for_bench"
    NORMS.unregister("broken_for_bench")


def test_a_failing_variant_is_recorded_and_the_sweep_goes_on(broken_norm, tmp_path):
    settings = BenchSettings(batch_sizes=(2,), modes=("train",), warmup=0, steps=1, repeats=1)
    seen = []
    rows = run_bench(
        [Variant(norm=broken_norm), Variant()], torch.device("cpu"), settings, lambda r, i, n: seen.append((i, n))
    )
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert rows[0]["error"] == "RuntimeError: this layer always fails" and rows[0]["images_per_s"] is None
    assert rows[1]["images_per_s"] > 0 and seen == [(0, 2), (1, 2)]
    json_path, _ = save_bench(rows, torch.device("cpu"), settings, tmp_path)
    frame = load_bench(tmp_path)
    assert list(frame["status"]) == ["failed", "ok"] and json_path.parent == tmp_path / "bench"
    readme = write_bench_report(tmp_path, tmp_path / "reports")
    assert "failed: RuntimeError: this layer always fails" in readme.read_text()


def test_cli_exit_code_1_when_a_case_failed_but_results_are_saved(cli, broken_norm, tmp_path):
    out = cli.invoke(
        app, ["bench", f"relu-overlap-{broken_norm}-drop", *TINY, "--mode", "infer", "--results", str(tmp_path)]
    )
    assert out.exit_code == 1, out.output
    assert "1 of 1 case(s) failed" in out.output
    assert len(list((tmp_path / "bench").glob("*.json"))) == 1


def test_newest_measurement_of_a_case_wins(tmp_path):
    settings = BenchSettings(batch_sizes=(2,), modes=("infer",), warmup=0, steps=1, repeats=1)
    rows = run_bench([Variant()], torch.device("cpu"), settings)
    save_bench(rows, torch.device("cpu"), settings, tmp_path)
    save_bench([{**rows[0], "images_per_s": 123.0}], torch.device("cpu"), settings, tmp_path)
    frame = load_bench(tmp_path)
    assert len(frame) == 1 and frame["images_per_s"].iloc[0] == 123.0


def test_variant_selection(write_experiment):
    assert [v.slug() for v in single_axis_variants()] == [
        "relu-overlap-none-drop",
        "tanh-overlap-none-drop",
        "sigmoid-overlap-none-drop",
        "relu-nonoverlap-none-drop",
        "relu-overlap-lrn-drop",
        "relu-overlap-batchnorm-drop",
        "relu-overlap-none-nodrop",
    ]
    assert select_variants([]) == single_axis_variants()
    assert [v.slug() for v in select_variants(["tanh-*-lrn-nodrop"])] == [
        "tanh-overlap-lrn-nodrop",
        "tanh-nonoverlap-lrn-nodrop",
    ]
    assert len(select_variants(["*"])) == 72  # 36 per preset x 2 presets
    assert all(v.arch == "alexnet" for v in select_variants(["alexnet-*"]))
    path = write_experiment('name = "p"\nseeds = [0]\n[axes]\npooling = ["overlap", "nonoverlap"]\n', "p.toml")
    assert [v.slug() for v in select_variants([str(path), "relu-overlap-none-drop"])] == [
        "relu-overlap-none-drop",
        "relu-nonoverlap-none-drop",
    ]
    with pytest.raises(
        BenchError, match="no variant slug matches 'relu-overlap-lrm-drop'.*did you mean 'relu-overlap-lrn-drop'"
    ):
        select_variants(["relu-overlap-lrm-drop"])


def test_settings_are_validated_with_one_line_errors(cli):
    with pytest.raises(BenchError, match="precision 'fp8'"):
        BenchSettings(precisions=("fp8",))
    out = cli.invoke(app, ["bench", "--device", "cpu", "-b", "0"])
    assert out.exit_code == 2 and "batch sizes must be integers >= 1" in out.output
    out = cli.invoke(app, ["bench", "--device", "cpu", "-b", "x"])
    assert out.exit_code == 2 and "--batch-size x" in out.output


def test_time_steps_counts_only_timed_calls():
    calls = []

    def fn() -> None:
        calls.append(time.perf_counter())
        time.sleep(0.01 if len(calls) > 2 else 0.2)  # slow warm-up calls must not be timed

    per_step = time_steps(fn, torch.device("cpu"), warmup=2, steps=3, repeats=2)
    assert len(calls) == 2 + 3 * 2 and len(per_step) == 2
    assert all(0.009 < t < 0.1 for t in per_step), per_step


def test_interleave_takes_turns_and_reverses_the_order_every_other_round():
    calls: list[str] = []
    seen: list[tuple[int, str, float]] = []

    def measure(name: str, value: float):
        return lambda: calls.append(name) or value

    got = interleave(
        {"a": measure("a", 1.0), "b": measure("b", 2.0), "c": measure("c", 3.0)},
        3,
        lambda r, name, v: seen.append((r, name, v)),
    )
    assert calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert got == {"a": [1.0] * 3, "b": [2.0] * 3, "c": [3.0] * 3}
    assert seen[:4] == [(0, "a", 1.0), (0, "b", 2.0), (0, "c", 3.0), (1, "c", 3.0)]


def test_seconds_times_one_call():
    assert 0.04 < seconds(lambda: time.sleep(0.05), torch.device("cpu")) < 0.5


def test_a_newly_registered_axis_value_joins_the_catalogue(broken_norm):
    # The bench reads the axis values from the same table as experiment validation does.
    slugs = {v.slug() for v in catalogue(["alexnet65"])}
    assert f"relu-overlap-{broken_norm}-drop" in slugs and len(slugs) == 3 * 2 * 4 * 2
    assert Variant(norm=broken_norm) in single_axis_variants()


def test_flops_per_image_match_a_hand_count_and_ignore_the_lrn_matmul():
    from ablate import build_model
    from ablate.models.flops import flops_per_image

    # alexnet65, 2 FLOPs per multiply-add: conv k x k x c_in per output value, then the FC layers.
    convs = [(55, 48, 3, 11), (27, 128, 48, 5), (13, 192, 128, 3), (13, 192, 192, 3), (13, 128, 192, 3)]
    hand = sum(2 * side * side * c_out * c_in * k * k for side, c_out, c_in, k in convs)
    hand += 2 * (128 * 6 * 6 * 2048 + 2048 * 2048 + 2048 * 10)
    assert hand == 618_328_608
    for norm in ("none", "lrn", "batchnorm"):
        flops = flops_per_image(build_model(Variant(norm=norm), 10), 65)
        assert flops["forward"] == hand, norm
        # backward: weight gradients everywhere plus input gradients except for conv1 (its input,
        # the image, needs none), i.e. twice the forward minus conv1's share.
        conv1 = 2 * 55 * 55 * 48 * 3 * 11 * 11
        assert flops["train"] == 3 * hand - conv1, norm
