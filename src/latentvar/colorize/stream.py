"""Multi-scale random crops of a photo collection, decoded on the fly in torch DataLoader workers.

The global batch of a step is a *plan* drawn from a generator seeded by (seed, step) -- which photo, which
scale, where, flipped or not -- by the very draws of `crops.PhotoCrops.batch`, so a prepared corpus trains
on the same crops as before (there each photo is read whole and resized as `PhotoCrops` does; tested equal).
Rank r of R takes rows [r·b/R, (r+1)·b/R) of the plan and reads only those files: files are sharded across
ranks step by step, and a batch is a pure function of (seed, step) whatever the number of ranks and loader
workers (worker w of W makes the steps ``start + w, start + w + W, ...``; the DataLoader hands them back in
step order).

Any other collection is decoded at the resolution the crop needs: a JPEG through libjpeg's DCT scaling
(Pillow's ``draft``, a 1/2, 1/4 or 1/8 size decode at least as large as the crop's scale), and only the
crop's box is resampled (Lanczos) to the scale's short side (`crop_at`). An unreadable file is skipped: the row takes the next file of
the split (a pure function again), and the file's name travels back with the batch to be counted and
logged; more than `MAX_TRIES` unreadable files in a row is an error naming ``data``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from latentvar.colorize.crops import CROP_LEVELS, CROP_SCALES, _read_rgb, _resize_short
from latentvar.colorize.images import MAX_PIXELS, ImageReadError, ImageTooLargeError, rgba_to_lab
from latentvar.colorize.sources import Collection

MAX_TRIES = 64


def crop_sides(crop: int) -> list[int]:
    """The short sides a photo is resized to: `CROP_LEVELS` geometric steps over 96..224 px for crops up to
    96 px (the corpus's, unchanged), else over 1.5..3.5 crop sides."""
    lo, hi = CROP_SCALES if crop <= CROP_SCALES[0] else (round(1.5 * crop), round(3.5 * crop))
    return np.unique(np.geomspace(lo, hi, CROP_LEVELS).round().astype(int)).tolist()


def plan(seed: int, step: int, n: int, num_photos: int, num_sides: int):
    """The global batch of ``step`` as (photo, level, where (n, 2) in [0, 1), flip): `PhotoCrops.batch`'s draws."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    photo = torch.randint(num_photos, (n,), generator=g).tolist()
    level = torch.randint(num_sides, (n,), generator=g).tolist()
    where = torch.rand(n, 2, generator=g).tolist()
    flip = (torch.rand(n, generator=g) < 0.5).tolist()
    return photo, level, where, flip


def read_rgb_for_side(source, side: int, draft: bool = True) -> np.ndarray:
    """An image (a path or a binary file object) -> upright sRGB RGB uint8 with its short side ``side``;
    alpha composited on white. ``draft``: let a JPEG decode at the smallest DCT scale still >= that size."""
    return _resize_short(decode_for_side(source, side, draft), side)


def decode_for_side(source, side: int, draft: bool = True) -> np.ndarray:
    """`read_rgb_for_side` before its resize: the upright RGB uint8 decode (a JPEG at a DCT scale whose
    short side is still >= ``side``, with ``draft``)."""
    from PIL import Image

    from latentvar.colorize.images import _our_pixel_limit, _pil, to_rgba
    from latentvar.colorize.lab import to_float_rgb

    with _our_pixel_limit():
        im = _pil(source, Image.open, source)
        try:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageTooLargeError(f"images: {w}×{h} is over {MAX_PIXELS:,} pixels", w, h)
            if draft and im.format == "JPEG":
                scale = side / min(w, h)
                im.draft(None, (int(np.ceil(w * scale)), int(np.ceil(h * scale))))
            _pil(source, im.load)
            rgba = to_rgba(im)
        finally:
            im.close()
    if (rgba[..., 3] < 255).any():
        rgba = (to_float_rgb(rgba) * 255 + 0.5).to(torch.uint8).numpy()
    return np.ascontiguousarray(rgba[..., :3])


def crop_at(rgb: np.ndarray, side: int, where: tuple[float, float], flip: bool, c: int, exact: bool):
    """The ``c`` × ``c`` crop at relative position ``where`` of ``rgb`` resized (Lanczos) to short side
    ``side``, flipped left-right if ``flip``. ``exact``: resize the whole image, then crop (`PhotoCrops`'
    pixels); else resample only the crop's box of the source (the same geometry, a tenth of the work; the
    pixels differ from the whole resize's by rounding)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = side / min(h, w)
    W, H = max(side, round(w * scale)), max(side, round(h * scale))  # `_resize_short`'s size
    top, left = int(where[0] * (H - c + 1)), int(where[1] * (W - c + 1))
    if exact:
        view = _resize_short(rgb, side)[top : top + c, left : left + c]
    else:
        sx, sy = w / W, h / H
        box = (left * sx, top * sy, (left + c) * sx, (top + c) * sy)
        view = np.asarray(Image.fromarray(rgb).resize((c, c), Image.Resampling.LANCZOS, box=box))
    return view[:, ::-1] if flip else view


class CropSampler:
    """``rows(seed, step, batch_size, lo, hi)`` -> (RGB uint8 (hi - lo, c, c, 3), names of skipped files):
    rows lo..hi of the global batch of ``step``, over the files ``indices`` of ``collection``."""

    def __init__(self, collection: Collection, indices: np.ndarray, crop: int):
        if len(indices) == 0:
            raise ValueError(f"data: no training images in {str(collection.root)!r}")
        self.collection, self.indices, self.crop = collection, np.asarray(indices, np.int64), crop
        self.sides = crop_sides(crop)
        self.exact = collection.kind == "corpus"  # read whole and resized as PhotoCrops did
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.indices)

    def _image(self, j: int, side: int) -> np.ndarray:
        """File j of the split decoded (a JPEG at the DCT scale ``side`` needs, unless exact)."""
        i = int(self.indices[j])
        if self.exact:
            return _read_rgb(self.collection.source(i))
        return decode_for_side(self.collection.source(i), side)

    def first_readable(self, start: int, side: int, skipped: list) -> tuple[int, np.ndarray]:
        """(j, image) for the first readable file of the split from position ``start`` on, cyclically; the
        unreadable ones are added to ``skipped`` as (name, why)."""
        tries = min(MAX_TRIES, len(self.indices))
        for t in range(tries):
            j = (start + t) % len(self.indices)
            if j in self.bad:
                continue
            try:
                return j, self._image(j, side)
            except (ImageReadError, OSError, ValueError, SyntaxError) as err:
                self.bad.add(j)
                skipped.append((self.collection.label(int(self.indices[j])), str(err)))
        root = str(self.collection.root)
        raise ValueError(f"data: no readable image among {tries} files in a row in {root!r} (see above)")

    def rows(self, seed: int, step: int, batch_size: int, lo: int, hi: int):
        photo, level, where, flip = plan(seed, step, batch_size, len(self.indices), len(self.sides))
        c, skipped = self.crop, []
        out = np.empty((hi - lo, c, c, 3), np.uint8)
        for r, i in enumerate(range(lo, hi)):
            side = self.sides[level[i]]
            _, rgb = self.first_readable(photo[i], side, skipped)
            out[r] = crop_at(rgb, side, where[i], flip[i], c, self.exact)
        return out, skipped


class StepCrops(IterableDataset):
    """Steps ``start..stop - 1`` of one rank as (step, L (b, c, c), y (b, c, c), ab (b, c, c, 2), skipped);
    worker w of W makes the steps start + w, start + w + W, ... (the DataLoader yields them in order)."""

    def __init__(self, sampler: CropSampler, bins, seed: int, batch_size: int, lo: int, hi: int, start, stop):
        self.sampler, self.bins, self.seed, self.batch_size = sampler, bins, seed, batch_size
        self.lo, self.hi, self.start, self.stop = lo, hi, start, stop

    def make(self, step: int):
        rgb, skipped = self.sampler.rows(self.seed, step, self.batch_size, self.lo, self.hi)
        L, ab = rgba_to_lab(rgb)
        return step, L, self.bins.encode(ab), ab, skipped

    def __iter__(self):
        info = get_worker_info()
        w, num = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in range(self.start + w, self.stop, num):
            yield self.make(step)


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # a worker is one core's worth of decoding; no nested OpenMP pools


def step_loader(dataset: StepCrops, workers: int, pin_memory: bool) -> DataLoader:
    """The torch DataLoader over ``dataset``: one item per step, ``workers`` processes (0: in this one)."""
    kw = {"prefetch_factor": 2, "worker_init_fn": _one_thread} if workers else {}
    return DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=pin_memory, **kw)
