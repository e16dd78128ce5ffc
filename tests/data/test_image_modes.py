"""Every Pillow mode an image folder can hold decodes to the right 8-bit RGB (issue #10 item 2).

Each case writes a uniform image with a known pixel to a file (PNG where PNG holds the mode,
else TIFF content under a .png name: Pillow opens files by content, so a folder can hold it) and
checks the decoded value. Wide modes were clipped to white before; they are scaled now.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ablate.config import DataConfig
from ablate.data import DataError, load_splits
from ablate.data.imagefolder import decode_image, to_rgb8

SIZE = 4


def _palette(mode: str, value):
    img = Image.new(mode, (8, 8), value)
    img.putpalette([0, 0, 0, 255, 255, 255, 1, 2, 3, 10, 20, 30] + [0] * (768 - 12))
    return img


# (mode, how to make the image, format to store it in, expected RGB)
CASES = [
    ("1", lambda: Image.new("1", (8, 8), 1), "PNG", (255, 255, 255)),
    ("L", lambda: Image.new("L", (8, 8), 100), "PNG", (100, 100, 100)),
    ("LA", lambda: Image.new("LA", (8, 8), (100, 50)), "PNG", (100, 100, 100)),
    ("P", lambda: _palette("P", 3), "PNG", (10, 20, 30)),
    ("PA", lambda: _palette("PA", (3, 128)), "TIFF", (10, 20, 30)),
    ("RGB", lambda: Image.new("RGB", (8, 8), (10, 20, 30)), "PNG", (10, 20, 30)),
    ("RGBA", lambda: Image.new("RGBA", (8, 8), (10, 20, 30, 0)), "PNG", (10, 20, 30)),
    ("CMYK", lambda: Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "TIFF", (255, 0, 0)),
    ("YCbCr", lambda: Image.new("YCbCr", (8, 8), (76, 85, 255)), "TIFF", (254, 0, 0)),
    # 30000/65535 of full scale = 116.7 -> 117 (it was 255: white)
    ("I;16", lambda: Image.new("I;16", (8, 8), 30000), "PNG", (117, 117, 117)),
    ("I;16B", lambda: Image.new("I;16B", (8, 8), 30000), "TIFF", (117, 117, 117)),
    ("I", lambda: Image.new("I", (8, 8), 30000), "TIFF", (117, 117, 117)),
    ("F", lambda: Image.new("F", (8, 8), 0.5), "TIFF", (128, 128, 128)),
]


@pytest.mark.parametrize("mode,make,fmt,expected", CASES, ids=[c[0] for c in CASES])
def test_each_mode_decodes_to_the_right_rgb(tmp_path, mode, make, fmt, expected):
    img = make()
    assert img.mode == mode
    path = tmp_path / "img.png"
    img.save(path, fmt)
    with Image.open(path) as back:
        assert back.mode == mode  # the file really holds that mode
    x = decode_image(path, SIZE)
    assert x.dtype == torch.uint8 and x.shape == (3, SIZE, SIZE)
    got = x[:, 0, 0].tolist()
    assert all(abs(g - e) <= 1 for g, e in zip(got, expected)), (mode, got, expected)
    assert (x == x[:, :1, :1]).all()  # uniform in, uniform out


@pytest.mark.parametrize(
    "img,reason",
    [
        (Image.new("I", (4, 4), 70000), "integer images are read as 16-bit"),
        (Image.new("I", (4, 4), -1), "integer images are read as 16-bit"),
        (Image.new("F", (4, 4), 2.0), "float images are read on the 0..1 scale"),
        (Image.new("F", (4, 4), float("nan")), "nan or inf"),
    ],
)
def test_values_outside_the_scale_are_an_error_not_a_clipped_image(img, reason):
    with pytest.raises(ValueError, match=reason):
        to_rgb8(img)


def test_16_bit_full_range_and_gradient():
    ramp = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    img = Image.fromarray(ramp)
    assert img.mode.startswith("I;16")
    assert np.asarray(to_rgb8(img))[0, :, 0].tolist() == [0, 1, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    # 8 wide x 4 high, left half red, right half blue, tagged "rotate 90 degrees clockwise to view"
    img = Image.new("RGB", (8, 4), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 4, 4))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "portrait.png"
    img.save(path, exif=exif)
    x = decode_image(path, SIZE)
    # upright it is 4 wide x 8 high with red on top: the central square is red above blue
    assert x[:, 0, :].tolist() == [[255] * SIZE, [0] * SIZE, [0] * SIZE]
    assert x[:, -1, :].tolist() == [[0] * SIZE, [0] * SIZE, [255] * SIZE]


def test_an_out_of_scale_image_in_a_folder_is_named_or_skipped(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("I;16", (8, 8), 1000 * (i + 1)).save(tmp_path / cls / f"{i}.png")
    Image.new("F", (8, 8), 3.0).save(tmp_path / "a" / "bad.png", "TIFF")
    cfg = dict(dataset="imagefolder", root=str(tmp_path), val_fraction=0.34)
    with pytest.raises(DataError, match=r"cannot read image .*bad\.png: float \(F\) image with pixel values 3\.\.3"):
        load_splits(DataConfig(**cfg), 16, use_cache=False)
    splits = load_splits(DataConfig(**cfg, skip_bad_images=True), 16, use_cache=False)
    assert splits.info["skipped_bad_images"] == 1
    # 16-bit greys are scaled, not white
    assert 0 < int(splits.train_x.max()) < 20
