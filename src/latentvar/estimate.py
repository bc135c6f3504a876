"""Estimators of log P(y) = log E_{z~P(z)} P(y|z) where the integral over z has no closed form.

Every estimator works in log space on log-weights log w_i = log P(z_i, y) - log q(z_i) (logsumexp, never
exp of a large number) and returns an `Estimate`: a per-image ``estimate`` (b,) and ``stderr`` (b,).

==============  ================================================  =========================================
estimator       value per image                                   bias
==============  ================================================  =========================================
naive_mc        log mean_i P(y|z_i), z_i ~ P(z)                    lower bound (Jensen); huge bias
importance      log mean_i P(z_i,y)/q(z_i), z_i ~ q                lower bound; exact if q = P(z|y)
elbo            mean_i log P(z_i,y)/q(z_i|y)                       lower bound (Kingma & Welling 2014)
iwae            log mean_i P(z_i,y)/q(z_i|y)                       lower bound, tighter with k (Burda 2016)
ais             log mean_c w_c over HMC chains, prior (or an       lower bound in expectation (Neal 2001)
                encoder q(z|y)) -> posterior
bdmc            AIS forward (lower) and reverse from an exact      brackets log P(y) on simulated data
                posterior sample (upper)                           (Grosse et al. 2015; Wu et al. 2017)
==============  ================================================  =========================================

Standard errors. For the log-mean-exp estimators (naive_mc, importance, iwae, ais) the stderr is the
*delta method*: se(log mean w) ~= sd(w) / (sqrt(n) mean(w)), computed from self-normalised weights
(so it never overflows). It is a large-sample approximation and understates the error when the weights
are heavy-tailed (a few chains dominate): check ``extra["ess"]`` (near 1 means one sample carries all
the weight) and, on simulated data, the BDMC gap. For the ELBO, the
stderr is the ordinary sd / sqrt(n) of the per-sample terms. With one sample the stderr is undefined
and reported as NaN (documented, never silent elsewhere).

The model needs ``prior`` (a torch Distribution whose event shape is the latent shape),
``log_likelihood(y, z)`` and ``log_joint(z, y)`` (both broadcasting over leading axes), ``latent_shape``,
``event_shape`` and ``check_images(y)`` -- `latentvar.LinearGaussian` and `latentvar.Generator` have them.
An encoder / proposal is a callable ``y (b, ...) -> Distribution`` with batch (b,) and the latent event
shape, or (for ``importance``) such a Distribution itself.

Shapes: ``b`` images, ``s`` samples (or ``c`` AIS chains), ``...`` the latent shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributions as D
from torch import Tensor

from latentvar._checks import check_positive
from latentvar.progress import progress

__all__ = [
    "Estimate",
    "BDMCResult",
    "naive_mc",
    "importance",
    "elbo",
    "iwae",
    "ais",
    "bdmc",
    "sigmoid_schedule",
    "log_mean_exp",
    "effective_sample_size",
]

# (sample, image) pairs per model evaluation. Small passes bound memory and stay in the CPU cache: the
# Twemoji DCGAN decoder on 1 thread took 0.09-0.13 ms per image in passes of 64-128, 0.22 ms in passes of
# 4096, whose large buffers also cost as much system time as compute (measured, docs/generator.md)
MAX_EVALS = 128
# relative jitter of the HMC step size
JITTER = 0.2


@dataclass
class Estimate:
    """Per-image estimates of log P(y) (nats): ``estimate`` (b,), ``stderr`` (b,), from ``num_samples``
    samples (or chains) each. ``mean``/``mean_stderr``: the average over images and the Monte Carlo
    standard error of that average, sqrt(Σ se_b²) / b (the estimator's noise, not the spread of the test
    set). ``extra`` holds diagnostics: ``ess`` (b,), the effective sample size of the weights, for the
    log-mean-exp estimators; AIS acceptance rates and step sizes."""

    name: str
    estimate: Tensor
    stderr: Tensor
    num_samples: int
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(self.estimate.mean())

    @property
    def mean_stderr(self) -> float:
        return float(self.stderr.pow(2).sum().sqrt() / self.stderr.numel())

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


# --------------------------------------------------------------------------------------------------------
# log-space helpers


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """log mean_i exp(log_w_i) along ``dim``, by logsumexp (-inf if every weight is zero)."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def _log_mean_exp_stderr(log_w: Tensor) -> Tensor:
    """Delta-method stderr of log mean exp over dim 0: sd(w) / (sqrt(n) mean(w)), from normalised weights."""
    n = log_w.shape[0]
    if n < 2:
        return torch.full(log_w.shape[1:], float("nan"), dtype=log_w.dtype)
    w = torch.exp(log_w - log_w.max(dim=0).values)  # max weight 1: no overflow
    mean = w.mean(0)
    return w.std(0, unbiased=True) / (math.sqrt(n) * mean)


def _finite_or_raise(name: str, log_w: Tensor) -> Tensor:
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


def _summarise_lme(name: str, log_w: Tensor, extra: dict | None = None) -> Estimate:
    log_w = _finite_or_raise(name, log_w)
    extra = (extra or {}) | {"ess": effective_sample_size(log_w)}
    return Estimate(name, log_mean_exp(log_w, 0), _log_mean_exp_stderr(log_w), log_w.shape[0], extra)


# --------------------------------------------------------------------------------------------------------
# argument checks


def _check_num(name: str, value) -> int:
    check_positive(name, value, integer=True)
    return int(value)


def _check_model(model) -> None:
    for attr in ("prior", "log_likelihood", "log_joint", "latent_shape", "check_images"):
        if not hasattr(model, attr):
            raise ValueError(
                f"model: expected a latent-variable model with .{attr} (e.g. latentvar.LinearGaussian or "
                f"latentvar.Generator), got {type(model).__name__}"
            )


def _check_batch(model, y) -> Tensor:
    """Images y (b, *event_shape): a batch, each image checked for shape, NaN and range."""
    _check_model(model)
    y = model.check_images(y, "y")
    if y.dim() != len(model.event_shape) + 1:
        raise ValueError(
            f"y: expected a batch of images of shape (b, {', '.join(map(str, model.event_shape))}), "
            f"got {tuple(y.shape)}"
        )
    return y


def _proposal_for(name: str, proposal, y: Tensor) -> D.Distribution:
    q = proposal(y) if callable(proposal) and not isinstance(proposal, D.Distribution) else proposal
    if not isinstance(q, D.Distribution):
        raise ValueError(
            f"{name}: expected a Distribution or a callable returning one, got {type(q).__name__}"
        )
    return q


# --------------------------------------------------------------------------------------------------------
# sampling estimators


def _chunk(num_samples: int, batch: int) -> int:
    return max(1, min(num_samples, MAX_EVALS // max(batch, 1)))


@torch.no_grad()
def _log_weights(model, y: Tensor, proposal, num_samples: int, name: str) -> Tensor:
    """log P(z_i, y) - log q(z_i), z_i ~ q, as (s, b). z is drawn for all b images a few samples at a time,
    and the model is evaluated on at most about MAX_EVALS (sample, image) pairs per pass."""
    q = _proposal_for(name, proposal, y) if proposal is not None else None
    b = y.shape[0]
    step = _chunk(num_samples, b)
    images_per_pass = max(1, MAX_EVALS // step)

    def score(y_: Tensor, z_: Tensor) -> Tensor:  # the prior as proposal: log w = log P(y|z)
        return model.log_likelihood(y_, z_) if q is None else model.log_joint(z_, y_)

    chunks, done = [], 0
    while done < num_samples:
        n = min(step, num_samples - done)
        if q is None:
            z, log_q = model.prior.sample((n, b)), 0.0
        else:
            z = q.sample((n,))
            log_q = q.log_prob(z)
        if z.dim() == len(model.latent_shape) + 2 and z.shape[1] == b:  # (n, b, *latent): images in blocks
            parts = [
                score(y[i : i + images_per_pass], z[:, i : i + images_per_pass])
                for i in range(0, b, images_per_pass)
            ]
            log_p = torch.cat(parts, 1)
        else:  # a proposal without the image dimension, broadcast over the images
            log_p = score(y, z)
        chunks.append(log_p - log_q)
        done += n
    return torch.cat(chunks, 0)


def naive_mc(model, y, num_samples: int) -> Estimate:
    """log (1/n) Σ_i P(y | z_i), z_i ~ P(z): unbiased for P(y) but, in log space, biased downward --
    badly so in high dimension, where almost no prior sample explains y."""
    num_samples = _check_num("num_samples", num_samples)
    y = _check_batch(model, y)
    return _summarise_lme("naive_mc", _log_weights(model, y, None, num_samples, "proposal"))


def importance(model, y, proposal, num_samples: int) -> Estimate:
    """log (1/n) Σ_i P(z_i, y) / q(z_i), z_i ~ q. ``proposal``: a Distribution with batch (b,) (or
    broadcastable) over the latent shape, or a callable y -> such a Distribution. With the exact
    posterior as proposal every weight equals P(y): exact, zero variance."""
    num_samples = _check_num("num_samples", num_samples)
    y = _check_batch(model, y)
    return _summarise_lme("importance", _log_weights(model, y, proposal, num_samples, "proposal"))


def elbo(model, y, encoder: Callable[[Tensor], D.Distribution], num_samples: int) -> Estimate:
    """E_{q(z|y)} [log P(z, y) - log q(z|y)] <= log P(y) (Kingma & Welling 2014, eq. 3), estimated by the
    mean of ``num_samples`` terms; stderr = sd / sqrt(n)."""
    num_samples = _check_num("num_samples", num_samples)
    y = _check_batch(model, y)
    log_w = _finite_or_raise("elbo", _log_weights(model, y, encoder, num_samples, "encoder"))
    se = log_w.std(0) / math.sqrt(num_samples) if num_samples > 1 else torch.full_like(log_w[0], float("nan"))
    return Estimate("elbo", log_w.mean(0), se, num_samples)


def iwae(model, y, encoder: Callable[[Tensor], D.Distribution], num_samples: int) -> Estimate:
    """The importance-weighted bound L_k = E log (1/k) Σ_i P(z_i, y)/q(z_i|y), k = ``num_samples``
    (Burda, Grosse & Salakhutdinov 2016, eq. 8): L_1 = ELBO <= L_k <= L_{k+1} -> log P(y) as k -> inf."""
    num_samples = _check_num("num_samples", num_samples)
    y = _check_batch(model, y)
    return _summarise_lme("iwae", _log_weights(model, y, encoder, num_samples, "encoder"))


# --------------------------------------------------------------------------------------------------------
# annealed importance sampling with Hamiltonian Monte Carlo transitions


def sigmoid_schedule(num_steps: int, delta: float = 4.0, dtype=torch.float64) -> Tensor:
    """β_0 = 0 < ... < β_T = 1, spaced by a sigmoid so that more steps fall near both ends
    (Grosse, Ghahramani & Adams 2015, sec. 6). Returns (T + 1,)."""
    t = torch.linspace(-delta, delta, num_steps + 1, dtype=dtype)
    s = torch.sigmoid(t)
    return (s - s[0]) / (s[-1] - s[0])


def _log_density_and_grad(dist: D.Distribution, z: Tensor) -> tuple[Tensor, Tensor]:
    """log dist(z) and ∇_z log dist(z): closed form for a diagonal Gaussian (the N(0, I) priors and the
    mean-field encoders here), one backward pass through ``log_prob`` otherwise."""
    base = dist.base_dist if isinstance(dist, D.Independent) else dist
    if isinstance(base, D.Normal):
        return dist.log_prob(z), -(z - base.loc) / base.scale**2
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        lp = dist.log_prob(z)
        (grad,) = torch.autograd.grad(lp.sum(), z)
    return lp.detach(), grad


def _log_lik_and_grad(model, y: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """log P(y|z) (c, b) and its gradient in z: the model's closed form where it has one
    (``log_likelihood_and_grad``), else one backward pass through the decoder."""
    if hasattr(model, "log_likelihood_and_grad"):
        return model.log_likelihood_and_grad(y, z)
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        ll = model.log_likelihood(y, z)
        (grad,) = torch.autograd.grad(ll.sum(), z)
    return ll.detach(), grad


@dataclass
class _Path:
    """The geometric annealing path π_β(z) ∝ q0(z)^(1-β) P(z, y)^β from a normalised initial
    distribution q0 (β = 0) to the posterior (β = 1), written as log π_β = base(z) + β·incr(z) with
    base = log q0 and incr = log P(z, y) - log q0. From the prior (``initial`` None) that is
    base = log P(z), incr = log P(y|z); from an encoder q(z|y), base = log q(z|y) and
    incr = log P(z) + log P(y|z) - log q(z|y). AIS's log-weight increments are (β_t - β_{t-1})·incr."""

    model: object
    y: Tensor
    initial: D.Distribution | None = None

    def sample_initial(self, num_chains: int) -> Tensor:
        """z_0 (c, b, ...) drawn exactly from q0."""
        if self.initial is None:
            return self.model.prior.sample((num_chains, self.y.shape[0]))
        return self.initial.sample((num_chains,))

    def terms(self, z: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
        """base(z), incr(z) (each (c, b)) and ∇_z [base + β·incr]."""
        log_prior, grad_prior = _log_density_and_grad(self.model.prior, z)
        ll, grad_ll = _log_lik_and_grad(self.model, self.y, z)
        if self.initial is None:
            return log_prior, ll, grad_prior + beta * grad_ll
        log_q, grad_q = _log_density_and_grad(self.initial, z)
        grad = (1 - beta) * grad_q + beta * (grad_prior + grad_ll)
        return log_q, log_prior + ll - log_q, grad

    def incr(self, z: Tensor) -> Tensor:
        ll = self.model.log_likelihood(self.y, z)
        if self.initial is None:
            return ll
        return self.model.prior.log_prob(z) + ll - self.initial.log_prob(z)


def _hmc_step(path: _Path, z, beta, step_size, leapfrog_steps):
    """One HMC transition leaving π_β(z) ∝ exp(base(z) + β·incr(z)) invariant (Neal 2011, 'MCMC using
    Hamiltonian dynamics', sec. 5.2). z (c, b, ...), step_size (b,). Returns (z, incr(z), acceptance
    prob (c, b))."""
    # a random ±jitter of the step size per chain and transition avoids trajectories that return to
    # their start (ε·L near a period of the target), which would stop the chain mixing (Neal 2011, 5.4.2.2)
    jitter = 1.0 + JITTER * (2 * torch.rand(z.shape[:2], dtype=z.dtype) - 1)
    eps = (step_size.to(z.dtype) * jitter).reshape(*z.shape[:2], *([1] * (z.dim() - 2)))
    base, incr, grad = path.terms(z, beta)
    p0 = torch.randn_like(z)
    h0 = -(base + beta * incr) + 0.5 * p0.flatten(2).pow(2).sum(-1)
    q, p = z, p0 + 0.5 * eps * grad
    for i in range(leapfrog_steps):
        q = q + eps * p
        base_q, incr_q, grad = path.terms(q, beta)
        p = p + (eps if i < leapfrog_steps - 1 else 0.5 * eps) * grad
    h1 = -(base_q + beta * incr_q) + 0.5 * p.flatten(2).pow(2).sum(-1)
    log_accept = (h0 - h1).nan_to_num(nan=-math.inf)  # a diverged trajectory is rejected
    accept = torch.log(torch.rand_like(log_accept)) < log_accept
    mask = accept.reshape(*accept.shape, *([1] * (z.dim() - 2)))
    z_new = torch.where(mask, q, z)
    incr_new = torch.where(accept, incr_q, incr)
    return z_new, incr_new, log_accept.clamp(max=0).exp()


@torch.no_grad()
def _anneal(path: _Path, z, betas, step_size, leapfrog_steps, target_accept, show_progress, desc, adapt=True):
    """Run AIS along ``betas`` from z (c, b, ...): log w = Σ_t (β_t - β_{t-1}) incr(z_{t-1}) (Neal 2001,
    eq. 3; incr = log P(y|z) from the prior), then an HMC transition at β_t. Step sizes adapt per image
    towards ``target_accept`` (×1.02 above it, ×0.98 below; Wu et al. 2017)."""
    incr = path.incr(z)
    log_w = torch.zeros_like(incr)
    accept_sum = torch.zeros(path.y.shape[0], dtype=incr.dtype)
    for t in progress(range(1, len(betas)), desc=desc, disable=not show_progress):
        log_w = log_w + (betas[t] - betas[t - 1]) * incr
        z, incr, acc = _hmc_step(path, z, float(betas[t]), step_size, leapfrog_steps)
        rate = acc.mean(0)
        accept_sum += rate
        if adapt:
            step_size = torch.where(rate > target_accept, step_size * 1.02, step_size * 0.98).clamp(1e-4, 2.0)
    extra = {"acceptance": accept_sum / max(len(betas) - 1, 1), "step_size": step_size}
    return log_w, z, extra


def _ais_options(num_steps, num_chains, leapfrog_steps, step_size, target_accept):
    num_steps = _check_num("num_steps", num_steps)
    num_chains = _check_num("num_chains", num_chains)
    leapfrog_steps = _check_num("leapfrog_steps", leapfrog_steps)
    check_positive("step_size", step_size)
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept: expected a probability in (0, 1), got {target_accept!r}")
    return num_steps, num_chains, leapfrog_steps


def _initial_for(model, initial, y: Tensor) -> D.Distribution | None:
    """q0 = initial(y), checked: a Distribution with batch (b,) and the model's latent event shape."""
    if initial is None:
        return None
    if not callable(initial) or isinstance(initial, D.Distribution):
        raise ValueError(
            f"initial: expected a callable y -> Distribution over z (an encoder q(z|y)) or None, "
            f"got {type(initial).__name__}"
        )
    with torch.no_grad():
        q = initial(y)
    if not isinstance(q, D.Distribution):
        raise ValueError(f"initial: expected initial(y) to return a Distribution, got {type(q).__name__}")
    want_batch, want_event = (y.shape[0],), tuple(model.latent_shape)
    if tuple(q.batch_shape) != want_batch or tuple(q.event_shape) != want_event:
        raise ValueError(
            f"initial: expected initial(y) with batch shape {want_batch} and event shape {want_event}, "
            f"got batch {tuple(q.batch_shape)}, event {tuple(q.event_shape)}"
        )
    return q


def ais(
    model,
    y,
    num_steps: int,
    num_chains: int,
    *,
    initial: Callable[[Tensor], D.Distribution] | None = None,
    leapfrog_steps: int = 5,
    step_size: float = 0.5,
    target_accept: float = 0.65,
    show_progress: bool = False,
) -> Estimate:
    """Annealed importance sampling (Neal 2001) with a sigmoid schedule of ``num_steps`` temperatures
    and one HMC transition (``leapfrog_steps`` leapfrog steps) per temperature, as in Wu et al. 2017
    ("On the quantitative analysis of decoder-based generative models"). ``num_chains`` independent
    chains per image; estimate = log mean_c w_c, a stochastic lower bound on log P(y) (unbiased for P(y)).

    The path is geometric, π_β ∝ q0(z)^(1-β) [P(z) P(y|z)]^β, β from 0 to 1. By default q0 is the prior
    P(z), so π_β ∝ P(z) P(y|z)^β. ``initial``: an encoder, a callable y (b, ...) -> Distribution over z
    with batch (b,) and the latent event shape (like the encoder of `elbo` / `iwae`); the chains then
    start from exact samples of q0 = initial(y) and log w = Σ_t (β_t - β_{t-1}) [log P(z) + log P(y|z) -
    log q0(z)]. Because q0 is normalised and sampled exactly, the estimator stays unbiased for P(y) however
    poor q0 is; a q0 close to the posterior shortens the path the chains must travel. With the exact
    posterior as q0 every log-weight equals log P(y). (Neal 2001 allows any tractable normalised start;
    Wu et al. 2017 anneal from the prior.) The gradient of log q0 is closed form for a diagonal Gaussian,
    autograd otherwise. ``extra``: ``ess``, mean acceptance rate and final step size per image."""
    num_steps, num_chains, leapfrog_steps = _ais_options(
        num_steps, num_chains, leapfrog_steps, step_size, target_accept
    )
    y = _check_batch(model, y)
    path = _Path(model, y, _initial_for(model, initial, y))
    with torch.no_grad():
        z0 = path.sample_initial(num_chains)
    eps = torch.full((y.shape[0],), float(step_size), dtype=z0.dtype)
    betas = sigmoid_schedule(num_steps)
    log_w, _, extra = _anneal(path, z0, betas, eps, leapfrog_steps, target_accept, show_progress, "AIS")
    return _summarise_lme("ais", log_w, extra)


def bdmc(
    model,
    num_images: int,
    num_steps: int,
    num_chains: int,
    *,
    initial: Callable[[Tensor], D.Distribution] | None = None,
    leapfrog_steps: int = 5,
    step_size: float = 0.5,
    target_accept: float = 0.65,
    show_progress: bool = False,
) -> BDMCResult:
    """Bidirectional Monte Carlo (Grosse, Ghahramani & Adams 2015; Grosse et al. 2016; Wu et al. 2017):
    simulate (z*, y) ~ P(z) P(y|z) for ``num_images`` images, so z* is an exact posterior sample for y.
    Forward AIS (q0 -> posterior) gives a stochastic lower bound on log P(y); reverse AIS (posterior
    -> q0, every chain started at z*) estimates 1/P(y) unbiasedly, so -log mean_c w_c^rev is a
    stochastic upper bound. The gap bounds the error of AIS with this schedule on data like this.
    ``initial``: as in `ais` (default None: q0 = the prior); both directions use the same path, so the
    reverse chains end at q0(z|y). The reverse run starts from the forward run's final step sizes
    (tuned at β = 1)."""
    num_images = _check_num("num_images", num_images)
    num_steps, num_chains, leapfrog_steps = _ais_options(
        num_steps, num_chains, leapfrog_steps, step_size, target_accept
    )
    _check_model(model)
    with torch.no_grad():
        z_true, y = model.sample((num_images,))
    z_true, y = z_true.detach(), y.detach()
    path = _Path(model, y, _initial_for(model, initial, y))
    with torch.no_grad():
        z0 = path.sample_initial(num_chains)
    eps = torch.full((num_images,), float(step_size), dtype=z0.dtype)
    betas = sigmoid_schedule(num_steps)
    log_w, _, extra = _anneal(path, z0, betas, eps, leapfrog_steps, target_accept, show_progress, "AIS")
    lower = _summarise_lme("bdmc_lower", log_w, extra)
    z0 = z_true.unsqueeze(0).expand(num_chains, *z_true.shape).clone()
    eps = extra["step_size"].clone()
    log_w_rev, _, extra = _anneal(
        path, z0, betas.flip(0), eps, leapfrog_steps, target_accept, show_progress, "reverse AIS"
    )
    log_w_rev = _finite_or_raise("bdmc", log_w_rev)
    extra["ess"] = effective_sample_size(log_w_rev)
    upper = Estimate(
        "bdmc_upper", -log_mean_exp(log_w_rev, 0), _log_mean_exp_stderr(log_w_rev), num_chains, extra
    )
    return BDMCResult(lower=lower, upper=upper, y=y, z=z_true)
