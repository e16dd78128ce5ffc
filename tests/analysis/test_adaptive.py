"""Adaptive seeds: the boundaries (against published values and brute force), Stein's N and
interval, the sequential rules (Holm, futility), per-variant seeds in cells and the manifest, the
runner and the command line, and simulations of whole studies that hold the error rates and costs
``docs/statistics.md`` states (fewer studies here; margins of about 3 standard errors)."""

from __future__ import annotations

import json
import math
import sys
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

    def execute(exp):
        todo, skipped = plan(exp, results, False)
        from ablate.store.folder import write_manifest

        write_manifest(results, exp.manifest())
        summary = RunSummary(exp.name, skipped=skipped)
        for cell in todo:
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
