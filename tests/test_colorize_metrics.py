"""The class-rebalanced AuC (`metrics.auc_rebalanced`) against hand-computed cases and the plain AuC."""

from __future__ import annotations

import torch

from latentvar.colorize.metrics import auc, auc_rebalanced
from latentvar.colorize.quantize import ABBins

CENTRES = ABBins().centres


def test_one_colour_class_gives_the_plain_auc():
    """Every true colour in one bin: every weight is equal, so the rebalanced AuC is the plain one."""
    true = CENTRES[40].expand(50, 2).clone()
    pred = true + torch.linspace(0, 60, 50)[:, None] * torch.tensor([1.0, 0.0])
    assert abs(auc_rebalanced(pred, true, CENTRES) - auc(pred, true)) < 1e-6


def test_a_rare_colour_counts_as_much_as_a_common_one():
    """90 pixels of a common colour predicted exactly, 10 of a far rare colour predicted 150 away: plain
    AuC sees 90 % right, the rebalanced one about half (each class weighs the same; σ = 5 never mixes two
    bins 60 ab units apart)."""
    common, rare = CENTRES[0], CENTRES[0] + torch.tensor([60.0, 0.0])
    true = torch.cat([common.expand(90, 2), rare.expand(10, 2)])
    pred = torch.cat([common.expand(90, 2), (rare + torch.tensor([0.0, 151.0])).expand(10, 2)])
    plain, rebalanced = auc(pred, true), auc_rebalanced(pred, true, CENTRES)
    assert abs(plain - 0.9) < 1e-6
    assert abs(rebalanced - 0.5) < 1e-3
    assert abs(auc_rebalanced(true, true, CENTRES) - 1.0) < 1e-9
