"""The images the generators train on: the embedded Twemoji set as (b, 3, 32, 32) float32 in [-1, 1]
(RGBA composited on white), and back to uint8 pictures.

Shapes: ``b`` images, ``j`` latent channels, ``c h w`` image channels and pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

IMAGE_DIMS = 3 * 32 * 32


def twemoji_tensor(split: str) -> Tensor:
    """Twemoji ``split`` as (b, 3, 32, 32) float32 in [-1, 1]: RGBA composited on white, x / 127.5 - 1."""
    from latentvar.data.twemoji import load_twemoji

    rgba = load_twemoji(split, size=32).astype(np.float32)
    alpha = rgba[..., 3:] / 255.0
    rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous() / 127.5 - 1.0


def to_uint8(images: Tensor) -> np.ndarray:
    """(b, 3, h, w) in [-1, 1] -> (b, h, w, 3) uint8."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def load_images(data: str, split: str) -> torch.Tensor:
    if data != "twemoji":
        raise ValueError(f"data: expected 'twemoji' (the embedded 32x32 emoji set), got {data!r}")
    return twemoji_tensor(split)
