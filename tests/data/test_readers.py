"""Every reader on tiny generated files: Fashion-MNIST IDX, CIFAR-10 pickles, image folders.

Checks shapes, that images and labels stay paired, grey -> 3 channels, resizing, where files are
looked for, class-balanced seeded subsets and the training-set statistics.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ablate.config import DataConfig
from ablate.data import DataError, channel_stats, load_splits
from ablate.data import fashion_mnist as fm
from ablate.data.common import balanced_subset
from ablate.data.imagefolder import decode_image, split_by_fraction

from helpers.data import (
    FOLDER_CLASSES,
    LEVELS,
    idx_bytes,
    write_cifar,
    write_class_images,
    write_fashion,
    write_imagefolder,
)

pytestmark = pytest.mark.usefixtures("data_env")


# --- Fashion-MNIST -------------------------------------------------------------------------------
def test_read_idx_plain_and_gzipped(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(array))
    import gzip

    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(array)))
    for name in ("a", "a.gz"):
        assert torch.equal(fm.read_idx(tmp_path / name), torch.from_numpy(array))


def test_fashion_mnist_at_native_size_is_the_file_content(tmp_path):
    written = write_fashion(tmp_path / "fm")
    s = load_splits(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm")), 28)
    assert s.classes == fm.CLASSES
    assert s.train_x.shape == (40, 3, 28, 28) and s.val_x.shape == (20, 3, 28, 28)
    assert s.train_x.dtype == torch.uint8 and s.train_y.dtype == torch.int64
    # Grey is shared by the 3 channels as a broadcast view: no copy in memory.
    assert s.train_x.stride(1) == 0
    for c in range(3):
        assert torch.equal(s.train_x[:, c], torch.from_numpy(written["train_x"]))
    assert torch.equal(s.train_y, torch.from_numpy(written["train_y"]).long())
    assert torch.equal(s.val_x[:, 0], torch.from_numpy(written["test_x"]))
    assert s.info["val_split"] == "test" and s.info["train_available"] == 40


def test_fashion_mnist_resized_keeps_images_with_their_labels(tmp_path):
    write_fashion(tmp_path / "fm")
    s = load_splits(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm")), 65)
    assert s.train_x.shape == (40, 3, 65, 65)
    means = s.train_x[:, 0].float().mean(dim=(1, 2))
    expected = torch.tensor([LEVELS[k] for k in s.train_y.tolist()], dtype=torch.float32)
    assert (means - expected).abs().max() < 1.5


def test_fashion_mnist_stats_are_those_of_the_whole_training_split(tmp_path):
    write_fashion(tmp_path / "fm")
    full = load_splits(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm")), 32)
    sub = load_splits(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm"), train_size=10, val_size=10), 32)
    mean, std = channel_stats(full.train_x)
    assert full.mean == pytest.approx(mean) and full.std == pytest.approx(std)
    assert sub.mean == full.mean and sub.std == full.std  # a quick subset normalizes like the full study
    assert len(set(full.mean)) == 1  # grey: the same value for the 3 channels


@pytest.mark.parametrize("layout", ["env", "torchvision", "system", "uncompressed"])
def test_fashion_mnist_is_found_where_documented(tmp_path, monkeypatch, layout):
    if layout == "env":
        monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "data"))
        write_fashion(tmp_path / "data" / "fashion-mnist")
        cfg = DataConfig(dataset="fashion-mnist")
    elif layout == "torchvision":  # what download = true leaves behind
        write_fashion(tmp_path / "r" / "FashionMNIST" / "raw")
        cfg = DataConfig(dataset="fashion-mnist", root=str(tmp_path / "r"))
    elif layout == "system":
        monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "usr-share")
        write_fashion(tmp_path / "usr-share")
        cfg = DataConfig(dataset="fashion-mnist")
    else:
        write_fashion(tmp_path / "r", gz=False)
        cfg = DataConfig(dataset="fashion-mnist", root=str(tmp_path / "r"))
    assert load_splits(cfg, 28).train_x.shape[0] == 40


def test_fashion_mnist_env_comes_before_the_system_location(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "usr-share")
    write_fashion(tmp_path / "data" / "fashion-mnist", n_train=30)
    write_fashion(tmp_path / "usr-share", n_train=50)
    assert load_splits(DataConfig(dataset="fashion-mnist"), 28).train_x.shape[0] == 30


def test_fashion_mnist_download_uses_torchvision_only_when_asked(tmp_path, monkeypatch):
    """download = true hands the folder to torchvision's downloader and reads what it leaves in
    its layout; download = false never calls it."""
    import torchvision.datasets

    calls = []

    class Downloader:  # stands in for the network: writes files where torchvision would
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            if not (Path(root) / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz").exists():
                write_fashion(Path(root) / "FashionMNIST" / "raw")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Downloader)
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nothing")
    with pytest.raises(DataError):
        load_splits(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "dl")), 28)
    assert calls == []
    s = load_splits(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "dl"), download=True), 28)
    assert s.train_x.shape[0] == 40
    assert calls and all(root == str(tmp_path / "dl") and download for root, _, download in calls)


# --- CIFAR-10 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_cifar10_at_native_size_is_the_file_content(tmp_path, point_at):
    written = write_cifar(tmp_path / "c")
    root = tmp_path / "c" if point_at == "parent" else tmp_path / "c" / "cifar-10-batches-py"
    s = load_splits(DataConfig(dataset="cifar10", root=str(root)), 32)
    assert s.train_x.shape == (30, 3, 32, 32) and s.val_x.shape == (6, 3, 32, 32)
    assert torch.equal(s.train_x, torch.from_numpy(written["train_x"]))  # R, G, B planes in order
    assert torch.equal(s.train_y, torch.from_numpy(written["train_y"]).long())
    assert torch.equal(s.val_x, torch.from_numpy(written["test_x"]))
    assert s.classes[0] == "airplane" and len(s.classes) == 10
    assert s.train_x.stride(1) != 0  # colour: real channels


def test_cifar10_resized_and_found_through_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "data"))
    write_cifar(tmp_path / "data" / "cifar10")
    s = load_splits(DataConfig(dataset="cifar10"), 65)
    assert s.train_x.shape == (30, 3, 65, 65)


def test_cifar10_reader_refuses_pickles_that_run_code(tmp_path):
    write_cifar(tmp_path / "c")
    evil = pickle.dumps({"data": __import__("os").getcwd}, protocol=2)  # builtins/posix reference
    (tmp_path / "c" / "cifar-10-batches-py" / "data_batch_3").write_bytes(evil)
    with pytest.raises(DataError, match="data_batch_3.*refusing to load"):
        load_splits(DataConfig(dataset="cifar10", root=str(tmp_path / "c")), 32)


# --- image folders -------------------------------------------------------------------------------
def _colour_of(images: torch.Tensor) -> torch.Tensor:
    return images.float().mean(dim=(2, 3))


def test_imagefolder_one_tree_split_by_val_fraction(tmp_path):
    root = write_imagefolder(tmp_path / "imgs", per_class=10)
    s = load_splits(DataConfig(dataset="imagefolder", root=str(root), val_fraction=0.2), 40)
    assert s.classes == ["cat", "dog", "fox"]  # folder names, sorted
    assert s.info["class_to_index"] == {"cat": 0, "dog": 1, "fox": 2}
    # 10 per class (+1 nested dog image); 20% of each class held out.
    assert s.info["val_per_class"] == [2, 2, 2] and s.info["train_per_class"] == [8, 9, 8]
    assert s.train_x.shape == (25, 3, 40, 40) and s.val_x.shape == (6, 3, 40, 40)
    for x, y in ((s.train_x, s.train_y), (s.val_x, s.val_y)):
        colours = _colour_of(x)
        for img, label in zip(colours, y.tolist()):
            colour = torch.tensor(FOLDER_CLASSES[s.classes[label]], dtype=torch.float32)
            grey = (colour @ torch.tensor([0.299, 0.587, 0.114])).expand(3)  # Pillow's RGB -> L
            # RGB images keep their class colour; grey PNGs are that colour's grey in 3 channels.
            assert min((img - colour).abs().max(), (img - grey).abs().max()) < 6


def test_imagefolder_train_val_folders(tmp_path):
    root = tmp_path / "set"
    for name, colour in FOLDER_CLASSES.items():
        write_class_images(root / "train" / name, colour, 4, 1)
    for name in ("dog", "fox"):  # val may lack a class
        write_class_images(root / "val" / name, FOLDER_CLASSES[name], 2, 2)
    s = load_splits(DataConfig(dataset="imagefolder", root=str(root)), 32)
    assert s.classes == ["cat", "dog", "fox"] and s.info["layout"] == "train/ + val/"
    assert s.train_x.shape[0] == 12 and s.val_y.tolist() == [1, 1, 2, 2]


def test_imagefolder_test_folder_serves_as_val(tmp_path):
    root = tmp_path / "set"
    for name, colour in FOLDER_CLASSES.items():
        write_class_images(root / "train" / name, colour, 3, 1)
        write_class_images(root / "test" / name, colour, 1, 2)
    s = load_splits(DataConfig(dataset="imagefolder", root=str(root)), 32)
    assert s.info["layout"] == "train/ + test/" and s.val_y.tolist() == [0, 1, 2]


def test_decode_image_takes_the_central_square(tmp_path):
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, :20] = (255, 0, 0)
    wide[:, 20:40] = (0, 255, 0)
    wide[:, 40:] = (0, 0, 255)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    out = decode_image(tmp_path / "wide.png", 10)
    assert out.shape == (3, 10, 10) and out.dtype == torch.uint8
    assert out[1].min() == 255 and out[0].max() == 0 and out[2].max() == 0  # only the green middle


def test_split_by_fraction_is_stratified_seeded_and_disjoint():
    labels = torch.tensor([0] * 10 + [1] * 20 + [2] * 2)
    tr, va = split_by_fraction(labels, 0.25, seed=3)
    assert sorted(tr.tolist() + va.tolist()) == list(range(32))
    assert torch.bincount(labels[va]).tolist() == [2, 5, 1]  # rounded share, at least one each side
    again = split_by_fraction(labels, 0.25, seed=3)
    assert torch.equal(again[0], tr) and torch.equal(again[1], va)
    assert not torch.equal(split_by_fraction(labels, 0.25, seed=4)[1], va)


# --- subsets -------------------------------------------------------------------------------------
def test_balanced_subset_is_balanced_seeded_and_redistributes():
    labels = torch.tensor([0] * 50 + [1] * 50 + [2] * 3)
    idx = balanced_subset(labels, 30, seed=0, split="train")
    assert torch.bincount(labels[idx]).tolist() == [14, 13, 3] or torch.bincount(labels[idx]).tolist() == [13, 14, 3]
    assert idx.tolist() == sorted(set(idx.tolist()))
    assert torch.equal(idx, balanced_subset(labels, 30, seed=0, split="train"))
    assert not torch.equal(idx, balanced_subset(labels, 30, seed=1, split="train"))
    assert torch.bincount(labels[balanced_subset(labels, 9, 0, "val")]).tolist() == [3, 3, 3]


def test_train_and_val_size_give_the_same_balanced_subset_every_time(tmp_path):
    write_fashion(tmp_path / "fm")
    cfg = DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm"), train_size=20, val_size=10)
    a, b = load_splits(cfg, 28), load_splits(cfg, 28)
    assert a.train_x.shape[0] == 20 and a.val_x.shape[0] == 10
    assert torch.bincount(a.train_y, minlength=10).tolist() == [2] * 10
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    other = load_splits(DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm"), train_size=20, seed=1), 28)
    assert not torch.equal(other.train_x, a.train_x)
