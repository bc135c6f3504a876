"""scikit-learn's bundled 8×8 digits (1797 images, pixel values 0..16; no download), binarised at 8 of 16,
and one fixed split into train / val / test by a seeded permutation: the same split whatever ``--seed``
trains the model, so runs with different seeds are scored on the same test images.

Shapes (named axes): ``n`` images, ``d`` = 64 pixels (row-major 8×8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

THRESHOLD = 8  # a pixel is on when its value (0..16) is at least 8
SPLIT_SEED = 20080705  # the split's permutation, fixed for every run
VAL_FRACTION = TEST_FRACTION = 0.2
SIDE = 8


@dataclass
class DigitSplits:
    """Binary images (n, 64) float64 and their labels (n,) for each part of the split."""

    train: Tensor
    val: Tensor
    test: Tensor
    train_labels: Tensor
    val_labels: Tensor
    test_labels: Tensor


def load_binary_digits() -> tuple[Tensor, Tensor]:
    """All 1797 images binarised, (n, 64) float64 of 0s and 1s, and their digit labels (n,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.data >= THRESHOLD, dtype=torch.float64)
    return x, torch.as_tensor(digits.target)


def split_indices(n: int) -> tuple[Tensor, Tensor, Tensor]:
    """The fixed split of image indices 0..n-1 into (train, val, test): 20% test, 20% val, the rest train,
    by one permutation seeded with `SPLIT_SEED`."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test, n_val = round(TEST_FRACTION * n), round(VAL_FRACTION * n)
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def split_digits(limit: int | None = None) -> DigitSplits:
    """The binarised digits in the fixed split. ``limit`` keeps only the first ``limit`` images of each
    part (for quick runs and tests); the parts never overlap."""
    x, y = load_binary_digits()
    train, val, test = (p[:limit] for p in split_indices(len(x)))
    return DigitSplits(x[train], x[val], x[test], y[train], y[val], y[test])


def pixel_log_odds(x: Tensor, pseudo: float = 1.0) -> Tensor:
    """log-odds of each pixel being on, with ``pseudo`` counts of on and off added (no ±inf for pixels
    that are always off): the biases of the independent-pixels model and of the AIS base model, (64,)."""
    p = (x.sum(0) + pseudo) / (len(x) + 2 * pseudo)
    return torch.logit(p)
