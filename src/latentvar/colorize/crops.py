"""Training and evaluation images from a photo corpus (`latentvar colorize prepare photos`).

Training sees random crops (``crop`` × ``crop`` pixels) at several scales, flipped left-right half of
the time. Each photo is kept as a small pyramid: resized (Lanczos) so that its short side is each of
``levels`` sizes spaced geometrically over ``scales`` (96..224 px by default), so a 64-px crop shows between
a quarter and two thirds of the photo's short side -- whole objects at the coarse levels, texture at the
fine ones. A batch is a pure function of (seed, step): which photo, which level, where, and whether to flip
all come from a generator seeded by them, so a resumed run sees the batches an unbroken one would.

Training itself reads these crops on the fly (`stream.CropSampler`, the same draws and the same resized
levels, tested equal to `PhotoCrops`); `PhotoCrops` keeps every level of every photo in memory and stays as
the reference.

Evaluation (val, test) uses one fixed view per photo: resized so its short side is ``side`` and centre-
cropped to a ``side`` × ``side`` square (`fixed_views`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from latentvar.progress import progress

CROP_SCALES = (96, 224)
CROP_LEVELS = 5
EVAL_SIDE = 128


def corpus_dir(data: str | os.PathLike) -> Path | None:
    """``data`` as a photo corpus folder (one holding ``manifest.json``), or None for anything else."""
    if data == "twemoji":
        return None
    root = Path(data)
    return root if (root / "manifest.json").is_file() else None


def _read_rgb(path: Path) -> np.ndarray:
    from latentvar.colorize.images import read_image
    from latentvar.colorize.lab import to_float_rgb

    rgba = read_image(path)
    if rgba.shape[-1] == 4 and (rgba[..., 3] < 255).any():
        rgba = (to_float_rgb(rgba) * 255 + 0.5).to(torch.uint8).numpy()
    return np.ascontiguousarray(rgba[..., :3])


def _resize_short(rgb: np.ndarray, side: int) -> np.ndarray:
    """Resize (Lanczos) so the short side is ``side`` pixels, keeping the aspect ratio."""
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = side / min(h, w)
    size = (max(side, round(w * scale)), max(side, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def split_paths(root: Path, split: str) -> list[Path]:
    from latentvar.colorize.photos import load_photo_split

    paths = load_photo_split(root, split)
    if not paths:
        raise ValueError(f"data: the photo corpus {str(root)!r} has no {split!r} photos")
    return paths


class PhotoCrops:
    """Multi-scale random crops of a list of photos: ``batch(seed, step, n)`` -> RGB uint8 (n, c, c, 3)."""

    def __init__(
        self,
        paths: list[Path],
        crop: int = 64,
        scales: tuple[int, int] = CROP_SCALES,
        levels: int = CROP_LEVELS,
        show_progress: bool = False,
    ):
        if crop > scales[0]:
            raise ValueError(f"crop: expected at most the smallest scale {scales[0]} px, got {crop}")
        self.crop = crop
        self.sides = np.unique(np.geomspace(scales[0], scales[1], levels).round().astype(int)).tolist()
        self.paths = list(paths)
        self.pyramid = []  # pyramid[i][j]: photo i at short side sides[j], RGB uint8 (h, w, 3)
        for path in progress(self.paths, desc="load photos", disable=not show_progress):
            rgb = _read_rgb(path)
            self.pyramid.append([_resize_short(rgb, s) for s in self.sides])

    def __len__(self) -> int:
        return len(self.paths)

    def batch(self, seed: int, step: int, n: int) -> np.ndarray:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        photo = torch.randint(len(self.pyramid), (n,), generator=g).tolist()
        level = torch.randint(len(self.sides), (n,), generator=g).tolist()
        where = torch.rand(n, 2, generator=g).tolist()
        flip = (torch.rand(n, generator=g) < 0.5).tolist()
        c = self.crop
        out = np.empty((n, c, c, 3), np.uint8)
        for i in range(n):
            img = self.pyramid[photo[i]][level[i]]
            top = int(where[i][0] * (img.shape[0] - c + 1))
            left = int(where[i][1] * (img.shape[1] - c + 1))
            view = img[top : top + c, left : left + c]
            out[i] = view[:, ::-1] if flip[i] else view
        return out


def fixed_views(paths: list[Path], side: int = EVAL_SIDE) -> np.ndarray:
    """One view per photo: short side resized to ``side``, centre square: RGB uint8 (n, side, side, 3)."""
    out = np.empty((len(paths), side, side, 3), np.uint8)
    for i, path in enumerate(paths):
        img = _resize_short(_read_rgb(path), side)
        top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        out[i] = img[top : top + side, left : left + side]
    return out
