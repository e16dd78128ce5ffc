"""``ablate report``: planted effects come out right, bad runs are reported, output is deterministic,
and a report on a small real run has every variant, valid PNGs and CSVs that parse back."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ablate.cli import app
from ablate.report.build import build_report
from ablate.variant import Variant

from helpers.planted import Outcome, seeded_noise, write_planted

BASE = "relu-overlap-none-drop"
BETTER, WORSE, SAME = "relu-nonoverlap-none-drop", "relu-overlap-lrn-drop", "tanh-overlap-none-drop"
# Planted per-seed differences against the baseline (accuracy, as a fraction).
PLANTED = {BASE: 0.0, BETTER: 0.05, WORSE: -0.04, SAME: 0.0}
ONE_AT_A_TIME = {"pooling": ["nonoverlap"], "norm": ["lrn"], "activation": ["tanh"]}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def planted_outcome(axes: dict, seed: int) -> Outcome:
    """Large seed-to-seed spread (+-3 points, shared by every variant of a seed: pairing removes
    it) plus a planted effect per variant plus small per-run noise (sd 0.3 points)."""
    slug = Variant(**axes).slug()
    seed_effect = 0.03 * math.sin(1.7 * seed + 0.4)
    noise = seeded_noise(1, slug, seed).normal(0, 0.003)
    return Outcome(final_val_acc=0.55 + seed_effect + PLANTED[slug] + noise)


def _planted(root: Path, seeds=range(6), outcome=planted_outcome, name="planted") -> None:
    write_planted(root, name, ONE_AT_A_TIME, list(seeds), outcome, design="one-at-a-time")


def _cli_report(cli, results: Path, out: Path, *args: str):
    result = cli.invoke(app, ["report", *args, "--results", str(results), "--out", str(out)])
    return result


def test_planted_effects_give_intervals_holding_them_and_the_right_verdicts(cli, tmp_path: Path) -> None:
    _planted(tmp_path / "results")
    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports")
    assert result.exit_code == 0, result.output
    comp = pd.read_csv(tmp_path / "reports" / "planted" / "comparisons.csv")
    for column in ("variant", "metric", "diff", "ci_low", "ci_high", "p", "p_holm", "verdict"):
        assert column in comp.columns
    acc = comp[comp["metric"] == "final_val_acc"].set_index("variant")
    assert list(acc.index) == [BETTER, WORSE, SAME]
    for variant, verdict in ((BETTER, "better"), (WORSE, "worse"), (SAME, "no detectable difference")):
        row = acc.loc[variant]
        assert row["n"] == 6
        assert row["ci_low"] <= PLANTED[variant] <= row["ci_high"], (variant, row["ci_low"], row["ci_high"])
        assert row["diff"] == pytest.approx(PLANTED[variant], abs=0.004)
        assert row["verdict"] == verdict, variant
    # Holm over the three variants on one metric: the smallest p is multiplied by 3
    smallest = acc["p"].idxmin()
    assert acc.loc[smallest, "p_holm"] == pytest.approx(min(1.0, 3 * acc.loc[smallest, "p"]), rel=1e-6)
    readme = (tmp_path / "reports" / "planted" / "README.md").read_text()
    headline = _answer_rows(readme)
    for variant, verdict in ((BETTER, "better"), (WORSE, "worse")):
        row = acc.loc[variant]
        shown = f"{100 * row['diff']:+.2f} [{100 * row['ci_low']:+.2f}, {100 * row['ci_high']:+.2f}]"
        assert headline[variant][2] == shown and headline[variant][-1] == f"**{verdict}**", headline[variant]
        assert headline[variant][4] == f"{100 * row['mdd']:.2f}"  # power is a column, not a sentence
    assert headline[SAME][-1] == "**no detectable difference**"
    assert "no detectable difference" in readme


def test_fewer_than_two_seeds_gives_no_interval(cli, tmp_path: Path) -> None:
    _planted(tmp_path / "results", seeds=[3])
    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "reports" / "planted"
    comp = pd.read_csv(folder / "comparisons.csv")
    acc = comp[comp["metric"] == "final_val_acc"]
    assert acc["ci_low"].isna().all() and acc["ci_high"].isna().all() and acc["p"].isna().all()
    assert set(acc["verdict"]) == {"not enough seeds"}
    assert (acc["note"].str.contains("no interval can be given")).all()
    summary = pd.read_csv(folder / "summary.csv")
    assert summary["final_val_acc_ci_low"].isna().all() and (summary["n"] == 1).all()
    readme = (folder / "README.md").read_text()
    base_line = next(line for line in readme.splitlines() if line.startswith(f"| `{BASE}` (baseline) |"))
    assert "(no CI, n=1)" in base_line and "[" not in base_line
    assert (
        _answer_rows(readme)[BETTER][2].startswith("+")
        and "(no CI, n=1)" in readme
        and "**not enough seeds**" in readme
    )


def test_missing_failed_and_diverged_runs_are_reported(cli, tmp_path: Path) -> None:
    bad = {(BETTER, 1): "failed", (BETTER, 2): "missing", (WORSE, 0): "diverged", (BASE, 4): "failed"}

    def outcome(axes: dict, seed: int) -> Outcome:
        o = planted_outcome(axes, seed)
        o.status = bad.get((Variant(**axes).slug(), seed), "ok")
        return o

    _planted(tmp_path / "results", outcome=outcome)
    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "reports" / "planted"
    runs = pd.read_csv(folder / "runs.csv")
    assert len(runs) == 4 * 6  # every cell, including the missing one
    got = {(r.variant, r.seed): r.status for r in runs.itertuples() if r.status != "ok"}
    assert got == bad
    summary = pd.read_csv(folder / "summary.csv").set_index("variant")
    assert summary.loc[BETTER, ["n", "n_failed", "n_missing"]].tolist() == [4, 1, 1]
    assert summary.loc[WORSE, ["n", "n_diverged"]].tolist() == [5, 1]
    assert summary.loc[BASE, ["n", "n_failed"]].tolist() == [5, 1]
    comp = pd.read_csv(folder / "comparisons.csv")
    acc = comp[comp["metric"] == "final_val_acc"].set_index("variant")
    assert acc.loc[BETTER, "seeds"] == "0 3 5" and acc.loc[BETTER, "n"] == 3  # paired only where both are ok
    readme = (folder / "README.md").read_text()
    section = readme.split("## Runs that are not ok")[1].split("## Summary")[0]
    for (variant, seed), status in bad.items():
        assert any(f"`{variant}` | {seed} | {status}" in line for line in section.splitlines()), (variant, seed)
    assert "RuntimeError: out of memory" in section and "no result file" in section
    assert "1 failed, 1 missing" in readme  # the summary table's "not ok" column
    assert "24 cells: 20 ok, 1 diverged, 2 failed, 1 missing" in readme


def test_report_is_deterministic(tmp_path: Path) -> None:
    _planted(tmp_path / "results")
    first = build_report(tmp_path / "results", "planted", tmp_path / "a")
    second = build_report(tmp_path / "results", "planted", tmp_path / "b")
    names = sorted(p.name for p in first.files if p.suffix in (".csv", ".md"))
    assert names == ["README.md", "claims.csv", "comparisons.csv", "epochs.csv", "runs.csv", "summary.csv"]
    for name in names:
        assert (first.folder / name).read_bytes() == (second.folder / name).read_bytes(), name


def test_baseline_option_changes_the_reference(cli, tmp_path: Path) -> None:
    _planted(tmp_path / "results")
    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports", "--baseline", BETTER)
    assert result.exit_code == 0, result.output
    comp = pd.read_csv(tmp_path / "reports" / "planted" / "comparisons.csv")
    acc = comp[comp["metric"] == "final_val_acc"].set_index("variant")
    assert set(acc["baseline"]) == {BETTER} and BETTER not in acc.index
    assert acc.loc[BASE, "ci_low"] <= -0.05 <= acc.loc[BASE, "ci_high"] and acc.loc[BASE, "verdict"] == "worse"


@pytest.mark.parametrize(
    "args,expected",
    [
        (["nope"], "unknown experiment 'nope'"),
        (["planted", "--baseline", "relu-overlap"], "unknown baseline 'relu-overlap'"),
        (["--target-acc", "60"], "--target-acc 60: expected a fraction between 0 and 1"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(cli, tmp_path: Path, args: list[str], expected: str) -> None:
    _planted(tmp_path / "results", seeds=[0])
    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports", *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.output


def test_no_results_is_an_error_and_non_experiment_folders_are_skipped(cli, tmp_path: Path) -> None:
    (tmp_path / "results" / "bench").mkdir(parents=True)  # someone else's folder, no runs/
    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports")
    assert result.exit_code == 2 and "no results under" in result.output
    _planted(tmp_path / "results", seeds=[0, 1])
    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports")
    assert result.exit_code == 0, result.output
    # README.md at the top: the index of reports (ablate.report.index), no folder for bench/
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["README.md", "planted"]


# --- a small real run ------------------------------------------------------------------------------
REAL = """
name = "real"
seeds = [0, 1]
design = "grid"
[axes]
pooling = ["overlap", "nonoverlap"]
[data]
train_size = 16
val_size = 8
[train]
epochs = 2
batch_size = 16
optimizer = "adam"
lr = 3e-4
"""


@pytest.fixture(scope="module")
def real_results(tmp_path_factory) -> Path:
    """Train 2 variants x 2 seeds x 2 epochs of one step on 16 generated images (~10 s on 2 busy cores)."""
    import torch

    from ablate.execute.runner import run_experiment
    from ablate.experiment.experiment import load_experiment

    folder = tmp_path_factory.mktemp("real")
    (folder / "real.toml").write_text(REAL, encoding="utf-8")
    root = folder / "results"
    exp = load_experiment(folder / "real.toml")
    summary = run_experiment(exp, torch.device("cpu"), root, use_cache=False)  # nothing written outside tmp
    assert len(summary.records) == 4
    return root


def test_report_of_a_real_run(cli, real_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = cli.invoke(app, ["report", "real", "--results", str(real_results), "--out", str(out)])
    assert result.exit_code == 0, result.output
    folder = out / "real"
    readme = (folder / "README.md").read_text()
    for variant in ("relu-overlap-none-drop", "relu-nonoverlap-none-drop"):
        assert f"`{variant}`" in readme and variant in result.output
    pngs = ["learning_curves.png", "final_val_acc.png", "throughput.png"]
    for name in pngs:
        path = folder / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE and f"]({name})" in readme
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 600 and image.size[1] > 200
    assert not (folder / "interaction.png").exists()  # one axis: no heatmap
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["variant"]) == ["relu-overlap-none-drop", "relu-nonoverlap-none-drop"]
    assert (summary["n"] == 2).all() and summary["final_val_acc_ci_low"].notna().all()
    comp = pd.read_csv(folder / "comparisons.csv")
    assert set(comp["variant"]) == {"relu-nonoverlap-none-drop"} and comp["verdict"].notna().all()
    runs = pd.read_csv(folder / "runs.csv")
    epochs = pd.read_csv(folder / "epochs.csv")
    assert len(runs) == 4 and (runs["status"] == "ok").all() and len(epochs) == 8
    claims = pd.read_csv(folder / "claims.csv")
    assert "Overlapping pooling lowers the error" in set(claims["claim"])

    again = tmp_path / "again"
    cli.invoke(app, ["report", "real", "--results", str(real_results), "--out", str(again)])
    for name in ("summary.csv", "comparisons.csv", "runs.csv", "epochs.csv", "claims.csv", "README.md"):
        assert (folder / name).read_bytes() == (again / "real" / name).read_bytes(), name


def test_grid_report_has_effects_and_heatmap(tmp_path: Path) -> None:
    axes = {"pooling": ["overlap", "nonoverlap"], "norm": ["none", "lrn"]}

    def outcome(ax: dict, seed: int) -> Outcome:
        y = 0.5 + 0.01 * seed + 0.04 * (ax["pooling"] == "nonoverlap") + 0.02 * (ax["norm"] == "lrn")
        return Outcome(final_val_acc=y + seeded_noise(4, tuple(ax.items()), seed).normal(0, 0.002))

    write_planted(tmp_path / "results", "grid", axes, [0, 1, 2, 3], outcome)
    rep = build_report(tmp_path / "results", "grid", tmp_path / "reports")
    assert (rep.folder / "interaction.png").read_bytes()[:8] == PNG_SIGNATURE
    effects = pd.read_csv(rep.folder / "effects.csv")
    main = effects[effects["kind"] == "main"].set_index("axes")
    assert main.loc["pooling", "ci_low"] <= 0.04 <= main.loc["pooling", "ci_high"]
    assert main.loc["norm", "ci_low"] <= 0.02 <= main.loc["norm", "ci_high"]
    inter = effects[effects["kind"] == "interaction"].iloc[0]
    assert inter["ci_low"] <= 0.0 <= inter["ci_high"] and inter["verdict"] == "no detectable interaction"
    readme = rep.readme.read_text()
    assert "## Main effects and interactions" in readme and "](interaction.png)" in readme
    # The Answer leads with the grid's own answer: each main effect, then the interactions, then the
    # variants one by one.
    answer = readme.split("## Answer", 1)[1].split("\n## ", 1)[0]
    rows = _answer_rows(readme)
    for label, planted in (("pooling=nonoverlap", 4.0), ("norm=lrn", 2.0)):
        cells = rows[label]
        low, high = (float(x) for x in re.search(r"\[([-+.\d]+), ([-+.\d]+)\]", cells[1]).groups())
        assert low <= planted <= high and cells[-1] == "**better**" and float(cells[3]) > 0, cells
    assert "**Interactions detected**: 0 of 1." in answer
    assert "one linear model over the 16 ok runs" in answer and "HC2 robust errors with Bell–McCaffrey df" in answer
    assert (
        answer.index("**Main effects**")
        < answer.index("**Interactions detected**")
        < answer.index("**Each variant against")
    )
    assert "](effects.png)" in answer and (rep.folder / "effects.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "**Model checks.** 16 ok runs in 4 of 4 cells; 9 residual degrees of freedom" in readme


def test_grid_answer_names_detected_interactions_and_untestable_ones(tmp_path: Path) -> None:
    """tanh costs 10 points with LRN only (an interaction planted on every seed); one failed cell
    leaves a contrast with a single seed."""
    axes = {"activation": ["relu", "tanh"], "norm": ["none", "lrn"]}

    def outcome(ax: dict, seed: int) -> Outcome:
        y = 0.6 - 0.10 * (ax["activation"] == "tanh" and ax["norm"] == "lrn")
        return Outcome(final_val_acc=y + seeded_noise(5, tuple(ax.items()), seed).normal(0, 0.003))

    write_planted(tmp_path / "results", "inter", axes, [0, 1, 2, 3], outcome)
    answer = build_report(tmp_path / "results", "inter", tmp_path / "r").readme.read_text().split("\n## ", 2)[1]
    assert "**Interactions detected**: 1 of 1: `tanh x lrn` (activation x norm) -10." in answer
    write_planted(
        tmp_path / "results",
        "one",
        axes,
        [0, 1],
        lambda ax, s: Outcome(status="failed" if s == 1 and ax["norm"] == "lrn" else "ok"),
    )
    answer = build_report(tmp_path / "results", "one", tmp_path / "r").readme.read_text().split("\n## ", 2)[1]
    # the model fits around the failed runs: every effect still has an estimate, the note says what went in
    effects = pd.read_csv(tmp_path / "r" / "one" / "effects.csv")
    assert (
        effects["estimate"].notna().all() and effects["note"].str.contains("fit on the 6 of 8 runs that are ok").all()
    )


def test_single_axis_answer_has_no_main_effects_block(tmp_path: Path) -> None:
    write_planted(tmp_path / "results", "p", {"pooling": ["overlap", "nonoverlap"]}, [0, 1, 2], lambda a, s: Outcome())
    readme = build_report(tmp_path / "results", "p", tmp_path / "r").readme.read_text()
    assert "**Main effects**" not in readme and "**Interactions detected**" not in readme


def test_stale_output_files_are_removed(tmp_path: Path) -> None:
    write_planted(tmp_path / "results", "g", {"pooling": ["overlap", "nonoverlap"]}, [0, 1], lambda a, s: Outcome())
    folder = tmp_path / "reports" / "g"
    folder.mkdir(parents=True)
    (folder / "interaction.png").write_bytes(b"old")
    (folder / "notes.txt").write_text("mine")
    build_report(tmp_path / "results", "g", tmp_path / "reports")
    assert not (folder / "interaction.png").exists() and (folder / "notes.txt").exists()


# --- power, intervals that agree with the verdict, sources of variation, steps -------------------------
def _answer(readme: str) -> str:
    return readme.split("## Answer")[1].split("\n## ")[0]


def _answer_rows(readme: str) -> dict[str, list[str]]:
    """The Answer's table rows, keyed by the first cell's code span (variant or effect)."""
    rows = [line for line in _answer(readme).splitlines() if line.startswith("| `")]
    return {line.split("`")[1]: [c.strip() for c in line.strip("|").split("|")] for line in rows}


def test_every_report_says_what_it_could_detect(cli, tmp_path: Path) -> None:
    from ablate.analysis import stats

    _planted(tmp_path / "results")
    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "reports" / "planted"
    comp = pd.read_csv(folder / "comparisons.csv")
    acc = comp[comp["metric"] == "final_val_acc"].set_index("variant")
    for _variant, row in acc.iterrows():  # MDD recomputed from the table's own sd and n
        assert row["mdd"] == pytest.approx(stats.min_detectable_difference(row["sd_diff"], int(row["n"])), rel=1e-9)
        assert row["seeds_needed"] == stats.seeds_needed(row["effect"], row["sd_diff"])
    # nonoverlap vs overlap pooling matches the paper's claim: its effect, 0.4 points; others 1 point
    assert acc.loc[BETTER, "effect"] == pytest.approx(0.004) and "paper" in acc.loc[BETTER, "effect_source"]
    assert acc.loc[SAME, "effect"] == pytest.approx(0.01) and "default" in acc.loc[SAME, "effect_source"]
    readme = (folder / "README.md").read_text()
    answer = _answer(readme)
    for v, cells in _answer_rows(readme).items():  # the Answer's MDD column is the table's
        assert cells[4] == f"{100 * acc.loc[v, 'mdd']:.2f}", cells
    # seeds needed for the paper's effect and P(better) are columns of the comparisons table
    table = next(
        line for line in readme.split("## Paired comparisons")[1].splitlines() if line.startswith(f"| `{BETTER}`")
    )
    assert (
        f"{int(acc.loc[BETTER, 'seeds_needed'])} (0.40 pts)" in table
        and f"{acc.loc[BETTER, 'p_improve']:.2f} [" in table
    )
    assert "Power: " not in answer and "P(variant beats" not in answer
    assert "**What the intervals cover.** Seed-to-seed variation from initialisation and data order" in answer
    assert "not from augmentation or data sampling" in answer

    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports", "--effect", "2")
    assert result.exit_code == 0, result.output
    comp = pd.read_csv(folder / "comparisons.csv")
    acc = comp[comp["metric"] == "final_val_acc"]
    assert list(acc["effect"]) == pytest.approx([0.02] * 3) and (acc["effect_source"] == "--effect 2").all()


def test_bootstrap_intervals_on_request(cli, tmp_path: Path) -> None:
    _planted(tmp_path / "results")
    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports", "--ci", "bootstrap")
    assert result.exit_code == 0, result.output
    comp = pd.read_csv(tmp_path / "reports" / "planted" / "comparisons.csv")
    assert (comp["ci_method"] == "bootstrap").all() and comp["boot_low"].notna().any()
    ok = comp.dropna(subset=["boot_low"])
    assert (ok["boot_low"] <= ok["diff"] + 1e-12).all() and (ok["diff"] <= ok["boot_high"] + 1e-12).all()
    readme = (tmp_path / "reports" / "planted" / "README.md").read_text()
    assert "95% BCa bootstrap CI" in _answer(readme)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--ci", "normal"], "--ci normal: expected one of t, bootstrap"),
        (["--effect", "-1"], "--effect -1: expected percentage points"),
    ],
)
def test_bad_power_and_interval_options(cli, tmp_path: Path, args: list[str], expected: str) -> None:
    _planted(tmp_path / "results", seeds=[0, 1])
    result = _cli_report(cli, tmp_path / "results", tmp_path / "reports", *args)
    assert result.exit_code == 2 and expected in result.output, result.output


def _issue_like(axes: dict, seed: int) -> Outcome:
    """3 seeds; sigmoid-like and batchnorm-like variants whose unadjusted p is ~0.02-0.05."""
    slug = Variant(**axes).slug()
    effect = {"tanh-overlap-none-drop": -0.107, "relu-overlap-lrn-drop": 0.075}.get(slug, 0.0)
    spread = {"tanh-overlap-none-drop": [0.03, -0.03, 0.0], "relu-overlap-lrn-drop": [-0.02, 0.025, -0.005]}
    return Outcome(final_val_acc=0.6 + effect + spread.get(slug, [0, 0, 0])[seed])


def test_no_unexplained_interval_that_excludes_zero_next_to_no_difference(tmp_path: Path) -> None:
    from ablate.analysis import compare_to_baseline, load_experiment_data, metrics_for

    write_planted(
        tmp_path / "results",
        "issue",
        {"activation": ["tanh"], "norm": ["lrn"]},
        [0, 1, 2],
        _issue_like,
        design="one-at-a-time",
    )
    rep = build_report(tmp_path / "results", "issue", tmp_path / "reports")
    acc = rep.comparisons[rep.comparisons["metric"] == "final_val_acc"].set_index("variant")
    row = acc.loc["tanh-overlap-none-drop"]
    # the situation of issue 9: unadjusted interval excludes 0, Holm does not reject
    assert row["ci_high"] < 0 and row["p_holm"] >= 0.05 and row["verdict"] == "no detectable difference"
    assert row["sim_low"] <= 0 <= row["sim_high"] and "simultaneous" in row["interval_note"]
    readme = rep.readme.read_text()
    assert _answer_rows(readme)["tanh-overlap-none-drop"][-1].endswith("‡")
    assert (
        "‡ an interval seems to disagree with the verdict" in _answer(readme)
        and "*Paired comparisons* says why" in readme
    )
    line = next(
        x for x in readme.split("## Paired comparisons")[1].splitlines() if x.startswith("| `tanh-overlap-none-drop`")
    )
    assert "simultaneous 97.5% interval" in line and "contains 0" in line

    # And in general: random planted studies (3-5 seeds, 1-4 variants, with and without effects).
    rng = np.random.default_rng(9)
    checked = 0
    for k in range(15):
        n_seeds, levels = int(rng.integers(3, 6)), ["tanh", "sigmoid"][: int(rng.integers(1, 3))]
        effects = {lv: float(rng.choice([0.0, 0.03, -0.05])) for lv in levels + ["lrn", "batchnorm"]}
        noise = float(rng.choice([0.01, 0.03]))

        def outcome(axes: dict, seed: int, k=k, effects=effects, noise=noise) -> Outcome:
            v = Variant(**axes)
            eff = (
                effects.get(v.activation, 0.0)
                if v.activation != "relu"
                else effects.get(v.norm, 0.0)
                if v.norm != "none"
                else 0.0
            )
            return Outcome(final_val_acc=0.6 + eff + seeded_noise(k, v.slug(), seed).normal(0, noise))

        root = tmp_path / f"r{k}"
        write_planted(
            root,
            "x",
            {"activation": levels, "norm": ["lrn", "batchnorm"]},
            list(range(n_seeds)),
            outcome,
            design="one-at-a-time",
        )
        for ci in ("t", "bootstrap"):
            data = load_experiment_data(root, "x")
            comp = compare_to_baseline(data, metrics_for(data.targets)[:2], ci=ci)  # the accuracies: fast
            for r in comp.to_dict("records"):
                shown = (r["boot_low"], r["boot_high"]) if ci == "bootstrap" else (r["ci_low"], r["ci_high"])
                if r["verdict"] == "no detectable difference" and (shown[0] > 0 or shown[1] < 0):
                    assert r["interval_note"], r
                    checked += 1
                if r["sim_low"] > 0 or r["sim_high"] < 0:
                    assert r["verdict"] in ("better", "worse") or r["sd_diff"] == 0, r
    assert checked >= 3  # the situation did occur in these studies


def test_single_seed_cells_say_no_ci_once(tmp_path: Path) -> None:
    _planted(tmp_path / "results", seeds=[3])
    rep = build_report(tmp_path / "results", "planted", tmp_path / "reports")
    text = rep.readme.read_text()
    assert "(no CI, n=1) (no CI)" not in text and "(no CI, n=1)" in text


def test_figures_have_alt_text_and_captions_and_headers_have_units(tmp_path: Path) -> None:
    import re

    _planted(tmp_path / "results")
    text = build_report(tmp_path / "results", "planted", tmp_path / "reports").readme.read_text()
    images = re.findall(r"!\[([^\]]*)\]\(([^)]+\.png)\)\n\n(.*)", text)
    assert [name for _, name, _ in images] == [
        "effects.png",
        "learning_curves.png",
        "final_val_acc.png",
        "throughput.png",
    ]
    for alt, name, caption in images:
        first = "*Estimates with their 95% intervals" if name == "effects.png" else "*Figure "
        assert len(alt) > 40 and caption.startswith(first) and caption.endswith("*"), (name, alt, caption)
    for header in (
        "final val acc (%) [95% CI]",
        "final val loss (nats)",
        "gap (points) [95% CI]",
        "train throughput (images/s)",
        "diff [95% CI] (points)",
        "MDD (points)",
        "baseline (%)",
    ):
        assert header in text, header


def test_report_uses_step_logs(tmp_path: Path) -> None:
    def outcome(axes: dict, seed: int) -> Outcome:
        o = planted_outcome(axes, seed)
        o.log_every, o.reach_train_target_step = 4, 20 + 4 * seed
        return o

    _planted(tmp_path / "results", seeds=[0, 1, 2], outcome=outcome)
    rep = build_report(tmp_path / "results", "planted", tmp_path / "reports")
    steps = pd.read_csv(rep.folder / "steps.csv")
    assert len(steps) == 4 * 3 * (6 * 16 // 4) and {"images", "train_loss", "time_s"} <= set(steps.columns)
    text = rep.readme.read_text()
    assert "against training images seen" in text and "images to 25% train error (images)" in text
    with Image.open(rep.folder / "learning_curves.png") as image:
        assert image.size[0] > 1500  # three panels: validation accuracy, training loss, training error
    runs = pd.read_csv(rep.folder / "runs.csv")
    assert (runs["images_to_train_target"] == (20 + 4 * runs["seed"]) * 32).all()


def test_adaptive_seeds_and_damaged_manifest_are_reported(tmp_path: Path) -> None:
    import json

    _planted(tmp_path / "results", seeds=range(4))
    path = tmp_path / "results" / "planted" / "experiment.json"
    manifest = json.loads(path.read_text())
    manifest["adaptive"] = {
        "design": "group-sequential",
        "looks": [3, 4],
        "alpha": 0.05,
        "spending": "Lan-DeMets Pocock-type",
        "boundaries": [{"level": 0.05, "z": [2.2, 2.1], "t": [6.1, 3.9]}],
        "variants": {
            "tanh-overlap-none-drop": {
                "seeds": 3,
                "stopped": "efficacy",
                "verdict": "worse",
                "mean": -20.0,
                "rci_low": -25.0,
                "rci_high": -15.0,
                "t_by_look": [-17.3],
            }
        },
        "stopped": "tanh: worse by efficacy at 3 seeds",
    }
    path.write_text(json.dumps(manifest))
    text = build_report(tmp_path / "results", "planted", tmp_path / "reports").readme.read_text()
    answer = _answer(text)
    assert "**Seeds chosen adaptively** by group-sequential tests" in answer and "## Adaptive seeds" in text
    assert "looks at 3, 4 seeds" in text.split("## Adaptive seeds")[1]
    # the Answer's verdicts are the sequential tests', with their repeated confidence intervals
    assert "| `tanh-overlap-none-drop` | 3 | efficacy | **worse** | -20.00 [-25.00, -15.00] | -17.3 |" in answer
    assert "| 0.05 | t 6.10 (z 2.20) | t 3.90 (z 2.10) |" in text
    path.write_text("{broken")
    rep = build_report(tmp_path / "results", "planted", tmp_path / "reports")
    assert any(str(path) in n for n in rep.data.notes) and str(path) in rep.readme.read_text()


def test_runs_trained_on_different_data_are_flagged(tmp_path: Path) -> None:
    """Runs of one experiment whose recorded data source or normalization differ (e.g. $ABLATE_DATA
    changed between runs: not part of the run id) get a note in the report; the same data, none."""
    from ablate.store.folder import read_run, write_run

    write_planted(tmp_path / "results", "d", {"pooling": ["overlap", "nonoverlap"]}, [0, 1], lambda a, s: Outcome())
    runs = sorted((tmp_path / "results" / "d" / "runs").glob("*.json"))
    for i, path in enumerate(runs):
        record = read_run(path)
        record["data"].update(mean=[0.25] * 3, std=[0.5] * 3, info={"source": "/data/b" if i else "/data/a"})
        write_run(tmp_path / "results", record)
    readme = build_report(tmp_path / "results", "d", tmp_path / "r").readme.read_text()
    assert (
        "ok runs were trained on different data (1 from /data/a (mean/std 0.25, 0.25, 0.25, 0.5, 0.5, 0.5); "
        f"{len(runs) - 1} from /data/b"
    ) in readme
    for path in runs:  # the same source and statistics everywhere: no note
        record = read_run(path)
        record["data"]["info"] = {"source": "/data/a"}
        write_run(tmp_path / "results", record)
    assert "trained on different data" not in build_report(tmp_path / "results", "d", tmp_path / "r").readme.read_text()
