"""Small random HMMs shared by the HMM feature tests (float64, seeded)."""

from __future__ import annotations

import torch
import torch.distributions as D

from latentvar import HMM

F64 = torch.float64


def cat_hmm(k: int = 3, v: int = 4, seed: int = 0, final: bool = False) -> HMM:
    """A Categorical-emission HMM with k states over v symbols; ``final``: with end-state logits too."""
    g = torch.Generator().manual_seed(seed)
    return HMM(
        torch.randn(k, generator=g, dtype=F64),
        torch.randn(k, k, generator=g, dtype=F64) * 1.5,
        D.Categorical(logits=torch.randn(k, v, generator=g, dtype=F64) * 1.5),
        torch.randn(k, generator=g, dtype=F64) if final else None,
    )
