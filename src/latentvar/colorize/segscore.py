"""How well a segmentation follows the regions of a ground-truth label map (one image at a time).

Shapes: segments (h, w) integer segment ids (any values); labels (h, w) integer region ids, < 0 where the
ground truth says nothing (those pixels are left out of every score).

- `adjusted_rand`: the adjusted Rand index (Hubert & Arabie 1985) between segments and regions over the
  labelled pixels (`sklearn.metrics.adjusted_rand_score`): 1 for the same partition, about 0 for chance,
  whatever the segment ids are called. It weighs pixels, so big regions (sky, ground) dominate it.
- `boundary_f`: boundary precision / recall / F-measure as in the Berkeley benchmark (BSDS, Martin et al.
  2004), with its tolerance of 0.0075 × the image diagonal (about 5 px at 512 × 384) by default. A pixel is
  a boundary pixel when its right or lower neighbour has another id (a one-pixel-thick boundary on the
  upper-left side of each edge). Ground-truth boundaries only separate two labelled regions; predicted
  boundaries count only where the pixel and that neighbour are both labelled. Precision: share of
  predicted boundary pixels within the tolerance of a true one; recall: share of true boundary pixels
  within the tolerance of a predicted one (Euclidean distance transforms, `scipy.ndimage`). BSDS matches
  pixels one-to-one (a bipartite assignment); this uses the nearest-pixel distance, which never scores
  lower. No predicted boundary: precision 1; no true boundary: recall 1.
- `components_per_segment`: connected components (8-connectivity, `scipy.ndimage.label`) of each segment
  id present, averaged over those ids, over the whole image (labelled or not): 1 when every segment is
  one piece, hundreds for speckled isophote bands.
- `click_regions`: what `latentvar serve`'s click does with a region (tests/test_serve_mask_recolour.py on
  one photo; here every photo): for each labelled region of at least ``min_share`` of the image, the
  8-connected piece of the segment under the region's deepest pixel (the image frame counts as an edge)
  is what a click there recolours; ``inside`` is the share of the region it covers, ``outside`` the share
  of the rest of the image, a ``hit`` both inside >= 0.8 and outside <= 0.1 (the issue's test).
"""

from __future__ import annotations

import math

import numpy as np

EIGHT = np.ones((3, 3), bool)  # the structuring element of 8-connectivity


def _check_pair(segments, labels) -> tuple[np.ndarray, np.ndarray]:
    segments, labels = np.asarray(segments), np.asarray(labels)
    if segments.ndim != 2:
        raise ValueError(f"segments: expected an (h, w) map of segment ids, got shape {segments.shape}")
    if labels.shape != segments.shape:
        raise ValueError(f"labels: expected the segments' shape {segments.shape}, got {labels.shape}")
    for name, arr in (("segments", segments), ("labels", labels)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    return segments, labels


def adjusted_rand(segments, labels) -> float:
    """ARI between ``segments`` and ``labels`` over the pixels with labels >= 0 (NaN when there are none)."""
    from sklearn.metrics import adjusted_rand_score

    segments, labels = _check_pair(segments, labels)
    keep = labels >= 0
    if not keep.any():
        return math.nan
    return float(adjusted_rand_score(labels[keep], segments[keep]))


def boundaries(ids: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(h, w) bool: pixels whose right or lower neighbour has another id; with ``valid``, only where the
    pixel and that neighbour are both valid."""
    ids = np.asarray(ids)
    valid = np.ones(ids.shape, bool) if valid is None else valid
    out = np.zeros(ids.shape, bool)
    right = (ids[:, :-1] != ids[:, 1:]) & valid[:, :-1] & valid[:, 1:]
    down = (ids[:-1] != ids[1:]) & valid[:-1] & valid[1:]
    out[:, :-1] |= right
    out[:-1] |= down
    return out


def bsds_tolerance(shape: tuple[int, int]) -> float:
    """The Berkeley benchmark's default match distance: 0.0075 × the image diagonal, in pixels."""
    return 0.0075 * math.hypot(*shape)


def boundary_f(segments, labels, tolerance: float | None = None) -> dict:
    """{"precision", "recall", "f", "tolerance"} of the segments' boundaries against the regions'."""
    from scipy.ndimage import distance_transform_edt

    segments, labels = _check_pair(segments, labels)
    tolerance = bsds_tolerance(segments.shape) if tolerance is None else tolerance
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance: expected a distance >= 0 in pixels, got {tolerance!r}")
    valid = labels >= 0
    truth = boundaries(labels, valid)
    pred = boundaries(segments, valid)

    def near(target: np.ndarray, to: np.ndarray) -> int:
        """How many pixels of ``target`` lie within ``tolerance`` of a pixel of ``to``."""
        if not to.any():
            return 0
        return int((distance_transform_edt(~to)[target] <= tolerance).sum())

    n_pred, n_true = int(pred.sum()), int(truth.sum())
    precision = near(pred, truth) / n_pred if n_pred else 1.0
    recall = near(truth, pred) / n_true if n_true else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f": f, "tolerance": float(tolerance)}


def components_per_segment(segments) -> float:
    """Mean over the segment ids present of their number of 8-connected pieces."""
    from scipy.ndimage import find_objects, label

    segments = np.asarray(segments)
    if segments.ndim != 2 or not np.issubdtype(segments.dtype, np.integer):
        raise ValueError(
            f"segments: expected an (h, w) map of integer ids, got {segments.dtype} {segments.shape}"
        )
    ids = np.unique(segments)
    boxes = find_objects(np.searchsorted(ids, segments) + 1)  # each id's bounding box: label only there
    pieces = [label(segments[box] == s, structure=EIGHT)[1] for s, box in zip(ids, boxes, strict=True)]
    return float(np.mean(pieces))


CLICK_INSIDE, CLICK_OUTSIDE = 0.8, 0.1  # a click's piece must cover this much of the region, this little else


def click_regions(segments, labels, min_share: float = 0.05) -> dict:
    """{"click_hit", "click_inside", "click_outside"}: means over the regions of at least ``min_share``
    of the image (NaN when there is none) of a hit, of inside and of outside (module docstring)."""
    from scipy.ndimage import distance_transform_edt, label

    segments, labels = _check_pair(segments, labels)
    rows = []
    for region in np.unique(labels[labels >= 0]):
        mask = labels == region
        if mask.mean() < min_share:
            continue
        depth = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(depth.argmax()), depth.shape)
        pieces, _ = label(segments == segments[y, x], structure=EIGHT)
        piece = pieces == pieces[y, x]
        inside = float(piece[mask].mean())
        outside = float(piece[~mask].mean()) if (~mask).any() else 0.0
        rows.append((inside >= CLICK_INSIDE and outside <= CLICK_OUTSIDE, inside, outside))
    if not rows:
        return {"click_hit": math.nan, "click_inside": math.nan, "click_outside": math.nan}
    hit, inside, outside = (float(np.mean(c)) for c in zip(*rows, strict=True))
    return {"click_hit": hit, "click_inside": inside, "click_outside": outside}


def score_segments(segments, labels, tolerance: float | None = None) -> dict:
    """All of them for one image: {"ari", "boundary_f", "boundary_precision", "boundary_recall",
    "components_per_segment", "segments_used", "click_hit", "click_inside", "click_outside"}."""
    segments, labels = _check_pair(segments, labels)
    bf = boundary_f(segments, labels, tolerance)
    return {
        "ari": adjusted_rand(segments, labels),
        "boundary_f": bf["f"],
        "boundary_precision": bf["precision"],
        "boundary_recall": bf["recall"],
        "components_per_segment": components_per_segment(segments),
        "segments_used": int(len(np.unique(segments))),
        **click_regions(segments, labels),
    }
