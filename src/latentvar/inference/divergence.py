"""Cross-entropy and KL divergence between two chains over the same steps, by expectation under marginals:

    E_p[score_q(z)] = Σ_t Σ_j P_p(z_t = j) e^q_t[j] + Σ_{t≥1} Σ_{i,j} P_p(z_{t-1} = i, z_t = j) A^q_t[i, j]
                      + Σ_j P_p(z_0 = j) init^q[j] + Σ_j P_p(z_{L-1} = j) final^q[j]
    H(p, q) = log Z_q − E_p[score_q],   KL(p ‖ q) = H(p, q) − H(p)

with p's unary and pairwise marginals the gradients of its log Z (Eisner 2016) with respect to per-step
potentials (so time-varying chains work too). Memory O(b·t·k²).

Shapes (named axes): b sequences, t steps, k states.
"""

from __future__ import annotations

import torch
from torch import Tensor

from latentvar.inference.chain import Chain, Dense, _forward
from latentvar.inference.semiring import LogSemiring


def _per_step(chain: Chain) -> Tensor:
    """log A_t as (b, t, k, k) (row 0 unused)."""
    e = chain.emission_tensor
    b, T, k = e.shape
    a = chain.step.log_trans.detach()
    if a.dim() == 2:
        return a.expand(b, max(T, 1), k, k)
    return a.expand(b, max(T, 1), k, k) if a.shape[1] == 1 else a[:, : max(T, 1)]


def _potentials(chain: Chain) -> list[Tensor]:
    e = chain.emission_tensor.detach()
    b, _, k = e.shape
    init = chain.init.detach().expand(b, k)
    final = torch.zeros_like(init) if chain.final is None else chain.final.detach().expand(b, k)
    return [init, _per_step(chain), e, final]


def expected_score(p: Chain, q: Chain) -> Tensor:
    """E_{z ~ p}[score_q(z)] (b,) for two `Dense` chains with the same batch, steps and lengths."""
    if not (isinstance(p.step, Dense) and isinstance(q.step, Dense)):
        raise ValueError("other: KL and cross-entropy need two Dense (HMM) chains")
    if p.emission_tensor.shape != q.emission_tensor.shape or not torch.equal(p.lengths, q.lengths):
        raise ValueError(
            f"other: expected a chain over the same sequences (emissions {tuple(p.emission_tensor.shape)}, "
            f"same lengths), got {tuple(q.emission_tensor.shape)}"
        )
    with torch.enable_grad():
        leaves = [x.clone().requires_grad_(True) for x in _potentials(p)]
        init, trans, e, final = leaves
        logz, _ = _forward(
            p.replace(init=init, transitions=Dense(trans), emissions=e, final=final, fast=False), LogSemiring
        )
        grads = torch.autograd.grad(logz.sum(), leaves, allow_unused=True)
    total = torch.zeros(logz.shape, dtype=torch.float64, device=logz.device)
    for g, theta in zip(grads, _potentials(q), strict=True):
        if g is None:
            continue
        term = torch.where(g != 0, g.double() * theta.double(), 0.0)
        total = total + term.reshape(term.shape[0], -1).sum(-1)
    return total.to(logz.dtype)


def cross_entropy(p: Chain, q: Chain) -> Tensor:
    """H(p, q) = −E_p[log q(z)] (b,), in nats; +inf where p puts mass on paths q forbids."""
    return q.log_partition().detach() - expected_score(p, q)


def kl_divergence(p: Chain, q: Chain) -> Tensor:
    """KL(p ‖ q) = H(p, q) − H(p) (b,), in nats."""
    return cross_entropy(p, q) - p.entropy
