"""Data and training settings: the ``[data]`` and ``[train]`` tables of an experiment file.

Each field carries a comment saying what it controls (nanoGPT's ``GPTConfig`` style) and, in its
metadata, the rule it must satisfy. :mod:`ablate.experiment.experiment` reads those rules to validate a file,
so adding a setting means adding one field here and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# Upper bound of every integer setting unless its field says otherwise (metadata "max"): the
# largest 32-bit signed integer, far beyond any sensible size, epoch or step count, and small
# enough that no size overflows a tensor index before the dataset can refuse it.
INT_MAX = 2**31 - 1
# Seeds (run seeds and data.seed) lie in 0..SEED_MAX: what NumPy's and torch's seeding accept.
SEED_MAX = 2**32 - 1
SEED_RANGE = f"an integer in 0..{SEED_MAX} (the seeds NumPy and torch accept)"


def rule(check: Callable[[Any], bool], allowed: str) -> dict[str, Any]:
    """Field metadata: ``check(value)`` must hold; ``allowed`` says so to the user when it does not."""
    return {"check": check, "allowed": allowed}


def positive(allowed: str = "an integer > 0") -> dict[str, Any]:
    return rule(lambda v: v > 0, allowed)


def one_of(*choices: object) -> dict[str, Any]:
    return rule(lambda v: v in choices, " | ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices))


@dataclass(frozen=True)
class DataConfig:
    # Registered dataset name: "shapes" is built in and generated (no files); see `ablate list`.
    dataset: str = "shapes"
    # Training images to use: for generated sets the number made, for real ones a seeded,
    # class-balanced subset. None (leave out) means the dataset's default / everything. At most
    # INT_MAX here; a real dataset refuses more than it holds, the generated one more than fits
    # in memory.
    train_size: int | None = field(default=None, metadata=positive())
    # Validation images, as for train_size.
    val_size: int | None = field(default=None, metadata=positive())
    # Seed for generating / subsetting the data. Fixed across run seeds on purpose: every run of
    # every variant sees the same images, as with a real dataset; run seeds vary the training.
    seed: int = field(default=0, metadata={**rule(lambda v: 0 <= v <= SEED_MAX, SEED_RANGE), "max": SEED_MAX})
    # Folder holding the dataset's files (real datasets); else $ABLATE_DATA/<dataset>, else the
    # system location (e.g. /usr/share/datasets/fashion-mnist from Debian's package). A relative
    # path is taken from the working directory and stored resolved to an absolute one when the
    # file is loaded, so the same text run from another folder (other data) is another run.
    root: str | None = field(default=None, metadata=rule(lambda v: v.strip() != "" and "\0" not in v, "a folder path"))
    # Allow the dataset's downloader to fetch missing files. Off: nothing is ever fetched silently.
    download: bool = False
    # Training-time augmentation, run on the training device: "none" or "paper" (random
    # translations by cropping a reflect-padded image, and horizontal flips, as in section 4.1).
    augment: str = field(default="none", metadata=one_of("none", "paper"))
    # Share of an unsplit image folder held out for validation (seeded split).
    val_fraction: float = field(default=0.1, metadata=rule(lambda v: 0 < v < 1, "a number strictly between 0 and 1"))
    # Skip unreadable images in an image folder (counted in the run record) instead of stopping.
    skip_bad_images: bool = False
    # Draw each run's training subset (train_size images, class-balanced) from the full training
    # set with the run seed, so that intervals over seeds also cover which images were sampled.
    # Off: every run of every variant trains on the same data.seed subset. Validation images stay
    # fixed either way. (Added after results existed: at its default it leaves run ids as they were.)
    resample: bool = field(default=False, metadata={"identity_at_default": False})


@dataclass(frozen=True)
class TrainConfig:
    # Passes over the training set.
    epochs: int = field(default=10, metadata=positive())
    # Images per optimizer step.
    batch_size: int = field(default=128, metadata=positive())
    # Images per evaluation batch (no gradients, so it can be larger).
    eval_batch_size: int = field(default=500, metadata=positive())
    # sgd (with momentum and weight decay, as in the paper) | adam | adamw.
    optimizer: str = field(default="sgd", metadata=one_of("sgd", "adam", "adamw"))
    # Peak learning rate.
    lr: float = field(default=0.01, metadata=positive("a number > 0"))
    # SGD momentum (the paper's 0.9); ignored by adam/adamw.
    momentum: float = field(default=0.9, metadata=rule(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    # L2 penalty (sgd, adam) or decoupled decay (adamw); the paper's 5e-4.
    weight_decay: float = field(default=5e-4, metadata=rule(lambda v: v >= 0, "a number >= 0"))
    # Learning-rate schedule, stepped every batch: none | step (x gamma every step_epochs) | cosine (to 0).
    schedule: str = field(default="none", metadata=one_of("none", "step", "cosine"))
    # For schedule = "step": epochs between multiplications by gamma.
    step_epochs: int = field(default=30, metadata=positive())
    # For schedule = "step": the factor (the paper divides by 10).
    gamma: float = field(default=0.1, metadata=rule(lambda v: 0 < v <= 1, "a number in (0, 1]"))
    # Steps of linear learning-rate warm-up from 0 at the start (0 = none).
    warmup_steps: int = field(default=0, metadata=rule(lambda v: v >= 0, "an integer >= 0"))
    # Use PyTorch's deterministic algorithms (and no cuDNN autotuning): bit-identical reruns on
    # the GPU at some cost in speed. CPU runs are reproducible either way.
    deterministic: bool = False
    # --- speed settings (recorded with every run in record["runtime"]) ---------------------------
    # Arithmetic: auto | fp32 | bf16 | fp16. auto = bf16 autocast on a CUDA device that supports
    # it (tensor cores at fp32's exponent range, so no loss scaling), fp32 elsewhere (bf16
    # autocast is slower than fp32 on CPUs without AMX, see docs/performance.md). fp16 runs
    # with a dynamic gradient scaler. Reproducibility: bf16/fp16 round activations and gradients
    # to 8/11 significant bits, so losses differ from fp32 in the 2nd-3rd digit; a rerun with the
    # same precision and device is as repeatable as fp32. On Ampere+ GPUs "fp32" convolutions
    # use TF32 (PyTorch's default, recorded as runtime.tf32_conv).
    precision: str = field(default="auto", metadata=one_of("auto", "fp32", "bf16", "fp16"))
    # NHWC memory layout for the model and batches: the same maths through faster conv kernels
    # (cuDNN and oneDNN; see docs/performance.md). Costs nothing in reproducibility
    # beyond a different (fixed) order of floating-point sums than NCHW.
    channels_last: bool = True
    # torch.compile the model: off | default | max-autotune. Fuses elementwise work (the LRN,
    # activations) at the price of start-up time in every run (tens of seconds; minutes with
    # max-autotune, which also benchmarks kernels, so its choices can differ between runs). Off by
    # default: a sweep is many short runs, and eager mode is what every other tool measures.
    compile: str = field(default="off", metadata=one_of("off", "default", "max-autotune"))
    # Let cuDNN time its conv algorithms on the first batch of each shape and keep the fastest.
    # Faster, but the pick can change between runs (so can the last bits of results); forced off
    # when deterministic = true. No effect on the CPU.
    cudnn_benchmark: bool = True
    # --- bookkeeping (not part of a run's identity: changing it never changes results) ---------
    # Optimizer steps between the step-level points of a run record (record["steps"]: mean
    # training loss and accuracy over the last N steps, lr, images seen, elapsed seconds). None
    # (leave out) = about 20 points per epoch; 0 = none. Sums stay on the device and are read
    # once per epoch, so logging adds no host synchronization.
    log_every: int | None = field(
        default=None, metadata={**rule(lambda v: v >= 0, "an integer >= 0"), "identity": False}
    )
    # Minutes between mid-epoch checkpoints (a checkpoint is also saved at the end of every
    # epoch), so that a killed cell loses at most this much training. 0 = end of epochs only.
    checkpoint_minutes: float = field(
        default=10.0, metadata={**rule(lambda v: v >= 0, "a number >= 0"), "identity": False}
    )
    # --- execution (not part of a run's identity either: a cell has one run id however it trains)
    # Seeds of one variant trained at once as one fused model (K grouped convolutions and batched
    # matrix products, ablate.models.fused): each seed trains as it would alone (its initial
    # weights, data order, augmentation and dropout masks), and K small models fill a GPU that one
    # leaves idle. An integer >= 1, or "auto" (K chosen by a short probe of the device,
    # ablate.bench.fuse.choose_fuse); 1 trains the seeds one by one.
    fuse_seeds: int | str = field(
        default=1,
        metadata={
            **rule(
                lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                'an integer >= 1, or "auto"',
            ),
            "identity": False,
        },
    )
