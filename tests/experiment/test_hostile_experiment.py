"""Hostile experiment files and overrides (issue #10): each is refused at load time with one
line, or accepted with the meaning the user wrote; never a crash later, never a silent change."""

from __future__ import annotations

import dataclasses
import os

import pytest

from ablate.cli import app
from ablate.config import INT_MAX, SEED_MAX, DataConfig, TrainConfig
from ablate.experiment.errors import ExperimentError
from ablate.experiment.experiment import NAME_MAX, load_experiment, parse_experiment

from helpers import ROOT
from helpers.sweeps import DEMO, DEMO_POOLING

GPU = (
    DEMO_POOLING
    + """
[gpu]
seeds = [0, 1, 2]
data.train_size = 5000
train.epochs = 30
"""
)


def _raw(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


# --- item 1: file, then [gpu] (on CUDA), then --set; --set gpu.* edits [gpu] ----------------------
def test_set_gpu_key_edits_the_gpu_table_on_cuda_only():
    raw = _raw(GPU)
    cuda = parse_experiment(raw, "exp.toml", ["gpu.train.epochs=5"], device_type="cuda")
    assert cuda.train.epochs == 5 and cuda.data.train_size == 5000 and cuda.seeds == (0, 1, 2)
    cpu = parse_experiment(raw, "exp.toml", ["gpu.train.epochs=5"], device_type="cpu")
    assert cpu.train.epochs == 2 and not cpu.gpu_overrides_applied


def test_set_wins_over_gpu_whatever_the_order_on_the_command_line():
    raw = _raw(GPU)
    for overrides in (["train.epochs=4", "gpu.train.epochs=5"], ["gpu.train.epochs=5", "train.epochs=4"]):
        assert parse_experiment(raw, "exp.toml", overrides, device_type="cuda").train.epochs == 4


def test_set_gpu_key_without_a_gpu_table_applies_on_cuda():
    exp = parse_experiment(_raw(DEMO_POOLING), "exp.toml", ["gpu.train.epochs=7", "gpu.seeds=[5]"], device_type="cuda")
    assert exp.train.epochs == 7 and exp.seeds == (5,) and exp.gpu_overrides_applied


@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
@pytest.mark.parametrize("text", [DEMO_POOLING, GPU], ids=["no-gpu-table", "gpu-table"])
@pytest.mark.parametrize(
    "item,expected",
    [
        ("gpu.train.epochs=x", r'gpu\.train\.epochs: "x" \(from --set\) is a string'),
        ("gpu.train.epochs=0", r"gpu\.train\.epochs: 0 \(from --set\) is not allowed"),
        ("gpu.train.lr=inf", r"gpu\.train\.lr: inf \(from --set\) is not allowed; expected a finite number"),
        ("gpu.data.dataset=imagenet", r'gpu\.data\.dataset: "imagenet" \(from --set\) is not allowed'),
        ("gpu.seeds=3", r"gpu\.seeds: 3 \(from --set\) is an integer, not a list"),
        ("gpu.model.norm=lrn", r"gpu\.model: unknown key"),
        ("gpu.data=3", r"gpu\.data: 3 \(from --set\) is an integer; expected a table"),
    ],
)
def test_set_gpu_values_are_validated_on_every_device(text, device_type, item, expected):
    with pytest.raises(ExperimentError, match=expected):
        parse_experiment(_raw(text), "exp.toml", [item], device_type=device_type)


# --- item 7: numbers that pass a rule but would crash later --------------------------------------
_FLOAT_SETTINGS = [
    f"{section}.{f.name}"
    for section, cls in (("data", DataConfig), ("train", TrainConfig))
    for f in dataclasses.fields(cls)
    if "float" in str(f.type)
] + ["model.dropout_p"]
_INT_SETTINGS = [
    (f"{section}.{f.name}", f.metadata.get("max", INT_MAX))
    for section, cls in (("data", DataConfig), ("train", TrainConfig))
    for f in dataclasses.fields(cls)
    if "int" in str(f.type)
]


def test_the_generic_checks_cover_settings():
    assert {"train.lr", "train.checkpoint_minutes", "data.val_fraction", "model.dropout_p"} <= set(_FLOAT_SETTINGS)
    assert {"data.train_size", "data.seed", "train.epochs", "train.batch_size"} <= {k for k, _ in _INT_SETTINGS}


@pytest.mark.parametrize("key", _FLOAT_SETTINGS)
@pytest.mark.parametrize("literal", ["inf", "-inf", "nan", "1" + "0" * 400])
def test_non_finite_floats_are_refused_everywhere(write_experiment, key, literal):
    path = write_experiment(DEMO_POOLING)
    with pytest.raises(ExperimentError, match=rf"{key}: .* is not allowed; expected a finite number"):
        load_experiment(path, [f"{key}={literal}"])
    # the same in the file itself, and as an axis value
    if key == "model.dropout_p":
        with pytest.raises(ExperimentError, match="axes.dropout_p: nan is not allowed; expected a finite number"):
            load_experiment(
                write_experiment(DEMO_POOLING.replace("[axes]", "[axes]\ndropout_p = [0.1, nan]"), "axis.toml")
            )


@pytest.mark.parametrize("key,maximum", _INT_SETTINGS)
def test_integers_are_bounded_everywhere(write_experiment, key, maximum):
    path = write_experiment(DEMO_POOLING)
    with pytest.raises(
        ExperimentError, match=rf"{key}: {maximum + 1} \(from --set\) is not allowed; expected .*{maximum}"
    ):
        load_experiment(path, [f"{key}={maximum + 1}"])
    with pytest.raises(ExperimentError, match=rf"{key}: -{maximum + 1} \(from --set\) is not allowed"):
        load_experiment(path, [f"{key}=-{maximum + 1}"])


def test_absurd_sizes_and_seeds_are_refused_with_the_range(write_experiment):
    path = write_experiment(DEMO_POOLING)
    with pytest.raises(ExperimentError, match=r"data\.train_size: 10000000000 \(from --set\) .* at most 2147483647"):
        load_experiment(path, ["data.train_size=10000000000"])
    for item, key in (
        ("seeds=[0, 4294967296]", "seeds"),
        ("data.seed=4294967296", r"data\.seed"),
        ("seeds=[-1]", "seeds"),
    ):
        with pytest.raises(
            ExperimentError, match=rf"{key}: .* in 0\.\.4294967295 \(the seeds NumPy and torch accept\)"
        ):
            load_experiment(path, [item])
    exp = load_experiment(path, [f"seeds=[0, {SEED_MAX}]", f"data.seed={SEED_MAX}", f"data.train_size={INT_MAX}"])
    assert exp.seeds == (0, SEED_MAX) and exp.data.seed == SEED_MAX and exp.data.train_size == INT_MAX


def test_name_length_is_bounded(write_experiment):
    path = write_experiment(DEMO_POOLING)
    assert load_experiment(path, ["name=" + "a" * NAME_MAX]).name == "a" * NAME_MAX
    with pytest.raises(
        ExperimentError, match=r"name: \"a{60}\.\.\.\" \(101 characters\) \(from --set\) is not allowed"
    ):
        load_experiment(path, ["name=" + "a" * (NAME_MAX + 1)])


# --- item 11: BOM, names from file names, non-ASCII, bare seeds -----------------------------------
def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + DEMO_POOLING.encode())
    assert load_experiment(path).name == "demo"


def test_a_name_taken_from_the_file_name_says_so(write_experiment):
    path = write_experiment("seeds = [0]\n", "my study.toml")
    with pytest.raises(ExperimentError) as e:
        load_experiment(path)
    msg = str(e.value)
    assert 'name: "my study", taken from the file name because the file sets no name, is not allowed' in msg
    assert "set one with name = " in msg and "--set name=" in msg
    assert load_experiment(path, ["name=my-study"]).name == "my-study"


def test_non_ascii_and_control_characters_in_messages(write_experiment):
    with pytest.raises(ExperimentError, match='name: "müller" is not allowed'):
        load_experiment(write_experiment('name = "müller"\nseeds = [0]\n'))
    with pytest.raises(ExperimentError) as e:
        load_experiment(write_experiment('seeds = [0]\n"a\\nb\\u2028c" = 1\n'))
    assert "\n" not in str(e.value) and "\u2028" not in str(e.value) and "a\\nb\\u2028c: unknown key" in str(e.value)


@pytest.mark.parametrize("seeds", ["3", "0", "true", '"0, 1"'])
def test_seeds_must_be_a_list(write_experiment, seeds):
    with pytest.raises(ExperimentError, match="seeds: .*expected a list of seeds|seeds: .* is an integer, not a list"):
        load_experiment(write_experiment(DEMO_POOLING.replace("seeds = [0, 1]", f"seeds = {seeds}")))


def test_bare_integer_seeds_suggest_the_list(write_experiment):
    with pytest.raises(
        ExperimentError,
        match=r"seeds: 3 is an integer, not a list of seeds; write seeds = \[0, 1, 2\] "
        r"for three seeds, or seeds = \[3\] for the single seed 3",
    ):
        load_experiment(write_experiment(DEMO_POOLING.replace("seeds = [0, 1]", "seeds = 3")))


def test_docs_and_shipped_experiments_do_not_use_bare_seeds():
    root = ROOT
    for path in [root / "README.md", *(root / "experiments").rglob("*.toml"), *(root / "docs").glob("*.md")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.split("#")[0].strip()
            if stripped.startswith("seeds") and "=" in stripped:
                assert stripped.split("=", 1)[1].strip().startswith("["), f"{path}: {line}"


# --- item 3: data.root names the data, not a path relative to the working directory --------------
def test_relative_data_root_is_resolved_from_the_working_directory(tmp_path, monkeypatch, write_experiment):
    path = write_experiment(DEMO_POOLING.replace("[data]", '[data]\ndataset = "imagefolder"\nroot = "images"'))
    ids = {}
    for where in ("a", "b"):
        (tmp_path / where / "images").mkdir(parents=True)
        monkeypatch.chdir(tmp_path / where)
        exp = load_experiment(path)
        assert exp.data.root == str((tmp_path / where / "images").resolve())
        ids[where] = {c.run_id for c in exp.cells()}
    assert not ids["a"] & ids["b"]  # other data, other runs


def test_data_root_home_and_absolute(tmp_path, monkeypatch, write_experiment):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = write_experiment(DEMO_POOLING)
    assert load_experiment(path, ["data.root=~/imgs"]).data.root == str(tmp_path.resolve() / "imgs")
    assert load_experiment(path, [f"data.root={tmp_path}/x/../imgs"]).data.root == str(tmp_path.resolve() / "imgs")
    for bad in ('data.root=""', 'data.root="a\\u0000b"'):
        with pytest.raises(ExperimentError, match=r"data\.root: .* is not allowed; expected a folder path"):
            load_experiment(path, [bad])


def test_run_ids_without_data_root_are_unchanged(write_experiment):
    # Pinned from the code before this change: results of earlier runs stay "done".
    exp = load_experiment(write_experiment(DEMO))
    assert [c.run_id for c in exp.cells()][:3] == ["30eb71142eb6e3cc", "1045db6a3e218e91", "006afa3f72228357"]
    absolute = load_experiment(exp.path, ["data.root=/abs/data", "data.dataset=imagefolder"])
    assert [c.run_id for c in absolute.cells()][:3] == ["7d6b4fb109adf5ce", "e3758040857c0072", "f6cef75e4c2b6ecb"]


# --- files that are not experiment files ----------------------------------------------------------
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_devices_and_huge_files_are_refused(tmp_path):
    with pytest.raises(ExperimentError, match="is not a regular file"):
        load_experiment("/dev/zero")
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 1_000_001)
    with pytest.raises(ExperimentError, match="is larger than 1,000,000 bytes"):
        load_experiment(big)


def test_deeply_nested_toml_is_one_line(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("seeds = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ExperimentError, match="malformed TOML|nested too deeply"):
        load_experiment(path)


def test_unreadable_path_is_one_line(tmp_path):
    path = tmp_path / ("x" * 300 + ".toml")  # longer than any file system allows
    with pytest.raises(ExperimentError, match="cannot read: File name too long"):
        load_experiment(path)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--set", "train.lr=inf"], "train.lr: inf (from --set) is not allowed"),
        (["--set", "data.train_size=10000000000"], "at most 2147483647"),
        (["--set", "seeds=3"], "seeds = [0, 1, 2]"),
        (["--set", "gpu.train.epochs=x"], 'gpu.train.epochs: "x" (from --set) is a string'),
    ],
)
def test_cli_refuses_with_one_line(cli, write_experiment, tmp_path, args, expected):
    path = write_experiment(DEMO_POOLING)
    result = cli.invoke(app, ["show", str(path), "--results", str(tmp_path / "r"), "--device", "cpu", *args])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and expected in result.output, result.output


@pytest.mark.parametrize(
    "item,value",
    [
        ("train.lr=0.1\nseeds=[1]", "0.1\nseeds=[1]"),  # not one literal: a string, refused below
        ("seeds=" + "[" * 5000 + "]" * 5000, "[" * 5000 + "]" * 5000),
        ("train.lr=0.1 # a comment", 0.1),
    ],
    ids=["two-statements", "deeply-nested", "comment"],
)
def test_override_values_are_one_toml_literal(item, value):
    from ablate.experiment.experiment import parse_override

    assert parse_override(item)[1] == value


def test_injected_statements_in_an_override_are_refused(write_experiment):
    with pytest.raises(ExperimentError, match=r"train\.lr: .* is a string; expected a number"):
        load_experiment(write_experiment(DEMO_POOLING), ["train.lr=0.1\nseeds=[1]"])


def test_negative_zero_is_zero(write_experiment):
    path = write_experiment(DEMO_POOLING)
    plain = load_experiment(path, ["train.weight_decay=0.0", "model.dropout_p=0.0"])
    negative = load_experiment(path, ["train.weight_decay=-0.0", "model.dropout_p=-0.0"])
    assert [c.run_id for c in negative.cells()] == [c.run_id for c in plain.cells()]
    assert negative.baseline.slug() == plain.baseline.slug() == "relu-overlap-none-drop0"
