"""The 2012 AlexNet paper's claims (Krizhevsky, Sutskever & Hinton), checked against an experiment.

A claim is checked when the experiment has variants that differ only in the claim's axis, with
both levels of interest (e.g. ``activation`` = relu and tanh, all else equal). With a grid over
more axes, every such pair enters: per seed the contrast is averaged over the pairs (the main
effect restricted to the two levels); where runs are not ok, seeds or pairs are left out as in
:func:`ablate.analysis.balanced_contrast`, and the row says so.

Two kinds of claims:

* **Differences** (LRN / overlapping pooling lower the error; overlapping pooling / dropout
  shrink the generalization gap): per-seed difference ``a - b`` in percentage points, 95% t
  interval over seeds. Verdict on the claimed direction: *supported* when the interval lies
  entirely on the claimed side of 0, *contradicted* when entirely on the other side,
  *inconclusive* when it contains 0 (or fewer than 2 seeds). The paper's numbers come from other
  datasets and networks, so they are shown for context, not tested.
* **Ratios** of epochs to reach the training-error target (ReLU vs tanh; dropout vs none): the
  geometric-mean ratio with a 95% interval on the log scale (:func:`ablate.analysis.stats.ratio_interval`).
  Two rows each: the direction (interval entirely above 1 -> supported, entirely below ->
  contradicted) and the paper's factor (6x, 2x: supported when the interval contains it and
  excludes 1, contradicted when it excludes it, inconclusive otherwise). A run that never
  reached the target within its epochs is *censored*: its epochs-to-target is only known to be
  more than the epochs it ran. If only the claimed-slower variant is censored, ``epochs + 1`` is
  used, which makes the ratio a lower bound: "faster" can still be supported and a factor can
  still be exceeded, but nothing is concluded from a bound that falls short. If the claimed
  faster variant is censored the claim is inconclusive. When the runs log training steps
  (``[train] log_every``) the target is found at step resolution (the first log point at or below
  it) and the ratio is one of training images seen; a censored run then only bounds it by the
  images of all its epochs.

Claims with a number for the accuracy effect (overlapping pooling 0.4 points, LRN 1.4 points,
ImageNet top-1) also give the effect a comparison should be able to detect
(:func:`paper_effects`, used for power and seeds needed in the report).

Unlike the comparisons table there is no Holm correction here: each claim is a hypothesis
stated in advance by the paper, checked once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ablate.analysis import Contrast, Effect, ExperimentData, balanced_contrast, matched_pairs, per_seed, stats

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"

CLAIM_COLUMNS = [
    "claim",
    "axis",
    "compared",
    "paper",
    "quantity",
    "n",
    "seeds",
    "estimate",
    "ci_low",
    "ci_high",
    "verdict",
    "detail",
]


@dataclass(frozen=True)
class PaperClaim:
    """One checkable statement of the paper about ``axis``: level ``a`` against level ``b``."""

    key: str
    text: str
    paper: str
    axis: str
    a: Any  # the level the claim is about (relu, lrn, overlap, dropout on)
    b: Any  # the level it is compared with
    kind: str  # "error" | "gap" | "speed" (ratio b/a, a claimed faster) | "slowdown" (ratio a/b)
    factor: float | None = None  # the paper's ratio, checked in a second row
    # The paper's accuracy effect of a over b in points (ImageNet top-1), used as the effect a
    # study should be able to detect (power, seeds needed); None where the paper gives no number.
    effect_points: float | None = None


CLAIMS: tuple[PaperClaim, ...] = (
    PaperClaim(
        "relu_faster",
        "ReLU reaches the training-error target faster than tanh",
        "6x fewer epochs to 25% training error (CIFAR-10, 4-layer CNN, Fig. 1)",
        "activation",
        "relu",
        "tanh",
        "speed",
        factor=6.0,
    ),
    PaperClaim(
        "lrn_error",
        "Local response normalization lowers the error",
        "CIFAR-10 test error 13% -> 11% (-2 points); ImageNet top-1 -1.4 points",
        "norm",
        "lrn",
        "none",
        "error",
        effect_points=1.4,
    ),
    PaperClaim(
        "overlap_error",
        "Overlapping pooling lowers the error",
        "ImageNet top-1 -0.4 points (top-5 -0.3)",
        "pooling",
        "overlap",
        "nonoverlap",
        "error",
        effect_points=0.4,
    ),
    PaperClaim(
        "overlap_gap",
        "Overlapping pooling overfits slightly less (smaller train-val gap)",
        '"slightly more difficult to overfit" (no number)',
        "pooling",
        "overlap",
        "nonoverlap",
        "gap",
    ),
    PaperClaim(
        "dropout_gap",
        "Dropout reduces overfitting (smaller train-val gap)",
        '"substantial overfitting" without dropout (no number)',
        "dropout",
        True,
        False,
        "gap",
    ),
    PaperClaim(
        "dropout_slower",
        "Dropout slows convergence (more epochs to the training-error target)",
        "roughly 2x the iterations to converge",
        "dropout",
        True,
        False,
        "slowdown",
        factor=2.0,
    ),
)


def _label(axis: str, level: Any) -> str:
    if axis == "dropout":
        return "dropout" if level else "no dropout"
    return str(level)


def check_claims(data: ExperimentData) -> pd.DataFrame:
    """One row per applicable claim (and per paper factor); empty when no axis matches."""
    rows: list[dict[str, Any]] = []
    for claim in CLAIMS:
        pairs = matched_pairs(data, claim.axis, claim.a, claim.b)
        if not pairs:
            continue
        if claim.kind in ("error", "gap"):
            rows.append(_difference_claim(data, claim, pairs))
        elif data.targets.train_error is not None:
            rows.extend(_ratio_claim(data, claim, pairs))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


ACCURACY_METRICS = ("final_val_acc", "best_val_acc")


def paper_effects(data: ExperimentData) -> dict[tuple[str, str], Effect]:
    """(variant, accuracy metric) -> the paper's effect size, for each variant that differs from
    the baseline only in the axis of a claim with a number (overlapping pooling 0.4 points, LRN
    1.4 points: ImageNet top-1), as a fraction."""
    out: dict[tuple[str, str], Effect] = {}
    base = data.variant_axes[data.baseline]
    for claim in CLAIMS:
        if claim.effect_points is None:
            continue
        for v in data.variants:
            axes = data.variant_axes[v]
            differs = [k for k in set(axes) | set(base) if axes.get(k) != base.get(k)]
            if differs != [claim.axis] or {axes.get(claim.axis), base.get(claim.axis)} != {claim.a, claim.b}:
                continue
            source = f"the paper's ImageNet top-1 effect of {claim.axis} {claim.a} vs {claim.b}"
            for metric in ACCURACY_METRICS:
                out[(v, metric)] = Effect(claim.effect_points / 100.0, source)
    return out


def _transformed(data: ExperimentData, column: str, f: Any) -> dict[str, dict[int, float]]:
    """:func:`ablate.analysis.per_seed` of ``column`` with ``f`` applied to every value."""
    return {v: {s: f(x) for s, x in by_seed.items()} for v, by_seed in per_seed(data, column).items()}


def _pair_contrast(data: ExperimentData, values: dict[str, dict[int, float]], pairs: list[tuple[str, str]]) -> Contrast:
    """Per seed, the mean over the matched pairs of ``value(a) - value(b)``."""
    return balanced_contrast(values, [[(1.0, a), (-1.0, b)] for a, b in pairs], data.seeds_seen())


def _compared(claim: PaperClaim, pairs: list[tuple[str, str]]) -> str:
    head = f"{_label(claim.axis, claim.a)} vs {_label(claim.axis, claim.b)}"
    return head + f" ({len(pairs)} matched pair{'s' if len(pairs) != 1 else ''} of variants)"


def _difference_claim(data: ExperimentData, claim: PaperClaim, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    if claim.kind == "error":
        values = _transformed(data, "final_val_acc", lambda x: 100.0 * (1.0 - x))  # validation error, percent
        quantity = "difference in final validation error (points)"
    else:
        values = _transformed(data, "gen_gap", lambda x: 100.0 * x)
        quantity = "difference in generalization gap, train - val accuracy (points)"
    contrast = _pair_contrast(data, values, pairs)
    seeds = contrast.seeds
    test = stats.paired_test(contrast.values)
    a, b = _label(claim.axis, claim.a), _label(claim.axis, claim.b)
    noun = "error" if claim.kind == "error" else "gap"
    if test.n < 2:
        verdict, detail = INCONCLUSIVE, f"{test.n} seed(s) with ok runs of every paired variant: no interval"
    elif test.ci_high < 0:
        verdict, detail = SUPPORTED, f"{a} has a lower {noun} than {b}: the whole 95% interval is below 0"
    elif test.ci_low > 0:
        verdict, detail = CONTRADICTED, f"{a} has a higher {noun} than {b}: the whole 95% interval is above 0"
    else:
        verdict, detail = INCONCLUSIVE, "the 95% interval contains 0"
    if contrast.note:
        detail += f"; {contrast.note}"
    if claim.kind == "gap" and "train_acc" in set(data.ok_runs.get("gap_source", [])):
        detail += (
            "; some runs have no eval-mode training accuracy, so their gap uses the accuracy measured during the "
            "epoch in training mode"
        )
        if claim.axis == "dropout":
            detail += " (dropout on), which lowers it for dropout variants and so also shrinks their gap"
    return _row(claim, pairs, quantity, seeds, test.diff, test.ci_low, test.ci_high, verdict, detail, claim.paper)


def _ratio_claim(data: ExperimentData, claim: PaperClaim, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Ratio slower/faster of epochs to the training-error target, per seed averaged on the log scale."""
    target = data.targets.train_error
    epochs = per_seed(data, "epochs_to_train_target")  # finite: the runs that reached the target
    ran = per_seed(data, "epochs_done")  # every ok run
    # At step resolution epochs are fractional (images seen / images per epoch): the ratio is one
    # of training images. A run that never got there needed more than the epochs it ran: at epoch
    # resolution at least one more, at step resolution only "more".
    ok = data.ok_runs
    steps = "train_target_resolution" in ok and bool(len(ok)) and (ok["train_target_resolution"] == "step").all()
    # The level claimed faster and the one claimed slower.
    fast, slow = (claim.a, claim.b) if claim.kind == "speed" else (claim.b, claim.a)
    fast_variants = {a if fast == claim.a else b for a, b in pairs}
    logs: dict[str, dict[int, float]] = {}
    censored_runs: set[tuple[str, int]] = set()
    fast_missing = 0
    for v, by_seed in ran.items():
        for s, done in by_seed.items():
            if s in epochs.get(v, {}):
                logs.setdefault(v, {})[s] = math.log(epochs[v][s])
            elif v in fast_variants:
                fast_missing += 1
            elif done > 0:  # the slower level never got there: more than the epochs it ran
                logs.setdefault(v, {})[s] = math.log(done if steps else done + 1.0)
                censored_runs.add((v, s))
    # log(slow) - log(fast) per matched pair: the log of the ratio slow / fast
    ordered = [(b, a) if a in fast_variants else (a, b) for a, b in pairs]
    contrast = _pair_contrast(data, logs, ordered)
    used = [] if fast_missing else contrast.seeds
    censored = sum(1 for (v, s) in censored_runs if s in used and any(v == slow_v for slow_v, _ in ordered))
    r = stats.ratio_from_logs(contrast.values if not fast_missing else [])
    ratio, lo, hi = r.ratio, r.ci_low, r.ci_high
    test = stats.paired_test(contrast.values if not fast_missing else [])
    fast_l, slow_l = _label(claim.axis, fast), _label(claim.axis, slow)
    quantity = (
        f"ratio of training images to {target:.0%} training error (step resolution), {slow_l} / {fast_l}"
        if steps
        else f"ratio of epochs to {target:.0%} training error, {slow_l} / {fast_l}"
    )
    bound = f"; {censored} {slow_l} run(s) never reached the target, so the ratio is a lower bound" if censored else ""
    bound += f"; {contrast.note}" if contrast.note else ""

    if fast_missing:
        reason = (
            f"{fast_l} did not reach {target:.0%} training error in {fast_missing} ok run(s) "
            "(train longer or pass --target-train-error)"
        )
        return [
            _row(claim, pairs, quantity, [], math.nan, math.nan, math.nan, INCONCLUSIVE, reason, claim.paper),
            _factor_row(claim, pairs, quantity, [], math.nan, math.nan, math.nan, INCONCLUSIVE, reason),
        ]
    if test.n < 2:
        reason = f"{test.n} seed(s) with ok runs of every paired variant: no interval{bound}"
        return [
            _row(claim, pairs, quantity, used, ratio, lo, hi, INCONCLUSIVE, reason, claim.paper),
            _factor_row(claim, pairs, quantity, used, ratio, lo, hi, INCONCLUSIVE, reason),
        ]
    if lo > 1:
        verdict, detail = SUPPORTED, f"{fast_l} needs fewer epochs: the whole 95% interval is above 1"
    elif hi < 1 and not censored:
        verdict, detail = CONTRADICTED, f"{fast_l} needs more epochs: the whole 95% interval is below 1"
    else:
        verdict, detail = (
            INCONCLUSIVE,
            "the 95% interval contains 1" if not (hi < 1) else "interval below 1, but a lower bound only",
        )
    rows = [_row(claim, pairs, quantity, used, ratio, lo, hi, verdict, detail + bound, claim.paper)]

    f = claim.factor
    assert f is not None
    if lo > f:
        fv, fd = CONTRADICTED, f"the whole 95% interval is above the paper's {f:g}x"
    elif hi < f and not censored:
        fv, fd = CONTRADICTED, f"the whole 95% interval is below the paper's {f:g}x"
    elif hi < f:
        fv, fd = INCONCLUSIVE, f"interval below {f:g}x, but it bounds the ratio from below only"
    elif censored:
        fv, fd = INCONCLUSIVE, f"the interval reaches {f:g}x, but it bounds the ratio from below only"
    elif lo > 1:
        fv, fd = SUPPORTED, f"the 95% interval contains the paper's {f:g}x and excludes 1"
    else:
        fv, fd = INCONCLUSIVE, f"the 95% interval contains {f:g}x but also 1"
    rows.append(_factor_row(claim, pairs, quantity, used, ratio, lo, hi, fv, fd + bound))
    return rows


def _factor_row(claim: PaperClaim, *row_args: Any) -> dict[str, Any]:
    """The second row of a claim with a factor (``_row``'s arguments but ``paper``): the paper's
    size, ``claim.factor``, checked on the same ratio and interval."""
    row = _row(claim, *row_args, f"{claim.factor:g}x")
    row["claim"] = f"... by a factor of about {claim.factor:g}"
    return row


def _row(
    claim: PaperClaim,
    pairs: list[tuple[str, str]],
    quantity: str,
    seeds: list[int],
    est: float,
    lo: float,
    hi: float,
    verdict: str,
    detail: str,
    paper: str,
) -> dict[str, Any]:
    return {
        "claim": claim.text,
        "axis": claim.axis,
        "compared": _compared(claim, pairs),
        "paper": paper,
        "quantity": quantity,
        "n": len(seeds),
        "seeds": " ".join(str(s) for s in seeds),
        "estimate": est,
        "ci_low": lo,
        "ci_high": hi,
        "verdict": verdict,
        "detail": detail,
    }
