"""What a report compares: the per-run :class:`Metric` s (primary first) and the :class:`Targets`
that time-to-target metrics count up to.

A metric here is a column of the runs frame (:mod:`ablate.analysis.rows` computes it from each record);
comparisons, effects and reports take their list from :func:`metrics_for`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Targets:
    """What "reaching the target" means for time-to-target numbers (None = not computed)."""

    # Training error (1 - training accuracy) to reach; the paper's Figure 1 uses 0.25.
    train_error: float | None = 0.25
    # Validation accuracy to reach, e.g. 0.6.
    val_acc: float | None = None

    def describe(self) -> list[str]:
        out = []
        if self.train_error is not None:
            out.append(f"training error <= {self.train_error:.0%}")
        if self.val_acc is not None:
            out.append(f"validation accuracy >= {self.val_acc:.0%}")
        return out


@dataclass(frozen=True)
class Metric:
    """A per-run number that reports summarise and compare."""

    name: str  # column of the runs frame
    label: str  # for tables and plots
    higher_is_better: bool
    percent: bool = False  # a fraction shown as a percentage (differences in points)
    unit: str = ""


def metrics_for(targets: Targets, steps: bool = False) -> list[Metric]:
    """The metrics compared against the baseline, primary first; ``steps``: the runs log
    training steps, so time to the training-error target is also counted in images seen."""
    out = [
        Metric("final_val_acc", "final val accuracy", True, percent=True),
        Metric("best_val_acc", "best val accuracy", True, percent=True),
        Metric("final_val_loss", "final val loss", False, unit="nats"),
        Metric("final_train_loss", "final train loss", False, unit="nats"),
        Metric("gen_gap", "generalization gap (train - val acc)", False, percent=True),
        Metric("train_images_per_s", "training throughput", True, unit="images/s"),
    ]
    if targets.train_error is not None:
        out += [
            Metric("epochs_to_train_target", f"epochs to {targets.train_error:.0%} train error", False, unit="epochs"),
            Metric("time_to_train_target_s", f"time to {targets.train_error:.0%} train error", False, unit="s"),
        ]
        if steps:
            out.append(
                Metric(
                    "images_to_train_target", f"images to {targets.train_error:.0%} train error", False, unit="images"
                )
            )
    if targets.val_acc is not None:
        out += [
            Metric("epochs_to_val_target", f"epochs to {targets.val_acc:.0%} val acc", False, unit="epochs"),
            Metric("time_to_val_target_s", f"time to {targets.val_acc:.0%} val acc", False, unit="s"),
        ]
    return out


TARGET_METRICS = {
    "epochs_to_train_target": "reached_train_target",
    "images_to_train_target": "reached_train_target",
    "time_to_train_target_s": "reached_train_target",
    "epochs_to_val_target": "reached_val_target",
    "time_to_val_target_s": "reached_val_target",
}
