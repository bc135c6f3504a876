"""What every estimator shares: the `Estimate` and `BDMCResult` results, log-space helpers on log-weights
(log-mean-exp, its delta-method stderr, the effective sample size) and the argument checks.

Shapes: ``b`` images, ``s`` samples (or ``c`` AIS chains), ``...`` the latent shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.distributions as D
from torch import Tensor

from latentvar._checks import MAX_DRAWS, check_positive


@dataclass
class Estimate:
    """Per-image estimates of log P(y) (nats): ``estimate`` (b,), ``stderr`` (b,), from ``num_samples``
    samples (or chains) each. ``mean``/``mean_stderr``: the average over images and the Monte Carlo
    standard error of that average, sqrt(Σ se_b²) / b (the estimator's noise, not the spread of the test
    set). ``extra`` holds diagnostics: ``ess`` (b,), the effective sample size of the weights, for the
    log-mean-exp estimators; AIS acceptance rates and step sizes. ``diagnostic``: one readable line, "ok:
    ..." or what is wrong and what to raise (see `latentvar.estimate.diagnostics`)."""

    name: str
    estimate: Tensor
    stderr: Tensor
    num_samples: int
    extra: dict = field(default_factory=dict)
    diagnostic: str = ""

    @property
    def ess(self) -> Tensor | None:
        """The effective number of samples (chains) per image, ``extra["ess"]`` (None where undefined)."""
        return self.extra.get("ess")

    @property
    def ok(self) -> bool:
        """True when no diagnostic fired."""
        return not self.diagnostic or self.diagnostic.startswith("ok")

    @property
    def mean(self) -> float:
        return float(self.estimate.mean())

    @property
    def mean_stderr(self) -> float:
        return float(self.stderr.pow(2).sum().sqrt() / self.stderr.numel())

    def summary(self) -> str:
        """One line: the mean estimate ± its stderr, the worst ESS, and the diagnostic."""
        ess = self.ess
        ess_txt = f", ESS {float(ess.min()):.1f} of {self.num_samples} at worst" if ess is not None else ""
        return (
            f"{self.name}: {self.mean:.4f} ± {self.mean_stderr:.4f} nats{ess_txt}; {self.diagnostic or 'ok'}"
        )

    def __repr__(self) -> str:
        return (
            f"Estimate({self.name}, mean={self.mean:.4f} ± {self.mean_stderr:.4f} nats over "
            f"{self.estimate.numel()} images, num_samples={self.num_samples})"
        )


@dataclass
class BDMCResult:
    """Bidirectional Monte Carlo on simulated data: ``lower`` (forward AIS) <= log P(y) <= ``upper``
    (reverse AIS), both stochastic bounds; ``y``, ``z`` the simulated images and their true latents."""

    lower: Estimate
    upper: Estimate
    y: Tensor
    z: Tensor

    @property
    def gap(self) -> Tensor:
        """upper - lower per image (nats): a bound on the error of either estimate (in expectation)."""
        return self.upper.estimate - self.lower.estimate


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """log mean_i exp(log_w_i) along ``dim``, by logsumexp (-inf if every weight is zero)."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def log_mean_exp_stderr(log_w: Tensor) -> Tensor:
    """Delta-method stderr of log mean exp over dim 0: sd(w) / (sqrt(n) mean(w)), from normalised weights."""
    n = log_w.shape[0]
    if n < 2:
        return torch.full(log_w.shape[1:], float("nan"), dtype=log_w.dtype)
    w = torch.exp(log_w - log_w.max(dim=0).values)  # max weight 1: no overflow
    mean = w.mean(0)
    return w.std(0, unbiased=True) / (math.sqrt(n) * mean)


def finite_or_raise(name: str, log_w: Tensor) -> Tensor:
    if bool(torch.isnan(log_w).any()) or bool(torch.isposinf(log_w).any()):
        raise FloatingPointError(
            f"{name}: {int((torch.isnan(log_w) | torch.isposinf(log_w)).sum())} log-weights are NaN or +inf "
            f"(the model or proposal returned an invalid density)"
        )
    return log_w


def effective_sample_size(log_w: Tensor) -> Tensor:
    """(Σ w)² / Σ w² over dim 0 (Kong 1992): n for equal weights, 1 when one weight dominates -- then the
    delta-method stderr is meaningless and the estimate is only as good as that one sample."""
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))


def summarise_lme(name: str, log_w: Tensor, extra: dict | None = None) -> Estimate:
    from latentvar.estimate.diagnostics import diagnose_weights

    log_w = finite_or_raise(name, log_w)
    extra = (extra or {}) | {"ess": effective_sample_size(log_w)}
    est = Estimate(name, log_mean_exp(log_w, 0), log_mean_exp_stderr(log_w), log_w.shape[0], extra)
    est.diagnostic = diagnose_weights(est)
    return est


def check_num(name: str, value) -> int:
    check_positive(name, value, integer=True)
    if value > MAX_DRAWS:
        raise ValueError(f"{name}: expected at most {MAX_DRAWS:,} (2^40), got {value:,}")
    return int(value)


def check_model(model) -> None:
    for attr in ("prior", "log_likelihood", "log_joint", "latent_shape", "check_images"):
        if not hasattr(model, attr):
            raise ValueError(
                f"model: expected a latent-variable model with .{attr} (e.g. latentvar.LinearGaussian or "
                f"latentvar.Generator), got {type(model).__name__}"
            )


def check_batch(model, y) -> Tensor:
    """Images y (b, *event_shape): a batch, each image checked for shape, NaN and range."""
    check_model(model)
    y = model.check_images(y, "y")
    if y.dim() != len(model.event_shape) + 1:
        raise ValueError(
            f"y: expected a batch of images of shape (b, {', '.join(map(str, model.event_shape))}), "
            f"got {tuple(y.shape)}"
        )
    if y.shape[0] == 0:
        raise ValueError(f"y: expected at least one image, got shape {tuple(y.shape)}")
    return y


def proposal_for(name: str, proposal, y: Tensor, latent_shape=None) -> D.Distribution:
    q = proposal(y) if callable(proposal) and not isinstance(proposal, D.Distribution) else proposal
    if not isinstance(q, D.Distribution):
        raise ValueError(
            f"{name}: expected a Distribution or a callable returning one, got {type(q).__name__}"
        )
    if latent_shape is not None:
        b = y.shape[0]
        try:
            batch_ok = torch.broadcast_shapes(q.batch_shape, (b,)) == (b,)
        except RuntimeError:
            batch_ok = False
        if not batch_ok or tuple(q.event_shape) != tuple(latent_shape):
            raise ValueError(
                f"{name}: expected a Distribution with batch shape ({b},) (or broadcasting to it) and event "
                f"shape {tuple(latent_shape)} (the latents), got batch {tuple(q.batch_shape)}, event "
                f"{tuple(q.event_shape)}"
            )
    return q
