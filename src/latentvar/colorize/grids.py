"""Grids for images of any size: the work shape, resizing, joint bilateral upsampling by strips of rows, and the
mixture's decoding in chunks -- so memory follows the pixels, never pixels × bins (see `colorizer`).

Shapes: c channels, h/w rows/columns, k segments, l L-bins, q ab bins.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

STRIP_PIXELS = 1 << 19  # pixels per strip of rows (0.5 Mpx: ~2 MB per channel of float32)
SIGMA_L = 8.0  # L units: the range kernel of the joint bilateral upsampling
RANGE_FLOOR = 1e-4  # added to each range weight: a pixel unlike all 4 neighbours gets their bilinear mix
COMPILED = True  # CPU float32 strips use the compiled kernel (`_bilateral`); False: the torch expression


def short_side_shape(
    h: int, w: int, side: int, multiple: int = 16, max_ratio: float = 4.0
) -> tuple[int, int]:
    """(h', w') with the short side ``side``, the aspect ratio kept (up to ``max_ratio``), both multiples
    of ``multiple``."""
    ratio = min(max(h, w) / min(h, w), max_ratio)
    long = max(multiple, round(side * ratio / multiple) * multiple)
    short = max(multiple, round(side / multiple) * multiple)
    return (short, long) if h <= w else (long, short)


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


def _taps(n_in: int, n_out: int, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Bilinear taps (i0, i1, weight of i1) of output positions ``index``, as F.interpolate computes
    them with align_corners=False: source = (i + 0.5) · n_in / n_out - 0.5, clamped at 0."""
    src = ((index.double() + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    return i0, i1, (src - i0).float()


def strips(img: np.ndarray, max_pixels: int = STRIP_PIXELS) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, img[rows]) in strips of about ``max_pixels`` pixels, top to bottom."""
    h, w = img.shape[:2]
    step = max(1, max_pixels // max(w, 1))
    for top in range(0, h, step):
        rows = slice(top, min(h, top + step))
        yield rows, img[rows]


def joint_bilateral_rows(
    x: Tensor, guide: Tensor, guide_rows: Tensor, shape: tuple[int, int], rows: slice, sigma: float = SIGMA_L
) -> Tensor:
    """Rows ``rows`` of ``x`` (c, h, w) upsampled to ``shape`` (H, W), steered by the lightness: each output
    pixel mixes the 2×2 low-resolution neighbours that bilinear upsampling would use, each weighted by its
    bilinear weight times exp(-(L_p - L_q)² / 2σ²), the L_q of ``guide`` (h, w) against the pixel's own
    L_p in ``guide_rows`` (len(rows), W) -- joint bilateral upsampling (Kopf et al. 2007) with a 2×2
    support. Across a lightness edge the values of the pixel's own side win, so upsampled segments and
    colours stop at the edge instead of bleeding 4-px blocks over it. Returns (c, len(rows), W).

    CPU float32 tensors go through the compiled kernel `_bilateral.bilateral_rows` (the same taps, weights
    and sums, one pass over the output pixels; `COMPILED`), anything else (CUDA, float64, autograd)
    through the torch expression `_mix`."""
    (_, h, w), (H, W) = x.shape, shape
    r0, r1, wr = _taps(h, H, torch.arange(rows.start, rows.stop, device=x.device))
    c0, c1, wc = _taps(w, W, torch.arange(W, device=x.device))
    if COMPILED and _compiled_applies(x, guide, guide_rows):
        from latentvar.colorize._bilateral import bilateral_rows

        out = torch.empty(x.shape[0], *guide_rows.shape, dtype=torch.float32)
        arrays = [
            t.contiguous().numpy() for t in (x.permute(1, 2, 0), guide, guide_rows, r0, r1, wr, c0, c1, wc)
        ]
        bilateral_rows(*arrays, np.float32(1 / (2 * sigma**2)), np.float32(RANGE_FLOOR), out.numpy())
        return out
    row_taps = ((r0, (1 - wr)[:, None]), (r1, wr[:, None]))
    col_taps = ((c0, (1 - wc)[None, :]), (c1, wc[None, :]))
    # a row gather then a column gather: 30 % faster than one broadcast gather [ri[:, None], ci[None, :]]
    return _mix(x, guide, guide_rows, row_taps, col_taps, lambda a, ri, ci: a[..., ri, :][..., ci], sigma)


def _compiled_applies(*tensors: Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.float32 and not t.requires_grad for t in tensors)


def joint_bilateral_points(
    x: Tensor,
    guide: Tensor,
    guide_points: Tensor,
    shape: tuple[int, int],
    ys: Tensor,
    xs: Tensor,
    sigma: float = SIGMA_L,
) -> Tensor:
    """The same upsampling at the pixels (ys, xs) (n,) of the (H, W) grid only, their own L in
    ``guide_points`` (n,): (c, n), equal to `joint_bilateral_rows` at those pixels."""
    (_, h, w), (H, W) = x.shape, shape
    r0, r1, wr = _taps(h, H, ys)
    c0, c1, wc = _taps(w, W, xs)
    row_taps, col_taps = ((r0, 1 - wr), (r1, wr)), ((c0, 1 - wc), (c1, wc))
    return _mix(x, guide, guide_points, row_taps, col_taps, lambda a, ri, ci: a[..., ri, ci], sigma)


def _mix(x: Tensor, guide: Tensor, guide_p: Tensor, row_taps, col_taps, gather, sigma: float) -> Tensor:
    """Σ_taps x_q w_q / Σ_taps w_q, w_q = bilinear weight × (exp(-(L_p - L_q)² / 2σ²) + 1e-4)."""
    total = norm = None
    for ri, rw in row_taps:
        for ci, cw in col_taps:
            near = gather(guide, ri, ci)  # the neighbour's lightness
            weight = rw * cw * (torch.exp(-((guide_p - near) ** 2) / (2 * sigma**2)) + RANGE_FLOOR)
            term = gather(x, ri, ci) * weight
            total, norm = (term, weight) if total is None else (total.add_(term), norm.add_(weight))
    return total / norm


def mixture_decode(
    log_w: Tensor,
    table: Tensor,
    lbin: Tensor,
    centres: Tensor,
    temperature: float,
    decode: str = "annealed",
    bin_weights: Tensor | None = None,
) -> Tensor:
    """ab (h, w, 2) of the per-pixel marginal Σ_k P(z_p=k|x) P(·|z_p=k, x): its annealed mean (Zhang et
    al. eq. 5) or mode. log_w (h, w, k), table (k, l, q) log-probabilities, lbin (h, w) each pixel's L-bin;
    ``bin_weights`` (q,), when given, multiply the marginal first (`quantize.rebalance_weights`).

    Pixels are sorted by L-bin, so the marginal of the pixels at L-bin l is one matrix product of
    contiguous rows, weights (n_l, k) @ P(·|k, l) (k, q); no (pixels, k, q) tensor is built."""
    h, w, _ = log_w.shape
    weights, levels = log_w.exp().reshape(h * w, -1), lbin.reshape(-1)
    probs = table.exp()  # (k, l, q)
    order = torch.argsort(levels, stable=True)
    counts = torch.bincount(levels, minlength=probs.shape[1]).tolist()
    blocks, start = [], 0
    for level, count in enumerate(counts):
        if count:
            blocks.append(weights[order[start : start + count]] @ probs[:, level])
            start += count
    mixed = torch.cat(blocks)  # (h·w, q) in sorted order
    if bin_weights is not None:
        mixed = mixed * bin_weights.to(mixed)
    if decode == "mode":
        ab_sorted = centres[mixed.argmax(-1)]
    else:
        # p^(1/T) renormalised, as (p / max p)^(1/T) so the largest term is 1 for any T (no underflow)
        tilted = (mixed / mixed.amax(-1, keepdim=True)).pow_(1.0 / temperature)
        ab_sorted = (tilted @ centres) / tilted.sum(-1, keepdim=True)
    out = torch.empty_like(ab_sorted)
    out[order] = ab_sorted
    return out.reshape(h, w, 2)
