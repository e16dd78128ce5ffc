"""Adaptive seeds: the boundaries (against published values and brute force), Stein's N and
interval, the sequential rules (Holm, futility), per-variant seeds in cells and the manifest, the
runner and the command line, and simulations of whole studies that hold the error rates and costs
``docs/statistics.md`` states (fewer studies here; margins of about 3 standard errors)."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from ablate.analysis import adaptive as ad
from ablate.analysis import load_experiment_data, sequential
from ablate.cli import app
from ablate.config import SEED_MAX
from ablate.execute.adaptive import run_adaptively
from ablate.execute.runner import RunSummary, plan
from ablate.experiment.experiment import load_experiment
from ablate.store.folder import scan_runs, write_run

from helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import simulate_adaptive as sim  # noqa: E402

from helpers.planted import Outcome, make_record  # noqa: E402


def _margin(p: float, n: int, k: float = 3.0) -> float:
    return k * math.sqrt(p * (1 - p) / n)


# --- boundaries --------------------------------------------------------------------------------------
def test_pocock_type_boundaries_match_published_values_and_brute_force() -> None:
    # Five equally spaced looks, two-sided alpha 0.05, Lan-DeMets Pocock-type spending: 2.44, 2.43,
    # 2.41, 2.40, 2.39 (Jennison & Turnbull 2000, table 7.6; gsDesign's sfLDPocock gives the same).
    fractions = [0.2, 0.4, 0.6, 0.8, 1.0]
    z = sequential.z_boundaries(fractions, 0.05)
    assert np.allclose(z, [2.438, 2.427, 2.410, 2.397, 2.386], atol=0.002)
    # Brute force: a simulated Brownian motion first crosses at each look as often as the spending says.
    first = sequential.crossing_probabilities(z, fractions, sims=200_000, seed=3)
    spent = np.diff(np.concatenate([[0.0], sequential.pocock_spending(fractions, 0.05)]))
    assert np.allclose(first, spent, atol=0.0015) and abs(first.sum() - 0.05) < 0.003
    # Unequal looks as --until-decided plans them, at a Holm level.
    looks = np.array([3, 6, 12, 20]) / 20
    zb = sequential.z_boundaries(looks, 0.025)
    first = sequential.crossing_probabilities(zb, looks, sims=200_000, seed=4)
    assert abs(first.sum() - 0.025) < 0.002 and abs(first[0] - sequential.pocock_spending(0.15, 0.025)) < 0.001


def test_obrien_fleming_would_never_stop_at_three_seeds_and_t_boundaries_keep_the_nominal_p() -> None:
    looks = [3 / 20, 6 / 20, 12 / 20, 1.0]
    obf = sequential.z_boundaries(looks, 0.05, "obrien-fleming")
    assert obf[0] > 5 and sequential.t_boundaries(obf[:1], [2])[0] > 100  # no effect can stop there
    z = sequential.z_boundaries(looks, 0.05)
    t = sequential.t_boundaries(z, [2, 5, 11, 19])
    assert np.allclose(2 * sps.t.sf(t, [2, 5, 11, 19]), 2 * sps.norm.sf(z))
    assert z[0] < 2.8 and t[0] < 15  # Pocock-type: a t of 17 at 3 seeds stops
    assert 2.2 < z[-1] < 2.3  # the price: a final boundary above 1.96


def test_exact_t_boundaries_spend_alpha_for_normal_differences_where_nominal_p_matching_does_not() -> None:
    looks = (3, 6, 10)
    exact = sequential.exact_t_boundaries(looks, 0.05)
    spent = np.diff(np.concatenate([[0.0], sequential.pocock_spending(np.array(looks) / 10, 0.05)]))
    assert exact[0] == pytest.approx(sps.t.isf(spent[0] / 2, 2))  # the first look in closed form
    # Independent null paths (another seed, differences of sd 3: the t statistics do not care).
    rng = np.random.default_rng(99)
    d = 3.0 * rng.standard_normal((200_000, 10))
    t = np.stack([d[:, :n].mean(1) / (d[:, :n].std(1, ddof=1) / math.sqrt(n)) for n in looks], axis=1)

    def first_crossing(bounds: np.ndarray) -> np.ndarray:
        cross = np.abs(t) >= bounds
        first = np.where(cross.any(1), np.argmax(cross, 1), -1)
        return np.array([(first == k).mean() for k in range(len(looks))])

    assert np.allclose(first_crossing(exact), spent, atol=0.0015) and abs(first_crossing(exact).sum() - 0.05) < 0.0025
    nominal = sequential.t_boundaries(sequential.z_boundaries(np.array(looks) / 10, 0.05), np.array(looks) - 1)
    assert first_crossing(nominal).sum() > 0.052  # the significance-level approach spends too much here


def test_default_looks() -> None:
    assert ad.default_looks(3, 20) == (3, 6, 12, 20)
    assert ad.default_looks(3, 10) == (3, 6, 10)
    assert ad.default_looks(5, 20) == (5, 10, 20)
    assert ad.default_looks(10, 10) == (10,)


# --- Stein ---------------------------------------------------------------------------------------------
def test_stein_seeds_and_interval_by_hand() -> None:
    t9 = sps.t.ppf(0.975, 9)
    assert ad.stein_seeds(np.array([2.0]), 10, 1.0, 100)[0] == math.ceil((t9 * 2.0) ** 2) == 21
    assert ad.stein_seeds(np.array([0.1]), 10, 1.0, 100)[0] == 10  # never below the pilot
    assert ad.stein_seeds(np.array([50.0]), 10, 1.0, 100)[0] == 100  # capped
    assert ad.stein_seeds(np.array([np.nan]), np.array([1]), 1.0, 30)[0] == 30  # no pilot sd: up to max
    d = np.array([[1.0, 2.0, 3.0, 4.0, np.nan, 10.0]])
    n0, s0, n = ad.stein_plan(d[:, :3], 1.0, 6)
    assert n0[0] == 3 and s0[0] == pytest.approx(1.0) and n[0] == min(6, math.ceil(sps.t.ppf(0.975, 2) ** 2))
    mean, half, pairs = ad.stein_interval(d, np.array([6]), s0, n0)
    assert (
        pairs[0] == 5 and mean[0] == pytest.approx(4.0) and half[0] == pytest.approx(sps.t.ppf(0.975, 2) / math.sqrt(5))
    )


# --- the sequential rules --------------------------------------------------------------------------------
def test_holm_within_a_look_decides_the_second_comparison_at_the_larger_level() -> None:
    design = ad.SequentialDesign(looks=(3, 6, 12, 20), m=2)
    c1, c2 = design.t(1)[0], design.t(2)[0]  # level alpha and alpha/2 at 3 seeds
    assert c1 < c2
    t_mid = (c1 + c2) / 2
    base = np.array([-1.0, 0.0, 1.0])  # sd 1, mean 0
    d = np.stack([base + 50.0, base + t_mid / math.sqrt(3)])[None]  # t = 86.6 and t between the levels
    status, info = ad.sequential_look(d, 0, design, np.zeros((1, 2), dtype=int))
    assert list(status[0]) == [ad.BETTER, ad.BETTER] and list(info["level_j"][0]) == [2, 1]
    # Alone (the first one not there to be decided), the second is not decided at alpha/2.
    status, _ = ad.sequential_look(
        d[:, 1:], 0, ad.SequentialDesign(looks=(3, 6, 12, 20), m=2), np.array([[0, 0]])[:, 1:]
    )
    assert status[0, 0] in (ad.ACTIVE, ad.FUTILITY)


def test_futility_max_seeds_and_equal_differences() -> None:
    design = ad.SequentialDesign(looks=(3, 6, 10), m=1)
    flat = np.array([[[-1.0, 0.05, 1.0]]])  # mean ~0: no chance to cross at 10
    status, info = ad.sequential_look(flat, 0, design, np.zeros((1, 1), dtype=int))
    assert status[0, 0] == ad.FUTILITY and info["conditional_power"][0, 0] < 0.05
    promising = np.array([[[0.5, 1.5, 2.5]]])  # t = 2.6: not decided, but likely to be by 10 seeds
    status, info = ad.sequential_look(promising, 0, design, np.zeros((1, 1), dtype=int))
    assert status[0, 0] == ad.ACTIVE and info["conditional_power"][0, 0] > 0.5
    status, _ = ad.sequential_look(
        np.array([[[0.1, -0.2, 0.3, 0.0, 0.1, -0.1, 0.2, 0.0, 0.1, -0.3]]]), 2, design, np.zeros((1, 1), dtype=int)
    )
    assert status[0, 0] == ad.MAX_SEEDS  # the last look: undecided is final
    # All differences equal (accuracy at chance in both): no t; the sign-flip p 2^(1-n) decides.
    status, _ = ad.sequential_look(np.full((1, 1, 3), 5.0), 0, design, np.zeros((1, 1), dtype=int))
    assert status[0, 0] != ad.WORSE and status[0, 0] != ad.BETTER
    status, _ = ad.sequential_look(np.full((1, 1, 10), -5.0), 2, design, np.zeros((1, 1), dtype=int))
    assert status[0, 0] == ad.WORSE  # p = 2^-9


def test_seed_list_and_the_seed_maximum() -> None:
    assert ad.seed_list([0, 1, 2], 5) == [0, 1, 2, 3, 4] and ad.seed_list([7, 3], 3) == [7, 3, 8]
    assert ad.seed_overflow([SEED_MAX - 2], 3, SEED_MAX) == ""
    assert "would pass the largest seed" in ad.seed_overflow([SEED_MAX - 2], 4, SEED_MAX)


# --- simulations of whole studies (the production rules, vectorised) -----------------------------------------
def test_stein_covers_and_costs_what_docs_statistics_says() -> None:
    rng = np.random.default_rng(11)
    sims, need = 3000, sim.fixed_n(2.0, 1.0)
    assert need == 18
    seeds = []
    for effect in (0.0, 2.0, 5.0, 20.0):
        r = sim.stein_row(rng, sims, effect, 1.0, 10, 100, "gauss")
        assert r["coverage"] >= 0.95 - _margin(0.95, sims), (effect, r)
        assert r["half"] <= 1.0 and r["seeds"] <= 1.5 * need, (effect, r)
        seeds.append(r["seeds"])
    assert max(seeds) - min(seeds) < 1.5  # not growing with the effect (sd of the mean ~0.15 seed)
    heavy = sim.stein_row(rng, sims, 5.0, 1.0, 10, 100, "t3")
    assert heavy["coverage"] >= 0.95 - _margin(0.95, sims) and heavy["seeds"] <= 1.5 * need
    small_pilot = sim.stein_row(rng, 1000, 0.0, 1.0, 3, 200, "gauss")
    assert small_pilot["seeds"] > 3 * need  # why the pilot is 10 seeds, not 3


@pytest.mark.parametrize("m", [2, 5])
def test_until_decided_keeps_the_familywise_false_rate_under_the_null(m: int) -> None:
    rng = np.random.default_rng(20 + m)
    sims = 3000
    for noise in ("gauss", "t3"):
        r = sim.sequential_study(rng, sims, [0.0] * m, (3, 6, 12, 20), noise)
        false = np.isin(r["status"], (ad.BETTER, ad.WORSE)).any(axis=-1).mean()
        assert false <= 0.05 + _margin(0.05, sims), (noise, false)
        assert r["seeds"].mean() < 12  # futility stops most null comparisons early


def test_until_decided_stops_a_large_effect_at_the_first_look_and_has_power() -> None:
    rng = np.random.default_rng(31)
    sims = 2000
    r = sim.sequential_study(rng, sims, [-20.0, 0.0], (5, 10, 20), "gauss")
    assert (r["status"][:, 0] == ad.WORSE).all() and (r["seeds"][:, 0] == 5).mean() >= 0.99
    r = sim.sequential_study(rng, sims, [-20.0, 0.0], (3, 6, 12, 20), "gauss")
    assert (r["status"][:, 0] == ad.WORSE).all() and (r["seeds"][:, 0] == 3).mean() >= 0.75  # t ~ 17 with 2 df
    r = sim.sequential_study(rng, sims, [2.0, 2.0], (3, 6, 12, 20), "gauss")
    assert (r["status"] == ad.BETTER).mean() >= 0.85 and (r["status"] == ad.WORSE).mean() < 0.005
    decided = np.isin(r["status"], (ad.BETTER, ad.WORSE))
    covers = np.abs(r["mean"] - 2.0) <= r["t_boundary"] * r["sd"] / np.sqrt(r["n"])
    assert covers[decided].mean() >= 0.95  # repeated CIs at the stopping look


def test_simulation_script_prints_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim.main(["--sims", "200", "--sections", "null"]) == 0
    out = capsys.readouterr().out
    assert "family-wise false rate" in out and out.count("\n| gauss |") == 6


# --- per-variant seeds ----------------------------------------------------------------------------------
def test_seed_counts_give_cells_manifest_and_frames_per_variant_seeds(write_experiment, tmp_path: Path) -> None:
    from helpers.sweeps import tiny_sweep

    exp = load_experiment(write_experiment(tiny_sweep(seeds=(0, 1, 2, 3)), "tiny.toml"))
    full = {(c.variant.slug(), c.seed): c.run_id for c in exp.cells()}
    base, other = [v.slug() for v in exp.variants()]
    import dataclasses

    cut = dataclasses.replace(exp, seed_counts={other: 2})
    cells = cut.cells()
    assert [(c.variant.slug(), c.seed) for c in cells] == [
        (base, 0),
        (other, 0),
        (base, 1),
        (other, 1),
        (base, 2),
        (base, 3),
    ]
    assert all(full[(c.variant.slug(), c.seed)] == c.run_id for c in cells)  # run ids unchanged
    manifest = cut.manifest()
    assert manifest["variant_seeds"] == {base: [0, 1, 2, 3], other: [0, 1]} and "variant_seeds" not in exp.manifest()
    from ablate.store.folder import write_manifest

    write_manifest(tmp_path / "res", manifest)
    record = make_record(exp.name, cells[0].variant.axes(), 0, Outcome())
    record["run_id"] = cells[0].run_id
    write_run(tmp_path / "res", record)
    data = load_experiment_data(tmp_path / "res", exp.name)
    missing = data.runs[data.runs["status"] == "missing"]
    assert len(missing) == 5 and set(missing[missing["variant"] == other]["seed"]) == {0, 1}


def _fake_executor(results: Path, values: dict[str, list[float]], trained: list[str], failed: frozenset = frozenset()):
    """An executor that 'trains' each planned cell by writing a record with the planted accuracy
    (a failed record for the (slug, seed) pairs in ``failed``)."""

    def execute(exp, handled=frozenset()):
        todo, skipped = plan(exp, results, False)
        from ablate.store.folder import write_manifest

        write_manifest(results, exp.manifest())
        summary = RunSummary(exp.name, skipped=[c for c in skipped if c.run_id not in handled])
        for cell in todo:
            if cell.run_id in handled:  # tried earlier in this command: not again
                continue
            status = "failed" if (cell.variant.slug(), cell.seed) in failed else "ok"
            record = make_record(
                exp.name,
                cell.variant.axes(),
                cell.seed,
                Outcome(final_val_acc=values[cell.variant.slug()][cell.seed], status=status),
            )
            record["run_id"] = cell.run_id
            write_run(results, record)
            trained.append(cell.run_id)
            summary.records.append(record)
        return summary

    return execute


def test_run_until_decided_stops_each_variant_at_its_own_look_and_replays(write_experiment, tmp_path: Path) -> None:
    exp = load_experiment(
        write_experiment(
            """
        name = "act"
        seeds = [0, 1, 2]
        [axes]
        activation = ["relu", "tanh", "sigmoid"]
        [data]
        train_size = 64
        val_size = 32
    """,
            "act.toml",
        )
    )
    rng = np.random.default_rng(5)
    base = 0.6 + 0.02 * rng.standard_normal(20)
    values = {
        "relu-overlap-none-drop": list(base),
        "sigmoid-overlap-none-drop": list(base - 0.20 + 0.004 * rng.standard_normal(20)),  # -20 points: look 1
        "tanh-overlap-none-drop": list(base + 0.015 + 0.01 * rng.standard_normal(20)),
    }  # +1.5 points, sd 1
    trained: list[str] = []
    results = tmp_path / "res"
    execute = _fake_executor(results, values, trained)
    _, outcome = run_adaptively(exp, results, execute, design=ad.GROUP_SEQUENTIAL, max_seeds=12, looks=(3, 6, 12))
    manifest = json.loads((results / "act" / "experiment.json").read_text())
    record = manifest["adaptive"]
    sig, tanh = record["variants"]["sigmoid-overlap-none-drop"], record["variants"]["tanh-overlap-none-drop"]
    assert sig["stop_look"] == 1 and sig["seeds"] == 3 and sig["verdict"] == "worse" and sig["stopped"] == "efficacy"
    assert (
        tanh["stop_look"] > 1
        and tanh["seeds"] == record["looks"][tanh["stop_look"] - 1]
        and len(tanh["t_by_look"]) == tanh["stop_look"]
    )
    assert sig["rci_low"] < -19 < sig["rci_high"] and record["boundaries"][1]["level"] == pytest.approx(0.025)
    assert manifest["variant_seeds"]["sigmoid-overlap-none-drop"] == [0, 1, 2]
    assert outcome.seed_counts["sigmoid-overlap-none-drop"] == 3
    seeds_of = {}
    for r in scan_runs(results, "act").records:
        seeds_of.setdefault(r["slug"], set()).add(r["seed"])
    assert seeds_of["sigmoid-overlap-none-drop"] == {0, 1, 2}
    assert seeds_of["relu-overlap-none-drop"] == seeds_of["tanh-overlap-none-drop"] == set(range(tanh["seeds"]))
    data = load_experiment_data(results, "act")
    assert (data.runs["status"] != "missing").all()  # a stopped variant's later seeds are not "missing"
    count = len(trained)
    again = dict(record)
    run_adaptively(exp, results, execute, design=ad.GROUP_SEQUENTIAL, max_seeds=12, looks=(3, 6, 12))
    assert len(trained) == count  # a rerun replays the decisions and trains nothing
    again_record = json.loads((results / "act" / "experiment.json").read_text())["adaptive"]
    assert again_record["variants"] == again["variants"]


def test_run_with_precision_plans_each_variants_seeds(write_experiment, tmp_path: Path) -> None:
    exp = load_experiment(
        write_experiment(
            """
        name = "act"
        seeds = [0, 1, 2]
        [axes]
        activation = ["relu", "tanh", "sigmoid"]
    """,
            "act.toml",
        )
    )
    rng = np.random.default_rng(8)
    base = 0.6 + 0.02 * rng.standard_normal(40)
    values = {
        "relu-overlap-none-drop": list(base),
        "sigmoid-overlap-none-drop": list(base - 0.2 + 0.001 * rng.standard_normal(40)),  # sd 0.1 points
        "tanh-overlap-none-drop": list(base + 0.02 * rng.standard_normal(40)),
    }  # sd 2 points
    trained: list[str] = []
    results = tmp_path / "res"
    run_adaptively(
        exp, results, _fake_executor(results, values, trained), design=ad.STEIN, precision=1.0, pilot=5, max_seeds=40
    )
    record = json.loads((results / "act" / "experiment.json").read_text())["adaptive"]
    sig, tanh = record["variants"]["sigmoid-overlap-none-drop"], record["variants"]["tanh-overlap-none-drop"]
    assert record["design"] == "stein" and record["pilot"] == 5 and sig["seeds"] == 5  # precise after the pilot
    assert tanh["seeds"] == math.ceil((sps.t.ppf(0.975, 4) * tanh["s0"]) ** 2) > 5
    assert tanh["half_width"] <= 1.0 and sig["low"] < sig["mean"] < sig["high"] and abs(sig["mean"] + 20) < 0.2
    assert len(trained) == 3 * 5 + 2 * (tanh["seeds"] - 5)  # sigmoid got no seed past the pilot


def test_precision_with_failed_pilot_runs_adds_seeds_up_to_the_maximum_and_says_so(
    write_experiment, tmp_path: Path
) -> None:
    exp = load_experiment(
        write_experiment(
            """
        name = "act"
        seeds = [0, 1, 2]
        [axes]
        activation = ["relu", "sigmoid"]
    """,
            "act.toml",
        )
    )
    values = {
        "relu-overlap-none-drop": [0.6 + 0.01 * (i % 3) for i in range(12)],
        "sigmoid-overlap-none-drop": [0.4 + 0.01 * (i % 2) for i in range(12)],
    }
    failed = frozenset(("sigmoid-overlap-none-drop", s) for s in (0, 1, 2))  # 1 paired ok pilot seed of 4
    results = tmp_path / "res"
    run_adaptively(
        exp, results, _fake_executor(results, values, [], failed), design=ad.STEIN, precision=5.0, pilot=4, max_seeds=8
    )
    sig = json.loads((results / "act" / "experiment.json").read_text())["adaptive"]["variants"][
        "sigmoid-overlap-none-drop"
    ]
    assert sig["pilot_pairs"] == 1 and sig["seeds"] == 8 and sig["half_width"] is None
    assert (
        "fewer than 2 paired ok pilot seeds (1): seeds added up to --max-seeds 8, no Stein interval" == sig["stopped"]
    )


# --- the command line ------------------------------------------------------------------------------------
def test_cli_until_decided_end_to_end_on_a_tiny_experiment(cli, write_experiment, tmp_path: Path) -> None:
    """Look 1 (3 seeds) planted with real run ids: tanh far below relu, sigmoid close and noisy;
    look 2 (4 seeds) is trained for real, for relu and sigmoid only."""
    path = write_experiment(
        """
        name = "act"
        seeds = [0, 1, 2]
        [axes]
        activation = ["relu", "tanh", "sigmoid"]
        [data]
        train_size = 64
        val_size = 32
        [train]
        epochs = 1
        batch_size = 16
        optimizer = "adam"
        lr = 3e-4
    """,
        "act.toml",
    )
    results = tmp_path / "res"
    planted = {"relu": [0.50, 0.52, 0.48], "tanh": [0.30, 0.321, 0.279], "sigmoid": [0.51, 0.55, 0.53]}
    for cell in load_experiment(path).cells():
        record = make_record(
            "act", cell.variant.axes(), cell.seed, Outcome(final_val_acc=planted[cell.variant.activation][cell.seed])
        )
        record["run_id"] = cell.run_id
        write_run(results, record)
    args = ["run", str(path), "--device", "cpu", "--results", str(results), "--until-decided", "--looks", "3,4"]
    first = cli.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "2 run(s)" in first.output.replace("\n", " ")
    manifest = json.loads((results / "act" / "experiment.json").read_text())
    v = manifest["adaptive"]["variants"]
    assert v["tanh-overlap-none-drop"]["stop_look"] == 1 and v["tanh-overlap-none-drop"]["verdict"] == "worse"
    assert v["sigmoid-overlap-none-drop"]["stop_look"] == 2 and v["sigmoid-overlap-none-drop"]["seeds"] == 4
    assert manifest["variant_seeds"]["tanh-overlap-none-drop"] == [0, 1, 2] and manifest["seeds"] == [0, 1, 2, 3]
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "0 run(s)" in again.output, again.output
    report = cli.invoke(app, ["report", "act", "--results", str(results), "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
    readme = (tmp_path / "rep" / "act" / "README.md").read_text()
    assert "3 variants x 3 to 4 seeds, chosen per variant (0, 1, 2, 3)" in readme
    assert "| runs | 11 cells: 11 ok, 0 diverged, 0 failed, 0 missing |" in readme
    text = (tmp_path / "rep" / "act" / "README.md").read_text()
    assert "group-sequential tests" in text and "| `tanh-overlap-none-drop` | 3 | efficacy | **worse** |" in text


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--until-precise", "1", "--until-decided"], "choose one"),
        (["--until-decided", "--looks", "3,2"], "expected increasing seed counts"),
        (["--until-decided", "--looks", "3,x"], "expected increasing seed counts"),
        (["--until-decided", "--looks", "3,6", "--max-seeds", "10"], "the last look is the maximum"),
        (["--until-decided", "--max-seeds", "1000000000"], "at most 1000 seeds"),
        (["--until-precise", "0.001", "--max-seeds", "1000000000"], "at most 1000 seeds"),
        (["--until-precise", "1", "--pilot", "1"], "--pilot 1"),
        (["--pilot", "5"], "--pilot goes with --until-precise"),
        (["--looks", "3,6"], "--looks goes with --until-decided"),
    ],
)
def test_cli_adaptive_option_errors_are_one_line(
    cli, write_experiment, tmp_path: Path, extra: list[str], message: str
) -> None:
    from helpers.sweeps import tiny_sweep

    path = write_experiment(tiny_sweep(seeds=(0, 1, 2)), "tiny.toml")
    result = cli.invoke(app, ["run", str(path), "--device", "cpu", "--results", str(tmp_path / "res"), *extra])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_refuses_seeds_past_the_maximum_and_too_few_for_the_first_look(
    cli, write_experiment, tmp_path: Path
) -> None:
    from helpers.sweeps import tiny_sweep

    top = write_experiment(tiny_sweep(seeds=(SEED_MAX - 3, SEED_MAX - 2, SEED_MAX - 1)), "top.toml")
    for extra in (["--until-decided", "--max-seeds", "5"], ["--until-precise", "1", "--max-seeds", "5"]):
        result = cli.invoke(app, ["run", str(top), "--device", "cpu", "--results", str(tmp_path / "res"), *extra])
        assert result.exit_code == 2 and "would pass the largest seed 4294967295" in result.output, result.output
        assert not (tmp_path / "res" / "tiny" / "runs").exists()  # refused before training anything
    few = write_experiment(tiny_sweep(seeds=(0, 1)), "few.toml")
    result = cli.invoke(
        app, ["run", str(few), "--device", "cpu", "--results", str(tmp_path / "res"), "--until-decided"]
    )
    assert result.exit_code == 2 and "list at least 3 seeds or give --looks" in result.output


# --- adaptive runs through the real runner (#28): training replaced by planted results ------------------
TWO = """
name = "ad"
seeds = [0, 1, 2]
[axes]
activation = ["relu", "tanh"]
[data]
train_size = 64
val_size = 32
[train]
epochs = 1
"""
BASE, OTHER = "relu-overlap-none-drop", "tanh-overlap-none-drop"


@pytest.fixture
def planted_training(monkeypatch):
    """The runner trains every cell in an instant: ``train_group`` gives the planted accuracy of
    (slug, seed), or fails (``"failed"``: it raises) or diverges (``"diverged"``); no data is loaded.
    Everything else (start_sweep, claims, events, run files) is the real path."""
    import ablate.execute.runner as runner

    plan: dict = {"value": lambda slug, seed: 0.5, "delay": 0.0}

    class NoData:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def preload(self, cells) -> None:
            pass

        def __call__(self, cell):
            return None

    def train_cell(cell, splits, device, observer=None, hooks=None):
        import time as clock

        clock.sleep(plan["delay"])
        value = plan["value"](cell.variant.slug(), cell.seed)
        if value == "failed":
            raise RuntimeError(f"planted failure of seed {cell.seed}")
        status = "diverged" if value == "diverged" else "ok"
        record = make_record(
            cell.experiment, cell.variant.axes(), cell.seed, Outcome(final_val_acc=0.5 if status != "ok" else value)
        )
        if status == "diverged":
            record = make_record(cell.experiment, cell.variant.axes(), cell.seed, Outcome(status="diverged"))
        record["run_id"] = cell.run_id
        return record

    def train_group(cells, splits, device, observer=None, hooks=None):
        return [train_cell(c, s, device) for c, s in zip(cells, splits)]

    monkeypatch.setattr(runner, "Datasets", NoData)
    monkeypatch.setattr(runner, "train_group", train_group)
    return plan


def _in_process(results: Path, force: bool = False):
    """``run_adaptively``'s ``execute`` with the in-process executor, as ``ablate run`` builds it."""
    import dataclasses

    import torch

    from ablate.execute.options import SweepOptions
    from ablate.execute.runner import run_in_process

    options = SweepOptions(device="cpu", force=force)  # each its own sweep token, as each command has
    return lambda exp, handled=frozenset(): run_in_process(
        exp, results, torch.device("cpu"), dataclasses.replace(options, handled=handled) if handled else options
    )


def _starts(results: Path, name: str = "ad") -> Counter[str]:
    from ablate.store.folder import read_events

    return Counter(e["run_id"] for e in read_events(results, name) if e["event"] == "start")


def _cells(results: Path, name: str = "ad") -> set[str]:
    manifest = json.loads((results / name / "experiment.json").read_text())
    return set(manifest["run_ids"])


def test_force_retrains_each_cell_of_an_adaptive_design_once(write_experiment, tmp_path, planted_training):
    """#28 item 1: `--force` on a finished --until-decided folder trains each cell once in the
    command, not the pilot again at every later look."""
    exp = load_experiment(write_experiment(TWO, "ad.toml"))
    planted_training["value"] = lambda slug, seed: 0.5 + (0.004 * seed if slug == OTHER else 0.0) + 0.01 * (seed % 2)
    results = tmp_path / "res"
    design = dict(design=ad.GROUP_SEQUENTIAL, max_seeds=5, looks=(3, 4, 5))
    run_adaptively(exp, results, _in_process(results), **design)
    before = _starts(results)
    assert sorted(before.values()) == [1] * len(_cells(results))
    run_adaptively(exp, results, _in_process(results, force=True), **design)
    forced = _starts(results) - before
    assert set(forced) == _cells(results) and sorted(forced.values()) == [1] * len(_cells(results)), forced


def test_a_failed_cell_is_not_retried_by_later_looks_and_stein_plans_at_least_the_pilot(
    write_experiment, tmp_path, planted_training
):
    """#28 items 2 and 5: within one command a failed cell is tried once; Stein gives a variant at
    least the pilot's seeds (its ok runs stay in the design, none "stale")."""
    three = load_experiment(write_experiment(TWO.replace('"tanh"]', '"tanh", "sigmoid"]'), "three.toml"))

    def value(slug: str, seed: int) -> float | str:
        if slug == OTHER and seed % 2:
            return "failed"  # tanh fails on odd seeds, and its comparison stops at the first look
        ahead = [0.005, 0.02, 0.01, 0.004, 0.015][seed] if slug.startswith("sigmoid") else 0.0  # not clear yet
        return 0.5 + 0.01 * (seed % 3) + ahead

    planted_training["value"] = value
    results = tmp_path / "seq"
    _, outcome = run_adaptively(
        three, results, _in_process(results), design=ad.GROUP_SEQUENTIAL, max_seeds=5, looks=(3, 4, 5)
    )
    assert outcome.rounds > 1 and outcome.seed_counts[OTHER] == 3  # later looks ran, without tanh
    assert max(_starts(results, "ad").values()) == 1
    exp = load_experiment(write_experiment(TWO, "ad.toml"))
    planted_training["value"] = lambda slug, seed: "failed" if slug == OTHER and seed % 2 else 0.5 + 0.01 * (seed % 3)
    results = tmp_path / "stein"
    _, outcome = run_adaptively(
        exp, results, _in_process(results), design=ad.STEIN, precision=2.0, pilot=3, max_seeds=6
    )
    assert max(_starts(results).values()) == 1
    record = json.loads((results / "ad" / "experiment.json").read_text())["adaptive"]["variants"][OTHER]
    assert record["seeds"] >= 3 and outcome.seed_counts.get(OTHER, len(outcome.seeds)) >= 3
    assert load_experiment_data(results, "ad").stale_runs == 0


def test_stein_gives_no_interval_from_fewer_than_two_pairs_and_never_fewer_seeds_than_the_pilot() -> None:
    """#28 item 5, the rules themselves."""
    pilot = np.array([[1.0, np.nan, 1.0], [0.5, 1.5, np.nan]])  # two ok pairs each, equal in the first
    n0, s0, n = ad.stein_plan(pilot, precision=2.0, max_seeds=10)
    assert list(n0) == [2, 2] and (n >= 3).all()
    d = np.array([[2.0, np.nan, np.nan, np.nan], [1.0, 2.0, np.nan, 3.0]])
    mean, half, pairs = ad.stein_interval(d, np.array([4, 4]), np.array([1.0, 1.0]), np.array([3, 3]))
    assert pairs[0] == 1 and math.isnan(mean[0]) and math.isnan(half[0])  # one pair: no interval
    assert pairs[1] == 3 and mean[1] == pytest.approx(2.0) and half[1] > 0


def test_a_variant_whose_pilot_all_diverged_stops_at_once_without_a_verdict(
    write_experiment, tmp_path, planted_training
):
    """#28 item 6: no verdict from zero pairs; the diverging variant stops at the first look."""
    exp = load_experiment(write_experiment(TWO, "ad.toml"))
    planted_training["value"] = lambda slug, seed: "diverged" if slug == OTHER else 0.5 + 0.01 * seed
    results = tmp_path / "res"
    run_adaptively(exp, results, _in_process(results), design=ad.GROUP_SEQUENTIAL, max_seeds=5, looks=(3, 4, 5))
    record = json.loads((results / "ad" / "experiment.json").read_text())["adaptive"]
    other = record["variants"][OTHER]
    assert other["verdict"] == "no paired runs" and other["seeds"] == 3 and other["stop_look"] == 1
    assert "no detectable difference" not in record["stopped"]
    slugs = [r["slug"] for r in scan_runs(results, "ad").records]
    assert slugs.count(OTHER) == 3  # no seed trained past the first look
    status, _ = ad.sequential_look(np.array([[np.nan] * 3]), 0, ad.SequentialDesign((3, 4, 5), 1), np.array([0]))
    assert status[0] == ad.NO_PAIRS
    status, _ = ad.sequential_look(
        np.array([[1.0] + [np.nan] * 4]), 2, ad.SequentialDesign((3, 4, 5), 1), np.array([0])
    )
    assert status[0] == ad.TOO_FEW  # one pair at the last look: no test, no verdict


def test_two_adaptive_runners_on_one_folder_share_the_cells_and_both_decide(
    write_experiment, tmp_path, planted_training
):
    """#28 item 8: a second runner waits for the cells the first one trains instead of stopping
    after the pilot; each cell is trained once, and both record the same decisions."""
    import threading

    exp = load_experiment(write_experiment(TWO, "ad.toml"))
    planted_training["value"] = lambda slug, seed: 0.5 + (0.003 * seed if slug == OTHER else 0.0) + 0.01 * (seed % 2)
    planted_training["delay"] = 0.15
    results = tmp_path / "res"
    outcomes, said = [], []

    def runner() -> None:
        outcomes.append(
            run_adaptively(
                exp,
                results,
                _in_process(results),
                design=ad.GROUP_SEQUENTIAL,
                max_seeds=5,
                looks=(3, 4, 5),
                notify=said.append,
                poll_s=0.05,
            )[1]
        )

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(outcomes) == 2 and not any(o.stopped.startswith("not decided") for o in outcomes), outcomes
    assert outcomes[0].stopped == outcomes[1].stopped and outcomes[0].seed_counts == outcomes[1].seed_counts
    assert sorted(_starts(results).values()) == [1] * len(_cells(results))
    assert said and "being trained by another runner" in said[0]


def test_show_lists_the_seeds_an_adaptive_design_added_after_a_kill_mid_look(cli, write_experiment, tmp_path):
    """#28 item 9: the manifest of a look under way names its cells (seed 3 here); `ablate show`
    follows it, as the report does."""
    import dataclasses

    from ablate.store.folder import write_manifest

    path = write_experiment(TWO, "ad.toml")
    exp = load_experiment(path)
    stage = dataclasses.replace(exp, seeds=(0, 1, 2, 3), seed_counts={BASE: 4, OTHER: 4})
    write_manifest(tmp_path / "res", stage.manifest())
    for cell in stage.cells()[:7]:  # killed before the last cell (tanh, seed 3) was written
        record = make_record("ad", cell.variant.axes(), cell.seed, Outcome())
        record["run_id"] = cell.run_id
        write_run(tmp_path / "res", record)
    result = cli.invoke(app, ["show", str(path), "--results", str(tmp_path / "res")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "7 done, 1 to run" in result.output and "2 variants x 4 seeds" in result.output, result.output


def test_a_decided_folder_refuses_another_design_unless_new_design_and_the_report_says_so(
    cli, write_experiment, tmp_path, planted_training
):
    """#28 items 7 and 11: other --looks on a decided folder is one line and exit 2; with
    --new-design it runs, and the report says that the design changed. A first adaptive run on an
    empty folder has nothing "already done"."""
    path = write_experiment(TWO, "ad.toml")
    planted_training["value"] = lambda slug, seed: 0.5 + (0.2 if slug == OTHER else 0.0) + 0.01 * (seed % 3)
    res = tmp_path / "res"
    args = ["run", str(path), "--device", "cpu", "--results", str(res), "--until-decided"]
    first = cli.invoke(app, [*args, "--looks", "3,4"], env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert "0 already done" in first.output and "already done" in first.output, first.output
    before = json.loads((res / "ad" / "experiment.json").read_text())["adaptive"]
    other = cli.invoke(app, [*args, "--looks", "3,6,10"])
    assert other.exit_code == 2 and len(other.output.strip().splitlines()) == 1, other.output
    assert "--until-decided --looks 3,4" in other.output and "--new-design" in other.output
    plain = cli.invoke(app, args[:-1])  # fixed seeds on the same cells: another design too
    assert plain.exit_code == 2 and "fixed seeds would put another design on them" in plain.output.replace("\n", " ")
    assert json.loads((res / "ad" / "experiment.json").read_text())["adaptive"] == before  # untouched
    again = cli.invoke(app, [*args, "--looks", "3,4"])  # the same design: replayed, nothing trained
    assert again.exit_code == 0 and "0 run(s)" in again.output, again.output
    changed = cli.invoke(app, [*args, "--looks", "3,6,10", "--new-design"])
    assert changed.exit_code == 0, changed.output
    manifest = json.loads((res / "ad" / "experiment.json").read_text())
    assert manifest["design_changes"] == [
        {"from": "--until-decided --looks 3,4", "to": "--until-decided --looks 3,6,10", "stopped": before["stopped"]}
    ]
    report = cli.invoke(app, ["report", "ad", "--results", str(res), "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
    readme = (tmp_path / "rep" / "ad" / "README.md").read_text()
    assert "**The design changed** on these results" in readme and "no longer hold" in readme
