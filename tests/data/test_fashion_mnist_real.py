"""One short real training run on Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package
(installed by .ci/run): the full path from the system location through the CLI to a result
record, and a model that learns (well above the 10% of chance) from a few hundred images.
Skipped when the package is not installed."""

from __future__ import annotations

import json

import pytest

from ablate.cli import app
from ablate.data import fashion_mnist as fm

pytestmark = [
    pytest.mark.usefixtures("data_env"),
    pytest.mark.skipif(
        not all((fm.SYSTEM_DIR / f"{name}.gz").is_file() for pair in fm.FILES.values() for name in pair),
        reason=f"Fashion-MNIST not installed in {fm.SYSTEM_DIR} (apt-get install dataset-fashion-mnist)",
    ),
]

# 800 training images, one epoch of 50 Adam steps (batches of 16: more steps per image than 32),
# validation on 300 test images: ~10 s on 2 cores. Over run seeds 0-2 this reached 38-52% val
# accuracy (chance: 10%); the test uses seed 0 and asks for 30%, which leaves room for other
# CPUs' arithmetic.
EXPERIMENT = """
name = "fashion-mnist-smoke"
seeds = [0]
[data]
dataset = "fashion-mnist"
train_size = 800
val_size = 300
[train]
epochs = 1
batch_size = 16
optimizer = "adam"
lr = 5e-4
weight_decay = 0.0
"""


def test_short_real_training_beats_chance(tmp_path, cli, write_experiment):
    exp = write_experiment(EXPERIMENT)
    # --no-cache: the decoded split (250 MB at 65x65) is not worth writing for one test.
    result = cli.invoke(app, ["run", str(exp), "--device", "cpu", "--no-cache", "--results", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "results" / "fashion-mnist-smoke" / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok"
    assert record["data"]["info"]["source"] == str(fm.SYSTEM_DIR)
    assert record["data"]["train_images"] == 800 and record["data"]["input_size"] == 65
    assert record["data"]["classes"] == fm.CLASSES
    assert record["summary"]["final_val_acc"] > 0.3, record["summary"]
