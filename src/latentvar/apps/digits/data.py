"""Lines of handwritten digits: sklearn's bundled 8×8 digits (1,797 real scans, UCI "Optical Recognition
of Handwritten Digits"), split by scan -- a fixed 80/20 permutation -- so that no scan appears in both
train and test lines. A line is 3-10 scans side by side with random gaps of 0-4 blank columns; training
lines are drawn afresh every step from the training scans, the test lines once from the test scans with a
fixed seed.

Shapes (named axes): b batch, h height (8), w width (columns), t frames (w / 2), c classes (blank + 10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from latentvar.apps.digits.model import Config

TEST_FRACTION = 0.2
SPLIT_SEED = 20240501
TEST_LINES_SEED = 7


def split_indices(n: int) -> dict[str, Tensor]:
    """Scan indices of the train and test parts: a fixed permutation, the first 20% for test."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = round(TEST_FRACTION * n)
    return {"train": order[n_test:], "test": order[:n_test]}


def digit_scans() -> dict[str, tuple[Tensor, Tensor]]:
    """{'train': (images (n, 8, 8) in [0, 1], labels (n,)), 'test': ...}, split by scan."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.as_tensor(d.images, dtype=torch.float32) / 16.0
    labels = torch.as_tensor(d.target, dtype=torch.long)
    return {part: (images[idx], labels[idx]) for part, idx in split_indices(len(labels)).items()}


def make_lines(images: Tensor, labels: Tensor, n: int, cfg: Config, generator: torch.Generator):
    """n lines from the given scans: (pixels (b, 8, w) zero-padded, widths (b,), targets (b, l) padded
    with -1 as digits, target lengths (b,), scan indices (b, l) padded with -1)."""
    lines, digits, scans = [], [], []
    for _ in range(n):
        k = int(torch.randint(cfg.min_digits, cfg.max_digits + 1, (), generator=generator))
        idx = torch.randint(0, len(labels), (k,), generator=generator)
        gaps = torch.randint(0, cfg.max_gap + 1, (k + 1,), generator=generator)
        parts = [torch.zeros(8, int(gaps[0]) + 1)]
        for j, i in enumerate(idx.tolist()):
            parts += [images[i], torch.zeros(8, int(gaps[j + 1]))]
        parts.append(torch.zeros(8, 1))
        lines.append(torch.cat(parts, dim=1))
        digits.append(labels[idx])
        scans.append(idx)
    widths = torch.tensor([x.shape[1] for x in lines])
    pixels = torch.zeros(n, 8, int(widths.max()))
    targets = torch.full((n, cfg.max_digits), -1, dtype=torch.long)
    scan_index = torch.full((n, cfg.max_digits), -1, dtype=torch.long)
    for i, (x, y, s) in enumerate(zip(lines, digits, scans, strict=True)):
        pixels[i, :, : x.shape[1]] = x
        targets[i, : len(y)] = y
        scan_index[i, : len(s)] = s
    return pixels, widths, targets, (targets >= 0).sum(-1), scan_index


def test_lines(cfg: Config, n: int = 500):
    images, labels = digit_scans()["test"]
    return make_lines(images, labels, n, cfg, torch.Generator().manual_seed(TEST_LINES_SEED))


def as_classes(digits: Tensor) -> Tensor:
    """Digits padded with -1 -> CTC classes (digit + 1), padding kept at -1."""
    return torch.where(digits >= 0, digits + 1, -1)
