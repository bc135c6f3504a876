"""Images in and out: folders of jpg/png/webp (any mode) -> RGBA uint8 squares; RGBA -> (L, ab, bins).

Grey (L, LA, I, I;16), palette (P) and CMYK images are converted to RGBA; 16-bit images are scaled to 8 bits.
Corrupt or truncated files are skipped and counted, never fatal. Images are centre-cropped to a square
and resized (Lanczos on premultiplied alpha). Alpha is composited on white (see `lab.composite_on_white`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import Tensor

from latentvar.colorize.lab import rgb_to_lab, to_float_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass
class ImageFolder:
    """Images of a folder (recursive), as RGBA uint8 (n, size, size, 4), with their paths and the skips."""

    images: np.ndarray
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursive), sorted; ``root`` may also be a single file."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ValueError(f"data: expected 'twemoji' or an existing folder of images, got {str(root)!r}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def to_rgba(im) -> np.ndarray:
    """A PIL image of any mode -> RGBA uint8 (h, w, 4); 16-bit and 32-bit integer greys are scaled down."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        im = Image.fromarray(np.clip(np.asarray(im) * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return np.asarray(im.convert("RGBA"))


def square_resize(rgba: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to (size, size, 4), Lanczos on premultiplied alpha."""
    from PIL import Image

    h, w = rgba.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(rgba[top : top + side, left : left + side])
    if side == size:
        return crop
    pre = Image.fromarray(crop, "RGBA").convert("RGBa")
    return np.asarray(pre.resize((size, size), Image.Resampling.LANCZOS).convert("RGBA"))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image file -> RGBA uint8 (h, w, 4). Raises OSError/ValueError on a corrupt file."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()  # decode now, so truncation surfaces here
        return to_rgba(im)


def load_image_folder(root: str | os.PathLike, size: int) -> ImageFolder:
    """Every readable image under ``root`` as RGBA (n, size, size, 4); unreadable ones are skipped."""
    from PIL import Image

    if not isinstance(size, int) or size < 4 or size % 4:
        raise ValueError(f"size: expected a positive multiple of 4 (pixels per side), got {size!r}")
    images, paths, skipped = [], [], []
    for path in list_images(root):
        try:
            images.append(square_resize(read_image(path), size))
            paths.append(path)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            skipped.append((path, f"{type(err).__name__}: {err}"))
    stack = np.stack(images) if images else np.zeros((0, size, size, 4), np.uint8)
    return ImageFolder(stack, paths, skipped)


def rgba_to_lab(images) -> tuple[Tensor, Tensor]:
    """RGBA/RGB uint8 (..., h, w, 3|4) -> (L (..., h, w), ab (..., h, w, 2)), alpha composited on white."""
    lab = rgb_to_lab(to_float_rgb(images))
    return lab[..., 0].contiguous(), lab[..., 1:].contiguous()
