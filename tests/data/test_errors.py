"""Bad or missing data: one clear line (a DataError from the library; ``error: ...`` and exit code
2 from the CLI), raised while loading, before any model trains."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ablate.cli import app
from ablate.config import DataConfig
from ablate.data import DataError, load_splits
from ablate.data import fashion_mnist as fm

from helpers.data import (
    FOLDER_CLASSES,
    corrupt_jpeg,
    idx_bytes,
    write_cifar,
    write_class_images,
    write_fashion,
    write_imagefolder,
)

pytestmark = pytest.mark.usefixtures("data_env")


@pytest.fixture(autouse=True)
def no_system_fashion_mnist(tmp_path, monkeypatch):
    """These tests must not find the real files a machine may have in /usr/share/datasets."""
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "usr-share-datasets-fashion-mnist")


def _error(cfg: DataConfig, size: int = 28) -> str:
    with pytest.raises(DataError) as info:
        load_splits(cfg, size)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- missing data --------------------------------------------------------------------------------
def test_missing_fashion_mnist_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "data"))
    msg = _error(DataConfig(dataset="fashion-mnist"))
    assert str(tmp_path / "data" / "fashion-mnist") in msg and str(fm.SYSTEM_DIR) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "data.download = true" in msg and "data.root" in msg
    msg = _error(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "mine")))
    assert f"looked in {tmp_path / 'mine'};" in msg  # data.root given: only there


def test_partial_fashion_mnist_is_missing_data(tmp_path):
    write_fashion(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert "files not found" in _error(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm")))


def test_missing_cifar10(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "data"))
    msg = _error(DataConfig(dataset="cifar10"))
    assert "cifar-10-batches-py" in msg and str(tmp_path / "data" / "cifar10") in msg and "data.download = true" in msg
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "cifar-10-batches-py" / "data_batch_4").unlink()
    assert "not found" in _error(DataConfig(dataset="cifar10", root=str(tmp_path / "c")))


@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10"])
def test_download_needs_a_place_and_reports_failure(tmp_path, monkeypatch, dataset):
    assert "needs a place to put the files" in _error(DataConfig(dataset=dataset, download=True))
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST" if dataset == "fashion-mnist" else "CIFAR10", offline)
    msg = _error(DataConfig(dataset=dataset, download=True, root=str(tmp_path / "dl")))
    assert f"download into {tmp_path / 'dl'} failed: [Errno -3] Temporary failure" in msg


# --- corrupt files -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage,expected",
    [
        (lambda p: p.write_bytes(b"this is not gzip"), "cannot read"),
        (lambda p: p.write_bytes(gzip.compress(b"\x01\x02\x03\x04junk")), "not an IDX file"),
        (lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-10])), "header promises"),
    ],
)
def test_corrupt_idx_file_is_named(tmp_path, damage, expected):
    write_fashion(tmp_path / "fm")
    damage(tmp_path / "fm" / "train-images-idx3-ubyte.gz")
    msg = _error(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm")))
    assert expected in msg and "train-images-idx3-ubyte.gz" in msg


def test_idx_images_and_labels_must_agree(tmp_path):
    import numpy as np

    write_fashion(tmp_path / "fm")
    (tmp_path / "fm" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(7, np.uint8))))
    assert "holds 40 images but" in _error(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm")))


def test_corrupt_cifar_batch_is_named(tmp_path):
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x02garbage")
    msg = _error(DataConfig(dataset="cifar10", root=str(tmp_path / "c")))
    assert "cannot read" in msg and "test_batch" in msg


def test_corrupt_image_is_named_or_skipped_and_counted(tmp_path):
    root = write_imagefolder(tmp_path / "imgs", per_class=4)
    corrupt_jpeg(root / "dog" / "broken.jpg")
    (root / "fox" / "empty.png").write_bytes(b"")
    msg = _error(DataConfig(dataset="imagefolder", root=str(root)))
    assert f"cannot read image {root / 'dog' / 'broken.jpg'}" in msg
    assert "and 1 more" in msg and "skip_bad_images = true" in msg
    s = load_splits(DataConfig(dataset="imagefolder", root=str(root), skip_bad_images=True), 28)
    assert s.info["skipped_bad_images"] == 2 and s.train_x.shape[0] + s.val_x.shape[0] == 13
    assert [f.split(":")[0] for f in s.info["skipped_files"]] == ["dog/broken.jpg", "fox/empty.png"]


# --- image-folder structure ----------------------------------------------------------------------
def test_imagefolder_structure_errors(tmp_path):
    assert "data.root is not set" in _error(DataConfig(dataset="imagefolder"))
    assert "is not a folder" in _error(DataConfig(dataset="imagefolder", root=str(tmp_path / "nope")))

    one = tmp_path / "one"
    write_class_images(one / "cat", FOLDER_CLASSES["cat"], 3, 0)
    msg = _error(DataConfig(dataset="imagefolder", root=str(one)))
    assert "has 1 class folder(s) (cat); a classifier needs at least 2" in msg
    assert "has 0 class folder(s);" in _error(DataConfig(dataset="imagefolder", root=str(tmp_path / "one" / "cat")))

    empty = write_imagefolder(tmp_path / "empty", per_class=2)
    (empty / "owl").mkdir()
    (empty / "owl" / "notes.txt").write_text("no images here")
    assert f"class folder {empty / 'owl'} has no images" in _error(DataConfig(dataset="imagefolder", root=str(empty)))


def test_imagefolder_all_images_of_a_class_unreadable(tmp_path):
    root = write_imagefolder(tmp_path / "imgs", per_class=2)
    (tmp_path / "imgs" / "owl").mkdir()
    corrupt_jpeg(root / "owl" / "a.jpg")
    msg = _error(DataConfig(dataset="imagefolder", root=str(root), skip_bad_images=True))
    assert f"class folder {root / 'owl'} has no readable images" in msg


def test_imagefolder_val_tree_must_match_training_classes(tmp_path):
    root = tmp_path / "set"
    for name, colour in FOLDER_CLASSES.items():
        write_class_images(root / "train" / name, colour, 2, 0)
    write_class_images(root / "val" / "owl", (1, 2, 3), 2, 0)
    assert "class folder(s) owl that the training folder lacks" in _error(
        DataConfig(dataset="imagefolder", root=str(root))
    )


def test_imagefolder_settings_that_cannot_work(tmp_path):
    root = write_imagefolder(tmp_path / "imgs", per_class=2)
    assert "strictly between 0 and 1" in _error(DataConfig(dataset="imagefolder", root=str(root), val_fraction=1.0))
    assert "download = true is not possible" in _error(DataConfig(dataset="imagefolder", root=str(root), download=True))
    msg = _error(DataConfig(dataset="imagefolder", root=str(root), train_size=500))
    assert "data.train_size = 500 is more than the" in msg


# --- through the command line --------------------------------------------------------------------
EXPERIMENT = """
name = "data-errors"
seeds = [0]
[data]
dataset = "{dataset}"
{extra}
[train]
epochs = 1
batch_size = 8
"""


def _cli_cases(tmp_path: Path) -> dict[str, tuple[str, str, str]]:
    bad = write_imagefolder(tmp_path / "bad", per_class=2)
    corrupt_jpeg(bad / "cat" / "broken.jpg")
    one = tmp_path / "one"
    write_class_images(one / "cat", FOLDER_CLASSES["cat"], 2, 0)
    return {  # name: (dataset, extra [data] lines, text the one line must contain)
        "missing fashion-mnist": ("fashion-mnist", f'root = "{tmp_path / "none"}"', "dataset-fashion-mnist"),
        "missing cifar10": ("cifar10", "", "cifar-10-batches-py"),
        "imagefolder without root": ("imagefolder", "", "data.root is not set"),
        "corrupt image": ("imagefolder", f'root = "{bad}"', f"cannot read image {bad / 'cat' / 'broken.jpg'}"),
        "one class": ("imagefolder", f'root = "{one}"', "a classifier needs at least 2"),
        "val_fraction out of range": (
            "imagefolder",
            f'root = "{bad}"\nval_fraction = 1.5',
            "data.val_fraction: 1.5 is not allowed",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing fashion-mnist",
        "missing cifar10",
        "imagefolder without root",
        "corrupt image",
        "one class",
        "val_fraction out of range",
    ],
)
def test_cli_data_errors_exit_2_with_one_line(tmp_path, cli, write_experiment, case):
    dataset, extra, expected = _cli_cases(tmp_path)[case]
    exp = write_experiment(EXPERIMENT.format(dataset=dataset, extra=extra))
    results = tmp_path / "results"
    result = cli.invoke(app, ["run", str(exp), "--device", "cpu", "--results", str(results)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], result.output
    assert "Traceback" not in result.output
    assert not list(results.rglob("runs/*.json"))  # nothing trained


def test_cli_skipped_images_land_in_the_run_record(tmp_path, cli, write_experiment):
    root = write_imagefolder(tmp_path / "imgs", per_class=3)
    corrupt_jpeg(root / "fox" / "broken.jpg")
    exp = write_experiment(EXPERIMENT.format(dataset="imagefolder", extra=f'root = "{root}"\nskip_bad_images = true'))
    # 3 images per class plus 1 unreadable, some held out: 7 to train on, so batches of 4 (a
    # batch larger than the training set is refused since 1ed80e8)
    result = cli.invoke(
        app, ["run", str(exp), "--device", "cpu", "--results", str(tmp_path / "results"), "--set", "train.batch_size=4"]
    )
    assert result.exit_code == 0, result.output
    (record_path,) = (tmp_path / "results" / "data-errors" / "runs").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "ok"
    assert record["data"]["classes"] == ["cat", "dog", "fox"]
    assert record["data"]["info"]["skipped_bad_images"] == 1
    assert record["data"]["info"]["skipped_files"][0].startswith("fox/broken.jpg")
