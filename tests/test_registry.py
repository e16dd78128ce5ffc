"""The registry: user code can add axis values; duplicates and unknown names are refused clearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ablate import (
    ACTIVATIONS,
    NORMS,
    RegistryError,
    UnknownNameError,
    Variant,
    build_model,
    register_activation,
    register_norm,
)


@pytest.fixture
def gelu():
    @register_activation("gelu")
    def make_gelu() -> nn.Module:
        return nn.GELU()

    yield make_gelu
    ACTIVATIONS.unregister("gelu")


def test_user_registered_activation_is_used_by_build_model(gelu):
    model = build_model(Variant(activation="gelu"), num_classes=3)
    acts = [m for m in model.modules() if isinstance(m, nn.GELU)]
    assert len(acts) == 7  # after conv1-5 and the two hidden FC layers
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert model(torch.randn(2, 3, 65, 65)).shape == (2, 3)


def test_registering_a_name_twice_is_an_error(gelu):
    with pytest.raises(RegistryError, match="already registered"):
        register_activation("gelu")(lambda: nn.GELU())
    with pytest.raises(RegistryError, match="already registered"):
        register_activation("relu")(lambda: nn.ReLU())


def test_unknown_name_lists_allowed_values_and_suggests():
    with pytest.raises(UnknownNameError) as info:
        build_model(Variant(activation="rleu"), num_classes=2)
    message = str(info.value)
    assert "unknown activation 'rleu'" in message
    assert "relu" in message and "tanh" in message
    assert "did you mean 'relu'" in message


def test_user_norm_gets_channel_count():
    seen: list[int] = []

    @register_norm("groupnorm4")
    def groupnorm(channels: int) -> nn.Module:
        seen.append(channels)
        return nn.GroupNorm(4, channels)

    try:
        build_model(Variant(norm="groupnorm4"), num_classes=2)
        assert seen == [48, 128]  # after conv1 and conv2 of alexnet65
    finally:
        NORMS.unregister("groupnorm4")


def test_pattern_listing():
    assert ACTIVATIONS.names("*")[:3] == ["relu", "tanh", "sigmoid"]
    assert ACTIVATIONS.names("t*") == ["tanh"]


def test_plugin_module_registers_a_value_used_from_the_cli(cli, write_experiment, tmp_path, monkeypatch):
    from ablate.cli import app

    (tmp_path / "my_layers.py").write_text(
        "from torch import nn\nfrom ablate import register_activation\n"
        "@register_activation('softplus')\ndef softplus():\n    return nn.Softplus()\n"
    )
    monkeypatch.chdir(tmp_path)
    path = write_experiment('seeds = [0]\n[model]\nactivation = "softplus"\n')
    try:
        shown = cli.invoke(app, ["--plugin", "my_layers", "show", str(path)])
        assert shown.exit_code == 0, shown.output
        assert "softplus-overlap-none-drop" in shown.output
    finally:
        ACTIVATIONS.unregister("softplus")
    missing = cli.invoke(app, ["--plugin", "no_such_module", "list"])
    assert missing.exit_code == 2 and "plugin 'no_such_module' could not be imported" in missing.output


@pytest.mark.parametrize("name", ["", "a b", "../x", "x/y", "gelu\n", "-x", "ü" * 3, "x" * 41, 3, None])
def test_names_that_cannot_be_slugs_or_file_names_are_refused(name):
    with pytest.raises(RegistryError, match="is not allowed; use up to 40 letters"):
        ACTIVATIONS.register(name)(lambda: None)
    assert name not in ACTIVATIONS


def test_names_like_the_built_in_ones_are_accepted():
    for name in ("gelu", "leaky-relu", "swish_1.5", "x" * 40, "gn+ws"):
        ACTIVATIONS.register(name)(lambda: None)
        ACTIVATIONS.unregister(name)
