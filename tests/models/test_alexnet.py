"""Every registered variant builds and trains; alexnet65 is exactly the seed network."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablate import ACTIVATIONS, ARCHS, INITS, NORMS, POOLINGS, Variant, build_model, count_params, layer_shapes
from ablate.models.alexnet import NORM_AFTER
from ablate.models.layers import LocalResponseNorm


def alexnet65_variants() -> list[Variant]:
    """The full factorial of the four axes on the seed network (3 x 2 x 3 x 2 = 36 variants)."""
    combos = itertools.product(ACTIVATIONS.names(), POOLINGS.names(), NORMS.names(), (True, False))
    return [Variant(activation=a, pooling=p, norm=n, dropout=d) for a, p, n, d in combos]


def single_axis_variants(arch: str, axes: tuple[str, ...]) -> list[Variant]:
    """The baseline of ``arch`` plus each value of each listed axis alone."""
    base = Variant(arch=arch)
    values = {
        "activation": ACTIVATIONS.names(),
        "pooling": POOLINGS.names(),
        "norm": NORMS.names(),
        "dropout": [True, False],
        "init": INITS.names(),
    }
    found = {base.replace(**{axis: v}) for axis in axes for v in values[axis]}
    return sorted(found, key=Variant.slug)


def check_trains(variant: Variant, batch: int, classes: int = 7) -> None:
    torch.manual_seed(0)
    model = build_model(variant, num_classes=classes)
    size = model.input_size
    x = torch.randn(batch, 3, size, size)
    out = model(x)
    assert out.shape == (batch, classes)
    assert torch.isfinite(out).all()
    F.cross_entropy(out, torch.arange(batch) % classes).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing}"
    zero = [name for name, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, f"all-zero gradient for {zero}"


@pytest.mark.parametrize("variant", alexnet65_variants(), ids=Variant.slug)
def test_every_alexnet65_variant_forward_backward(variant):
    check_trains(variant, batch=4)


@pytest.mark.parametrize("variant", single_axis_variants("alexnet65", ("init",)), ids=Variant.slug)
def test_every_init_scheme_trains(variant):
    check_trains(variant, batch=4)


# The 58M-parameter paper geometry costs seconds per variant on a CPU, so only the axes whose
# layers depend on the geometry (norm channels, pooling sizes) are run at full size here.
@pytest.mark.parametrize("variant", single_axis_variants("alexnet", ("pooling", "norm")), ids=Variant.slug)
def test_paper_alexnet_geometry_dependent_variants_forward_backward(variant):
    check_trains(variant, batch=2)


def test_seed_network_parameter_count():
    assert count_params(build_model(Variant(), num_classes=2)) == 14_585_538


def test_seed_network_layer_shapes():
    shapes = dict(layer_shapes(build_model(Variant(), num_classes=2)))
    expected = {
        "conv1": (48, 55, 55),
        "pool1": (48, 27, 27),
        "conv2": (128, 27, 27),
        "pool2": (128, 13, 13),
        "conv3": (192, 13, 13),
        "conv4": (192, 13, 13),
        "conv5": (128, 13, 13),
        "pool3": (128, 6, 6),
        "fc1": (2048,),
        "fc2": (2048,),
        "fc3": (2,),
    }
    assert {k: shapes[k] for k in expected} == expected


def test_paper_geometry():
    model = build_model(Variant(arch="alexnet"), num_classes=1000)
    shapes = dict(layer_shapes(model))
    assert model.input_size == 227
    assert shapes["conv1"] == (96, 55, 55) and shapes["conv2"] == (256, 27, 27)
    assert shapes["conv3"] == (384, 13, 13) and shapes["conv5"] == (256, 13, 13)
    assert shapes["pool3"] == (256, 6, 6) and shapes["fc1"] == (4096,) and shapes["fc3"] == (1000,)


@pytest.mark.parametrize("arch", ARCHS.names())
@pytest.mark.parametrize("pooling", POOLINGS.names())
def test_both_poolings_keep_the_feature_map_sizes(arch, pooling):
    shapes = dict(layer_shapes(build_model(Variant(arch=arch, pooling=pooling), num_classes=2)))
    assert shapes["pool1"][1:] == (27, 27) and shapes["pool2"][1:] == (13, 13) and shapes["pool3"][1:] == (6, 6)


def test_pooling_windows():
    overlap = build_model(Variant(pooling="overlap"), 2).features.pool1
    nonoverlap = build_model(Variant(pooling="nonoverlap"), 2).features.pool1
    assert (overlap.kernel_size, overlap.stride) == (3, 2)
    assert (nonoverlap.kernel_size, nonoverlap.stride) == (2, 2)


@pytest.mark.parametrize("norm,cls", [("lrn", LocalResponseNorm), ("batchnorm", nn.BatchNorm2d), ("none", nn.Identity)])
def test_norm_sits_after_the_activation_of_conv1_and_conv2(norm, cls):
    features = build_model(Variant(norm=norm), 2).features
    names = list(dict(features.named_children()))
    assert NORM_AFTER == ("conv1", "conv2")
    for i in (1, 2):
        assert names.index(f"norm{i}") == names.index(f"act{i}") + 1
        assert names.index(f"pool{i}") == names.index(f"norm{i}") + 1
        assert isinstance(getattr(features, f"norm{i}"), cls)
    assert not any(n.startswith("norm") and n not in ("norm1", "norm2") for n in names)


def test_dropout_before_the_last_two_fc_layers():
    names = list(dict(build_model(Variant(dropout_p=0.3), 2).classifier.named_children()))
    assert names == ["fc1", "act6", "drop1", "fc2", "act7", "drop2", "fc3"]
    model = build_model(Variant(dropout_p=0.3), 2)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    assert not any(isinstance(m, nn.Dropout) for m in build_model(Variant(dropout=False), 2).modules())


def test_lrn_matches_the_paper_formula_on_a_hand_computed_example():
    # One pixel, 3 channels with activities 1, 2, 3; n=5 so every channel's window covers all
    # three: sum of squares = 14. b = a / (2 + 1e-4 * 14) ** 0.75.
    a = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    b = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)(a)
    denom = (2 + 1e-4 * 14) ** 0.75
    assert torch.allclose(b.flatten(), torch.tensor([1 / denom, 2 / denom, 3 / denom]), rtol=1e-6)
    # Seven channels: channel 0's window is channels 0..2, channel 3's is 1..5.
    a = torch.arange(1.0, 8.0).view(1, 7, 1, 1)
    b = LocalResponseNorm()(a).flatten()
    assert b[0].item() == pytest.approx(1 / (2 + 1e-4 * (1 + 4 + 9)) ** 0.75, rel=1e-6)
    assert b[3].item() == pytest.approx(4 / (2 + 1e-4 * (4 + 9 + 16 + 25 + 36)) ** 0.75, rel=1e-6)


def test_lrn_agrees_with_torch_with_alpha_scaled_by_n():
    x = torch.randn(2, 16, 5, 5) * 10
    ours = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)(x)
    torchs = nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)(x)
    assert torch.allclose(ours, torchs, atol=1e-6)


def test_paper_init():
    model = build_model(Variant(init="paper"), 10)
    layers = dict([*model.features.named_children(), *model.classifier.named_children()])
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3"):
        expected_bias = 1.0 if name in ("conv2", "conv4", "conv5", "fc1", "fc2") else 0.0
        assert torch.all(layers[name].bias == expected_bias), name
    assert layers["fc1"].weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert layers["fc1"].weight.mean().item() == pytest.approx(0.0, abs=1e-3)


def test_same_seed_same_initial_weights_across_variants_where_shapes_match():
    def weights(variant: Variant) -> dict[str, torch.Tensor]:
        torch.manual_seed(3)
        return {k: v for k, v in build_model(variant, 10).state_dict().items() if "norm" not in k}

    base = weights(Variant())
    for other in (
        Variant(pooling="nonoverlap"),
        Variant(norm="batchnorm"),
        Variant(dropout=False),
        Variant(activation="tanh"),
    ):
        w = weights(other)
        assert base.keys() == w.keys()
        assert all(torch.equal(base[k], w[k]) for k in base), other.slug()


def test_build_model_rejects_bad_class_count():
    with pytest.raises(ValueError, match="num_classes"):
        build_model(Variant(), num_classes=0)


def test_variant_slug_and_value_semantics():
    assert Variant().slug() == "relu-overlap-none-drop"
    assert Variant(norm="lrn").slug() == "relu-overlap-lrn-drop"
    assert Variant(arch="alexnet", dropout=False).slug() == "alexnet-relu-overlap-none-nodrop"
    assert Variant(dropout_p=0.3, init="paper").slug() == "relu-overlap-none-drop0.3-init_paper"
    assert Variant() == Variant() and hash(Variant()) == hash(Variant())
    assert len({Variant(), Variant(), Variant(norm="lrn")}) == 2
