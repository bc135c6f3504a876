"""Pictures from a generator run (`latentvar generator sample`, the report): decoder means at prior draws,
great-circle interpolations between them, image grids and PNG files.

Shapes: ``b`` images, ``j`` latent channels, ``c h w`` image channels and pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from latentvar.apps.images.data import to_uint8
from latentvar.apps.images.train import Run


def image_grid(images: np.ndarray, columns: int, pad: int = 1) -> np.ndarray:
    """(b, h, w, 3) uint8 -> one (rows·(h+pad)+pad, columns·(w+pad)+pad, 3) white-padded grid."""
    b, h, w, c = images.shape
    rows = math.ceil(b / columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, columns)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = (
            im
        )
    return grid


def save_png(path: Path, array: np.ndarray, scale: int = 2) -> None:
    from PIL import Image

    from latentvar.io import atomic_write_bytes
    from latentvar.report import png_bytes

    im = Image.fromarray(array)
    im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    atomic_write_bytes(path, png_bytes(im))


@torch.no_grad()
def sample_images(run: Run, n: int, seed: int = 0) -> np.ndarray:
    torch.manual_seed(seed)
    z = run.model.prior.sample((n,))
    return to_uint8(run.model.mean_images(z))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great-circle interpolation (White 2016, "Sampling generative networks") between rows of a and b
    (p, d) at fractions t (s,) -> (p, s, d): it keeps |z| typical of N(0, I), unlike a straight line."""
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    omega = torch.acos(cos.clamp(-1, 1))[:, None, None]
    t = t[None, :, None]
    return (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / torch.sin(omega)


@torch.no_grad()
def interpolations(run: Run, pairs: int = 6, steps: int = 10, seed: int = 1) -> np.ndarray:
    """Decoder means along slerp paths between pairs of prior samples: (pairs·steps, h, w, 3)."""
    torch.manual_seed(seed)
    a, b = run.model.prior.sample((pairs,)).flatten(1), run.model.prior.sample((pairs,)).flatten(1)
    z = slerp(a, b, torch.linspace(0, 1, steps))
    return to_uint8(run.model.mean_images(z.reshape(pairs * steps, *run.model.latent_shape)))
