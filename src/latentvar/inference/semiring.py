"""Semirings for exact inference by dynamic programming.

One recursion, several questions (Goodman 1999; torch-struct): run the same sum-product recursion in

- ``LogSemiring``  (logsumexp, +): the log partition function log Σ_z exp(score(z)), i.e. log P(y);
  its gradient with respect to the log-potentials is the posterior marginal of each part.
- ``MaxSemiring``  (max, +): the score of the best z (Viterbi); its gradient is the one-hot best z.

Both have ⊗ = +, so a recursion may shift every cell by a constant per step (the scaled recursion) and add
the shifts back at the end; `latentvar.inference.chain` relies on that. Posterior samples come from the
log-semiring forward variables walked back (`latentvar.inference.backtrack`), and the entropy
H = log Z − E[score] from an expectation recursion beside the log-semiring one (`Chain.entropy`).

Every operation reduces over one named dimension and is safe with -inf entries (impossible events):
a sum over all -inf gives -inf, never NaN, and the gradient through it is zero.
"""

from __future__ import annotations

import torch
from torch import Tensor


def logsumexp_safe(x: Tensor, dim: int) -> Tensor:
    """logsumexp whose value is -inf and whose gradient is 0 (not NaN) where every entry is -inf.

    torch.logsumexp's backward is NaN there, and 0 · NaN would poison the gradient of every cell that
    reaches it; so shift by a finite max and guard the log on both sides of a `where`."""
    m = x.detach().amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    total = (x - m).exp().sum(dim=dim, keepdim=True)
    positive = total > 0
    out = torch.where(positive, torch.where(positive, total, torch.ones_like(total)).log() + m, -torch.inf)
    return out.squeeze(dim)


class LogSemiring:
    """(logsumexp, +, -inf, 0): probabilities in log space."""

    zero = float("-inf")
    one = 0.0

    @staticmethod
    def sum(x: Tensor, dim: int = -1) -> Tensor:
        return logsumexp_safe(x, dim)

    @staticmethod
    def mul(a: Tensor, b: Tensor) -> Tensor:
        return a + b

    @staticmethod
    def matmul(a: Tensor, b: Tensor) -> Tensor:
        """(..., i, j) x (..., j, k) -> (..., i, k) with logsumexp over j, without a (i, j, k) tensor
        for the common case: max-shift, exponentiate, ordinary matmul, log."""
        # the shifts are constants (detached): the same value and gradient, without a backward through amax
        a_max = a.detach().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(a.dtype).min)
        b_max = b.detach().amax(dim=-2, keepdim=True).clamp_min(torch.finfo(b.dtype).min)
        prod = torch.matmul((a - a_max).exp(), (b - b_max).exp())
        return prod.log() + a_max + b_max


class MaxSemiring:
    """(max, +, -inf, 0): the score of the best structure."""

    zero = float("-inf")
    one = 0.0

    @staticmethod
    def sum(x: Tensor, dim: int = -1) -> Tensor:
        # max with indices, not amax: at ties its gradient goes to one entry, not split evenly, so the
        # gradient of a whole recursion is one best structure rather than a blend of co-optimal ones
        return x.max(dim=dim).values

    @staticmethod
    def mul(a: Tensor, b: Tensor) -> Tensor:
        return a + b

    @staticmethod
    def matmul(a: Tensor, b: Tensor) -> Tensor:
        return MaxSemiring.sum(a.unsqueeze(-1) + b.unsqueeze(-3), dim=-2)


class KMaxSemiring:
    """(top-K, +) over sorted lists of the K best scores (Huang & Chiang 2005's k-best semiring): ⊕ merges
    lists and keeps the K largest, ⊗ adds every pair and keeps the K largest. A value is (..., K), sorted
    descending, -inf where fewer than K structures exist; K = 1 is `MaxSemiring`. `latentvar.inference.kbest`
    runs the chain's recursion in it, keeping back-pointers to walk the K best paths back."""

    def __init__(self, k: int):
        self.k = k
        self.zero = float("-inf")
        self.one = 0.0

    def sum(self, x: Tensor, dim: int = -2) -> tuple[Tensor, Tensor]:
        """⊕ over ``dim`` of lists x (..., n, ..., K): the K largest of the union (..., K) and, for each,
        its flat index n·K + rank into (n, K)."""
        x = x.movedim(dim, -2)
        flat = x.reshape(*x.shape[:-2], -1)
        k = min(self.k, flat.shape[-1])
        values, index = flat.topk(k, -1)
        if k < self.k:  # fewer candidates than K: pad with impossible entries
            pad = self.k - k
            values = torch.cat([values, values.new_full((*values.shape[:-1], pad), -torch.inf)], -1)
            index = torch.cat([index, index.new_zeros((*index.shape[:-1], pad))], -1)
        return values, index

    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        """⊗ of a list (..., K) by a score (...) or (..., 1): adding a score keeps the order."""
        return a + (b if b.dim() == a.dim() else b.unsqueeze(-1))
