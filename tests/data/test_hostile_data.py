"""Sizes that pass validation but cannot be made (issue #10 item 7): refused with one line."""

from __future__ import annotations

import pytest

from ablate.config import INT_MAX, DataConfig
from ablate.data import DataError, load_splits, shapes


def test_generated_set_larger_than_memory_is_refused_before_generating():
    with pytest.raises(
        DataError, match=rf"shapes: data\.train_size = {INT_MAX} .* GiB of memory is available: use fewer images"
    ):
        load_splits(DataConfig(train_size=INT_MAX), 65, use_cache=False)


def test_memory_check_uses_what_is_available(monkeypatch):
    monkeypatch.setattr(shapes, "available_memory", lambda: 100 * (3 * 16 * 16 + 16))
    with pytest.raises(DataError, match="use fewer images") as e:
        load_splits(DataConfig(train_size=90, val_size=11), 16, use_cache=False)
    assert "\n" not in str(e.value)
    splits = load_splits(DataConfig(train_size=90, val_size=10), 16, use_cache=False)  # exactly fits
    assert splits.train_x.shape[0] == 90
    monkeypatch.setattr(shapes, "available_memory", lambda: None)  # unknown: no check
    assert load_splits(DataConfig(train_size=20, val_size=10), 16, use_cache=False).val_x.shape[0] == 10


def test_available_memory_is_a_plausible_number():
    from ablate.data.common import available_memory

    have = available_memory()
    assert have is None or 2**20 < have < 2**50


def _gz_stream(path, header: bytes, zeros: int) -> None:
    """A gzipped file of ``header`` followed by ``zeros`` zero bytes, written in pieces (the
    expanded size never sits in memory here either)."""
    import gzip

    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header)
        block = bytes(2**20)
        for _ in range(zeros // len(block)):
            f.write(block)
        f.write(bytes(zeros % len(block)))


def test_idx_header_promising_more_than_memory_is_refused_unread(tmp_path, monkeypatch):
    """A tiny gzip whose header promises 60000 x 2**16 x 2**16 bytes: refused from the header alone."""
    from ablate.data import fashion_mnist

    path = tmp_path / "train-images-idx3-ubyte.gz"
    _gz_stream(path, bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (2**16).to_bytes(4, "big") * 2, 10)
    with pytest.raises(DataError, match=r"header promises 257,698,037,760,000 bytes of images, more than the") as e:
        fashion_mnist.read_idx(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_idx_file_longer_than_its_header_is_read_only_as_far_as_promised(tmp_path, monkeypatch):
    """A gzip that expands to 64 MiB behind a header promising 16 bytes: one line, and no more
    than the promise plus one byte is ever asked of the decompressor."""
    import gzip

    from ablate.data import fashion_mnist

    path = tmp_path / "train-images-idx3-ubyte.gz"
    _gz_stream(path, bytes([0, 0, 8, 1]) + (16).to_bytes(4, "big"), 64 * 2**20)
    asked: list[int] = []
    real_read = gzip.GzipFile.read
    monkeypatch.setattr(gzip.GzipFile, "read", lambda self, size=-1: asked.append(size) or real_read(self, size))
    with pytest.raises(DataError, match=r"holds more than 24 bytes but its header promises 24"):
        fashion_mnist.read_idx(path)
    assert asked and max(asked) == 17 and -1 not in asked
    _gz_stream(path, bytes([0, 0, 8, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big"), 6)
    assert fashion_mnist.read_idx(path).shape == (2, 3)  # exactly as promised: read


def test_a_link_back_up_the_tree_is_walked_once(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")  # a/loop/loop/loop/... forever
    splits = load_splits(DataConfig(dataset="imagefolder", root=str(tmp_path), val_fraction=0.34), 16, use_cache=False)
    assert splits.info["train_per_class"] == [2, 2] and splits.info["val_per_class"] == [1, 1]


def test_file_names_with_newlines_keep_errors_on_one_line(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / cls / "ok.png")
        Image.new("RGB", (8, 8)).save(tmp_path / cls / "ok2.png")
    (tmp_path / "a" / "evil\nname.png").write_bytes(b"not an image")
    with pytest.raises(DataError) as e:
        load_splits(DataConfig(dataset="imagefolder", root=str(tmp_path)), 16, use_cache=False)
    assert "\n" not in str(e.value) and "evil\\nname.png" in str(e.value)


@pytest.mark.parametrize("how", ["under-a-file", "no-permission"])
def test_a_cache_folder_that_cannot_be_used_costs_only_the_cache(tmp_path, monkeypatch, how):
    from pathlib import Path

    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    if how == "under-a-file":
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        monkeypatch.setenv("ABLATE_CACHE", str(blocker / "cache"))  # cannot exist
    else:  # root may read anything, so simulate a cache folder we may not look into
        monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "locked"))

        def denied(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(self))

        for method in ("is_file", "mkdir"):
            real = getattr(Path, method)
            monkeypatch.setattr(
                Path,
                method,
                lambda self, *a, _real=real, **k: denied(self) if "locked" in self.parts else _real(self, *a, **k),
            )
    cfg = DataConfig(dataset="imagefolder", root=str(tmp_path / "imgs"), val_fraction=0.5)
    splits = load_splits(cfg, 16)
    assert splits.info["cache"]["train"].startswith("not written"), splits.info["cache"]


def test_no_home_directory_still_gives_a_cache_folder(monkeypatch):
    from pathlib import Path

    from ablate.data import cache

    monkeypatch.delenv("ABLATE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert cache.cache_root().name == "ablate"
