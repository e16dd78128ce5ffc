"""A fused model computes what its members compute: outputs and gradients of K models from
``build_model`` equal those of the one model fused from them (float64), per-member or shared input;
a member's state dict is its model's; a layer without a fused form is named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablate.models.alexnet import ArchSpec, build_model
from ablate.models.fused import (
    CannotFuse,
    fuse_models,
    member_count,
    member_state_dict,
    set_dropout_generators,
    stack_states,
    why_not_fusable,
)
from ablate.models.lrn import _lrn_math, local_response_norm
from ablate.registry import ACTIVATIONS, ARCHS, NORMS, register_activation, register_arch, register_norm
from ablate.runtime.seeding import dropout_generator
from ablate.variant import Variant

CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def tiny_and_groupnorm():
    register_arch("tiny-fused-model")(
        ArchSpec(19, (8, 16, 16, 16, 8), 5, 1, 0, fc_width=32, final_size=1, description="tiny")
    )
    register_norm("groupnorm-fuse")(lambda channels: nn.GroupNorm(4, channels))
    yield
    ARCHS.unregister("tiny-fused-model")
    NORMS.unregister("groupnorm-fuse")


def members(variant: Variant, k: int = 3) -> list[nn.Module]:
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(build_model(variant, 10).double())
    return out


@pytest.mark.parametrize("norm", ["none", "lrn", "batchnorm", "groupnorm-fuse"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_outputs_and_gradients_are_the_members(norm, channels_last):
    variant = Variant(arch="tiny-fused-model", norm=norm, activation="tanh", dropout=True)
    solo = members(variant)
    fused = fuse_models(solo)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for m in (*solo, fused):
        m.to(memory_format=layout)
    set_dropout_generators(fused, [dropout_generator(s, CPU) for s in range(3)])
    for seed, m in enumerate(solo):
        set_dropout_generators(m, [dropout_generator(seed, CPU)])
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(4, 3, 19, 19, generator=g, dtype=torch.float64).contiguous(memory_format=layout) for _ in solo]
    ys = [torch.randint(0, 10, (4,), generator=g) for _ in solo]
    out = fused(torch.cat(xs, 1).contiguous(memory_format=layout))
    assert out.shape == (3, 4, 10) and member_count(fused) == 3
    torch.stack([F.cross_entropy(out[k], ys[k]) for k in range(3)]).sum().backward()
    grads = {name: p.grad for name, p in fused.named_parameters()}
    for k, m in enumerate(solo):
        o = m(xs[k])
        F.cross_entropy(o, ys[k]).backward()
        torch.testing.assert_close(out[k], o, rtol=1e-12, atol=1e-12)
        for name, p in m.named_parameters():
            torch.testing.assert_close(grads[name].unflatten(0, (3, -1))[k], p.grad, rtol=1e-10, atol=1e-14)
        # BatchNorm's running statistics moved as each member's own did.
        state = member_state_dict(fused, k)
        for key, value in m.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=1e-12, atol=1e-14)


def test_one_batch_for_all_members_is_each_members_own_forward():
    solo = members(Variant(arch="tiny-fused-model", norm="lrn"))
    fused = fuse_models(solo).eval()
    x = torch.randn(5, 3, 19, 19, dtype=torch.float64)
    out = fused(x)
    for k, m in enumerate(solo):
        torch.testing.assert_close(out[k], m.eval()(x), rtol=1e-12, atol=1e-12)


def test_member_states_round_trip():
    solo = members(Variant(arch="tiny-fused-model", norm="batchnorm"), k=2)
    fused = fuse_models(solo)
    states = [member_state_dict(fused, k) for k in range(2)]
    for state, m in zip(states, solo):
        assert state.keys() == m.state_dict().keys()
        assert all(torch.equal(state[key], v) for key, v in m.state_dict().items())
    whole = stack_states(states, fused.state_dict())
    assert all(torch.equal(whole[key], v) for key, v in fused.state_dict().items())


@pytest.fixture
def swish():
    class Swish(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(x)

    register_activation("swish-fused-model")(Swish)
    yield "swish-fused-model"
    ACTIVATIONS.unregister("swish-fused-model")


def test_a_layer_without_a_fused_form_is_named(swish):
    model = build_model(Variant(arch="tiny-fused-model", activation=swish), 10)
    assert why_not_fusable(model) == "features.act1 (Swish) has no fused form"
    with pytest.raises(CannotFuse, match=r"act1 \(Swish\) has no fused form"):
        fuse_models([model, model])
    assert why_not_fusable(build_model(Variant(arch="tiny-fused-model", norm="lrn"), 10)) is None


@pytest.mark.parametrize("channels_last", [False, True])
def test_lrn_in_channel_blocks_is_lrn_of_each_block(channels_last):
    x = torch.randn(2, 3 * 8, 5, 5, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    want = torch.cat([local_response_norm(block, impl="eager") for block in x.split(8, 1)], 1)
    for got in (
        local_response_norm(x, impl="eager", groups=3),
        local_response_norm(x, impl="torch", groups=3),
        _lrn_math(x, 5, 1e-4, 0.75, 2.0, groups=3),
    ):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
