"""Image generators: z ~ N(0, I), y ~ P(y | decoder(z)) -- samplable, computable, and P(y) intractable.

Two models share one interface (``prior``, ``sample``, ``log_likelihood``, ``log_joint``), which is all
the estimators in `latentvar.estimate` need:

- `LinearGaussian`: y = W z + b + σ ε (probabilistic PCA / factor analysis with isotropic noise).
  Its marginal and posterior are Gaussian in closed form, so every estimator is checked against it.
- `Generator`: any decoder network (e.g. DCGAN) around an observation model (`GaussianLikelihood`,
  `BernoulliLikelihood`, `DiscretizedLogisticLikelihood`). ``log_prob`` raises `IntractableMarginalError`.

Shapes (named axes): ``s`` samples/chains, ``b`` images, ``d`` latent dims (d_z), ``e`` observed dims
(d_y), ``j x y`` latent channels and grid, ``c h w`` image channels and pixels.
Latents and observations broadcast: ``log_joint(z (s, b, d), y (b, e)) -> (s, b)``.
"""

from __future__ import annotations

import math

import torch
import torch.distributions as D
import torch.nn.functional as F
from torch import Tensor, nn

from latentvar._checks import as_tensor, check_finite, check_ndim, check_sample_shape
from latentvar.core import IntractableMarginalError, LatentVariableModel, Posterior

LOG_2PI = math.log(2 * math.pi)


def _check_sigma(name: str, sigma, dtype: torch.dtype | None = None) -> Tensor:
    sigma = as_tensor(
        name, sigma, dtype or (torch.get_default_dtype() if not torch.is_tensor(sigma) else None)
    )
    if sigma.numel() != 1:
        raise ValueError(
            f"{name}: expected a scalar noise standard deviation, got shape {tuple(sigma.shape)}"
        )
    check_finite(name, sigma)
    if not float(sigma) > 0:
        raise ValueError(f"{name}: expected a positive noise standard deviation, got {float(sigma)!r}")
    return sigma.reshape(())


def _check_event(name: str, x: Tensor, event_shape: tuple[int, ...], what: str) -> Tensor:
    n = len(event_shape)
    if x.dim() < n or tuple(x.shape[x.dim() - n :]) != tuple(event_shape):
        raise ValueError(
            f"{name}: expected shape (..., {', '.join(map(str, event_shape))}) {what}, got {tuple(x.shape)}"
        )
    return check_finite(name, x)


# --------------------------------------------------------------------------------------------------------
# The linear-Gaussian generator: everything exact.


class GaussianPosterior(D.MultivariateNormal, Posterior):
    """The exact posterior P(z | y) = N(mean, covariance) of a `LinearGaussian`, batch (b,), event (d,).

    ``marginals``: (b, d, 2) -- per latent dimension the posterior mean [..., 0] and variance [..., 1]
    (each z_d given y is exactly N(mean_d, var_d)). ``mode``: the posterior mean (b, d).
    """

    @property
    def marginals(self) -> Tensor:
        return torch.stack([self.mean, self.variance], dim=-1)

    @property
    def mode(self) -> Tensor:
        return self.mean


class LinearGaussian(LatentVariableModel):
    """y = W z + b + σ ε with z ~ N(0, I_d), ε ~ N(0, I_e): a generator whose P(y) is known.

    P(y) = N(b, W Wᵀ + σ² I) and P(z|y) = N(M⁻¹ Wᵀ (y - b), σ² M⁻¹) with M = Wᵀ W + σ² I
    (Bishop, PRML eqs. 2.115-2.116 and 12.42). ``log_prob`` uses the Woodbury identity and the matrix
    determinant lemma, so its cost is O(e d²) per image rather than O(e³).

    Args:
        W: (e, d) loading matrix. b: (e,) offset. noise_std: σ > 0 (scalar).
    """

    def __init__(self, W, b, noise_std):
        W = as_tensor("W", W, torch.get_default_dtype() if not torch.is_tensor(W) else None)
        check_ndim("W", W, 2, "d_y, d_z")
        if not torch.is_floating_point(W):
            raise ValueError(f"W: expected a floating-point tensor, got dtype {W.dtype}")
        check_finite("W", W)
        b = as_tensor("b", b, W.dtype)
        if b.shape != (W.shape[0],):
            raise ValueError(f"b: expected shape ({W.shape[0]},) (d_y, the rows of W), got {tuple(b.shape)}")
        check_finite("b", b)
        self.W, self.b = W, b.to(W.dtype)
        self._Wt = W.T.contiguous()
        self.noise_std = _check_sigma("noise_std", noise_std, W.dtype)
        self.d_y, self.d_z = W.shape
        zeros = torch.zeros(self.d_z, dtype=W.dtype)
        self.prior = D.Independent(D.Normal(zeros, torch.ones_like(zeros), validate_args=False), 1)
        var = self.noise_std**2
        self._M_chol = torch.linalg.cholesky(W.T @ W + var * torch.eye(self.d_z, dtype=W.dtype))

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.d_z,)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.d_y,)

    def check_images(self, y, name: str = "y") -> Tensor:
        """Observations (..., d_y), finite; a ValueError naming ``name`` otherwise."""
        y = as_tensor(name, y, self.W.dtype)
        if not torch.is_floating_point(y):
            raise ValueError(f"{name}: expected floating-point observations, got dtype {y.dtype}")
        return _check_event(name, y.to(self.W.dtype), self.event_shape, "(d_y)")

    def mean(self, z: Tensor) -> Tensor:
        """E[y | z] = W z + b: (..., d) -> (..., e)."""
        return z @ self._Wt + self.b

    def sample(self, sample_shape: torch.Size = torch.Size()) -> tuple[Tensor, Tensor]:
        z = self.prior.sample(check_sample_shape("sample_shape", sample_shape, self.d_y + self.d_z))
        y = self.mean(z) + self.noise_std * torch.randn(*z.shape[:-1], self.d_y, dtype=z.dtype)
        return z, y

    def log_likelihood(self, y: Tensor, z: Tensor) -> Tensor:
        """log P(y | z) = log N(y; W z + b, σ² I), summed over e: broadcasts to (...)."""
        y = self.check_images(y)
        r = (y - self.mean(z)) / self.noise_std
        return -0.5 * (r**2).sum(-1) - self.d_y * (torch.log(self.noise_std) + 0.5 * LOG_2PI)

    def log_likelihood_and_grad(self, y: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """(log P(y|z), ∇_z log P(y|z) = Wᵀ (y - W z - b) / σ²) in closed form -- AIS's HMC uses it."""
        y = self.check_images(y)
        r = (y - self.mean(z)) / self.noise_std
        ll = -0.5 * (r**2).sum(-1) - self.d_y * (torch.log(self.noise_std) + 0.5 * LOG_2PI)
        return ll, (r @ self.W) / self.noise_std

    def log_joint(self, z: Tensor, y: Tensor) -> Tensor:
        z = _check_event("z", as_tensor("z", z, self.W.dtype), self.latent_shape, "(d_z)")
        return self.prior.log_prob(z) + self.log_likelihood(y, z)

    def log_prob(self, y: Tensor) -> Tensor:
        """Exact log N(y; b, W Wᵀ + σ² I) for y (..., e) -> (...).

        With r = y - b and M = WᵀW + σ²I:  rᵀ C⁻¹ r = (|r|² - |L⁻¹ Wᵀ r|²) / σ²  (Woodbury), and
        log|C| = (e - d) log σ² + log|M|  (determinant lemma), where L L ᵀ = M.
        """
        y = self.check_images(y)
        r = y - self.b
        proj = torch.linalg.solve_triangular(self._M_chol, (r @ self.W).unsqueeze(-1), upper=False).squeeze(
            -1
        )
        var = self.noise_std**2
        maha = ((r**2).sum(-1) - (proj**2).sum(-1)) / var
        logdet = (self.d_y - self.d_z) * torch.log(var) + 2 * torch.log(torch.diagonal(self._M_chol)).sum()
        return -0.5 * (maha + logdet + self.d_y * LOG_2PI)

    def posterior(self, y: Tensor) -> GaussianPosterior:
        """Exact P(z | y) = N(M⁻¹ Wᵀ (y - b), σ² M⁻¹) (PRML 12.42), batch shape y.shape[:-1]."""
        y = self.check_images(y)
        if y.numel() == 0:
            raise ValueError(
                f"y: expected at least one observation for a posterior, got shape {tuple(y.shape)}"
            )
        rhs = ((y - self.b) @ self.W).unsqueeze(-1)
        mean = torch.cholesky_solve(rhs, self._M_chol).squeeze(-1)
        # σ² M⁻¹ = (L_p L_pᵀ) with L_p = σ L⁻ᵀ; MultivariateNormal wants the precision's scale instead.
        precision_tril = self._M_chol / self.noise_std
        return GaussianPosterior(mean, precision_matrix=precision_tril @ precision_tril.T)


# --------------------------------------------------------------------------------------------------------
# Observation models around a decoder: P(y | decoder output), summed over (c, h, w).


class GaussianLikelihood(nn.Module):
    """P(y | μ) = N(y; μ, σ² I), σ fixed or learned (a single log σ, trained with the decoder).

    Images are in [-1, 1] (the decoder ends in tanh). ``log_prob(y, mu)`` sums over (c, h, w).
    """

    def __init__(self, sigma: float = 0.1, learn: bool = False):
        super().__init__()
        sigma_t = _check_sigma("sigma", float(sigma) if not torch.is_tensor(sigma) else sigma)
        log_sigma = torch.log(sigma_t).to(torch.get_default_dtype())
        if learn:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)
        self.learn = learn
        self.data_range = (-1.0, 1.0)

    @property
    def sigma(self) -> Tensor:
        return self.log_sigma.exp()

    def log_prob(self, y: Tensor, mu: Tensor) -> Tensor:
        r = (y - mu) / self.sigma
        n = mu.shape[-3:].numel()
        return -0.5 * (r**2).flatten(-3).sum(-1) - n * (self.log_sigma + 0.5 * LOG_2PI)

    def sample(self, mu: Tensor) -> Tensor:
        return mu + self.sigma * torch.randn_like(mu)

    def mean(self, mu: Tensor) -> Tensor:
        return mu


class BernoulliLikelihood(nn.Module):
    """P(y | logits) = Π Bernoulli(y; sigmoid(logits)) for binary images y in {0, 1} (values in [0, 1]
    are accepted, as binary cross-entropy, but are then not a normalised density). The decoder outputs
    logits (no final tanh)."""

    def __init__(self):
        super().__init__()
        self.data_range = (0.0, 1.0)

    def log_prob(self, y: Tensor, logits: Tensor) -> Tensor:
        return (
            -F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none")
            .flatten(-3)
            .sum(-1)
        )

    def sample(self, logits: Tensor) -> Tensor:
        return torch.bernoulli(torch.sigmoid(logits))

    def mean(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits)


class DiscretizedLogisticLikelihood(nn.Module):
    """P(y | μ) for 8-bit images scaled to [-1, 1]: the logistic(μ, s) mass of each pixel's bin of width
    2/255, with the edge bins taking the tails (Salimans et al. 2017, PixelCNN++ eq. 2). One learned
    log-scale per channel. The decoder outputs μ (tanh)."""

    def __init__(self, channels: int = 3, log_scale: float = -3.0, bins: int = 256):
        super().__init__()
        self.log_scale = nn.Parameter(torch.full((channels, 1, 1), float(log_scale)))
        self.bins = bins
        self.data_range = (-1.0, 1.0)

    def log_prob(self, y: Tensor, mu: Tensor) -> Tensor:
        half = 1.0 / (self.bins - 1)
        inv_s = torch.exp(-self.log_scale)
        plus, minus = inv_s * (y - mu + half), inv_s * (y - mu - half)
        cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
        log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus), for the lowest bin
        log_one_minus_cdf_minus = -F.softplus(minus)  # log (1 - sigmoid(minus)), for the highest bin
        log_mid = torch.log(cdf_delta.clamp_min(1e-12))
        logp = torch.where(
            y < -1 + half, log_cdf_plus, torch.where(y > 1 - half, log_one_minus_cdf_minus, log_mid)
        )
        return logp.flatten(-3).sum(-1)

    def sample(self, mu: Tensor) -> Tensor:
        u = torch.rand_like(mu).clamp(1e-5, 1 - 1e-5)
        x = mu + torch.exp(self.log_scale) * (torch.log(u) - torch.log1p(-u))
        return torch.round((x.clamp(-1, 1) + 1) / 2 * (self.bins - 1)) / (self.bins - 1) * 2 - 1

    def mean(self, mu: Tensor) -> Tensor:
        return mu


LIKELIHOODS = {
    "gaussian": GaussianLikelihood,
    "bernoulli": BernoulliLikelihood,
    "logistic": DiscretizedLogisticLikelihood,
}


class Generator(nn.Module, LatentVariableModel):
    """P(z) = N(0, I) over ``latent_shape`` (j, x, y); P(y | z) = likelihood(y | decoder(z)).

    Both factors are samplable and computable, yet P(y) = E_{z~P(z)} P(y|z) has no closed form:
    ``log_prob`` raises `IntractableMarginalError`, whose message names the estimators in
    `latentvar.estimate` (ELBO, IWAE, importance sampling, AIS checked by BDMC).

    Args:
        decoder: an ``nn.Module`` mapping z (n, j, x, y) to the likelihood's parameters (n, c, h, w).
        latent_shape: (j, x, y) -- e.g. (64, 1, 1) for the DCGAN vector z.
        likelihood: a `GaussianLikelihood` (fixed or learned σ), `BernoulliLikelihood` or
            `DiscretizedLogisticLikelihood`; or the name "gaussian" / "bernoulli" / "logistic".
    """

    def __init__(self, decoder: nn.Module, latent_shape, likelihood: nn.Module | str = "gaussian"):
        super().__init__()
        if not isinstance(decoder, nn.Module):
            raise ValueError(f"decoder: expected a torch.nn.Module, got {type(decoder).__name__}")
        try:
            latent_shape = tuple(int(s) for s in latent_shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"latent_shape: expected three positive sizes (J, X, Y), got {latent_shape!r}"
            ) from None
        if len(latent_shape) != 3 or min(latent_shape) < 1:
            raise ValueError(f"latent_shape: expected three positive sizes (J, X, Y), got {latent_shape}")
        if isinstance(likelihood, str):
            if likelihood not in LIKELIHOODS:
                raise ValueError(f"likelihood: expected one of {sorted(LIKELIHOODS)}, got {likelihood!r}")
            likelihood = LIKELIHOODS[likelihood]()
        if not hasattr(likelihood, "log_prob") or not isinstance(likelihood, nn.Module):
            raise ValueError(
                f"likelihood: expected an observation-model nn.Module, got {type(likelihood).__name__}"
            )
        self.decoder, self.likelihood = decoder, likelihood
        self.latent_shape = latent_shape
        self._event_shape: tuple[int, ...] | None = None

    @property
    def prior(self) -> D.Distribution:
        p = next(self.decoder.parameters(), None)
        kw = {"dtype": p.dtype, "device": p.device} if p is not None else {}
        zeros = torch.zeros(self.latent_shape, **kw)
        return D.Independent(D.Normal(zeros, torch.ones_like(zeros), validate_args=False), 3)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """(c, h, w) of the decoder's output, found by decoding one z (in eval mode, without gradients)."""
        if self._event_shape is None:
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    out = self.decoder(torch.zeros(1, *self.latent_shape))
            except RuntimeError as err:
                raise ValueError(
                    f"latent_shape: the decoder cannot decode z of shape (1, *{self.latent_shape}) ({err})"
                ) from None
            finally:
                self.train(was_training)
            self._event_shape = tuple(out.shape[1:])
        return self._event_shape

    def decode(self, z: Tensor) -> Tensor:
        """decoder(z): z (..., j, x, y) -> (..., c, h, w); leading axes are flattened for the network."""
        lead = z.shape[:-3]
        out = self.decoder(z.reshape(-1, *self.latent_shape))
        return out.reshape(*lead, *out.shape[1:])

    def check_images(self, y, name: str = "y") -> Tensor:
        """Refuse images of the wrong shape or outside the likelihood's data range (with a ValueError)."""
        y = as_tensor(name, y, torch.get_default_dtype() if not torch.is_tensor(y) else None)
        if not torch.is_floating_point(y):
            raise ValueError(f"{name}: expected floating-point images, got dtype {y.dtype}")
        _check_event(name, y, self.event_shape, "(C, H, W) images")
        low, high = self.likelihood.data_range
        if y.numel() and (float(y.min()) < low or float(y.max()) > high):
            raise ValueError(
                f"{name}: expected pixel values in [{low}, {high}] for {type(self.likelihood).__name__}, "
                f"got values in [{float(y.min()):.4g}, {float(y.max()):.4g}]"
            )
        return y

    def check_latents(self, z, name: str = "z") -> Tensor:
        z = as_tensor(name, z, torch.get_default_dtype() if not torch.is_tensor(z) else None)
        return _check_event(name, z, self.latent_shape, "(J, X, Y) latents")

    def sample(self, sample_shape: torch.Size = torch.Size()) -> tuple[Tensor, Tensor]:
        """(z, y) with z ~ N(0, I) and y ~ P(y | z); ``mean_images`` gives the noiseless decoder means."""
        per_draw = math.prod(self.latent_shape) + math.prod(self.event_shape)
        z = self.prior.sample(check_sample_shape("sample_shape", sample_shape, per_draw))
        return z, self.likelihood.sample(self.decode(z))

    def mean_images(self, z: Tensor) -> Tensor:
        """E[y | z] (..., c, h, w): what sample grids show."""
        return self.likelihood.mean(self.decode(self.check_latents(z)))

    def log_likelihood(self, y: Tensor, z: Tensor) -> Tensor:
        """log P(y | z), summed over pixels: z (..., j, x, y) and y (..., c, h, w) broadcast -> (...)."""
        y = self.check_images(y)
        return self.likelihood.log_prob(y, self.decode(self.check_latents(z)))

    def log_joint(self, z: Tensor, y: Tensor) -> Tensor:
        z = self.check_latents(z)
        return self.prior.log_prob(z) + self.log_likelihood(y, z)

    def log_prob(self, y: Tensor) -> Tensor:
        raise IntractableMarginalError(type(self).__name__)

    def posterior(self, y: Tensor) -> Posterior:
        raise IntractableMarginalError(type(self).__name__, "the exact posterior P(z|y)")
