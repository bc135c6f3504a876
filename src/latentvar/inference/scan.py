"""The log-depth parallel scan of a `Dense` chain: ⊕ α_0 ⊗ M_1 ⊗ ... ⊗ M_{T-1}, M_t[i, j] = A_t[i, j] + e_t[j],
reduced by a tree of (k, k) semiring matrix products (the associative scan of Särkkä & García-Fernández 2021).
Work O(b·t·k³), depth O(log t), memory O(b·t·k²): for few states and long sequences on a parallel device.
Marginals and the best path come from autograd of the log / max semiring score (torch-struct's trick)."""

from __future__ import annotations

import torch
from torch import Tensor

from latentvar.inference.backtrack import PAD
from latentvar.inference.chain import Chain
from latentvar.inference.semiring import LogSemiring, MaxSemiring


def _semiring_matmul(semiring, a: Tensor, b: Tensor) -> Tensor:
    """Stacks of (k, k) products: in the log semiring one batched matmul of shifted exponentials
    (`LogSemiring.matmul`) unless an entry underflowed to -inf, then (as in `MaxSemiring`) the exact
    broadcast product, so near-zero probabilities never become -inf."""
    if semiring is LogSemiring:
        out = LogSemiring.matmul(a, b)
        if not bool(torch.isneginf(out).any()):
            return out
    return semiring.sum(a.unsqueeze(-1) + b.unsqueeze(-3), dim=-2)


def _shift_matrices(mats: Tensor) -> tuple[Tensor, Tensor]:
    """Each (k, k) matrix less its (detached) maximum, and the maxima summed per sequence in float64."""
    top = mats.detach().amax((-1, -2), keepdim=True).clamp_min(torch.finfo(mats.dtype).min)
    return mats - top, top.flatten(1).double().sum(1)


def parallel_log_partition(chain: Chain, semiring=LogSemiring) -> Tensor:
    """The same quantity as `Chain.log_partition` for `Dense` transitions, by a log-depth tree
    of (k, k) semiring matrix products; past each length M_t is the semiring identity. Every product is
    shifted to max 0 and the shifts summed in float64, so float32 stays precise (and so do its gradients,
    the marginals) at t = 100,000. Work O(b·t·k³), depth O(log t)."""
    emission = chain.emission_tensor
    lengths, step = chain.lengths, chain.step
    b, T, k = emission.shape
    if T == 0:
        return chain.init.new_zeros(b)
    first = (chain.init + emission[:, 0]).reshape(b, 1, 1, k)
    alpha0, scale = _shift_matrices(first)
    if T > 1:
        a = step.log_trans if step.shared or step.log_trans.shape[1] == 1 else step.log_trans[:, 1:T]
        mats = a + emission[:, 1:].unsqueeze(-2)  # (b, t-1, k, k)
        eye = torch.full((k, k), semiring.zero, dtype=mats.dtype, device=mats.device)
        eye.fill_diagonal_(semiring.one)
        past = (torch.arange(1, T, device=lengths.device) >= lengths.unsqueeze(-1)).view(b, T - 1, 1, 1)
        mats, shift = _shift_matrices(torch.where(past, eye, mats))
        scale = scale + shift
        while mats.shape[1] > 1:
            if mats.shape[1] % 2:
                mats = torch.cat([mats, eye.expand(b, 1, k, k)], 1)
            mats, shift = _shift_matrices(_semiring_matmul(semiring, mats[:, 0::2], mats[:, 1::2]))
            scale = scale + shift
        alpha0 = _semiring_matmul(semiring, alpha0.view(b, 1, k), mats[:, 0])
    last = alpha0.flatten(1) if chain.final is None else alpha0.flatten(1) + chain.final
    total = (semiring.sum(last, -1).double() + scale).to(emission.dtype)
    return torch.where(lengths > 0, total, torch.zeros_like(total))


def parallel_marginals(chain: Chain) -> Tensor:
    """∂ log Z / ∂ e (b, t, k) through the parallel scan."""
    with torch.enable_grad():
        e = chain.emission_tensor.detach().requires_grad_(True)
        total = parallel_log_partition(chain.replace(emissions=e), LogSemiring)
        (grad,) = torch.autograd.grad(total.sum(), e)
    return grad


def parallel_viterbi(chain: Chain) -> Tensor:
    """The best path as the gradient of the max-semiring parallel scan (torch-struct's argmax): max with
    indices sends the gradient at ties to one entry, so it is one best path, not a blend."""
    with torch.enable_grad():
        e = chain.emission_tensor.detach().requires_grad_(True)
        best = parallel_log_partition(chain.replace(emissions=e), MaxSemiring)
        (grad,) = torch.autograd.grad(best.sum(), e)
    z = grad.argmax(-1)
    valid = torch.arange(e.shape[1], device=e.device) < chain.lengths.unsqueeze(-1)
    return torch.where(valid, z, torch.full_like(z, PAD))
