"""Questions about a fitted HMM beside P(y) and P(z | y), mixed into `HMM`: model selection (``num_parameters``,
``aic``, ``bic``, as hmmlearn counts them), the ``stationary_distribution`` of its chain, and online
``filter``ing (`latentvar.hmm.filtering`).

Shapes (named axes): b sequences, t steps, k states.
"""

from __future__ import annotations

import math

import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar._checks import check_non_negative
from latentvar.hmm.filtering import Filtered, FilterState, filter_chain
from latentvar.hmm.inputs import prepare
from latentvar.stats import em_family


def _emission_parameters(emission, covariance_type: str | None) -> int:
    """The free parameters of k emission distributions of one family."""
    if isinstance(emission, nn.Module):
        return sum(p.numel() for p in emission.parameters() if p.requires_grad)
    family = em_family(emission, "emission")
    if family == "gmm":
        k, m = emission.mixture_distribution.logits.shape
        return k * (m - 1) + _emission_parameters(emission.component_distribution, covariance_type)
    batch = math.prod(emission.batch_shape)
    if family == "categorical":
        base = emission.base_dist if isinstance(emission, D.Independent) else emission
        return math.prod(base.batch_shape) * (base.logits.shape[-1] - 1)
    if family == "multinomial":
        return batch * (emission.event_shape[0] - 1)
    d = math.prod(emission.event_shape) if emission.event_shape else 1
    if family in ("poisson", "exponential"):
        return batch * d
    kind = covariance_type or family
    covariance = {
        "diag": batch * d,
        "spherical": batch,
        "full": batch * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
    }[kind]
    return batch * d + covariance


class Criteria:
    """Mixed into `HMM`: num_parameters, aic, bic, stationary_distribution, filter."""

    def num_parameters(self, covariance_type: str | None = None) -> int:
        """Free parameters: k − 1 (π) + k(k − 1) (A; k·k with end states) + the emission's (as hmmlearn's
        ``_get_n_fit_scalars_per_param``; ``covariance_type`` 'tied' / 'spherical' counts a tied fit's)."""
        k = self.num_states
        start = math.prod(self.init_logits.shape[:-1]) * (k - 1)
        per_row = k if self.final_logits is not None else k - 1
        rows = math.prod(self.trans_logits.shape[:-1]) * per_row
        return start + rows + _emission_parameters(self.emission, covariance_type)

    def _criterion(self, y, lengths, penalty) -> Tensor:
        inputs = prepare(self, y, lengths)
        loglik = self.log_prob(y, lengths).sum()
        n = max(int(inputs.lengths.sum()), 1)
        return -2 * loglik + penalty(n)

    def aic(self, y, lengths=None, covariance_type: str | None = None) -> Tensor:
        """Akaike's information criterion −2 log P(y) + 2p over all sequences (lower is better)."""
        p = self.num_parameters(covariance_type)
        return self._criterion(y, lengths, lambda n: 2 * p)

    def bic(self, y, lengths=None, covariance_type: str | None = None) -> Tensor:
        """The Bayesian information criterion −2 log P(y) + p log n, n the observed steps (lower is better)."""
        p = self.num_parameters(covariance_type)
        return self._criterion(y, lengths, lambda n: p * math.log(n))

    def stationary_distribution(self) -> Tensor:
        """π* (..., k) with π* A = π*, Σ π* = 1, of transitions shared over time (a chain with end states:
        of its moves renormalised without the end). A chain with several closed classes has many; this is
        the least-squares solution of the stacked system, one of them."""
        if self.num_steps is not None:
            raise ValueError("trans_logits: a stationary distribution needs transitions shared over time")
        a = self.log_trans.exp()
        a = a / a.sum(-1, keepdim=True)
        a = a[..., 0, :, :] if a.dim() > 2 else a  # (..., 1, k, k): one matrix per model
        k = self.num_states
        eye = torch.eye(k, dtype=a.dtype, device=a.device)
        system = torch.cat([(a.transpose(-1, -2) - eye), a.new_ones(*a.shape[:-2], 1, k)], -2)
        rhs = torch.cat(
            [a.new_zeros(*a.shape[:-2], k, 1), a.new_ones(*a.shape[:-2], 1, 1)],
            -2,
        )
        pi = torch.linalg.lstsq(system, rhs).solution.squeeze(-1)
        pi = pi.clamp_min(0)
        return pi / pi.sum(-1, keepdim=True)

    def filter(
        self, y, lengths=None, state: FilterState | None = None, lag: int = 0, observed=None
    ) -> Filtered:
        """Online filtering: P(z_t | y_1..y_t) for a chunk y (..., t, *event) of a stream, carrying
        ``state`` (the previous call's ``Filtered.state``) across chunks, so that chunk after chunk equals one
        pass over the whole stream; ``lag`` > 0 gives fixed-lag smoothing P(z_t | y_1..y_{t+lag}) (within
        the chunk: its last ``lag`` steps use the steps it has). Returns `Filtered` (probs, log_likelihood,
        state). End states are not used (the stream has not ended)."""
        check_non_negative("lag", lag)
        if int(lag) != lag:
            raise ValueError(f"lag: expected a non-negative integer, got {lag!r}")
        if state is not None and self.num_steps is not None:
            raise ValueError("state: carrying a filter across chunks needs transitions shared over time")
        inputs = prepare(self, y, lengths, observed)
        with torch.no_grad():
            chain = self._chain(inputs).replace(final=None)
            if state is not None and state.log_alpha.shape != (chain.batch, self.num_states):
                raise ValueError(
                    f"state: expected log_alpha of shape ({chain.batch}, {self.num_states}) for this batch, "
                    f"got {tuple(state.log_alpha.shape)}"
                )
            probs, total, new = filter_chain(chain, state, int(lag))
        shape = inputs.shape
        return Filtered(probs.reshape((*shape, *probs.shape[1:])), total.reshape(shape), new)
