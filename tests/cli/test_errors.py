"""Bad experiment files and options stop before training: exit code 2, one line naming the key."""

from __future__ import annotations

import pytest

from ablate.cli import app

from helpers.sweeps import tiny_sweep

GOOD = tiny_sweep("ok", optimizer=False)  # a file that loads; each case below breaks one key of it

# (what is wrong, file text, text the one-line message must contain)
BAD_FILES = [
    ("malformed TOML", "seeds = [0\n", "malformed TOML"),
    (
        "unknown top-level key",
        "seed = 3\n" + GOOD,
        "seed: unknown key (did you mean 'seeds'?); allowed at the top level: name,",
    ),
    (
        "unknown key in a table",
        GOOD.replace("epochs = 1", "epochs = 1\nlearning_rate = 0.1"),
        "train.learning_rate: unknown key; allowed in [train]: epochs, batch_size,",
    ),
    ("unknown key typo", GOOD.replace("epochs = 1", "epocs = 1"), "train.epocs: unknown key (did you mean 'epochs'?)"),
    (
        "unknown axis",
        GOOD.replace("[axes]", "[axes]\nactivaton = ['relu']"),
        "axes.activaton: unknown key (did you mean 'activation'?)",
    ),
    (
        "wrong type",
        GOOD.replace("epochs = 1", 'epochs = "ten"'),
        'train.epochs: "ten" is a string; expected an integer > 0',
    ),
    ("float for int", GOOD.replace("epochs = 1", "epochs = 1.5"), "train.epochs: 1.5 is a number"),
    ("bool for number", GOOD.replace("epochs = 1", "epochs = 1\nlr = true"), "train.lr: true is a boolean"),
    (
        "table expected",
        "data = 3\n" + GOOD.replace("[data]\ntrain_size = 64\nval_size = 32\n", ""),
        "data: 3 is an integer; expected a table [data]",
    ),
    (
        "unknown axis value",
        GOOD.replace('"nonoverlap"]', '"nonoverlapping"]'),
        'axes.pooling: "nonoverlapping" is not allowed; expected one of overlap | nonoverlap (did you mean '
        "'nonoverlap'?)",
    ),
    (
        "unknown model value",
        GOOD + '\n[model]\nactivation = "gelu"\n',
        'model.activation: "gelu" is not allowed; expected one of relu | tanh | sigmoid',
    ),
    (
        "unknown dataset",
        GOOD.replace("train_size = 64", 'dataset = "imagenet22k"\ntrain_size = 64'),
        'data.dataset: "imagenet22k" is not allowed',
    ),
    (
        "negative size",
        GOOD.replace("train_size = 64", "train_size = -5"),
        "data.train_size: -5 is not allowed; expected an integer > 0",
    ),
    (
        "zero size",
        GOOD.replace("val_size = 32", "val_size = 0"),
        "data.val_size: 0 is not allowed; expected an integer > 0",
    ),
    ("zero batch", GOOD.replace("epochs = 1", "epochs = 1\nbatch_size = 0"), "train.batch_size: 0 is not allowed"),
    (
        "negative lr",
        GOOD.replace("epochs = 1", "epochs = 1\nlr = -0.1"),
        "train.lr: -0.1 is not allowed; expected a number > 0",
    ),
    (
        "bad choice",
        GOOD.replace("epochs = 1", 'epochs = 1\noptimizer = "adamm"'),
        'train.optimizer: "adamm" is not allowed; expected sgd | adam | adamw',
    ),
    (
        "dropout_p out of range",
        GOOD + "\n[model]\ndropout_p = 1.0\n",
        "model.dropout_p: 1.0 is not allowed; expected a number in [0, 1)",
    ),
    (
        "val_fraction out of range",
        GOOD.replace("val_size = 32", "val_size = 32\nval_fraction = 1.5"),
        "data.val_fraction: 1.5 is not allowed",
    ),
    ("empty axis list", GOOD.replace('["overlap", "nonoverlap"]', "[]"), "axes.pooling: is an empty list"),
    ("repeated axis value", GOOD.replace('["overlap", "nonoverlap"]', '["overlap", "overlap"]'), "axes.pooling: "),
    ("no seeds key", GOOD.replace("seeds = [0]", ""), "seeds: missing"),
    ("empty seeds", GOOD.replace("seeds = [0]", "seeds = []"), "seeds: is empty"),
    ("negative seed", GOOD.replace("seeds = [0]", "seeds = [-1]"), "seeds: -1 is not allowed"),
    ("bad design", 'design = "random"\n' + GOOD, 'design: "random" is not allowed; expected grid | one-at-a-time'),
    ("bad name", GOOD.replace('name = "ok"', 'name = "../escape"'), 'name: "../escape" is not allowed'),
    ("bad gpu override", GOOD + "\n[gpu]\ntrain.epochs = -1\n", "gpu.train.epochs: -1 is not allowed"),
]


@pytest.mark.parametrize("what,text,expected", BAD_FILES, ids=[b[0] for b in BAD_FILES])
@pytest.mark.parametrize("command", ["run", "show"])
def test_bad_experiment_file(cli, write_experiment, tmp_path, what, text, expected, command):
    path = write_experiment(text)
    result = cli.invoke(app, [command, str(path), "--results", str(tmp_path / "results")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists()  # nothing trained, nothing written


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--set", "train.epochs=0"], "train.epochs: 0 (from --set) is not allowed"),
        (["--set", "train.epochs"], "--set 'train.epochs': expected KEY=VALUE"),
        (["--set", "trian.epochs=2"], "trian: unknown key (did you mean 'train'?)"),
        (["--set", "seeds=[]"], "seeds: is empty"),
        (["--set", "axes.pooling=[]"], "axes.pooling: is an empty list"),
        (["--set", "train.epochs.x=1"], "train.epochs: is a value"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--device", "cuda:7"], "cuda:7"),
    ],
)
def test_bad_options(cli, write_experiment, tmp_path, args, expected):
    path = write_experiment(GOOD)
    result = cli.invoke(app, ["run", str(path), "--results", str(tmp_path / "r"), *args])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert expected in result.output
    assert not (tmp_path / "r").exists()


def test_missing_and_unreadable_files(cli, tmp_path):
    for path, expected in ((tmp_path / "nope.toml", "no such file"), (tmp_path, "is a directory")):
        result = cli.invoke(app, ["run", str(path)])
        assert result.exit_code == 2 and expected in result.output and len(result.output.strip().splitlines()) == 1
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    result = cli.invoke(app, ["run", str(binary)])
    assert result.exit_code == 2 and "not a UTF-8 text file" in result.output
