"""The embedded Twemoji set: 3,786 emoji images, 32x32 RGBA, graphics CC-BY 4.0 (Twitter/X and contributors).

Built by ``scripts/twemoji_build.py`` from the npm package emoji-datasource-twitter@16.0.0
(``img/twitter/64``, downsampled 64 -> 32 by a box filter on premultiplied alpha); see
``twemoji32/LICENSE-twemoji.txt``. The split (train 3,022 / val 401 / test 363) is fixed by the SHA-1 of
each file name.

    >>> from latentvar.data.twemoji import load_twemoji
    >>> load_twemoji("test").shape
    (363, 32, 32, 4)
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

SPLITS = ("train", "val", "test", "all")


def _directory():
    return resources.files("latentvar.data") / "twemoji32"


@lru_cache(maxsize=1)
def _index() -> dict:
    return json.loads((_directory() / "index.json").read_text())


@lru_cache(maxsize=1)
def _all_tiles() -> np.ndarray:
    """Every image, (n, 32, 32, 4) uint8, in the sorted order of ``index.json``."""
    from PIL import Image

    index = _index()
    tile, per_row = index["tile"], index["tiles_per_row"]
    tiles = []
    for atlas in index["atlases"]:
        with (_directory() / atlas).open("rb") as f, Image.open(f) as im:
            sheet = np.asarray(im.convert("RGBA"))
        rows = sheet.shape[0] // tile
        grid = sheet.reshape(rows, tile, per_row, tile, 4).transpose(0, 2, 1, 3, 4)
        tiles.append(grid.reshape(rows * per_row, tile, tile, 4))
    images = np.concatenate(tiles)[: len(index["names"])]
    images.setflags(write=False)
    return images


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")


def _mask(split: str) -> np.ndarray:
    _check_split(split)
    if split == "all":
        return np.ones(len(_index()["names"]), bool)
    return np.array([s == split for s in _index()["split"]])


def twemoji_names(split: str = "all") -> list[str]:
    """File names (e.g. ``1f600.png``) of ``split``'s images, in the order `load_twemoji` returns them."""
    mask = _mask(split)
    return [n for n, keep in zip(_index()["names"], mask, strict=True) if keep]


def resize_rgba(images: np.ndarray, size: int) -> np.ndarray:
    """(n, h, w, 4) uint8 -> (n, size, size, 4): Lanczos on premultiplied alpha (box when shrinking 2x)."""
    from PIL import Image

    out = np.empty((len(images), size, size, 4), np.uint8)
    for i, im in enumerate(images):
        # PIL's "RGBa" mode is premultiplied: resampling there keeps transparent RGB out of the edges.
        pre = Image.fromarray(np.ascontiguousarray(im), "RGBA").convert("RGBa")
        out[i] = np.asarray(pre.resize((size, size), Image.Resampling.LANCZOS).convert("RGBA"))
    return out


def load_twemoji(split: str = "train", size: int = 32) -> np.ndarray:
    """The Twemoji images of ``split`` ("train", "val", "test" or "all"): uint8 (n, size, size, 4), RGBA.

    ``size`` other than 32 resamples the 32x32 copies (Lanczos on premultiplied alpha).
    """
    mask = _mask(split)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size: expected a positive integer (pixels per side), got {size!r}")
    images = _all_tiles()[mask]
    return images.copy() if size == 32 else resize_rgba(images, size)
