"""``ablate plan``'s statistics (ablate.analysis.planning): seeds needed and power of paired designs,
the factorial model's MDD against a published report, the adaptive designs' expected cost against
docs/statistics.md, thin noise as a range, and the refusals of a noise source that does not fit."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ablate.analysis import adaptive, load_experiment_data, planning, stats
from ablate.analysis.planning import PAIRED, Noise, PlanError
from ablate.experiment.experiment import load_experiment, parse_experiment

from helpers import ROOT
from helpers.planted import Outcome, seeded_noise, write_planted


def paired_noise(sd: float, df: int = 29, seeds: int = 30) -> Noise:
    return Noise("test", False, PAIRED, "shapes", seeds, {"v": (sd, df)}, pooled_sd=sd, pooled_df=df)


ACTIVATION = {
    "name": "act",
    "seeds": [0, 1, 2],
    "axes": {"activation": ["relu", "tanh", "sigmoid"]},
    "data": {"dataset": "shapes", "train_size": 64, "val_size": 32},
    "train": {"epochs": 1, "batch_size": 16},
}


def experiment(**changes):
    return parse_experiment({**ACTIVATION, **changes}, "act.toml")


def test_seeds_needed_for_sd_0_4_and_effect_0_3_is_16_as_statsmodels_says():
    from statsmodels.stats.power import TTestPower

    (c,) = planning.plan_paired(paired_noise(0.4), ["v"], seeds=3, effect=0.3)
    reference = math.ceil(TTestPower().solve_power(effect_size=0.3 / 0.4, alpha=0.05, power=0.8))
    assert reference == 16
    assert abs(c.seeds_needed - 16) <= 1 and c.seeds_needed == reference


def test_two_thousand_studies_at_the_planned_seeds_reach_80_percent_power():
    (c,) = planning.plan_paired(paired_noise(0.4), ["v"], seeds=3, effect=0.3)
    n = int(c.seeds_needed)
    rng = np.random.default_rng(2026)
    d = rng.normal(0.3, 0.4, size=(2000, n))
    rejected = np.mean([stats.paired_test(row).p < stats.ALPHA for row in d])
    assert abs(rejected - 0.80) <= 0.03, rejected
    # and the planned power at those seeds says the same
    (at_n,) = planning.plan_paired(paired_noise(0.4), ["v"], seeds=n, effect=0.3)
    assert at_n.power == pytest.approx(stats.paired_power(0.3, 0.4, n)) and 0.80 <= at_n.power < 0.83


def test_factorial_mdd_at_3_seeds_matches_the_published_report():
    """The committed Fashion-MNIST factorial as the noise source: each main effect's planned MDD at
    3 seeds is within 10% of the MDD its own report states (reports/.../effects.csv, column mdd)."""
    data = load_experiment_data(ROOT / "results", "fashion-mnist-factorial")
    noise = planning.noise_from_data(data, "results/fashion-mnist-factorial")
    exp = load_experiment(ROOT / "experiments" / "fashion-mnist" / "factorial.toml")
    planned = {c.name: c for c in planning.plan_factorial(noise, exp, seeds=3, effect=2.0)}
    effects = pd.read_csv(ROOT / "reports" / "fashion-mnist-factorial" / "effects.csv")
    main = effects[(effects["metric"] == "final_val_acc") & (effects["kind"] == "main")]
    assert len(main) == 6
    for r in main.to_dict("records"):
        c = planned[f"{r['axes']}={r['level']}"]
        assert abs(c.mdd - 100 * r["mdd"]) <= 0.10 * 100 * r["mdd"], (c.name, c.mdd, 100 * r["mdd"])
        assert c.df == pytest.approx(r["df"], rel=1e-6)


def test_factorial_mdd_at_other_seeds_matches_the_design_built_at_those_seeds():
    """Seeds needed come from se ~ 1/sqrt(seeds) and df scaled with the residual df: within 1% of
    the MDD of the grid actually built at 6 seeds."""
    data = load_experiment_data(ROOT / "results", "fashion-mnist-factorial")
    noise = planning.noise_from_data(data, "x")
    exp = load_experiment(ROOT / "experiments" / "fashion-mnist" / "factorial.toml")
    at3, at6 = planning._grid_plan(noise, exp, 3), planning._grid_plan(noise, exp, 6)
    for k in range(len(at3.contrasts)):
        exact = stats.min_detectable_effect(float(at6.se[k]), float(at6.df[k]))
        assert planning._grid_mdd(at3, k, 6) == pytest.approx(exact, rel=0.01)


def _docs_until_decided_seeds(effect: str, looks: str) -> float:
    text = (ROOT / "docs" / "statistics.md").read_text(encoding="utf-8")
    row = re.search(rf"^\| gauss \| {re.escape(effect)} \| {re.escape(looks)} \|([^\n]+)$", text, re.M)
    assert row, "the --until-decided table of docs/statistics.md has no such row"
    return float(row.group(1).split("|")[2])


def test_until_decided_cost_on_a_planted_minus_20_effect_agrees_with_docs(tmp_path):
    """Finished runs with tanh and sigmoid 20 points below relu, paired differences of sd 2 points
    exactly: the plan's expected seeds per variant agree with docs/statistics.md's simulation."""
    rng = seeded_noise(7, "planted")
    wobble = {a: rng.standard_normal(10) for a in ("tanh", "sigmoid")}
    wobble = {a: (w - w.mean()) / w.std(ddof=1) * 0.02 for a, w in wobble.items()}  # sd exactly 2 points

    def outcome(axes, seed):
        act = axes["activation"]
        return Outcome(final_val_acc=0.8 + (0.0 if act == "relu" else -0.2 + wobble[act][seed]))

    write_planted(tmp_path, "planted", {"activation": ["relu", "tanh", "sigmoid"]}, list(range(10)), outcome)
    noise = planning.noise_from_data(load_experiment_data(tmp_path, "planted"), "planted")
    assert noise.paired["tanh-overlap-none-drop"][0] == pytest.approx(2.0)
    plan = planning.plan_detection(experiment(), noise, 20.0, looks=(3, 6, 12, 20), stein=None)
    at_effect = next(a for a in plan.adaptive if a.design == adaptive.GROUP_SEQUENTIAL and a.effect == 20.0)
    docs = _docs_until_decided_seeds("-20", "3, 6, 12, 20")
    for slug, seeds in at_effect.expected.items():
        assert abs(seeds - docs) <= 0.15, (slug, seeds, docs)
        assert at_effect.p90[slug] in (3.0, 6.0)
    assert at_effect.baseline_expected >= max(at_effect.expected.values())


def test_stein_closed_form_agrees_with_the_runners_rule():
    sd, precision, pilot, max_seeds = 2.0, 1.0, 10, 40
    cost = planning.until_precise_cost(["v"], [sd], precision, pilot, max_seeds)
    rng = np.random.default_rng(5)
    d = rng.normal(0.0, sd, size=(20000, 1, pilot))
    _, _, n = adaptive.stein_plan(d, precision, max_seeds)
    assert cost.expected["v"] == pytest.approx(n.mean(), abs=0.25)
    assert cost.p90["v"] == pytest.approx(np.percentile(n, 90), abs=1)


def test_thin_noise_is_a_range_from_the_chi_square_interval(tmp_path):
    def outcome(axes, seed):
        return Outcome(final_val_acc=0.7 + (0.01 * seed if axes["pooling"] == "nonoverlap" else 0.0))

    write_planted(tmp_path, "thin", {"pooling": ["overlap", "nonoverlap"]}, [0, 1], outcome)
    noise = planning.noise_from_data(load_experiment_data(tmp_path, "thin"), "thin")
    assert noise.thin and noise.seeds == 2
    exp = experiment(axes={"pooling": ["overlap", "nonoverlap"]})
    plan = planning.plan_detection(exp, noise, 1.0, looks=None, stein=None)
    (c,) = plan.comparisons
    sd, df = noise.paired["relu-nonoverlap-none-drop"]
    assert df == 1 and sd == pytest.approx(100 * 0.01 / math.sqrt(2))
    assert c.mdd_low == pytest.approx(c.mdd * math.sqrt(df / sps.chi2.isf(0.025, df)))
    assert c.mdd_high == pytest.approx(c.mdd * math.sqrt(df / sps.chi2.ppf(0.025, df)))
    assert c.mdd_low < c.mdd < c.mdd_high and c.mdd_high > 10 * c.mdd
    assert any("too few" in n for n in plan.notes)


def test_a_noise_source_of_another_dataset_or_design_is_refused(tmp_path):
    write_planted(tmp_path, "pool", {"pooling": ["overlap", "nonoverlap"]}, [0, 1, 2], lambda a, s: Outcome())
    noise = planning.noise_from_data(load_experiment_data(tmp_path, "pool"), "pool")
    with pytest.raises(PlanError, match="measured final validation accuracy on shapes"):
        planning.check_noise(noise, experiment(data={"dataset": "fashion-mnist"}))
    grid = experiment(axes={"activation": ["relu", "tanh"], "pooling": ["overlap", "nonoverlap"]})
    with pytest.raises(PlanError, match="analysed by the paired t, this plan by the factorial linear model"):
        planning.check_noise(noise, grid)
    planning.check_noise(noise, experiment())  # same dataset, same analysis: fine
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(PlanError, match="--effect"):
            planning.check_effect(bad)


def test_default_noise_is_a_stated_guess_and_plans_every_design():
    exp = experiment()
    plan = planning.plan_detection(
        exp, planning.default_noise(PAIRED), None, looks=(3, 6, 12, 20), stein=(None, 10, 20)
    )
    assert plan.noise.guess and plan.effect == planning.DEFAULT_EFFECT and "default" in plan.effect_source
    assert [c.mdd for c in plan.comparisons] == [pytest.approx(stats.min_detectable_difference(2.0, 3))] * 2
    assert [a.design for a in plan.adaptive] == [adaptive.GROUP_SEQUENTIAL, adaptive.GROUP_SEQUENTIAL, adaptive.STEIN]
    assert [a.effect for a in plan.adaptive[:2]] == [1.0, 0.0]
    assert plan.adaptive[2].settings == {"precision": 1.0, "pilot": 10, "max_seeds": 20}
    # a null comparison costs less than one at the effect, and never more than the maximum
    assert all(0 < s <= 20 for a in plan.adaptive for s in a.expected.values())


def test_cell_seconds_pair_each_start_with_its_finish():
    events = [
        {"time": 10.0, "event": "start", "run_id": "a", "pid": 1, "host": "h"},
        {"time": 12.0, "event": "interrupted", "run_id": "a", "pid": 1, "host": "h"},
        {"time": 20.0, "event": "start", "run_id": "a", "pid": 2, "host": "h"},
        {"time": 23.0, "event": "finish", "run_id": "a", "pid": 2, "host": "h"},
        {"time": 23.5, "event": "start", "run_id": "b", "pid": 2, "host": "h"},  # never finished
    ]
    spent, processes = planning.cell_seconds(events)
    assert spent == {"a": pytest.approx(5.0)} and processes == 2
