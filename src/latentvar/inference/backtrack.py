"""The one backtrace of latentvar: walk back through stored forward variables, choosing each predecessor.

Viterbi is `backtrack` with `Argmax` over max-semiring alphas; exact posterior samples (forward filtering,
backward sampling, Chib 1996) are `backtrack` with `GumbelDraw` over log-semiring alphas. The step of the chain
names the candidates: all k states for a `Dense` chain (HMM), at most three positions for CTC's `Banded` lattice.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

PAD = -1


class Argmax:
    """``choose`` for the Viterbi backtrace: the best candidate (ties to the lowest index)."""

    def __call__(self, scores: Tensor) -> Tensor:
        return scores.argmax(-1)


class GumbelDraw:
    """``choose`` for backward sampling: exact categorical draws ∝ exp(scores), batched (Gumbel-max)."""

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def __call__(self, scores: Tensor) -> Tensor:
        u = torch.rand(scores.shape, dtype=scores.dtype, device=scores.device, generator=self.generator)
        gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(scores.dtype).tiny)))
        return (scores + gumbel).argmax(-1)


def backtrack(
    alphas: Tensor, lengths: Tensor, step, choose: Callable[[Tensor], Tensor], final=None
) -> Tensor:
    """Walk back from each sequence's last step through stored forward variables ``alphas`` (..., b, t, k):
    z_{L-1} = choose(α_{L-1} ⊗ final), z_t = choose(α_t ⊗ bias_{t+1}(z_{t+1})) over the predecessors that
    ``step.predecessors`` names (all k for `Dense`, at most three for CTC's `Banded`). Returns states
    (..., b, t), -1 past each length. The one backtrace of the library: Viterbi with `Argmax`, exact
    posterior samples with `GumbelDraw`."""
    *lead, b, T, k = alphas.shape
    z = torch.full(alphas.shape[:-1], PAD, dtype=torch.long, device=alphas.device)
    nxt = torch.zeros(alphas.shape[:-2], dtype=torch.long, device=alphas.device)
    longest = int(lengths.max()) if b else 0
    for t in range(min(T, longest) - 1, -1, -1):
        active = t < lengths
        cand, bias = step.predecessors(t + 1, nxt, (t == lengths - 1).expand(nxt.shape), final)
        a_t = alphas[..., t, :]
        scores = (a_t if cand is None else a_t.gather(-1, cand.clamp(0, k - 1))) + bias
        picked = choose(scores)
        if cand is not None:
            picked = cand.gather(-1, picked[..., None]).squeeze(-1)
        z[..., t] = torch.where(active, picked, PAD)
        nxt = torch.where(active, picked, nxt)
    return z
