"""TorchScript fast paths for the CTC lattice (`latentvar.inference.lattice`): the forward recursion in the
log or max semiring and the log-semiring backward recursion, each a loop over frames compiled by
TorchScript, with ⊕ one fused kernel (logaddexp / maximum) and α(s-1), α(s-2) views of a buffer padded by
two impossible positions. They gather the emissions frame by frame, so a no-gradient pass keeps O(b·s)
memory. Registered in `latentvar.inference._registry`; tests/test_inference.py checks each against the
generic recursion.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor

from latentvar.inference._registry import register
from latentvar.inference.chain import Chain
from latentvar.inference.lattice import NEG_INF, Banded, Gathered, shifted
from latentvar.inference.semiring import LogSemiring, MaxSemiring


def _forward_kernel(
    log_probs: Tensor, ext: Tensor, skip_bias: Tensor, input_lengths: Tensor, use_max: bool, keep: bool
) -> tuple[Tensor, Tensor]:
    """α at the last frame (b, s) and, with ``keep``, the stored α (t, b, s) (else an empty tensor)."""
    b, t_max = log_probs.shape[0], log_probs.shape[1]
    s = ext.shape[1]
    neg_inf = float("-inf")
    alpha = torch.full((b, s + 2), neg_inf, dtype=log_probs.dtype, device=log_probs.device)
    alpha[:, 2 : 2 + min(s, 2)] = 0.0
    stored = torch.full((t_max if keep else 0, b, s), neg_inf, dtype=log_probs.dtype, device=log_probs.device)
    ragged_from = int(input_lengths.min()) if b > 0 else t_max
    for t in range(t_max):
        emit = log_probs[:, t].gather(1, ext)
        if t == 0:
            new = alpha[:, 2:] + emit
        elif use_max:
            new = torch.maximum(torch.maximum(alpha[:, 2:], alpha[:, 1:-1]), alpha[:, :-2] + skip_bias) + emit
        else:
            new = (
                torch.logaddexp(torch.logaddexp(alpha[:, 2:], alpha[:, 1:-1]), alpha[:, :-2] + skip_bias)
                + emit
            )
        if t >= ragged_from:
            new = torch.where((input_lengths > t)[:, None], new, alpha[:, 2:])
        alpha[:, 2:] = new
        if keep:
            stored[t] = new
    return alpha[:, 2:].clone(), stored


def _backward_kernel(
    log_probs: Tensor, ext: Tensor, skip_next: Tensor, input_lengths: Tensor, final: Tensor
) -> Tensor:
    """β_t(s) = g_{t+1}(s) ⊕ g_{t+1}(s+1) ⊕ [skip(s+2)] g_{t+1}(s+2), g_t = β_t ⊗ e_t, β_{L-1} = final
    (Graves et al. 2006, eq. 10-11, without the emission at t): (t, b, s)."""
    b, t_max = log_probs.shape[0], log_probs.shape[1]
    s = ext.shape[1]
    betas = torch.empty((t_max, b, s), dtype=log_probs.dtype, device=log_probs.device)
    if t_max == 0:
        return betas
    g = torch.full((b, s + 2), float("-inf"), dtype=log_probs.dtype, device=log_probs.device)
    last = input_lengths - 1
    ragged_from = int(last.min()) if b > 0 else t_max
    beta = final
    betas[t_max - 1] = final
    for t in range(t_max - 2, -1, -1):
        g[:, :s] = beta + log_probs[:, t + 1].gather(1, ext)
        beta = torch.logaddexp(torch.logaddexp(g[:, :-2], g[:, 1:-1]), g[:, 2:] + skip_next)
        if t >= ragged_from:
            beta = torch.where((last <= t)[:, None], final, beta)
        betas[t] = beta
    return betas


@functools.cache
def _scripted(fn):
    """``fn`` compiled by TorchScript on first use. TorchScript removes the Python overhead of the loop over
    frames (about 1.3x faster at small sizes). torch.jit.script warns that it is deprecated in favour of
    torch.compile, which needs a C++ compiler at run time; the scripted functions are plain TorchScript and
    stay correct, so the warning is silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(fn)


def applies(chain: Chain, *_) -> bool:
    return isinstance(chain.step, Banded) and isinstance(chain.emissions, Gathered)


def forward(chain: Chain, semiring, keep: bool) -> tuple[Tensor, Tensor | None] | None:
    """(⊕_s α_{L-1}(s) ⊗ final(s) (b,), α (b, t, s) if ``keep``) by the scripted kernel."""
    if semiring not in (LogSemiring, MaxSemiring):
        return None
    em, lengths = chain.emissions, chain.lengths
    with torch.no_grad():
        last, stored = _scripted(_forward_kernel)(
            em.log_probs, em.ext, chain.step.bias, lengths, semiring is MaxSemiring, keep
        )
    total = semiring.sum(last + chain.final, dim=-1)
    total = torch.where(lengths > 0, total, torch.full_like(total, semiring.one))
    return total, stored.transpose(0, 1) if keep else None


register("forward", "TorchScript CTC forward (log / max)", applies)(forward)


def occupation(chain: Chain, alphas: Tensor, logz: Tensor) -> Tensor:
    """γ_t(s) = exp(α_t(s) + β_t(s) - log Z) (b, t, s) by the scripted backward kernel (Graves et al. 2006,
    eq. 14); zero past each input length and for targets that cannot fit."""
    em, lengths = chain.emissions, chain.lengths
    b, t_max, _ = em.log_probs.shape
    if t_max == 0:
        return alphas.new_zeros(b, 0, em.ext.shape[1])
    skip_next = shifted(chain.step.bias, -2, NEG_INF)
    with torch.no_grad():
        betas = _scripted(_backward_kernel)(em.log_probs, em.ext, skip_next, lengths, chain.final).transpose(
            0, 1
        )
    feasible = torch.isfinite(logz)
    gamma = (alphas + betas - torch.where(feasible, logz, 0.0)[:, None, None]).exp()
    valid = (torch.arange(t_max, device=lengths.device) < lengths[:, None]) & feasible[:, None]
    return gamma * valid[:, :, None]


@register("marginals", "TorchScript CTC forward-backward", applies)
def _marginals(chain: Chain) -> Tensor:
    logz, alphas = forward(chain, LogSemiring, keep=True)
    return occupation(chain, alphas, logz)


class _LogPartition(torch.autograd.Function):
    """log Z with a hand-written gradient with respect to the frame log-probabilities: the forward-backward
    occupations summed over the positions holding each class (Graves et al. 2006, eq. 14-16). Saves α only
    when a gradient is needed."""

    @staticmethod
    def forward(ctx, log_probs, chain):
        keep = ctx.needs_input_grad[0]
        logz, alphas = forward(chain, LogSemiring, keep=keep)
        ctx.chain = chain
        if keep:
            ctx.save_for_backward(alphas, logz)
        return logz

    @staticmethod
    def backward(ctx, grad_logz):
        alphas, logz = ctx.saved_tensors
        chain = ctx.chain
        gamma = occupation(chain, alphas, logz) * grad_logz[:, None, None]
        lp, ext = chain.emissions.log_probs, chain.emissions.ext
        out = torch.zeros_like(lp)
        return out.scatter_add_(2, ext[:, None, :].expand(*gamma.shape), gamma), None


@register("log_partition_grad", "TorchScript CTC forward, hand-written forward-backward gradient", applies)
def _log_partition_grad(chain: Chain) -> Tensor:
    return _LogPartition.apply(chain.emissions.log_probs, chain)
