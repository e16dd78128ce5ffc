"""DeviceBatches and augment_paper on the CPU: normalization, grey storage, seeded order, the
host-memory fallback path (same batches as the resident path) and the paper's augmentation."""

from __future__ import annotations

import pytest
import torch

from ablate.data import loader
from ablate.data.common import as_rgb
from ablate.data.loader import DeviceBatches, augment_paper, fits_on_device, storage_view

CPU = torch.device("cpu")
MEAN, STD = (0.2, 0.4, 0.6), (0.25, 0.5, 0.3)


def _split(n: int = 50, channels: int = 3, size: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    return (as_rgb(images) if channels == 1 else images), torch.arange(n)  # label = image id


def _batches(images, labels, **kwargs) -> DeviceBatches:
    kwargs.setdefault("batch_size", 16)
    return DeviceBatches(images, labels, MEAN, STD, CPU, **kwargs)


def _epoch(batches: DeviceBatches) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in batches]


@pytest.mark.parametrize("channels", [1, 3])
def test_batches_are_normalized_images_in_3_channels(channels):
    images, labels = _split(channels=channels)
    out = _epoch(_batches(images, labels))
    x = torch.cat([b[0] for b in out])
    y = torch.cat([b[1] for b in out])
    assert torch.equal(y, labels) and x.shape == (50, 3, 12, 12) and x.dtype == torch.float32
    reference = (images.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(x, reference, atol=1e-5)


def test_grey_split_is_stored_with_one_channel():
    images, labels = _split(channels=1)
    assert images.shape[1] == 3 and storage_view(images).shape[1] == 1
    batches = _batches(images, labels)
    assert batches.images.shape == (50, 1, 12, 12)  # a third of the device memory
    colour, _ = _split(channels=3)
    assert storage_view(colour) is colour


def test_channels_last_batches():
    images, labels = _split()
    x, _ = next(iter(_batches(images, labels, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_order_depends_only_on_the_seed_and_covers_every_image():
    images, labels = _split()
    a = _batches(images, labels, shuffle=True, seed=3)
    b = _batches(images, labels, shuffle=True, seed=3)
    epochs_a, epochs_b = [_epoch(a) for _ in range(3)], [_epoch(b) for _ in range(3)]
    for ea, eb in zip(epochs_a, epochs_b):
        order = torch.cat([y for _, y in ea])
        assert torch.equal(order, torch.cat([y for _, y in eb]))
        assert sorted(order.tolist()) == list(range(50))  # every image once per epoch
    assert not torch.equal(torch.cat([y for _, y in epochs_a[0]]), torch.cat([y for _, y in epochs_a[1]]))
    other = torch.cat([y for _, y in _batches(images, labels, shuffle=True, seed=4)])
    assert not torch.equal(other, torch.cat([y for _, y in epochs_a[0]]))


def test_drop_last_and_lengths():
    images, labels = _split(n=50)
    train = _batches(images, labels, shuffle=True, drop_last=True)
    assert len(train) == 3 and train.images_per_epoch == 48 and [len(y) for _, y in train] == [16, 16, 16]
    val = _batches(images, labels)
    assert len(val) == 4 and val.images_per_epoch == 50 and [len(y) for _, y in val] == [16, 16, 16, 2]
    tiny = _batches(images[:5], labels[:5], shuffle=True, drop_last=True)
    assert len(tiny) == 1 and tiny.images_per_epoch == 5  # smaller than a batch: kept whole


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shuffle,augment", [(False, "none"), (True, "none"), (True, "paper")])
def test_host_fallback_gives_the_same_batches_as_resident(channels, shuffle, augment):
    """The path for splits too large for the device (gather per batch on the host, then copy)
    must yield exactly what the resident path yields."""
    images, labels = _split(channels=channels)
    kw = dict(shuffle=shuffle, drop_last=shuffle, seed=7, augment=augment)
    resident = _batches(images, labels, resident=True, **kw)
    host = _batches(images, labels, resident=False, **kw)
    assert resident.resident and not host.resident and host.copy_stream is None
    for _ in range(2):
        for (xa, ya), (xb, yb) in zip(_epoch(resident), _epoch(host), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_fits_on_device_uses_a_share_of_free_cuda_memory(monkeypatch):
    assert fits_on_device(10**15, CPU)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    cuda = torch.device("cuda")
    assert fits_on_device(int(1000 * loader.DEVICE_MEMORY_SHARE), cuda)
    assert not fits_on_device(int(1000 * loader.DEVICE_MEMORY_SHARE) + 1, cuda)


# --- augmentation --------------------------------------------------------------------------------
def _crops(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every output augment_paper may produce for one image: shifted crops of the reflect-padded
    image, and their mirror images."""
    padded = torch.nn.functional.pad(image[None].float(), (pad,) * 4, mode="reflect")[0]
    h, w = image.shape[1:]
    out = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            out += [crop, crop.flip(2)]
    return out


def test_augment_paper_is_a_seeded_shift_and_flip():
    images, _ = _split(n=24, size=16)
    g = torch.Generator().manual_seed(0)
    out = augment_paper(images, g)
    assert out.shape == images.shape and out.dtype == torch.uint8
    pad = 1  # round(16 / 16)
    for src, aug in zip(images, out):
        assert any(torch.equal(aug.float(), c) for c in _crops(src, pad))
    assert not torch.equal(out, images)  # 24 images: some shift or flip happened
    again = augment_paper(images, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert not torch.equal(out, augment_paper(images, torch.Generator().manual_seed(1)))


def test_augment_paper_flips_and_shifts_about_as_often_as_designed():
    """Over many images: about half are mirrored, and translations cover the whole range."""
    image = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32).expand(400, 3, 32, 32).contiguous()
    out = augment_paper(image, torch.Generator().manual_seed(0))
    pad = 2  # round(32 / 16)
    rows = out[:, 0, 0, :]  # first row of each output tells flip and horizontal offset
    flipped = rows[:, 16] < rows[:, 15]  # away from the reflected borders a row runs up, or down if mirrored
    assert 0.4 < flipped.float().mean() < 0.6
    padded = torch.nn.functional.pad(image[:1], (pad,) * 4, mode="reflect")[0, 0]
    offsets = set()
    for row, flip in zip(rows, flipped):
        row = row.flip(0) if flip else row
        offsets |= {
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(padded[dy, dx : dx + 32], row)
        }
    assert {dx for _, dx in offsets} == set(range(2 * pad + 1))


def test_training_batches_are_augmented_on_the_fly_and_reproducibly():
    images, labels = _split(n=32, size=16)
    a = _epoch(_batches(images, labels, shuffle=True, seed=1, augment="paper"))
    b = _epoch(_batches(images, labels, shuffle=True, seed=1, augment="paper"))
    plain = _epoch(_batches(images, labels, shuffle=True, seed=1))
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b))
    assert all(torch.equal(ya, yp) for (_, ya), (_, yp) in zip(a, plain))  # augmentation leaves order alone
    assert not all(torch.equal(xa, xp) for (xa, _), (xp, _) in zip(a, plain))


def test_batch_work_runs_on_one_thread_and_the_model_keeps_all(monkeypatch):
    seen = []
    real = torch.addcmul

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "addcmul", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        images, labels = _split()
        for _ in _batches(images, labels, shuffle=True):
            assert torch.get_num_threads() == 2  # the consumer (the model) sees the full setting
        assert seen and set(seen) == {1}
    finally:
        torch.set_num_threads(before)
