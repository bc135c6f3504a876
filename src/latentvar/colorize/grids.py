"""Grids for images of any size: target shapes, resizing, bilinear upsampling by strips of rows, and the
mixture's decoding in chunks -- so memory follows the pixels, never pixels × bins (see `colorizer`).

Shapes: c channels, h/w rows/columns, k segments, l L-bins, q ab bins.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

STRIP_PIXELS = 1 << 21  # pixels per strip of rows (2 Mpx: ~25 MB of float32 Lab)
DECODE_PIXELS = 1 << 16  # pixels per chunk of the (pixels, q) mixture (~70 MB of float32)


def short_side_shape(
    h: int, w: int, side: int, multiple: int = 16, max_ratio: float = 4.0
) -> tuple[int, int]:
    """(h', w') with the short side ``side``, the aspect ratio kept (up to ``max_ratio``), both multiples
    of ``multiple``."""
    ratio = min(max(h, w) / min(h, w), max_ratio)
    long = max(multiple, round(side * ratio / multiple) * multiple)
    short = max(multiple, round(side / multiple) * multiple)
    return (short, long) if h <= w else (long, short)


def capped_shape(h: int, w: int, max_pixels: int) -> tuple[int, int]:
    """(h, w) itself when h·w <= ``max_pixels``, else shrunk to about ``max_pixels`` with its aspect ratio."""
    if h * w <= max_pixels:
        return h, w
    scale = math.sqrt(max_pixels / (h * w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An image (h, w, 3|4), uint8 or float, resized to ``shape`` = (h', w'): Lanczos on premultiplied alpha
    for uint8 (PIL), area / bilinear for floats."""
    if tuple(img.shape[:2]) == tuple(shape):
        return img
    if img.dtype == np.uint8:
        from PIL import Image

        mode = "RGBA" if img.shape[-1] == 4 else "RGB"
        im = Image.fromarray(np.ascontiguousarray(img), mode)
        if mode == "RGBA":
            im = im.convert("RGBa")
        out = im.resize((shape[1], shape[0]), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return np.asarray(out.convert("RGBA") if mode == "RGBA" else out)
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    shrink = shape[0] <= img.shape[0] and shape[1] <= img.shape[1]
    kw = {"mode": "area"} if shrink else {"mode": "bilinear", "align_corners": False}
    return F.interpolate(x, size=tuple(shape), **kw)[0].permute(1, 2, 0).numpy()


def upsample(x: Tensor, shape: tuple[int, int]) -> Tensor:
    """(c, h, w) -> (c, h', w') bilinearly (align_corners=False)."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    return F.interpolate(x[None], size=tuple(shape), mode="bilinear", align_corners=False)[0]


def _taps(n_in: int, n_out: int, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Bilinear taps (i0, i1, weight of i1) of output positions ``index``, as F.interpolate computes
    them with align_corners=False: source = (i + 0.5) · n_in / n_out - 0.5, clamped at 0."""
    src = ((index.double() + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    return i0, i1, (src - i0).float()


def upsample_rows(x: Tensor, shape: tuple[int, int], rows: slice) -> Tensor:
    """``upsample(x, shape)[:, rows]`` without building the whole upsampled tensor: (c, len(rows), w')."""
    (_, h, w), (H, W) = x.shape, shape
    if (h, w) == (H, W):
        return x[:, rows]
    r0, r1, wr = _taps(h, H, torch.arange(rows.start, rows.stop, device=x.device))
    c0, c1, wc = _taps(w, W, torch.arange(W, device=x.device))
    lines = x[:, r0] * (1 - wr)[:, None] + x[:, r1] * wr[:, None]  # (c, rows, w)
    return lines[..., c0] * (1 - wc) + lines[..., c1] * wc


def strips(img: np.ndarray, max_pixels: int = STRIP_PIXELS) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, img[rows]) in strips of about ``max_pixels`` pixels, top to bottom."""
    h, w = img.shape[:2]
    step = max(1, max_pixels // max(w, 1))
    for top in range(0, h, step):
        rows = slice(top, min(h, top + step))
        yield rows, img[rows]


def mixture_decode(
    log_w: Tensor, table: Tensor, lbin: Tensor, centres: Tensor, temperature: float, decode: str = "annealed"
) -> Tensor:
    """ab (h, w, 2) of the per-pixel marginal Σ_k P(z_p=k|x) P(·|z_p=k, x): its annealed mean (Zhang et
    al. eq. 5) or mode. log_w (h, w, k), table (k, l, q) log-probabilities, lbin (h, w) each pixel's L-bin.

    Pixels are taken in chunks, and within a chunk by L-bin: the marginal of the pixels at L-bin l is one
    matrix product weights (n, k) @ P(·|k, l) (k, q), so no (pixels, k, q) tensor is built."""
    h, w, _ = log_w.shape
    weights, levels = log_w.exp().reshape(h * w, -1), lbin.reshape(-1)
    probs = table.exp()  # (k, l, q)
    out = torch.empty(h * w, 2, device=log_w.device)
    for start in range(0, h * w, DECODE_PIXELS):
        part = slice(start, min(h * w, start + DECODE_PIXELS))
        wts, lv = weights[part], levels[part]
        mixed = torch.empty(wts.shape[0], probs.shape[-1], device=log_w.device)
        for level in torch.unique(lv).tolist():
            at = lv == level
            mixed[at] = wts[at] @ probs[:, level]
        if decode == "mode":
            out[part] = centres[mixed.argmax(-1)]
        else:
            out[part] = torch.softmax(mixed.clamp_min(1e-30).log() / temperature, -1) @ centres
    return out.reshape(h, w, 2)
