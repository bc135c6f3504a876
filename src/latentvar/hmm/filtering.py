"""Forward and backward tables of an HMM in log space, and online filtering with a carried state.

    log α_t(j) = log P(y_1..y_t, z_t = j)             α_t = (α_{t-1} ⊗ A_t) ⊗ e_t      (Rabiner 1989, eq. 20)
    log β_t(i) = log P(y_{t+1}..y_L, end | z_t = i)    β_t = A_{t+1} ⊗ (e_{t+1} ⊗ β_{t+1}), β_{L} = final or 0
    P(z_t | y_1..y_t) = α_t / Σ α_t (filtering);  P(z_t | y_1..y_{t+lag}) (fixed-lag smoothing)

Unscaled log-space recursions (one logsumexp per step, no underflow in any dtype the logits have), kept
apart from the engine's scaled ones so that the tables are the textbook quantities (pomegranate's
``forward`` / ``backward``). Shapes (named axes): b sequences, t steps, k states; entries past each length
are -inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from latentvar.inference import Chain
from latentvar.inference.semiring import logsumexp_safe


def _step(chain: Chain, t: int) -> Tensor:
    """log A_t as (b|1, k, k)."""
    a = chain.step.at(t)
    return a if a.dim() == 3 else a.unsqueeze(0)


def forward_table(chain: Chain, start: Tensor | None = None) -> Tensor:
    """log α (b, t, k) of a `Dense` chain; ``start`` (b, k): log α of the step before the first (a carried
    filtering state), in place of init."""
    e = chain.emission_tensor
    b, T, k = e.shape
    valid = torch.arange(T, device=e.device) < chain.lengths[:, None]
    out = torch.full_like(e, -torch.inf)
    alpha = None
    for t in range(T):
        if alpha is None and start is None:
            new = chain.init + e[:, t]
        else:
            prev = start if alpha is None else alpha
            new = logsumexp_safe(prev.unsqueeze(-1) + _step(chain, t), -2) + e[:, t]
        new = new.expand(b, k)
        out[:, t] = torch.where(valid[:, t, None], new, -torch.inf)
        alpha = new
    return out


def backward_table(chain: Chain) -> Tensor:
    """log β (b, t, k) of a `Dense` chain, the end weights (``final``) included at each sequence's last step."""
    e = chain.emission_tensor
    b, T, k = e.shape
    lengths = chain.lengths
    out = torch.full_like(e, -torch.inf)
    end = e.new_zeros(b, k) if chain.final is None else chain.final.expand(b, k)
    beta = None
    for t in range(T - 1, -1, -1):
        last = (t == lengths - 1)[:, None]
        if beta is None:
            new = end
        else:
            inner = (e[:, t + 1] + beta).unsqueeze(-2)  # (b, 1, k)
            new = torch.where(last, end, logsumexp_safe(_step(chain, t + 1) + inner, -1))
        new = torch.where((t < lengths)[:, None], new, -torch.inf)
        out[:, t] = new
        beta = new
    return out


@dataclass
class FilterState:
    """What `HMM.filter` carries from one chunk of a stream to the next: log α of the last step seen (b, k)
    (normalised) and the log-likelihood of everything seen so far (b,)."""

    log_alpha: Tensor
    log_likelihood: Tensor


@dataclass
class Filtered:
    """`HMM.filter`'s answer for one chunk: ``probs`` (..., t, k) P(z_t | y up to t), or up to t + lag with
    ``lag`` (fixed-lag smoothing, within what has been seen: the last ``lag`` steps of a chunk use fewer);
    ``log_likelihood`` (...,) log P(y seen so far); ``state`` to pass to the next call."""

    probs: Tensor
    log_likelihood: Tensor
    state: FilterState


def filter_chain(chain: Chain, state: FilterState | None, lag: int) -> tuple[Tensor, Tensor, FilterState]:
    """(filtered or fixed-lag smoothed probabilities (b, t, k), log-likelihood so far (b,), the new state)."""
    e = chain.emission_tensor
    b, T, k = e.shape
    start = None if state is None else state.log_alpha
    alpha = forward_table(chain, start)
    seen = e.new_zeros(b) if state is None else state.log_likelihood
    lengths = chain.lengths
    if T == 0:
        return e.new_zeros(b, 0, k), seen, state or FilterState(chain.init.expand(b, k).clone(), seen)
    idx = (lengths - 1).clamp_min(0)
    last = alpha.gather(1, idx.view(b, 1, 1).expand(b, 1, k)).squeeze(1)  # (b, k)
    log_z = logsumexp_safe(last, -1)
    total = torch.where(lengths > 0, seen + log_z, seen)
    carried = torch.where((lengths > 0)[:, None], last - log_z[:, None], start if start is not None else last)
    if lag:
        probs = _fixed_lag(chain, alpha, lag)
    else:
        probs = torch.exp(alpha - logsumexp_safe(alpha, -1).unsqueeze(-1))
    valid = torch.arange(T, device=e.device) < lengths[:, None]
    probs = torch.where(valid[..., None], probs.nan_to_num(0.0), 0.0)
    return probs, total, FilterState(carried, total)


def _fixed_lag(chain: Chain, alpha: Tensor, lag: int) -> Tensor:
    """P(z_t | y_1..y_{min(t+lag, L)}) ∝ α_t · β_t^(lag), β^(lag) by a backward pass over the window only."""
    e = chain.emission_tensor
    b, T, k = e.shape
    lengths = chain.lengths
    out = torch.zeros_like(e)
    for t in range(T):
        beta = e.new_zeros(b, k)
        stop = torch.minimum(lengths - 1, torch.full_like(lengths, t + lag))  # the last step in the window
        for s in range(min(t + lag, T - 1), t, -1):
            inner = (e[:, s] + beta).unsqueeze(-2)
            new = logsumexp_safe(_step(chain, s) + inner, -1)
            beta = torch.where((s <= stop)[:, None], new, beta)
        w = alpha[:, t] + beta
        out[:, t] = torch.exp(w - logsumexp_safe(w, -1).unsqueeze(-1))
    return out
