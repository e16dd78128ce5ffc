"""``shapes``: a built-in, generated image-classification set (no files, no download).

Ten classes of filled geometric figures (circle, square, triangle, diamond, star, cross, ring,
hexagon, ellipse, crescent), each at a random position, scale, rotation and colour, drawn over a
random colour gradient with clutter (thin lines and dots in other colours) and per-pixel noise.
Like real classes, each class has a typical colour: 70% of its figures are drawn in a hue near
the class's own, the rest in any colour. Colour alone therefore caps accuracy near 73%, and it
gives a network a first foothold within a few dozen steps (without it, AlexNet-65 stays at chance
for the whole of a few-minute CPU study). Several classes differ only in fine outline (circle /
hexagon / ring, diamond / square at some angles), small figures are a few pixels across and
clutter can touch them, so the set is not solved in one epoch and architecture choices show.

Images are rendered with anti-aliased signed distances, vectorized over the batch, and depend
only on ``data.seed`` and the split, never on the run seed.
"""

from __future__ import annotations

import math

import torch

from ablate.config import DataConfig
from ablate.data import DataError, ImageSplits, channel_stats
from ablate.data.common import available_memory
from ablate.registry import register_dataset
from ablate.runtime.seeding import named_generator

CLASSES = ["circle", "square", "triangle", "diamond", "star", "cross", "ring", "hexagon", "ellipse", "crescent"]
DEFAULT_TRAIN_SIZE = 5000
DEFAULT_VAL_SIZE = 1000
_CHUNK = 32  # images rendered at once: keeps the working set in cache


def _sdf(label: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Signed distance (in units of the figure's radius) to the outline of class ``label``'s
    figure, in the figure's own rotated frame; negative inside."""
    au, av = u.abs(), v.abs()
    rho = torch.sqrt(u * u + v * v)
    name = CLASSES[label]
    if name == "circle":
        return rho - 0.9
    if name == "square":
        return torch.maximum(au, av) - 0.72
    if name == "triangle":  # equilateral: three half-planes, inradius 0.45
        return torch.maximum(torch.maximum(-v, 0.866 * u + 0.5 * v), -0.866 * u + 0.5 * v) - 0.45
    if name == "diamond":  # elongated rhombus
        return (au / 0.55 + av / 0.95 - 1.0) * 0.45
    if name == "star":  # five points
        theta = torch.atan2(v, u)
        return rho - (0.42 + 0.5 * torch.cos(2.5 * theta).abs() ** 4)
    if name == "cross":
        return torch.minimum(torch.maximum(au - 0.27, av - 0.9), torch.maximum(au - 0.9, av - 0.27))
    if name == "ring":
        return (rho - 0.68).abs() - 0.22
    if name == "hexagon":
        return torch.maximum(au * 0.866 + av * 0.5, av) - 0.78
    if name == "ellipse":
        return (torch.sqrt((u / 0.95) ** 2 + (v / 0.5) ** 2) - 1.0) * 0.5
    if name == "crescent":
        return torch.maximum(rho - 0.9, 0.7 - torch.sqrt((u - 0.45) ** 2 + v * v))
    raise AssertionError(name)


def _paint(img: torch.Tensor, alpha: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Alpha-blend a per-image colour (B x 3) onto images (B x 3 x S x S) with coverage B x S x S."""
    return img.lerp_(colour[:, :, None, None].expand_as(img), alpha.unsqueeze(1))


def _segment_distance(px, py, x0, y0, x1, y1) -> torch.Tensor:
    """Distance from pixel centres (1 x S x S grids) to per-image segments (B x 1 x 1 ends)."""
    dx, dy = x1 - x0, y1 - y0
    t = (((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy).clamp_min(1e-6)).clamp(0, 1)
    return torch.sqrt((px - x0 - t * dx) ** 2 + (py - y0 - t * dy) ** 2)


# Difficulty. Chosen so that the seed network leaves chance within a few dozen Adam steps (a CPU
# study of a few minutes shows real differences) while clutter, noise and look-alike classes keep
# it well below 100% for long GPU studies.
CLUTTER_P = 0.4  # chance that each of 4 lines and 3 dots is drawn
NOISE = (0.015, 0.06)  # per-image Gaussian noise std, uniform in this range (0..1 pixel scale)
RADIUS = (0.26, 0.42)  # figure radius as a share of the image side, uniform in this range
COLOUR_CUE = 0.7  # share of figures drawn in their class's typical hue (as real classes have typical colours)


def _figure_colours(labels: torch.Tensor, cued: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """RGB colours of figures: a class-typical hue where ``cued``, any colour elsewhere."""
    n = labels.shape[0]
    colour = torch.rand(n, 3, generator=g)
    hue = (labels.float() / len(CLASSES) + (torch.rand(n, generator=g) - 0.5) * 0.08) % 1.0
    sat = 0.55 + 0.45 * torch.rand(n, generator=g)
    val = 0.5 + 0.5 * torch.rand(n, generator=g)
    return torch.where(cued[:, None], hsv_to_rgb(hue, sat, val), colour)


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vectorized HSV (each 0..1) to RGB, N -> N x 3."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + h[:, None] * 6) % 6
    return v[:, None] - (v * s)[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def render(labels: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Render one image per label (uint8, N x 3 x size x size); all randomness from ``g``."""
    n = labels.shape[0]
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    py, px = coords[None, :, None], coords[None, None, :]
    for start in range(0, n, _CHUNK):
        lab = labels[start : start + _CHUNK]
        b = lab.shape[0]
        rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731

        # Background: a linear gradient between two random colours in a random direction.
        c0, c1, phi = rand(b, 3), rand(b, 3), rand(b) * 2 * math.pi
        ramp = ((px - size / 2) * phi.cos()[:, None, None] + (py - size / 2) * phi.sin()[:, None, None]) / size + 0.5
        t = ramp.clamp(0, 1).unsqueeze(1)
        img = c0[:, :, None, None] * (1 - t) + c1[:, :, None, None] * t

        # Clutter: up to four thin lines and three dots in random colours, each present with p=0.6.
        for _ in range(4):
            ends = rand(b, 4) * size
            width = 0.6 + rand(b) * 1.0
            d = _segment_distance(px, py, *(ends[:, i, None, None] for i in range(4)))
            alpha = (width[:, None, None] - d + 0.5).clamp(0, 1) * (rand(b) < CLUTTER_P)[:, None, None]
            img = _paint(img, alpha, rand(b, 3))
        for _ in range(3):
            cx, cy, rad = rand(b) * size, rand(b) * size, size * (0.015 + rand(b) * 0.035)
            d = torch.sqrt((px - cx[:, None, None]) ** 2 + (py - cy[:, None, None]) ** 2) - rad[:, None, None]
            alpha = (0.5 - d).clamp(0, 1) * (rand(b) < CLUTTER_P)[:, None, None]
            img = _paint(img, alpha, rand(b, 3))

        # The figure: fully inside the frame, any position and rotation.
        radius = size * (RADIUS[0] + rand(b) * (RADIUS[1] - RADIUS[0]))
        margin = radius * 0.95
        cx = margin + rand(b) * (size - 2 * margin)
        cy = margin + rand(b) * (size - 2 * margin)
        theta = rand(b) * 2 * math.pi
        # Colour: resample until it stands out from the background under the figure.
        under = img[torch.arange(b), :, cy.long().clamp(0, size - 1), cx.long().clamp(0, size - 1)]
        cued = rand(b) < COLOUR_CUE
        colour = _figure_colours(lab, cued, g)
        for _ in range(10):
            weak = (colour - under).norm(dim=1) < 0.45
            if not weak.any():
                break
            colour[weak] = _figure_colours(lab[weak], cued[weak], g)
        r = radius[:, None, None]
        dx, dy = (px - cx[:, None, None]) / r, (py - cy[:, None, None]) / r
        cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy
        dist = torch.empty(b, size, size)
        for label in lab.unique().tolist():
            idx = (lab == label).nonzero().squeeze(1)
            dist[idx] = _sdf(label, u[idx], v[idx])
        img = _paint(img, (0.5 - dist * r).clamp(0, 1), colour)

        # Sensor noise of a random strength per image.
        sigma = (NOISE[0] + rand(b) * (NOISE[1] - NOISE[0]))[:, None, None, None]
        img = img + sigma * torch.randn(img.shape, generator=g)
        out[start : start + b] = (img * 255).round().clamp(0, 255).to(torch.uint8)
    return out


def make_split(n: int, size: int, seed: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` class-balanced images of one split, in a seeded random order."""
    g = named_generator(f"ablate/shapes/{seed}/{split}")
    labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=g)]
    return render(labels, size, g), labels


def _check_memory(n_train: int, n_val: int, size: int) -> None:
    """Refuse, with one line, a generated set that cannot fit in memory (the alternative is the
    system killing the process partway, or an allocation error deep in torch)."""
    # uint8 images plus the int64 labels and permutation made per image.
    need = (n_train + n_val) * (3 * size * size + 16)
    have = available_memory()
    if have is not None and need > have:
        raise DataError(
            f"shapes: data.train_size = {n_train} and data.val_size = {n_val} at {size}x{size} need "
            f"{need / 2**30:.1f} GiB for the images; {have / 2**30:.1f} GiB of memory is available: use fewer images"
        )


@register_dataset("shapes")
def shapes(cfg: DataConfig, input_size: int) -> ImageSplits:
    """Generated coloured figures in 10 classes, with clutter and noise; no files (default 5000 train / 1000 val)."""
    n_train = cfg.train_size or DEFAULT_TRAIN_SIZE
    n_val = cfg.val_size or DEFAULT_VAL_SIZE
    if input_size < 16:
        raise DataError(f"shapes needs an input size of at least 16 pixels, got {input_size}")
    _check_memory(n_train, n_val, input_size)
    train_x, train_y = make_split(n_train, input_size, cfg.seed, "train")
    val_x, val_y = make_split(n_val, input_size, cfg.seed, "val")
    mean, std = channel_stats(train_x)
    return ImageSplits(
        train_x,
        train_y,
        val_x,
        val_y,
        list(CLASSES),
        mean,
        std,
        info={"source": "generated", "generator": "ablate.data.shapes", "seed": cfg.seed},
    )
