"""Set up the training of one cell, or of K cells of one variant as one fused model: seed, backend
flags, model, optimizer and schedule, each cell's device-resident batches and dropout stream
(:func:`prepare` / :func:`prepare_group` → :class:`Training` of :class:`Member` s), and the state of
an epoch in progress (:class:`EpochProgress`, what a mid-epoch checkpoint holds).
:func:`place_model` is the one way training and ``ablate bench`` put a model on a device.

A member gets from its seed exactly what its solo run gets: its model is ``build_model``'s after
every RNG is seeded with the seed, its data order and augmentation come from generators of that
seed, its dropout masks from its own generator (:func:`ablate.runtime.seeding.dropout_generator`).
K members become one model through :func:`ablate.models.fused.fuse_models`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ablate.config import TrainConfig
from ablate.data import ImageSplits
from ablate.data.loader import DeviceBatches
from ablate.experiment.experiment import Cell
from ablate.models.alexnet import build_model, count_params
from ablate.models.fused import FusedAlexNet, fuse_models, set_dropout_generators
from ablate.runtime.clock import StepTimer
from ablate.runtime.device import apply_speed_settings, resolve_precision
from ablate.runtime.memory import reset_peak_memory
from ablate.runtime.precision import autocast_for
from ablate.runtime.seeding import dropout_generator, seed_everything
from ablate.train.hooks import CellHooks
from ablate.train.optim import lr_factor, make_optimizer
from ablate.variant import Variant

# Steps at the start of a run (and after each resume) left out of the throughput figure: they
# include cuDNN autotuning, torch.compile and allocator warm-up, which say nothing about
# steady-state speed.
WARMUP_STEPS = 3
# Step-level points per epoch when [train] log_every is left out.
LOG_POINTS_PER_EPOCH = 20


def train_eval_subset(splits: ImageSplits, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed sample of training images, as many as the validation split has, chosen by the data
    seed only: the same images for every variant and run seed. Evaluated in eval mode after each
    epoch, it gives a training accuracy free of dropout and augmentation, so that the
    generalization gap compares like with like."""
    n = min(splits.train_x.shape[0], splits.val_x.shape[0])
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(splits.train_x.shape[0], generator=g)[:n].sort().values
    return splits.train_x[idx], splits.train_y[idx]


@dataclass(frozen=True)
class Group:
    """Where fused members trained: the group's id (from its cells' run ids when it formed) and K,
    the members it formed with. Stored with each member's checkpoint and record."""

    id: str
    k: int

    @classmethod
    def of(cls, run_ids: Sequence[str]) -> Group:
        digest = hashlib.sha256(",".join(sorted(run_ids)).encode()).hexdigest()[:16]
        return cls(digest, len(run_ids))


@dataclass
class Member:
    """One cell of a training (alone, or one of K fused): what is its own. Its data order,
    augmentation and dropout masks come from its seed only, so they are the same alone or fused."""

    cell: Cell
    splits: ImageSplits
    train_batches: DeviceBatches
    val_batches: DeviceBatches
    # A fixed training sample evaluated like the validation split (see train_eval_subset).
    train_eval_batches: DeviceBatches
    # The run's own stream of dropout masks (ablate.runtime.seeding.dropout_generator).
    dropout_gen: torch.Generator
    # What the runner asks of this cell (its checkpoint file, stop requests, ...).
    hooks: CellHooks
    # Its place in the group it formed with (its block of the fused tensors then); 0 alone.
    index: int = 0
    # Finished epochs' metrics, and the step-level points so far.
    epochs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    # Mid-cell resumes from a checkpoint (epoch, step, when).
    resumed: list[dict[str, Any]] = field(default_factory=list)
    # Seconds spent saving its checkpoints, and how many (kept out of every training time).
    checkpoint_s: float = 0.0
    checkpoints: int = 0

    @property
    def run_id(self) -> str:
        return self.cell.run_id


@dataclass
class Training:
    """Everything the training of one cell, or of K fused cells, needs, built by :func:`prepare`;
    :func:`~ablate.train.loop.train_epoch` runs it. The optimizer, schedule, step count and clock
    are shared by the members (they take every step together); the rest is per :class:`Member`."""

    # The model of a solo run, or the fused model of all members (ablate.models.fused).
    model: nn.Module
    # The module the loop calls: ``model`` itself, or its torch.compile wrapper.
    step_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    autocast: Callable[[], Any]
    # The cells trained, in the order of the fused model's blocks (one for a solo run).
    members: list[Member]
    device: torch.device
    precision: str
    # Steps left out of the timing so far (the run's warm-up, and again after each resume).
    warmup: int
    timer: StepTimer
    # Backend flags in force (cuDNN autotuning, TF32), for the record.
    backend: dict[str, Any]
    # Trainable parameters of one member's model.
    params: int
    # The fused group the members belong to (None: a solo run that never was in one).
    group: Group | None = None
    # Optimizer steps taken so far in the run.
    done_steps: int = 0
    # Timing starts once done_steps reaches this (the end of the latest warm-up).
    timed_from: int = 0
    # Steps between step-level log points (0: none).
    log_every: int = 0

    @property
    def fused(self) -> bool:
        """Whether the members run as one fused model (a batch holds each member's own images)."""
        return isinstance(self.model, FusedAlexNet)

    @property
    def train(self) -> TrainConfig:
        return self.members[0].cell.train


def build_for_device(
    variant: Variant, num_classes: int, device: torch.device, channels_last: bool, compile: str
) -> tuple[nn.Module, nn.Module]:
    """The variant's model on ``device`` in the chosen memory layout, and the module a loop
    calls: the model itself, or its ``torch.compile`` wrapper (``compile``: off | default |
    max-autotune). ``ablate bench`` builds models only through this (training through
    :func:`prepare`, which builds them the same way, from each cell's seed)."""
    return place_model(build_model(variant, num_classes), device, channels_last, compile)


def place_model(
    model: nn.Module, device: torch.device, channels_last: bool, compile: str
) -> tuple[nn.Module, nn.Module]:
    """``model`` (a solo or a fused one) on ``device`` in the chosen memory layout, and the module a
    loop calls: the model itself, or its ``torch.compile`` wrapper."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    step_model = model if compile == "off" else torch.compile(model, mode=None if compile == "default" else compile)
    return model, step_model


def _log_every(train: TrainConfig, steps_per_epoch: int) -> int:
    if train.log_every is not None:
        return train.log_every
    return max(1, steps_per_epoch // LOG_POINTS_PER_EPOCH)


def check_group(cells: Sequence[Cell]) -> None:
    """Cells that may train together: at least one, and all of one variant, sharing everything but
    their (distinct) seeds. Raises ValueError."""
    if not cells:
        raise ValueError("no cells to train")
    first = cells[0]
    for cell in cells[1:]:
        if (cell.experiment, cell.variant, cell.data, cell.train) != (
            first.experiment,
            first.variant,
            first.data,
            first.train,
        ):
            raise ValueError(
                f"cells trained together must share everything but the seed: {first.run_id} and {cell.run_id} differ"
            )
    if len({c.seed for c in cells}) != len(cells):
        raise ValueError("cells trained together must have distinct seeds")


def make_members(
    cells: Sequence[Cell], splits: Sequence[ImageSplits], device: torch.device, hooks: Sequence[CellHooks]
) -> list[Member]:
    """Each cell's batches, dropout stream and hooks. Members with the same split share its
    storage on the device (one copy) and, for evaluation, its batches (one pass for all)."""
    train = cells[0].train
    layout = {"channels_last": train.channels_last}
    members: list[Member] = []
    for i, (cell, data, hook) in enumerate(zip(cells, splits, hooks)):
        first = members[0] if members else None
        if first is not None and data.train_x is first.splits.train_x and data.train_y is first.splits.train_y:
            train_batches = first.train_batches.reseeded(cell.seed)
        else:
            train_batches = DeviceBatches(
                data.train_x,
                data.train_y,
                data.mean,
                data.std,
                device,
                train.batch_size,
                shuffle=True,
                drop_last=True,
                seed=cell.seed,
                augment=cell.data.augment,
                channels_last=train.channels_last,
            )
        same = first is not None and data.mean == first.splits.mean and data.std == first.splits.std
        if same and data.val_x is first.splits.val_x and data.val_y is first.splits.val_y:
            val_batches = first.val_batches
        else:
            val_batches = DeviceBatches(
                data.val_x,
                data.val_y,
                data.mean,
                data.std,
                device,
                train.eval_batch_size,
                channels_last=train.channels_last,
            )
        if same and data.train_x is first.splits.train_x:
            train_eval_batches = first.train_eval_batches
        else:
            train_eval_batches = DeviceBatches(
                *train_eval_subset(data, cell.data.seed),
                data.mean,
                data.std,
                device,
                train.eval_batch_size,
                **layout,
            )
        members.append(
            Member(
                cell=cell,
                splits=data,
                train_batches=train_batches,
                val_batches=val_batches,
                train_eval_batches=train_eval_batches,
                dropout_gen=dropout_generator(cell.seed, device),
                hooks=hook,
                index=i,
            )
        )
    return members


def build_models(cells: Sequence[Cell], num_classes: int) -> list[nn.Module]:
    """Each cell's model from ``build_model``, initialised from the cell's seed as its solo run's is
    (every RNG seeded with it first)."""
    models = []
    for cell in cells:
        seed_everything(cell.seed, cell.train.deterministic)
        models.append(build_model(cell.variant, num_classes))
    return models


def assemble(
    models: Sequence[nn.Module], members: list[Member], device: torch.device, group: Group | None, fuse: bool
) -> Training:
    """A :class:`Training` of ``members`` from their models: the one model of a solo run, or (with
    ``fuse``) the fused model of all of them; the optimizer, schedule, scaler and clock."""
    train = members[0].cell.train
    backend = apply_speed_settings(train, device)
    precision = resolve_precision(train, device)
    model = fuse_models(models) if fuse else models[0]
    model, step_model = place_model(model, device, train.channels_last, train.compile)
    set_dropout_generators(model, [m.dropout_gen for m in members])
    optimizer = make_optimizer(model, train)
    steps = len(members[0].train_batches)
    # Warm-up: cuDNN autotuning, torch.compile and allocator growth happen in the first steps and
    # say nothing about steady-state speed. A run too short to have steps after it is timed whole.
    warmup = WARMUP_STEPS if train.epochs * steps > WARMUP_STEPS else 0
    return Training(
        model=model,
        step_model=step_model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(train, steps)),
        scaler=torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
        autocast=autocast_for(precision, device),
        members=members,
        device=device,
        precision=precision,
        warmup=warmup,
        timer=StepTimer(device),
        backend=backend,
        params=count_params(models[0]),
        group=group,
        timed_from=warmup,
        log_every=_log_every(train, steps),
    )


def prepare(cell: Cell, splits: ImageSplits, device: torch.device, hooks: CellHooks | None = None) -> Training:
    """Seed, set the speed flags, build the model, optimizer and batch iterators for ``cell``."""
    return prepare_group([cell], [splits], device, [hooks or CellHooks()])


def prepare_group(
    cells: Sequence[Cell],
    splits: Sequence[ImageSplits],
    device: torch.device,
    hooks: Sequence[CellHooks],
    group: Group | None = None,
) -> Training:
    """:func:`prepare` for K cells of one variant that share everything but the seed: each
    member's model initialised from its seed, fused into one when K > 1 (``group``: the group
    they belong to; by default a new one of these cells). Raises
    :class:`~ablate.models.fused.CannotFuse` for a model with a layer that has no fused form."""
    check_group(cells)
    reset_peak_memory(device)
    models = build_models(cells, splits[0].num_classes)
    members = make_members(cells, splits, device, hooks)
    if group is None and len(cells) > 1:
        group = Group.of([c.run_id for c in cells])
    return assemble(models, members, device, group, fuse=len(cells) > 1)


@dataclass
class EpochProgress:
    """Where training is inside one epoch: what a mid-epoch checkpoint must hold to continue. The
    sums have one entry per member; :meth:`member_state` is one member's part, in the form a solo
    run's checkpoint holds it."""

    epoch: int
    # Each member's data-order and augmentation generators as they were when the epoch began: a
    # resume replays the epoch's batch streams from them and skips the batches already trained on.
    order_states: list[torch.Tensor]
    aug_states: list[torch.Tensor]
    loss_sum: torch.Tensor  # running sums per member, on the device (no host synchronization)
    hits: torch.Tensor
    step: int = 0  # steps done in this epoch
    wall_s: float = 0.0  # training wall time of the epoch before the current stretch
    timed_images: int = 0  # the epoch's timed part before the current stretch (per member)
    timed_seconds: float = 0.0
    # Cumulative loss and hit sums at each log point of the epoch (points x members, on the
    # device), and the host-side facts of each point; turned into each member's record["steps"]
    # once, at the end of the epoch.
    log_loss: torch.Tensor | None = None
    log_hits: torch.Tensor | None = None
    log_points: list[dict[str, Any]] = field(default_factory=list)

    def member_state(self, i: int) -> dict[str, Any]:
        """Member ``i``'s progress as a solo run's checkpoint holds it (copies)."""
        return {
            "epoch": self.epoch,
            "order_state": self.order_states[i],
            "aug_state": self.aug_states[i],
            "loss_sum": self.loss_sum[i].clone(),
            "hits": self.hits[i].clone(),
            "step": self.step,
            "wall_s": self.wall_s,
            "timed_images": self.timed_images,
            "timed_seconds": self.timed_seconds,
            "log_loss": None if self.log_loss is None else self.log_loss[:, i].clone(),
            "log_hits": None if self.log_hits is None else self.log_hits[:, i].clone(),
            "log_points": list(self.log_points),
        }

    @classmethod
    def of_members(cls, states: Sequence[dict[str, Any]], device: torch.device) -> EpochProgress:
        """The progress of members saved at one point of one epoch (:meth:`member_state` each)."""
        first = states[0]
        if any((s["epoch"], s["step"]) != (first["epoch"], first["step"]) for s in states):
            raise ValueError("the members' checkpoints were saved at different steps")

        def stacked(key: str, dim: int) -> torch.Tensor | None:
            if first[key] is None:
                return None
            return torch.stack([s[key].to(device) for s in states], dim)

        return cls(
            epoch=first["epoch"],
            order_states=[s["order_state"] for s in states],
            aug_states=[s["aug_state"] for s in states],
            loss_sum=stacked("loss_sum", 0),
            hits=stacked("hits", 0),
            step=first["step"],
            wall_s=first["wall_s"],
            timed_images=first["timed_images"],
            timed_seconds=first["timed_seconds"],
            log_loss=stacked("log_loss", 1),
            log_hits=stacked("log_hits", 1),
            log_points=list(first["log_points"]),
        )


def new_progress(run: Training, epoch: int) -> EpochProgress:
    """A fresh epoch's progress: the generators as they are now, zeroed sums on the device."""
    device, steps, k = run.device, len(run.members[0].train_batches), len(run.members)
    points = -(-steps // run.log_every) if run.log_every else 0
    return EpochProgress(
        epoch=epoch,
        order_states=[m.train_batches.order_gen.get_state() for m in run.members],
        aug_states=[m.train_batches.aug_gen.get_state() for m in run.members],
        loss_sum=torch.zeros(k, device=device, dtype=torch.float64),
        hits=torch.zeros(k, device=device, dtype=torch.int64),
        log_loss=torch.zeros(points, k, device=device, dtype=torch.float64) if points else None,
        log_hits=torch.zeros(points, k, device=device, dtype=torch.int64) if points else None,
    )
