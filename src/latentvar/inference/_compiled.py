"""Compiled fast paths for `Dense` chains with a shared (k, k) matrix on CPU tensors: the numba kernels of
`latentvar.inference._numba` (scaled recursions in probability space, Viterbi with backpointers), one
sequence per loop iteration with no interpreter overhead per step. They work in float64; a sequence whose
scaled normaliser could have underflowed is flagged and the fast path declines (returns None), so the
generic log-space recursion answers and near-zero probabilities never become -inf.

Registered in `latentvar.inference._registry` and tested against the generic recursion
(tests/test_inference.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from latentvar.inference._registry import register
from latentvar.inference.chain import Chain, Dense
from latentvar.inference.semiring import LogSemiring


class _Kernels:
    """The numba module, imported (and its kernels loaded from numba's cache) on first use, so that
    `import latentvar` stays light."""

    def __getattr__(self, name):
        from latentvar.inference import _numba, _numba_weights

        kernel = getattr(_numba_weights if name == "step_weights" else _numba, name)
        setattr(self, name, kernel)  # later look-ups find it without coming here
        return kernel


kernels = _Kernels()


def _np64(x: Tensor) -> np.ndarray:
    return x.detach().to(torch.float64).contiguous().numpy()


def applies(chain: Chain, *_) -> bool:
    """Shared (k, k) transitions, no final weights, CPU tensors."""
    step = chain.step
    return (
        isinstance(step, Dense)
        and step.shared
        and chain.final is None
        and chain.init.device.type == "cpu"
        and step.log_trans.device.type == "cpu"
        and (not torch.is_tensor(chain.emissions) or chain.emissions.device.type == "cpu")
    )


def in_groups(b: int, fn) -> list:
    """fn(lo, hi) over contiguous groups of the b sequences, one group per torch thread, run on Python
    threads (the kernels release the GIL)."""
    n = max(1, min(b, torch.get_num_threads()))
    if n == 1:
        return [fn(0, b)]
    bounds = [b * i // n for i in range(n + 1)]
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, bounds[:-1], bounds[1:]))


def scaled_transitions(log_trans: Tensor) -> tuple[np.ndarray, Tensor]:
    """A' = exp(log A - its column maxima) (k, k) as float64 NumPy, and those maxima (k,) as float64."""
    log_trans = log_trans.detach().double()
    col_max = log_trans.amax(0).clamp_min(torch.finfo(torch.float64).min)
    return (log_trans - col_max).exp().numpy(), col_max


def _step_weights(log_init: Tensor, col_max: Tensor, em: Tensor, t0: int) -> tuple[np.ndarray, np.ndarray]:
    """The scaled kernels' per-step weights exp(e_t + offset - top_t) (b, c, k) and tops (b, c) for the
    emission chunk ``em`` starting at step t0: the offset is log π ((k,) or (b, k)) at t = 0 and the
    transition column maxima after. A step where every state is impossible gets weights 0 (the kernel then
    flags the sequence). One compiled call (`latentvar.inference._numba_weights`); `_step_weights_torch` is
    the same in tensor operations."""
    init = _np64(log_init)
    return kernels.step_weights(_np64(em), init.reshape(-1, init.shape[-1]), col_max.numpy(), t0 == 0)


def _step_weights_torch(
    log_init: Tensor, col_max: Tensor, em: Tensor, t0: int
) -> tuple[np.ndarray, np.ndarray]:
    """`_step_weights` with torch's vectorised exp (the reference the compiled form is tested against)."""
    shifted = em.detach().double() + col_max
    if t0 == 0 and em.shape[1]:
        shifted[:, 0] = em[:, 0].detach().double() + log_init.detach().double()
    top = shifted.amax(-1, keepdim=True).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    return shifted.sub_(top).exp_().numpy(), top.squeeze(-1).numpy()


def forward(log_init: Tensor, log_trans: Tensor, chunks, lengths: Tensor) -> Tensor | None:
    """log Z (b,) by the scaled forward recursion over the emission chunks (b, c, k), memory O(b·k)
    besides one chunk; None if a sequence needs the exact log-space recursion."""
    b, k = lengths.shape[0], log_trans.shape[0]
    alpha, loglik, ok = np.zeros((b, k)), np.zeros(b), np.ones(b, dtype=bool)
    trans_p, col_max = scaled_transitions(log_trans)
    lens = lengths.numpy()
    t = 0
    for chunk in chunks:
        probs, tops = _step_weights(log_init, col_max, chunk, t)
        in_groups(
            b,
            lambda lo, hi, t=t, probs=probs, tops=tops: kernels.forward_chunk(
                trans_p, probs[lo:hi], tops[lo:hi], lens[lo:hi], t, alpha[lo:hi], loglik[lo:hi], ok[lo:hi]
            ),
        )
        t += chunk.shape[1]
    return torch.from_numpy(loglik).to(log_trans.dtype) if ok.all() else None


def forward_backward(log_init, log_trans, emission_lp, lengths, weights=None, counts=True):
    """(γ (b, t, k) zero past each length, log Z (b,), ∂/∂ log π (k,) or (b, k), Σ_b w_b Σ_t ξ_b,t (k, k))
    in float64 by the scaled forward-backward, γ_1 and ξ weighted by ``weights`` (b,); None if a sequence
    needs the log-space recursion."""
    b = lengths.shape[0]
    w = np.ones(b) if weights is None else _np64(weights)
    trans_p, col_max = scaled_transitions(log_trans)
    probs, tops = _step_weights(log_init, col_max, emission_lp, 0)
    lens = lengths.numpy()
    parts = in_groups(
        b,
        lambda lo, hi: kernels.forward_backward(
            trans_p, probs[lo:hi], tops[lo:hi], lens[lo:hi], w[lo:hi], counts
        ),
    )
    gamma, loglik, ok = (
        parts[0][i] if len(parts) == 1 else np.concatenate([p[i] for p in parts]) for i in range(3)
    )
    if not ok.all():
        return None
    gamma, loglik = torch.from_numpy(gamma), torch.from_numpy(loglik)
    if log_init.dim() == 2:  # one initial distribution per sequence: its own γ_1
        init_c = (
            gamma[:, 0] * torch.from_numpy(w)[:, None]
            if gamma.shape[1]
            else torch.zeros(log_init.shape, dtype=torch.float64)
        )
    else:
        init_c = torch.from_numpy(sum(part[3] for part in parts))
    trans_c = torch.from_numpy(sum(part[4] for part in parts))
    return gamma, loglik, init_c, trans_c


class _LogPartition(torch.autograd.Function):
    """log Z (b,) with its gradient: ∂/∂ log π = γ_1, ∂/∂ log A = Σ_t ξ_t, ∂/∂ e_t = γ_t (the expected
    counts, Eisner 2016), each weighted by the incoming gradient of its sequence; the backward pass reruns
    the compiled forward-backward. Also returns ok (): False where the caller must use log space."""

    @staticmethod
    def forward(ctx, log_init, log_trans, emission_lp, lengths):
        total = forward(log_init, log_trans, iter([emission_lp]), lengths)
        ctx.save_for_backward(log_init, log_trans, emission_lp, lengths)
        ok = torch.tensor(total is not None)
        ctx.mark_non_differentiable(ok)
        return (emission_lp.new_zeros(lengths.shape[0]) if total is None else total), ok

    @staticmethod
    def backward(ctx, grad, _grad_ok):
        log_init, log_trans, emission_lp, lengths = ctx.saved_tensors
        gamma, _, init_c, trans_c = forward_backward(log_init, log_trans, emission_lp, lengths, grad)
        g_em = gamma.to(emission_lp.dtype) * grad.view(-1, 1, 1)
        return init_c.to(log_init.dtype), trans_c.to(log_trans.dtype), g_em, None


@register("forward", "numba scaled forward (scoring)", lambda c, semiring, keep: applies(c) and not keep)
def _forward(chain: Chain, semiring, keep):
    if semiring is not LogSemiring:
        return None
    total = forward(chain.init, chain.step.log_trans, chain.chunks(), chain.lengths)
    return None if total is None else (total, None)


@register("log_partition_grad", "numba scaled forward-backward as an autograd Function", applies)
def _log_partition_grad(chain: Chain):
    total, ok = _LogPartition.apply(chain.init, chain.step.log_trans, chain.emission_tensor, chain.lengths)
    return total if bool(ok) else None


@register("marginals", "numba scaled forward-backward", applies)
def _marginals(chain: Chain):
    out = forward_backward(
        chain.init, chain.step.log_trans, chain.emission_tensor, chain.lengths, counts=False
    )
    return None if out is None else out[0].to(chain.emission_tensor.dtype)


@register("expected_counts", "numba scaled forward-backward with counts", applies)
def _expected_counts(chain: Chain):
    out = forward_backward(chain.init, chain.step.log_trans, chain.emission_tensor, chain.lengths)
    if out is None:
        return None
    gamma, loglik, init_c, trans_c = out
    dtype = chain.emission_tensor.dtype
    return loglik.to(dtype), init_c.to(dtype), trans_c.to(dtype), gamma.to(dtype)


@register("viterbi", "numba max-product with backpointers", applies)
def _viterbi(chain: Chain):
    em = chain.emission_tensor
    init = chain.init
    if init.dim() == 2 and em.shape[1]:  # one initial distribution per sequence: fold it into e_0
        em = em.detach().clone()
        em[:, 0] += init.detach()
        init = init.new_zeros(init.shape[-1])
    li, lt, e, lens = _np64(init), _np64(chain.step.log_trans), _np64(em), chain.lengths.numpy()
    parts = in_groups(chain.batch, lambda lo, hi: kernels.viterbi(li, lt, e[lo:hi], lens[lo:hi]))
    return torch.from_numpy(parts[0] if len(parts) == 1 else np.concatenate(parts))
