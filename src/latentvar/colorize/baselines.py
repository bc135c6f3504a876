"""The colorization baselines, trained by the same loop as the latent model (see `model`):
`PerPixelColorizer` (a Q-way softmax per pixel, Zhang et al. 2016 without rebalancing),
`RegressionColorizer` (L2 on ab, its NLL through `GaussianBins`) and `GreyColorizer` (ab = 0).

Shapes (named axes): b batch, h/w pixels, q ab bins, c feature channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from latentvar.colorize.model import L_BINS, build_trunk, lightness_bin, lightness_input, upsample


class PerPixelColorizer(nn.Module):
    """No latent: a Q-way softmax per pixel from the same trunk (Zhang et al. 2016, without rebalancing)."""

    kind = "per-pixel"

    def __init__(self, num_bins: int, width: int = 16, arch: str = "emoji"):
        super().__init__()
        self.trunk = build_trunk(arch, width)
        self.head = nn.Linear(width, num_bins)
        self.config = {"width": width, "arch": arch}
        if arch == "photo":  # the latent model's per-pixel lightness term u_{l(p)}, so the rivals match
            self.lightness_logits = nn.Parameter(torch.zeros(L_BINS, num_bins))

    def logits(self, L: Tensor) -> Tensor:
        """(b, h, w, q); the softmax runs over the contiguous last axis (much faster than over channels)."""
        x = lightness_input(L)
        if self.config["arch"] == "emoji":
            return self.head(rearrange(upsample(self.trunk(x), x), "b c h w -> b h w c"))
        # photo: Q logits at the trunk's 1/4 resolution, upsampled bilinearly (Zhang et al. predict at 1/4)
        coarse = rearrange(self.head(rearrange(self.trunk(x), "b c h w -> b h w c")), "b h w q -> b q h w")
        return rearrange(upsample(coarse, x), "b q h w -> b h w q") + self.lightness_logits[lightness_bin(L)]

    def forward(self, L: Tensor, y: Tensor, ab: Tensor) -> Tensor:
        return F.cross_entropy(self.logits(L).flatten(0, 2), y.flatten())

    def log_probs(self, L: Tensor) -> Tensor:
        return torch.log_softmax(self.logits(L), dim=-1)


class GaussianBins(nn.Module):
    """A point prediction μ (b, h, w, 2) read as a distribution over the bins:
    P(q) ∝ exp(-|c_q - μ|² / 2σ²), σ² per ab axis = the mean squared training residual (its MLE)."""

    def __init__(self, centres: Tensor):
        super().__init__()
        self.register_buffer("centres", centres)
        self.register_buffer("residual_var", torch.ones(2) * 100.0)

    def log_probs(self, mean_ab: Tensor) -> Tensor:
        d2 = ((mean_ab.unsqueeze(-2) - self.centres) ** 2 / self.residual_var).sum(-1)
        return torch.log_softmax(-0.5 * d2, dim=-1)


class RegressionColorizer(nn.Module):
    """L2 regression of ab from the same trunk. NLL is reported via `GaussianBins` (comparable: a
    proper distribution over the same Q bins) with σ² fitted on training residuals after training."""

    kind = "regression"
    AB_SCALE = 110.0

    def __init__(self, centres: Tensor, width: int = 16, arch: str = "emoji"):
        super().__init__()
        self.trunk = build_trunk(arch, width)
        self.head = nn.Conv2d(width, 2, 1)
        self.gaussian = GaussianBins(centres)
        self.config = {"width": width, "arch": arch}

    def predict_ab(self, L: Tensor) -> Tensor:
        x = lightness_input(L)
        out = upsample(self.head(self.trunk(x)), x) * self.AB_SCALE
        return rearrange(out, "b c h w -> b h w c")

    def forward(self, L: Tensor, y: Tensor, ab: Tensor) -> Tensor:
        return ((self.predict_ab(L) - ab) / self.AB_SCALE).pow(2).mean()

    def log_probs(self, L: Tensor) -> Tensor:
        return self.gaussian.log_probs(self.predict_ab(L))


class GreyColorizer(nn.Module):
    """ab = 0 everywhere; no training. NLL via `GaussianBins` centred on 0 with σ² = E[ab²] on train."""

    kind = "grey"

    def __init__(self, centres: Tensor):
        super().__init__()
        self.gaussian = GaussianBins(centres)
        self.config = {}

    def predict_ab(self, L: Tensor) -> Tensor:
        return torch.zeros(*L.shape, 2, device=L.device)

    def log_probs(self, L: Tensor) -> Tensor:
        return self.gaussian.log_probs(self.predict_ab(L))
