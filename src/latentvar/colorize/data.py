"""Data in model form for colorization: 'twemoji', a photo corpus or a folder of images as (L, ab, bins),
the device argument, and the batch order -- a pure function of (seed, step), so resumed runs see the same
batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from latentvar.colorize.crops import corpus_dir, fixed_views, split_paths
from latentvar.colorize.images import load_image_folder, rgba_to_lab
from latentvar.colorize.quantize import ABBins


@dataclass
class ColourData:
    """A data set in model form: L (n, h, w), ab (n, h, w, 2), bins y (n, h, w)."""

    L: Tensor
    ab: Tensor
    y: Tensor
    rgba: np.ndarray
    names: list[str]
    num_skipped: int = 0

    def __len__(self) -> int:
        return self.L.shape[0]


def resolve_device(device: str) -> torch.device:
    """'cpu' or 'cuda' (or 'cuda:N') as a torch.device, refusing CUDA when this machine has none."""
    if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} was asked for, but torch sees no CUDA device here")
    return torch.device(device)


def load_rgba(data: str, size: int, split: str) -> tuple[np.ndarray, list[str], int]:
    """(RGBA uint8 (n, size, size, 4), names, number of unreadable files skipped) for 'twemoji', a photo
    corpus or a folder.

    'twemoji' and a photo corpus use their fixed splits (a corpus: one centre view per photo, `fixed_views`);
    a folder is used whole (``split`` is ignored)."""
    if data == "twemoji":
        from latentvar.data.twemoji import load_twemoji, twemoji_names

        return load_twemoji(split, size), twemoji_names(split), 0
    root = corpus_dir(data)
    if root is not None:
        paths = split_paths(root, split)
        views = fixed_views(paths, size)
        return np.concatenate([views, np.full_like(views[..., :1], 255)], -1), [str(p) for p in paths], 0
    folder = load_image_folder(data, size)
    if len(folder.images) == 0:
        raise ValueError(f"data: no readable images in {data!r} ({folder.num_skipped} skipped)")
    return folder.images, [str(p) for p in folder.paths], folder.num_skipped


def prepare(rgba: np.ndarray, names: list[str], bins: ABBins, num_skipped: int = 0) -> ColourData:
    L, ab = rgba_to_lab(rgba)
    return ColourData(L, ab, bins.encode(ab), rgba, names, num_skipped)


def load_data(data: str, size: int, split: str, bins: ABBins) -> ColourData:
    rgba, names, skipped = load_rgba(data, size, split)
    return prepare(rgba, names, bins, skipped)


def batch_indices(seed: int, step: int, n: int, batch_size: int) -> Tensor:
    """The global batch of ``step``: a pure function of (seed, step), so resumed runs see the same data."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(n, (batch_size,), generator=g)
