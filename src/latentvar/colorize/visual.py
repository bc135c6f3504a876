"""What a person sees of the segments: ids in a fixed palette, and an overlay on the photo with the
segment boundaries drawn."""

from __future__ import annotations

import numpy as np

SEGMENT_PALETTE = np.array(
    [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
        [174, 199, 232],
        [255, 187, 120],
        [152, 223, 138],
        [255, 152, 150],
        [197, 176, 213],
        [196, 156, 148],
        [247, 182, 210],
        [219, 219, 141],
        [158, 218, 229],
        [57, 59, 121],
        [99, 121, 57],
        [140, 162, 82],
        [181, 207, 107],
        [140, 109, 49],
        [189, 158, 57],
        [231, 203, 148],
        [132, 60, 57],
        [173, 73, 74],
        [231, 150, 156],
        [123, 65, 115],
        [165, 81, 148],
        [206, 109, 189],
    ],
    np.uint8,
)  # 32 distinct colours (matplotlib's tab10, its light tab20 companions, one dark blue, and tab20b's greens,
# browns, reds and purples): K <= 32 never repeats


def segment_colours(segments: np.ndarray) -> np.ndarray:
    """int (h, w) segment ids -> RGB uint8 (h, w, 3) in a fixed categorical palette."""
    return SEGMENT_PALETTE[np.asarray(segments) % len(SEGMENT_PALETTE)]


def boundaries(segments: np.ndarray, width: int = 1) -> np.ndarray:
    """bool (h, w): pixels whose right or lower neighbour lies in another segment, thickened to ``width``."""
    seg = np.asarray(segments)
    edge = np.zeros(seg.shape, bool)
    edge[:, :-1] |= seg[:, 1:] != seg[:, :-1]
    edge[:-1, :] |= seg[1:, :] != seg[:-1, :]
    for _ in range(width - 1):
        grown = edge.copy()
        grown[1:] |= edge[:-1]
        grown[:, 1:] |= edge[:, :-1]
        edge = grown
    return edge


def overlay(
    rgb: np.ndarray, segments: np.ndarray, alpha: float = 0.45, line: int | None = None
) -> np.ndarray:
    """The photo (h, w, 3|4), uint8 or float in [0, 1], alpha on white, with each segment's palette colour
    blended in at ``alpha`` and the boundaries drawn in white (1 px per 512 px of the longer side, at
    least 1): RGB uint8 (h, w, 3)."""
    from latentvar.colorize.lab import to_float_rgb

    if rgb.shape[:2] != np.shape(segments):
        raise ValueError(f"segments: expected the image's shape {rgb.shape[:2]}, got {np.shape(segments)}")
    line = line or max(1, round(max(rgb.shape[:2]) / 512))
    out = np.empty(rgb.shape[:2] + (3,), np.uint8)
    step = max(1, (1 << 21) // max(rgb.shape[1], 1))
    for top in range(0, rgb.shape[0], step):  # strips: a 12000 x 9000 photo needs no float copy of itself
        rows = slice(top, top + step)
        photo = to_float_rgb(rgb[rows]).numpy() * 255.0
        mixed = (1 - alpha) * photo + alpha * segment_colours(segments[rows])
        out[rows] = (mixed + 0.5).astype(np.uint8)
    out[boundaries(segments, line)] = 255
    return out


def grey_image(rgb: np.ndarray) -> np.ndarray:
    """What the model sees of a photo (h, w, 3|4): its CIE L alone, a = b = 0, as RGB uint8 (h, w, 3)."""
    import torch

    from latentvar.colorize.grids import strips
    from latentvar.colorize.lab import lab_to_rgb, rgb_to_lab, to_float_rgb

    out = np.empty(rgb.shape[:2] + (3,), np.uint8)
    for rows, strip in strips(rgb):
        lab = rgb_to_lab(to_float_rgb(strip))
        lab[..., 1:] = 0.0
        out[rows] = (lab_to_rgb(lab) * 255 + 0.5).to(torch.uint8).numpy()
    return out
