"""The paper's claims: found from matching variant pairs, verdicts from planted data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ablate.analysis import load_experiment_data
from ablate.analysis.paper_claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED, check_claims
from ablate.variant import Variant

from helpers.planted import Outcome, seeded_noise, write_planted

AXES = {"activation": ["tanh"], "norm": ["lrn"], "pooling": ["nonoverlap"], "dropout": [False]}
SEEDS = [0, 1, 2, 3, 4]
TANH_EPOCHS = {0: 11, 1: 12, 2: 13, 3: 12, 4: 12}  # ReLU (baseline) gets there at epoch 2: ~6x


def paper_like(axes: dict, seed: int) -> Outcome:
    """Baseline (relu, overlap, none, dropout): val acc 0.70, train acc 0.80, 25% train error at epoch 2.
    lrn: 2 points more accuracy; nonoverlap: nothing; no dropout: gap 0.25 and the target at epoch 1;
    tanh: the target at epoch 11-13."""
    v = Variant(**axes)
    noise = seeded_noise(11, v.slug(), seed)
    val = 0.70 + 0.01 * (seed - 2) + noise.normal(0, 0.003)
    train, reach = val + 0.10, 2
    if v.norm == "lrn":
        val, train = val + 0.02, train + 0.02
    if not v.dropout:
        train, reach = val + 0.25, 1
    if v.activation == "tanh":
        reach = TANH_EPOCHS[seed]
    return Outcome(final_val_acc=val, final_train_acc=min(train, 0.999), reach_train_target=reach)


def _claims(root: Path, outcome=paper_like, epochs: int = 16, axes=AXES, design: str = "one-at-a-time"):
    write_planted(root, "claims", axes, SEEDS, outcome, design=design, epochs=epochs)
    return check_claims(load_experiment_data(root, "claims")).set_index("claim")


def test_claims_from_paper_like_data(tmp_path: Path) -> None:
    claims = _claims(tmp_path)
    relu = claims.loc["ReLU reaches the training-error target faster than tanh"]
    assert relu["verdict"] == SUPPORTED and relu["n"] == 5
    ratios = [TANH_EPOCHS[s] / 2 for s in SEEDS]
    assert relu["estimate"] == pytest.approx(math.exp(sum(math.log(r) for r in ratios) / 5))
    assert relu["ci_low"] < 6 < relu["ci_high"]
    factors = claims.loc["... by a factor of about 6"]
    assert factors["verdict"] == SUPPORTED and factors["paper"] == "6x"

    lrn = claims.loc["Local response normalization lowers the error"]
    assert lrn["verdict"] == SUPPORTED and lrn["ci_low"] <= -2.0 <= lrn["ci_high"]  # points of error
    overlap = claims.loc["Overlapping pooling lowers the error"]
    assert overlap["verdict"] == INCONCLUSIVE and overlap["ci_low"] < 0 < overlap["ci_high"]
    assert claims.loc["Overlapping pooling overfits slightly less (smaller train-val gap)", "verdict"] == INCONCLUSIVE
    gap = claims.loc["Dropout reduces overfitting (smaller train-val gap)"]
    assert gap["verdict"] == SUPPORTED and gap["estimate"] == pytest.approx(-15.0, abs=0.01)
    slower = claims.loc["Dropout slows convergence (more epochs to the training-error target)"]
    assert slower["verdict"] == SUPPORTED and slower["estimate"] == pytest.approx(2.0)
    assert claims.loc["... by a factor of about 2", "verdict"] == SUPPORTED  # every ratio is exactly 2


def test_contradicted_claims(tmp_path: Path) -> None:
    def outcome(axes: dict, seed: int) -> Outcome:
        o = paper_like(axes, seed)
        v = Variant(**axes)
        if v.norm == "lrn":
            o.final_val_acc -= 0.05  # LRN hurts here
        if v.activation == "tanh":
            o.reach_train_target = 1  # tanh faster than ReLU
        return o

    claims = _claims(tmp_path, outcome)
    assert claims.loc["Local response normalization lowers the error", "verdict"] == CONTRADICTED
    assert claims.loc["ReLU reaches the training-error target faster than tanh", "verdict"] == CONTRADICTED
    assert claims.loc["... by a factor of about 6", "verdict"] == CONTRADICTED


def test_censored_runs_give_a_lower_bound_or_no_verdict(tmp_path: Path) -> None:
    def tanh_never(axes: dict, seed: int) -> Outcome:
        o = paper_like(axes, seed)
        if axes["activation"] == "tanh":
            o.reach_train_target = None
            o.final_train_acc = 0.6
        return o

    claims = _claims(tmp_path / "a", tanh_never, epochs=6)
    relu = claims.loc["ReLU reaches the training-error target faster than tanh"]
    assert relu["verdict"] == SUPPORTED and relu["estimate"] == pytest.approx(7 / 2)  # tanh > 6 epochs: ratio >= 3.5
    assert "lower bound" in relu["detail"]
    assert claims.loc["... by a factor of about 6", "verdict"] == INCONCLUSIVE

    def relu_never(axes: dict, seed: int) -> Outcome:
        o = paper_like(axes, seed)
        o.reach_train_target, o.final_train_acc = None, 0.6
        return o

    claims = _claims(tmp_path / "b", relu_never, epochs=6)
    relu = claims.loc["ReLU reaches the training-error target faster than tanh"]
    assert relu["verdict"] == INCONCLUSIVE and "relu did not reach 25% training error" in relu["detail"]
    assert math.isnan(relu["estimate"])


def test_claims_need_matching_variants(tmp_path: Path) -> None:
    claims = _claims(tmp_path, axes={"activation": ["sigmoid"], "dropout_p": [0.3]})
    assert claims.empty  # relu vs sigmoid and a dropout probability are not the paper's comparisons


def test_claims_average_over_the_other_axes_of_a_grid(tmp_path: Path) -> None:
    claims = _claims(tmp_path, axes={"norm": ["none", "lrn"], "pooling": ["overlap", "nonoverlap"]}, design="grid")
    lrn = claims.loc["Local response normalization lowers the error"]
    assert lrn["verdict"] == SUPPORTED and "2 matched pairs" in lrn["compared"]
    assert lrn["estimate"] == pytest.approx(-2.0, abs=0.5)


# --- step resolution ---------------------------------------------------------------------------------
RELU_STEPS = {0: 8, 1: 12, 2: 8, 3: 12, 4: 10}  # first step with training error <= 25%
TANH_FACTOR = {0: 6.0, 1: 5.0, 2: 7.0, 3: 6.0, 4: 6.0}


def stepped(axes: dict, seed: int) -> Outcome:
    """ReLU/tanh pair with step logs every 2 steps: tanh reaches the target ~6x later in steps,
    both within the first epochs, so at epoch resolution the ratio would be (1-2 epochs) / (3-6)."""
    v = Variant(**axes)
    reach = RELU_STEPS[seed] if v.activation == "relu" else int(RELU_STEPS[seed] * TANH_FACTOR[seed])
    return Outcome(
        final_val_acc=0.6 + 0.01 * seed,
        reach_train_target=math.ceil(reach / 16),
        log_every=2,
        reach_train_target_step=reach,
    )


def test_relu_tanh_ratio_uses_step_resolution_when_runs_log_steps(tmp_path: Path) -> None:
    write_planted(tmp_path, "steps", {"activation": ["tanh"]}, SEEDS, stepped, design="one-at-a-time", epochs=8)
    data = load_experiment_data(tmp_path, "steps")
    claims = check_claims(data).set_index("claim")
    speed = claims.loc["ReLU reaches the training-error target faster than tanh"]
    assert "training images" in speed["quantity"] and "step resolution" in speed["quantity"]
    # log points every 2 steps: the first at or after the planted step (all planted steps are even)
    expected = math.exp(sum(math.log(TANH_FACTOR[s]) for s in SEEDS) / len(SEEDS))
    assert speed["estimate"] == pytest.approx(expected, rel=1e-9)
    assert speed["verdict"] == SUPPORTED
    factor = claims.loc["... by a factor of about 6"]
    assert factor["ci_low"] <= 6.0 <= factor["ci_high"] and factor["verdict"] == SUPPORTED
    # at epoch resolution the same runs give a much cruder ratio
    runs = data.ok_runs.set_index(["variant", "seed"])
    relu = runs.loc[("relu-overlap-none-drop", 0)]
    assert relu["train_target_resolution"] == "step"
    assert relu["images_to_train_target"] == 8 * 32 and relu["epochs_to_train_target"] == pytest.approx(8 * 32 / 512)
