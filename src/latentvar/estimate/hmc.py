"""The continuous-latent mover of the annealing engine (`latentvar.estimate.smc`): Hamiltonian Monte Carlo
on π_β(z) ∝ q0(z)^(1-β) P(z, y)^β that tunes itself per temperature, and the Gaussian fitted to a tuning
run's chains that the estimation runs may start from.

What adapts, in the tuning run only (the estimation runs replay the recorded values):

- **step size**, per image, by a Robbins-Monro rule on log ε: log ε += ``ADAPT_RATE`` (mean acceptance
  probability over the chains - target). The mean over tens of chains is a low-noise signal, so one
  update per temperature tracks the target as the posterior narrows (it narrows by orders of magnitude
  on the way from the prior), where the old ×1.02 / ×0.98 rule lagged;
- **a diagonal mass matrix** (Neal 2011, sec. 4.1; Stan's diag_e) from the chains' weighted spread at
  each temperature: momentum p ~ N(0, diag(1/s²)), so every latent moves on its own scale;
- **several leapfrog lengths**: each transition draws L uniformly from 1 .. 2·``leapfrog_steps`` - 1
  (mean ``leapfrog_steps``), and ε is jittered ±20% per chain: a trajectory length drawn independently of
  the state keeps the kernel π_β-invariant and breaks the periodic orbits a fixed ε·L can fall into
  (Neal 2011, sec. 5.4.2.2).

Shapes: ``c`` chains, ``b`` images, ``...`` the latent shape, ``d`` its flattened size.
"""

from __future__ import annotations

import math

import torch
import torch.distributions as D
from torch import Tensor

JITTER = 0.2
ADAPT_RATE = 1.5
MIN_STEP, MAX_STEP = 1e-5, 5.0


class HMCMover:
    """HMC moves along a `latentvar.estimate.ais._Path` for the SMC engine."""

    def __init__(self, path, step_size: float, leapfrog_steps: int, target_accept: float, mass: bool = True):
        self.path, self.leapfrog_steps, self.target_accept, self.mass = (
            path,
            leapfrog_steps,
            target_accept,
            mass,
        )
        self.batch = path.y.shape[0]
        self.step_size = step_size

    def initial(self, n: int) -> Tensor:
        return self.path.sample_initial(n).detach()

    def initial_params(self, dtype) -> dict:
        b, shape = self.batch, tuple(self.path.model.latent_shape)
        return {
            "eps": torch.full((b,), float(self.step_size), dtype=dtype),
            "var": torch.ones(b, *shape, dtype=dtype),
        }

    def log_ratio(self, z: Tensor, beta: Tensor):
        incr = self.path.incr(z).double()
        return lambda new: (new - beta) * incr

    def select(self, z: Tensor, idx: Tensor) -> Tensor:
        return z[idx, torch.arange(z.shape[1])]

    def move(self, z: Tensor, beta: Tensor, params: dict, log_w: Tensor, adapt: bool):
        if params is None:
            params = self.initial_params(z.dtype)
        if adapt and self.mass:
            params = dict(params, var=weighted_variance(z, log_w))
        lengths = int(torch.randint(1, 2 * self.leapfrog_steps, ()))
        z, acc = hmc_step(self.path, z, beta.to(z.dtype), params["eps"], params["var"], lengths)
        rate = acc.mean(0).double()
        nxt = params
        if adapt:
            log_eps = params["eps"].log() + ADAPT_RATE * (rate.to(z.dtype) - self.target_accept)
            nxt = dict(params, eps=log_eps.exp().clamp(MIN_STEP, MAX_STEP))
        return z, params, nxt, rate


def weighted_variance(z: Tensor, log_w: Tensor) -> Tensor:
    """The chains' variance per image and latent under their normalised weights: (b, ...), floored at a
    millionth of its mean (a collapsed dimension must not freeze the sampler)."""
    w = torch.softmax(log_w, 0).to(z.dtype).reshape(*log_w.shape, *([1] * (z.dim() - 2)))
    mean = (w * z).sum(0)
    var = (w * (z - mean) ** 2).sum(0)
    floor = 1e-6 * var.flatten(1).mean(1).clamp(min=1e-300)
    return torch.maximum(var, floor.reshape(-1, *([1] * (var.dim() - 1))))


def hmc_step(path, z: Tensor, beta: Tensor, step_size: Tensor, var: Tensor, leapfrog_steps: int):
    """One HMC transition leaving π_β invariant with mass matrix diag(1/var): z (c, b, ...), beta and
    step_size (b,), var (b, ...). Returns (z, acceptance probability (c, b))."""
    nl = z.dim() - 2
    beta_g = beta.reshape(-1, *([1] * nl))
    jitter = 1.0 + JITTER * (2 * torch.rand(z.shape[:2], dtype=z.dtype) - 1)
    eps = (step_size.to(z.dtype) * jitter).reshape(*z.shape[:2], *([1] * nl))
    s2 = var.to(z.dtype).unsqueeze(0)
    base, incr, grad = path.terms(z, beta_g)
    p0 = torch.randn_like(z) / s2.sqrt()
    h0 = -(base + beta * incr) + 0.5 * (s2 * p0**2).flatten(2).sum(-1)
    q, p = z, p0 + 0.5 * eps * grad
    for i in range(leapfrog_steps):
        q = q + eps * s2 * p
        base_q, incr_q, grad = path.terms(q, beta_g)
        p = p + (eps if i < leapfrog_steps - 1 else 0.5 * eps) * grad
    h1 = -(base_q + beta * incr_q) + 0.5 * (s2 * p**2).flatten(2).sum(-1)
    log_accept = (h0 - h1).nan_to_num(nan=-math.inf)  # a diverged trajectory is rejected
    accept = torch.log(torch.rand_like(log_accept)) < log_accept
    z_new = torch.where(accept.reshape(*accept.shape, *([1] * nl)), q, z)
    return z_new, log_accept.clamp(max=0).exp()


class FittedGaussian(D.Distribution):
    """N(μ_b, Σ_b) per image over the flattened latent, reshaped to the latent shape: the start of the
    estimation runs, fitted to a tuning run's final chains. Σ = ``INFLATE``² · ((1 - λ) S + λ diag S),
    S the weighted sample covariance, shrunk towards its diagonal by λ = d / (d + n) (few chains in many
    dimensions give a singular S) and widened so that its tails cover the posterior's."""

    arg_constraints: dict = {}
    INFLATE = 1.2

    def __init__(self, z: Tensor, log_w: Tensor, latent_shape):
        c, b = z.shape[:2]
        flat = z.reshape(c, b, -1).double()
        d = flat.shape[-1]
        w = torch.softmax(log_w.double(), 0)[..., None]  # (c, b, 1)
        mean = (w * flat).sum(0)
        dev = flat - mean
        cov = torch.einsum("cbi,cbj->bij", w * dev, dev)
        ess = float(torch.exp(-torch.logsumexp(2 * torch.log(w[..., 0]), 0)).min())
        lam = d / (d + ess)
        diag = torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1))
        cov = ((1 - lam) * cov + lam * diag) * self.INFLATE**2
        jitter = 1e-9 * torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1).clamp(min=1e-300)
        cov = cov + jitter[:, None, None] * torch.eye(d, dtype=cov.dtype)
        self.mvn = D.MultivariateNormal(mean, covariance_matrix=cov)
        self.latent_shape, self.dtype = tuple(latent_shape), z.dtype
        super().__init__(torch.Size([b]), torch.Size(self.latent_shape), validate_args=False)

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        flat = self.mvn.sample(sample_shape)
        return flat.reshape(*flat.shape[:-1], *self.latent_shape).to(self.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        flat = value.reshape(*value.shape[: value.dim() - len(self.latent_shape)], -1).double()
        return self.mvn.log_prob(flat).to(self.dtype)

    def log_prob_and_grad(self, value: Tensor) -> tuple[Tensor, Tensor]:
        flat = value.reshape(*value.shape[: value.dim() - len(self.latent_shape)], -1).double()
        dev = flat - self.mvn.loc
        grad = -torch.einsum("bij,...bj->...bi", self.mvn.precision_matrix, dev)
        return self.mvn.log_prob(flat).to(self.dtype), grad.reshape(value.shape).to(self.dtype)
