"""P(z | y) for an HMM: every question is one `latentvar.inference.Chain` query, cached per posterior."""

from __future__ import annotations

import warnings
from functools import cached_property

import torch
from torch import Tensor

from latentvar._checks import as_tensor, check_integer, check_positive, check_range
from latentvar.core import Posterior
from latentvar.hmm import small
from latentvar.hmm.filtering import backward_table, forward_table
from latentvar.inference import Chain, kbest, parallel_marginals, parallel_viterbi
from latentvar.inference.divergence import cross_entropy, kl_divergence


class HMMPosterior(Posterior):
    """P(z | y) for an HMM (or a batch of them), over state sequences z of t steps.

    ``batch_shape`` the models' and sequences' batch ((b,) for b sequences of one model), ``event_shape``
    (t,). ``log_partition`` log P(y); ``marginals`` (..., t, k) = ∂ log P(y)/∂ log P(y_t|z_t) (forward-backward,
    zero past each length); ``mode`` (..., t) the Viterbi path (-1 past each length); ``entropy`` H(z|y);
    ``sample(sample_shape, generator)`` by forward-filtering backward-sampling; ``log_prob(z)``.
    With ``method="parallel"`` the marginals and mode come from the log-depth scan."""

    def __init__(
        self, model, chain: Chain | None, batch_shape: torch.Size, method: str = "sequential", direct=None
    ):
        self.model = model
        self.method = method
        self.batch_shape = torch.Size(batch_shape)
        # ``direct``: a `latentvar.hmm.small.Plain` (small problems): marginals and mode by its compiled
        # routes, the chain built only when another question needs it
        self._direct = direct
        if chain is not None:
            self.chain = chain
        T = chain.emission_tensor.shape[1] if chain is not None else direct.yt.shape[0]
        self.event_shape = torch.Size((T,))

    @cached_property
    def chain(self) -> Chain:
        """The `latentvar.inference.Chain` of the flat batch."""
        return self._direct.chain()

    def _shaped(self, x: Tensor, lead: tuple = ()) -> Tensor:
        """A flat (*lead, b, ...) result as (*lead, *batch_shape, ...)."""
        n = len(lead)
        return x.reshape((*x.shape[:n], *self.batch_shape, *x.shape[n + 1 :]))

    @property
    def emission_lp(self) -> Tensor:
        """log P(y_t | z_t = k): (b, t, k) over the flat batch."""
        return self.chain.emission_tensor

    @property
    def lengths(self) -> Tensor:
        return self.chain.lengths if self._direct is None else self._direct.lengths_t

    @property
    def valid(self) -> Tensor:
        """(b, t) True within each length."""
        return torch.arange(self.event_shape[0], device=self.lengths.device) < self.lengths.unsqueeze(-1)

    @cached_property
    def log_partition(self) -> Tensor:
        """log P(y): the batch shape."""
        with torch.no_grad():
            return self._shaped(self.chain.log_partition())

    @property
    def log_evidence(self) -> Tensor:
        """Deprecated name of `log_partition`."""
        warnings.warn("HMMPosterior.log_evidence is deprecated; use log_partition", DeprecationWarning, 2)
        return self.log_partition

    @cached_property
    def marginals(self) -> Tensor:
        """P(z_t = k | y): (..., t, k), zero past each length (Rabiner 1989, eq. 27)."""
        if self.method == "parallel":
            return self._shaped(parallel_marginals(self.chain) * self.valid.unsqueeze(-1))
        if self._direct is not None and (direct := small.marginals(self._direct)) is not None:
            return self._shaped(direct)
        return self._shaped(self.chain.marginals)

    @property
    def marginals_autograd(self) -> Tensor:
        """The marginals as ∂ log P(y) / ∂ log P(y_t | z_t = k) through the generic recursion (or the
        parallel scan), bypassing the compiled kernels: an independent check (Eisner 2016; torch-struct)."""
        if self.method == "parallel":
            return self._shaped(parallel_marginals(self.chain))
        return self._shaped(self.chain.replace(fast=False).expected_counts()[3])

    @cached_property
    def mode(self) -> Tensor:
        """The Viterbi path argmax_z P(z | y): (..., t) long, -1 past each length (Viterbi 1967)."""
        if self.method == "parallel":
            return self._shaped(parallel_viterbi(self.chain))
        if self._direct is not None:
            return self._shaped(small.mode(self._direct))
        return self._shaped(self.chain.viterbi)

    @cached_property
    def forward(self) -> Tensor:
        """The forward table log α_t(k) = log P(y_1..y_t, z_t = k): (..., t, k), -inf past each length
        (unscaled, `latentvar.hmm.filtering`)."""
        return self._shaped(forward_table(self.chain))

    @cached_property
    def backward(self) -> Tensor:
        """The backward table log β_t(k) = log P(y_{t+1}..y_L (and the end) | z_t = k): (..., t, k), -inf
        past each length; log α + log β − log P(y) = log marginals."""
        return self._shaped(backward_table(self.chain))

    def kbest(self, k: int) -> tuple[Tensor, Tensor]:
        """The k most probable state paths: (paths (k, ..., t) long, -1 past each length; their log P(z, y)
        (k, ...), best first, -inf where fewer than k paths exist). k = 1 is the Viterbi path."""
        check_positive("k", k, integer=True)
        paths, scores = kbest(self.chain, k)
        return self._shaped(paths, (k,)), self._shaped(scores, (k,))

    def cross_entropy(self, other: HMMPosterior) -> Tensor:
        """H(p, q) = −E_p[log q(z | y)] (the batch shape) of this posterior p against another one q over the
        same sequences (e.g. of another model), by expectation under p's marginals
        (`latentvar.inference.divergence`)."""
        return self._shaped(cross_entropy(self.chain, _chain_of(other)))

    def kl_divergence(self, other: HMMPosterior) -> Tensor:
        """KL(p ‖ q) = H(p, q) − H(p) (the batch shape), in nats."""
        return self._shaped(kl_divergence(self.chain, _chain_of(other)))

    @cached_property
    def entropy(self) -> Tensor:
        """H(z | y) = log P(y) - E[log P(z, y) | y]: the batch shape, in nats."""
        return self._shaped(self.chain.entropy)

    def sample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None
    ) -> Tensor:
        """Exact draws from P(z | y) by forward-filtering backward-sampling (Chib 1996):
        (*sample_shape, *batch_shape, t), -1 past each length."""
        sample_shape = torch.Size(sample_shape)
        return self._shaped(self.chain.sample(sample_shape, generator), tuple(sample_shape))

    def log_prob(self, z) -> Tensor:
        """log P(z | y) = log P(z, y) - log P(y): (..., *batch_shape) for z (..., *batch_shape, t);
        entries past each length are ignored."""
        z = check_integer("z", as_tensor("z", z)).to(self.lengths.device)
        b, T = self.chain.batch, self.event_shape[0]
        k = self.model.num_states
        want = (*self.batch_shape, T)
        if tuple(z.shape[z.dim() - len(want) :]) != want:
            raise ValueError(
                f"z: expected shape (..., {', '.join(map(str, want))}) like the posterior's y, got {tuple(z.shape)}"
            )
        lead = z.shape[: z.dim() - len(want)]
        z = z.reshape(*lead, b, T)
        check_range("z", z[..., self.valid], 0, k)
        flat = self.chain.score(z) - self.log_partition.reshape(b)
        return flat.reshape((*lead, *self.batch_shape))


def _chain_of(other) -> Chain:
    if not isinstance(other, HMMPosterior):
        raise ValueError(f"other: expected an HMMPosterior, got {type(other).__name__}")
    return other.chain
