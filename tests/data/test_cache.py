"""The on-disk cache: decode once, later loads read the cache (no decoder call), a changed source
file or size gives a new entry, --no-cache neither reads nor writes, and a broken cache never
stops a run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ablate.cli import app
from ablate.config import DataConfig
from ablate.data import cifar10, fashion_mnist, imagefolder, load_splits
from ablate.data.cache import CacheKey, cache_root, load_or_build

from helpers.data import (
    count_calls,
    write_cifar,
    write_fashion,
    write_imagefolder,
)

pytestmark = pytest.mark.usefixtures("data_env")


def _cases(tmp_path: Path):
    """(config, module, decoder name, files decoded per load) for each reader."""
    write_fashion(tmp_path / "fm")
    write_cifar(tmp_path / "c")
    write_imagefolder(tmp_path / "imgs", per_class=4)
    return [
        (DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm")), fashion_mnist, "read_idx", 4),
        (DataConfig(dataset="cifar10", root=str(tmp_path / "c")), cifar10, "read_batch", 6),
        (DataConfig(dataset="imagefolder", root=str(tmp_path / "imgs")), imagefolder, "decode_image", 13),
    ]


def _same(a, b) -> bool:
    return (
        torch.equal(a.train_x, b.train_x)
        and torch.equal(a.val_x, b.val_x)
        and torch.equal(a.train_y, b.train_y)
        and a.mean == b.mean
        and a.std == b.std
        and a.classes == b.classes
    )


def test_second_load_does_not_decode(tmp_path, monkeypatch, data_env):
    for cfg, module, decoder, files in _cases(tmp_path):
        calls = count_calls(monkeypatch, module, decoder)
        first = load_splits(cfg, 33)
        assert len(calls) == files, cfg.dataset
        assert first.info["cache"] == {"train": "written", "val": "written"}
        second = load_splits(cfg, 33)
        assert len(calls) == files, f"{cfg.dataset} decoded again"
        assert second.info["cache"] == {"train": "hit", "val": "hit"}
        assert _same(first, second)
    assert any(data_env.rglob("*.pt"))


def test_no_cache_decodes_every_time_and_writes_nothing(tmp_path, monkeypatch, data_env):
    for cfg, module, decoder, files in _cases(tmp_path):
        load_splits(cfg, 33)  # a cache entry exists; use_cache=False must ignore it
        calls = count_calls(monkeypatch, module, decoder)
        off = load_splits(cfg, 33, use_cache=False)
        assert len(calls) == files and off.info["cache"] == {"train": "off", "val": "off"}
        assert _same(off, load_splits(cfg, 33))
    entries = list(data_env.rglob("*.pt"))
    load_splits(_cases(tmp_path / "fresh")[0][0], 20, use_cache=False)
    assert list(data_env.rglob("*.pt")) == entries


def test_changed_source_file_or_size_gives_a_new_entry(tmp_path, monkeypatch):
    write_fashion(tmp_path / "fm")
    cfg = DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm"))
    calls = count_calls(monkeypatch, fashion_mnist, "read_idx")
    load_splits(cfg, 28)
    load_splits(cfg, 30)  # another input size: decoded again
    assert len(calls) == 8
    write_fashion(tmp_path / "fm", n_train=50)  # the files change under the same names
    s = load_splits(cfg, 28)
    assert s.train_x.shape[0] == 50 and s.info["cache"]["train"] == "written"


def test_imagefolder_edit_invalidates_and_skip_setting_shares_the_entry(tmp_path, monkeypatch):
    root = write_imagefolder(tmp_path / "imgs", per_class=4)
    calls = count_calls(monkeypatch, imagefolder, "decode_image")
    cfg = DataConfig(dataset="imagefolder", root=str(root))
    load_splits(cfg, 24)
    load_splits(DataConfig(dataset="imagefolder", root=str(root), skip_bad_images=True), 24)
    assert len(calls) == 13  # skip_bad_images decides what to do with bad files, not what is decoded
    victim = root / "fox" / "img0.jpg"
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    load_splits(cfg, 24)
    assert len(calls) == 26


def test_val_fraction_stats_follow_the_split(tmp_path):
    root = write_imagefolder(tmp_path / "imgs", per_class=6)
    a = load_splits(DataConfig(dataset="imagefolder", root=str(root), val_fraction=0.5, seed=0), 24)
    b = load_splits(DataConfig(dataset="imagefolder", root=str(root), val_fraction=0.5, seed=5), 24)
    again = load_splits(DataConfig(dataset="imagefolder", root=str(root), val_fraction=0.5, seed=0), 24)
    assert a.mean == again.mean and a.std == again.std
    assert not torch.equal(a.train_x, b.train_x) and a.mean != b.mean  # stats of each training part


def test_broken_entry_is_rebuilt_and_unwritable_cache_does_not_stop_a_run(tmp_path, monkeypatch, data_env):
    write_fashion(tmp_path / "fm")
    cfg = DataConfig(dataset="fashion-mnist", root=str(tmp_path / "fm"))
    good = load_splits(cfg, 28)
    for entry in data_env.rglob("*.pt"):
        entry.write_bytes(entry.read_bytes()[:100])  # truncated, as after a full disk
    rebuilt = load_splits(cfg, 28)
    assert rebuilt.info["cache"]["train"] == "written" and _same(good, rebuilt)
    (tmp_path / "file").write_text("a file where the cache folder should be")
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "file" / "cache"))
    s = load_splits(cfg, 28)
    assert s.info["cache"]["train"].startswith("not written") and _same(good, s)


def test_cache_location_and_atomic_entries(tmp_path, monkeypatch):
    monkeypatch.delenv("ABLATE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "ablate"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "ablate"
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "c"))
    key = CacheKey("some/set", "train", 8, [["a", 1, 2]])
    payload, status = load_or_build(key, lambda: {"images": torch.zeros(2, 3, 8, 8, dtype=torch.uint8)})
    assert status == "written" and key.path().parent == tmp_path / "c" / "some_set"
    assert [p.name for p in key.path().parent.iterdir()] == [key.path().name]  # no temporary left
    assert load_or_build(key, lambda: pytest.fail("rebuilt"))[1] == "hit"
    assert load_or_build(CacheKey("some/set", "train", 8, [["a", 1, 3]]), lambda: payload)[1] == "written"


def test_cli_no_cache(tmp_path, cli, write_experiment, data_env):
    write_fashion(tmp_path / "fm", n_train=20, n_test=10)
    exp = write_experiment(f"""
        name = "fm-tiny"
        seeds = [0]
        [data]
        dataset = "fashion-mnist"
        root = "{tmp_path / "fm"}"
        [train]
        epochs = 1
        batch_size = 10
        """)
    args = ["run", str(exp), "--device", "cpu", "--results", str(tmp_path / "results")]
    result = cli.invoke(app, args + ["--no-cache"])
    assert result.exit_code == 0, result.output
    assert not data_env.exists() or not any(data_env.rglob("*.pt"))
    result = cli.invoke(app, args + ["--force"])
    assert result.exit_code == 0, result.output
    assert len(list(data_env.rglob("*.pt"))) == 2
