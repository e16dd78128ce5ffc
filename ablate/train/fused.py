"""K cells of one variant trained as one fused model: whether they can be, how the optimizer's
state splits into the members' and joins again, and how resumed members regroup.

The members share everything but the seed; each gets from its seed what its solo run gets (see
:mod:`ablate.train.setup`), and nothing in a step mixes them:

* the loss is the sum of the members' mean losses, so each member's gradient is its solo run's;
* the optimizers ablate offers (SGD with momentum, Adam, AdamW, weight decay) update every
  element on its own, so one optimizer over the fused tensors is K solo optimizers;
* fp16 is not fused: its loss scaler skips a step for every member when one member overflows.
  (A global gradient-norm clip would mix members the same way; ablate has none. One added later
  must clip per member.)

A member's checkpoint is its solo run's, key for key (:func:`member_optimizer_state` and
:func:`ablate.models.fused.member_state_dict` take its part of the fused state), plus ``fused``:
the group, K and the member's place. A group resumes as the group it was
(:func:`resume_groups`): members saved by one group at one step fuse again in their old order,
which makes a resumed group bit-identical to one never interrupted (on the CPU); members saved
apart (a kill between two members' saves, or solo checkpoints) train in groups of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ablate.experiment.experiment import Cell
from ablate.models.alexnet import build_model
from ablate.models.fused import member_tensor, why_not_fusable
from ablate.runtime.device import resolve_precision


def why_not_fused(cells: Sequence[Cell], num_classes: int, device: torch.device) -> str | None:
    """Why these cells (one variant, K > 1 seeds) must train one by one, in one line; None when
    they can be fused. Builds one model to look at its layers (the global RNG left as it was)."""
    if resolve_precision(cells[0].train, device) == "fp16":
        return "fp16 scales one loss for all members, so one member's overflow would skip every member's step"
    with torch.random.fork_rng(devices=[]):
        return why_not_fusable(build_model(cells[0].variant, num_classes))


def member_optimizer_state(optimizer: torch.optim.Optimizer, index: int, k: int) -> dict[str, Any]:
    """Member ``index``'s part of the state of an optimizer over a fused model of ``k`` members:
    what the optimizer of its solo model would hold (copies; per-parameter indices unchanged)."""
    state = optimizer.state_dict()
    if k == 1:
        return state
    return {
        "state": {
            i: {key: member_tensor(v, index, k).clone() if isinstance(v, torch.Tensor) else v for key, v in s.items()}
            for i, s in state["state"].items()
        },
        "param_groups": state["param_groups"],
    }


def load_member_optimizer_states(optimizer: torch.optim.Optimizer, states: Sequence[dict[str, Any]]) -> None:
    """Load the members' solo optimizer states (:func:`member_optimizer_state` each, in the fused
    model's member order) into ``optimizer``: each tensor the members' concatenated along dim 0, in
    its parameter's memory layout; a 0-dim one (Adam's step count) shared, so it must agree."""
    if len(states) == 1:
        optimizer.load_state_dict(states[0])
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    joined: dict[int, dict[str, Any]] = {}
    for i, first in states[0]["state"].items():
        param, entry = params[int(i)], {}
        for key, value in first.items():
            parts = [s["state"][i][key] for s in states]
            if not isinstance(value, torch.Tensor):
                entry[key] = value
            elif value.dim() == 0:
                if any(not torch.equal(p.cpu(), value.cpu()) for p in parts):
                    raise ValueError(f"optimizer state {key!r} differs between the members")
                entry[key] = value.clone()
            else:
                whole = torch.cat([p.to(param.device) for p in parts]).view(param.shape)
                entry[key] = torch.empty_like(param, dtype=whole.dtype).copy_(whole)
        joined[i] = entry
    optimizer.load_state_dict({"state": joined, "param_groups": states[0]["param_groups"]})


def resume_groups(states: Sequence[dict[str, Any] | None]) -> list[list[int]]:
    """Which members (indices into ``states``, their checkpoints or None) train together: those
    without a checkpoint in one group; those saved by one fused group at one step in another, in
    the order they had in it; every other checkpoint (a solo run's) alone."""
    fresh = [i for i, s in enumerate(states) if s is None]
    saved: dict[tuple[Any, ...], list[int]] = {}
    for i, s in enumerate(states):
        if s is None:
            continue
        fused = s.get("fused")
        key = ("group", fused["group"], s["done_steps"]) if fused else ("solo", i)
        saved.setdefault(key, []).append(i)
    groups = [
        sorted(members, key=lambda i: (states[i].get("fused") or {}).get("member", 0)) for members in saved.values()
    ]
    return ([fresh] if fresh else []) + groups
