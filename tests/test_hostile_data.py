"""Sizes that pass validation but cannot be made (issue #10 item 7): refused with one line."""

from __future__ import annotations

import pytest

from ablate.config import INT_MAX, DataConfig
from ablate.data import DataError, load_splits
from ablate.data import shapes


def test_generated_set_larger_than_memory_is_refused_before_generating():
    with pytest.raises(DataError, match=rf"shapes: data\.train_size = {INT_MAX} .* GiB of memory is available: use fewer images"):
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
    have = shapes.available_memory()
    assert have is None or 2**20 < have < 2**50


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
                Path, method, lambda self, *a, _real=real, **k: denied(self) if "locked" in self.parts else _real(self, *a, **k)
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
