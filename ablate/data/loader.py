"""Device-resident batching (airbench style): no DataLoader, no workers, no per-image Python.

A split is moved to the training device once, as uint8. Each epoch draws a permutation from a
private seeded generator, so batch order depends only on the run seed, never on the variant.
Conversion to float, normalization and augmentation run on the device, one batch at a time.

When a split does not fit in device memory it stays in host memory; each batch is gathered
straight into a pinned (page-locked) staging buffer and copied with a non-blocking transfer on a
side stream, so the copy of batch i+1 overlaps the GPU's work on batch i. Only batch-sized
buffers are pinned: page-locking a split of many gigabytes would double its host footprint and
can fail outright.

Grey datasets arrive as a 3-channel broadcast view of 1-channel storage (channel stride 0, see
:func:`ablate.data.common.as_rgb`); they stay 1-channel on the device (a third of the memory and
of the gather traffic) and become 3 channels in the normalization, which broadcasts.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator

import torch

from ablate.runtime.seeding import generator

# Keep this share of free device memory for the model, activations and optimizer state.
DEVICE_MEMORY_SHARE = 0.5


@contextmanager
def one_cpu_thread() -> Iterator[None]:
    """Run the enclosed CPU work on one intra-op thread, then restore the setting.

    A batch's CPU work (gather, normalize, layout: ~1 ms) gains little from several threads, and
    on a machine whose cores are shared every parallel op waits at its barrier for a descheduled
    thread: measured on 2 busy cores, 2 threads took ~500 ms per epoch of 2048 Fashion-MNIST
    images where 1 thread took ~60 ms. The setting is restored before the batch is handed out, so
    the model still runs on every thread. (Changing it costs under a microsecond.)
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` may live on ``device``: always on the CPU; on CUDA up to a share of the
    memory free right now (so a split loaded after another sees what the first one took)."""
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_MEMORY_SHARE * free


def storage_view(images: torch.Tensor) -> torch.Tensor:
    """The tensor actually worth storing: a grey split's broadcast 3-channel view -> its 1 channel."""
    if images.shape[1] == 3 and images.stride(1) == 0:
        return images[:, :1]
    return images


def augment_paper(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random translations and horizontal flips, per image, on whatever device ``x`` is on.

    The paper trains on random 224-pixel crops of 256-pixel images plus their mirror images. Here
    images are already at the model's input size, so the crop is taken from the image padded by
    1/16 of its side on each edge (reflection padding: no black borders), which gives the same
    kind of shift at any input size without resizing. Offset ``pad`` on both axes and no flip
    is the identity, so the original image is one of the possible outcomes.
    """
    b, _c, h, w = x.shape
    pad = max(1, round(h / 16))
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    # Random numbers come from ``g`` on its own device (CUDA generator for CUDA batches: no sync).
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=g, device=g.device).to(x.device)
    flips = (torch.rand(b, generator=g, device=g.device) < 0.5).to(x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # b x h
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # b x w
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


class DeviceBatches:
    """Iterate over (normalized float images, labels) batches of one split on ``device``.

    ``resident`` forces the choice between device-resident storage (True) and host storage with
    per-batch copies (False); None decides by :func:`fits_on_device`. Forcing it serves tests and
    benchmarks of the fallback path.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        augment: str = "none",
        channels_last: bool = False,
        resident: bool | None = None,
    ) -> None:
        self.device, self.batch_size = torch.device(device), batch_size
        self.shuffle, self.augment, self.channels_last = shuffle, augment, channels_last
        images = storage_view(images)
        nbytes = images.numel() * images.element_size() + labels.numel() * labels.element_size()
        self.resident = fits_on_device(nbytes, self.device) if resident is None else resident
        if self.resident:
            self.images, self.labels = images.to(self.device), labels.to(self.device)
        else:
            self.images, self.labels = images.cpu().contiguous(), labels.cpu().contiguous()
        self.copy_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" and not self.resident else None
        self.n = images.shape[0]
        # Training drops the ragged last batch (BatchNorm cannot train on one image), unless the
        # whole split is smaller than a batch.
        self.drop_last = drop_last and self.n >= batch_size
        # (x - mean) / std as one fused multiply-add from uint8: x * scale + shift. Shape 1 x 3 x 1 x 1,
        # so 1-channel storage broadcasts to 3 channels here. Batches come in torch's default float
        # dtype: float32, unless a test trains in float64 (set_default_dtype).
        dtype = torch.get_default_dtype()
        mean_t = torch.tensor(mean, dtype=dtype).view(1, -1, 1, 1) * 255
        self.scale = (1 / (torch.tensor(std, dtype=dtype).view(1, -1, 1, 1) * 255)).to(self.device)
        self.shift = (-mean_t.to(self.device)) * self.scale
        self._seed_streams(seed)

    def _seed_streams(self, seed: int) -> None:
        # Order and augmentation come from private generators: same seed -> same batches.
        self.order_gen = generator(seed)
        self.aug_gen = generator(seed + 1, self.device if self.device.type == "cuda" else "cpu")

    def reseeded(self, seed: int) -> DeviceBatches:
        """The same split, batches and storage (no second copy on the device), with the order and
        augmentation of ``seed``: the seeds of a fused group each iterate their own."""
        other = copy.copy(self)
        other._seed_streams(seed)
        return other

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    @property
    def images_per_epoch(self) -> int:
        return len(self) * self.batch_size if self.drop_last else self.n

    def _from_host(self, lo: int, hi: int, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Fallback path: gather one batch on the host and send it to the device."""
        if self.copy_stream is None:  # CPU "device": the gathered batch is already where it goes
            return self._gather(lo, hi, idx, pinned=False)
        x, y = self._gather(lo, hi, idx, pinned=True)
        main = torch.cuda.current_stream(self.device)
        # The pinned buffers were filled synchronously above, so the copy may start at once on
        # the side stream, overlapping the main stream's work on the previous batch; the main
        # stream waits for the copy before it touches the batch.
        with torch.cuda.stream(self.copy_stream):
            x_dev = x.to(self.device, non_blocking=True)
            y_dev = y.to(self.device, non_blocking=True)
        main.wait_stream(self.copy_stream)
        # Tell the caching allocator these side-stream tensors are used on the main stream, so
        # their memory is not handed out again before the main stream has finished with them.
        # (Pinned host buffers are protected by the host allocator, which records the copy.)
        x_dev.record_stream(main)
        y_dev.record_stream(main)
        return x_dev, y_dev

    def _gather(self, lo: int, hi: int, idx: torch.Tensor | None, pinned: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not pinned:
            if idx is None:
                return self.images[lo:hi], self.labels[lo:hi]
            return self.images.index_select(0, idx), self.labels.index_select(0, idx)
        count = hi - lo
        x = torch.empty((count, *self.images.shape[1:]), dtype=self.images.dtype, pin_memory=True)
        y = torch.empty((count,), dtype=self.labels.dtype, pin_memory=True)
        if idx is None:
            x.copy_(self.images[lo:hi])
            y.copy_(self.labels[lo:hi])
        else:  # gather straight into the pinned buffer: no extra pageable copy
            torch.index_select(self.images, 0, idx, out=x)
            torch.index_select(self.labels, 0, idx, out=y)
        return x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # One permutation per epoch, drawn on the CPU (same numbers on every device) and moved
        # once to wherever the images are.
        order = torch.randperm(self.n, generator=self.order_gen).to(self.images.device) if self.shuffle else None
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, self.n)
            idx = None if order is None else order[lo:hi]
            yield self._batch(lo, hi, idx)

    def _batch(self, lo: int, hi: int, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch, ready for the model. On CUDA the work is queued kernels (plus, on the host
        path, a gather on the CPU); on the CPU it is done here, on one thread (see one_cpu_thread)."""
        with one_cpu_thread():
            if self.resident:
                x, y = self._gather(lo, hi, idx, pinned=False)
            else:
                x, y = self._from_host(lo, hi, idx)
            if self.augment == "paper":
                x = augment_paper(x, self.aug_gen)
            x = torch.addcmul(self.shift, x, self.scale)  # uint8 in, float out, one kernel
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return x, y
