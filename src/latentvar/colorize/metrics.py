"""Colorization and segmentation metrics.

- `auc`: area under the cumulative curve of per-pixel ab error, thresholds 0..150 (Zhang et al. 2016, §3.1
  "raw accuracy (AuC)"), normalised to [0, 1].
- `auc_rebalanced`: the same curve with each pixel weighted by 1 / p̃(its true ab bin), p̃ the evaluated set's
  own bin marginal smoothed by a Gaussian of σ = 5 ab units (Zhang et al. 2016's class-rebalanced AuC, whose
  prior is the ImageNet training marginal smoothed the same way): rare, saturated colours count as much as
  the common near-grey ones, so grey no longer scores well by being close to the common colours.
- `psnr`: per-image PSNR of the sRGB image (peak 1), averaged over images.
- `colorfulness`: Hasler & Süsstrunk (2003) M = σ_rgyb + 0.3 μ_rgyb on 0..255 sRGB, averaged over images.
- `hungarian_segmentation_scores`: one global Hungarian matching of segments to classes over the whole set
  (as IIC, PiCIE and STEGO evaluate unsupervised segmentation), then mIoU and pixel accuracy.

`auc_parts`, `psnr_per_image` and `colorfulness_per_image` give each image's share of a set's number, for
intervals over images (`colorize.bootstrap`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _areas(dist: Tensor, weight: Tensor, max_threshold: int) -> Tensor:
    """dist, weight (n, p) -> (n,): per image, the mean over thresholds t = 0..max of Σ_p w_p [dist_p <= t]."""
    n = dist.shape[0]
    thresholds = torch.arange(max_threshold + 1, dtype=dist.dtype)
    where = torch.bucketize(dist, thresholds) + (max_threshold + 2) * torch.arange(n)[:, None]
    within = torch.zeros(n * (max_threshold + 2), dtype=torch.float64)
    within.index_add_(0, where.flatten(), weight.flatten().double())
    return within.view(n, -1)[:, : max_threshold + 1].cumsum(1).mean(1)


def auc_parts(
    pred_ab: Tensor,
    true_ab: Tensor,
    centres: Tensor | None = None,
    sigma: float = 5.0,
    max_threshold: int = 150,
) -> tuple[Tensor, Tensor]:
    """pred_ab, true_ab: (n, ..., 2), n images. Per image (n,) float64: the area under its error curve in
    pixel weights and its total weight, so the set's AuC is ``area.sum() / weight.sum()`` and any subset's
    (a bootstrap draw's) the same sums over it. ``centres`` None: every pixel weighs 1 (`auc`); the ab bins
    (q, 2): 1 / p̃(its true bin), p̃ the whole set's smoothed marginal (`auc_rebalanced`)."""
    n = true_ab.shape[0]
    pred, true = pred_ab.reshape(n, -1, 2), true_ab.reshape(n, -1, 2)
    if centres is None:
        dist = (pred - true).norm(dim=-1)
        weight = torch.ones_like(dist, dtype=torch.float64)
        return _areas(dist, weight, max_threshold), weight.sum(1)
    bins = torch.cdist(true.reshape(-1, 2).float(), centres.float()).argmin(1)  # each true colour's bin
    counts = torch.bincount(bins, minlength=centres.shape[0]).double()
    kernel = torch.exp(-(torch.cdist(centres.double(), centres.double()) ** 2) / (2 * sigma**2))
    prior = kernel @ (counts / counts.sum())
    prior = prior / prior.sum()
    weight = (1.0 / prior.clamp_min(1e-12))[bins].view(n, -1)
    dist = (pred.double() - true.double()).norm(dim=-1)
    return _areas(dist, weight, max_threshold), weight.sum(1)


def auc(pred_ab: Tensor, true_ab: Tensor, max_threshold: int = 150) -> float:
    """pred_ab, true_ab: (..., 2). Mean over thresholds t = 0..150 of the share of pixels with |Δab| <= t."""
    area, weight = auc_parts(pred_ab.reshape(1, -1, 2), true_ab.reshape(1, -1, 2), None, 5.0, max_threshold)
    return float(area.sum() / weight.sum())


def auc_rebalanced(
    pred_ab: Tensor, true_ab: Tensor, centres: Tensor, sigma: float = 5.0, max_threshold: int = 150
) -> float:
    """pred_ab, true_ab: (..., 2); ``centres`` (q, 2) the ab bins. The class-rebalanced AuC (see module doc)."""
    area, weight = auc_parts(
        pred_ab.reshape(1, -1, 2), true_ab.reshape(1, -1, 2), centres, sigma, max_threshold
    )
    return float(area.sum() / weight.sum())


def psnr_per_image(pred_rgb: Tensor, true_rgb: Tensor) -> Tensor:
    """(n, h, w, 3) in [0, 1] -> (n,) 10 log10(1 / MSE) of each image."""
    mse = (pred_rgb - true_rgb).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


def psnr(pred_rgb: Tensor, true_rgb: Tensor) -> float:
    """(n, h, w, 3) in [0, 1] -> mean over images of 10 log10(1 / MSE)."""
    return float(psnr_per_image(pred_rgb, true_rgb).mean())


def colorfulness_per_image(rgb: Tensor) -> Tensor:
    """(n, h, w, 3) in [0, 1] -> (n,) Hasler–Süsstrunk colourfulness of each image (0..255 units)."""
    x = rgb * 255.0
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    std = (rg.flatten(1).var(1, unbiased=False) + yb.flatten(1).var(1, unbiased=False)).sqrt()
    mean = (rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2).sqrt()
    return std + 0.3 * mean


def colorfulness(rgb: Tensor) -> float:
    """(n, h, w, 3) in [0, 1] -> mean Hasler–Süsstrunk colourfulness (0..255 units)."""
    return float(colorfulness_per_image(rgb).mean())


def confusion(
    segments: np.ndarray, labels: np.ndarray, num_segments: int, num_classes: int, per_image: bool = False
) -> np.ndarray:
    """(k, c) pixel counts; labels < 0 are ignored. ``per_image``: (n, k, c), one per image of the leading
    axis (their sum is the set's)."""
    cells = num_segments * num_classes
    keep = labels >= 0
    idx = segments[keep].astype(np.int64) * num_classes + labels[keep].astype(np.int64)
    if not per_image:
        return np.bincount(idx, minlength=cells).reshape(num_segments, num_classes)
    image = np.broadcast_to(np.arange(labels.shape[0]).reshape(-1, *[1] * (labels.ndim - 1)), labels.shape)
    idx += image[keep].astype(np.int64) * cells
    return np.bincount(idx, minlength=labels.shape[0] * cells).reshape(-1, num_segments, num_classes)


def hungarian_segmentation_scores(conf: np.ndarray) -> dict:
    """One global one-to-one matching of segments (rows) to classes (columns) maximising matched pixels.

    mIoU averages IoU over all classes (an unmatched class scores 0); pixel accuracy is matched / all."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(conf, maximize=True)
    seg_total, cls_total = conf.sum(1), conf.sum(0)
    iou = np.zeros(conf.shape[1])
    for r, c in zip(rows, cols, strict=True):
        tp = conf[r, c]
        iou[c] = tp / max(seg_total[r] + cls_total[c] - tp, 1)
    present = cls_total > 0
    return {
        "miou": float(iou[present].mean()),
        "pixel_accuracy": float(conf[rows, cols].sum() / max(conf.sum(), 1)),
        "matching": {int(r): int(c) for r, c in zip(rows, cols, strict=True)},
    }
