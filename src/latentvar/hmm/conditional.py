"""P(y | x) with an HMM produced by a network from x."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from latentvar.hmm.model import HMM


class ConditionalHMM(nn.Module):
    """P(y | x) = Σ_z P(z|x) P(y|z,x) with an HMM produced by a network from x, as `ConditionalMixture`.

    ``network(x)`` returns an `HMM` (or its arguments (init_logits, trans_logits, emission[, final_logits]))
    whose batch covers x's batch -- e.g. init (b, k), per-step transitions (b, t, k, k) and emissions
    (b, t, k) from a sequence encoder. ``model(x)`` is that HMM; every question goes through it:

        model(x).log_prob(y)       exact log P(y|x) per sequence
        model(x).posterior(y)      exact P(z|x,y): marginals, mode, sample, entropy
        model(x).sample(shape, t)  (z, y) ~ P(z|x) P(y|z,x)
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        if not callable(network):
            raise ValueError(
                f"network: expected an nn.Module (or callable) x -> HMM, got {type(network).__name__}"
            )
        self.network = network

    def forward(self, x: Tensor) -> HMM:
        out = self.network(x)
        if isinstance(out, HMM):
            return out
        if isinstance(out, tuple) and len(out) in (3, 4):
            return HMM(*out)
        raise ValueError(
            "network: expected an HMM or (init_logits, trans_logits, emission[, final_logits]), got "
            f"{type(out).__name__}"
        )

    def log_prob(self, y: Tensor, x: Tensor, lengths=None) -> Tensor:
        return self(x).log_prob(y, lengths)

    def posterior(self, y: Tensor, x: Tensor, lengths=None):
        return self(x).posterior(y, lengths)

    def sample(self, x: Tensor, sample_shape: torch.Size = torch.Size(), length: int = 1, generator=None):
        return self(x).sample(sample_shape, length, generator)
