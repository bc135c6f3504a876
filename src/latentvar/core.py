"""The core API: every model in latentvar is a `LatentVariableModel`.

    P(y) = Σ_z P(z) P(y|z)          (or, given an input x,  P(y|x) = Σ_z P(z|x) P(y|z,x))

A model is *samplable and computable*: it draws (z, y) and evaluates log P(z, y). Where the sum over z
can be done exactly (mixtures, HMMs, CTC) ``log_prob(y)`` is exact log P(y) and ``posterior(y)`` is the
exact P(z|y). Where it cannot (image generators) ``log_prob`` raises `IntractableMarginalError`, which names
the estimators in `latentvar.estimate` to use instead.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

ESTIMATORS = (
    "latentvar.estimate.elbo",
    "latentvar.estimate.iwae",
    "latentvar.estimate.importance",
    "latentvar.estimate.ais (checked by latentvar.estimate.bdmc)",
)


class IntractableMarginalError(RuntimeError):
    """log P(y) = log E_{z~P(z)} P(y|z) cannot be computed exactly for this model.

    Raised by ``log_prob`` (and ``posterior``) of models whose latent space cannot be summed over, such
    as image generators with z ~ N(0, I). The message lists the estimators to use instead.
    """

    def __init__(
        self,
        model: str,
        what: str = "log P(y)",
        why: str = "the integral over z has no closed form and cannot be enumerated",
        estimators: tuple[str, ...] = ESTIMATORS,
    ):
        self.model = model
        super().__init__(
            f"{model}: {what} is intractable -- {why}. Estimate it instead with one of: "
            f"{', '.join(estimators)}. Each returns estimates with standard errors."
        )


class Posterior(abc.ABC):
    """P(z | y): a distribution over the latent variable given the evidence.

    ``marginals``: per-site posterior probabilities (e.g. (..., K) for a mixture, (B, T, K) for an HMM);
    ``mode``: the most probable z; ``sample(sample_shape)``: exact draws; ``log_prob(z)``: log P(z|y).
    """

    @abc.abstractmethod
    def log_prob(self, z: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor: ...

    @property
    @abc.abstractmethod
    def marginals(self) -> Tensor: ...

    @property
    @abc.abstractmethod
    def mode(self) -> Tensor: ...


class LatentVariableModel(abc.ABC):
    """A joint P(z, y) = P(z) P(y|z) that is samplable and computable.

    Subclasses implement ``sample`` and ``log_joint``; those whose marginal is tractable also implement
    ``log_prob`` (exact, batched, differentiable) and ``posterior``.
    """

    @abc.abstractmethod
    def sample(self, sample_shape: torch.Size = torch.Size()) -> tuple[Tensor, Tensor]:
        """Draw (z, y) from P(z) P(y|z); both carry ``sample_shape`` in front."""

    @abc.abstractmethod
    def log_joint(self, z: Tensor, y: Tensor) -> Tensor:
        """log P(z, y) = log P(z) + log P(y|z)."""

    def log_prob(self, y: Tensor) -> Tensor:
        """Exact log P(y) = log Σ_z P(z, y). Raises `IntractableMarginalError` where it cannot be had."""
        raise IntractableMarginalError(type(self).__name__)

    def posterior(self, y: Tensor) -> Posterior:
        """The exact posterior P(z | y)."""
        raise IntractableMarginalError(type(self).__name__, "the exact posterior P(z|y)")

    def nll(self, y: Tensor) -> Tensor:
        """Mean negative log-likelihood -E_y log P(y): the training objective argmin_Φ E_y -ln P_Φ(y)."""
        return -self.log_prob(y).mean()


@dataclass
class FitResult:
    """A fitted model and its training curve: the mean log-likelihood (per observation, or per observed
    step for sequences) after each iteration, and whether the tolerance was reached."""

    model: LatentVariableModel
    history: list[float] = field(default_factory=list)
    converged: bool = False

    @property
    def n_iter(self) -> int:
        return len(self.history)


def track_convergence(history: list[float], mean_ll: float, tol: float, lr: float) -> bool:
    """Append one gradient-fitting iteration's mean log-likelihood to ``history``; True once it moved by
    less than ``tol``. A non-finite value means the optimiser diverged: raise rather than hand back NaN
    parameters."""
    if not math.isfinite(mean_ll):
        raise FloatingPointError(f"gradient fitting diverged (mean log-likelihood {mean_ll}); lower lr={lr}")
    done = bool(history) and abs(mean_ll - history[-1]) < tol
    history.append(mean_ll)
    return done
