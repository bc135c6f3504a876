"""Data-driven initialisation of an HMM's emission (hmmlearn's ``init_params``): k-means (Lloyd 1982, seeded
by k-means++, Arthur & Vassilvitskii 2007) on the observed steps gives each state a centre; Gaussian states
get the data's covariance (of the type the emission has), Poisson and Exponential states their cluster mean,
a Gaussian-mixture state m of the k·m centres.

Shapes (named axes): n observed steps, d event dimensions, c clusters.
"""

from __future__ import annotations

import torch
import torch.distributions as D
from torch import Tensor

from latentvar.stats import em_family


def kmeans(x: Tensor, c: int, generator: torch.Generator | None = None, max_iter: int = 300) -> Tensor:
    """Centres (c, d) of x (n, d): k-means++ seeding, then Lloyd's iterations until no point moves."""
    n = x.shape[0]
    if n < c:
        raise ValueError(f"y: k-means initialisation needs at least {c} observed steps, got {n}")
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    dist = ((x - x[first]) ** 2).sum(-1)
    for _ in range(1, c):
        total = dist.sum()
        if float(total) <= 0:  # fewer distinct points than clusters: repeat one
            centres.append(x[int(torch.randint(n, (1,), generator=generator))])
            continue
        pick = int(torch.multinomial((dist / total).float(), 1, generator=generator))
        centres.append(x[pick])
        dist = torch.minimum(dist, ((x - x[pick]) ** 2).sum(-1))
    centres = torch.stack(centres)
    assign = None
    for _ in range(max_iter):
        new = torch.cdist(x, centres).argmin(-1)
        if assign is not None and bool((new == assign).all()):
            break
        assign = new
        counts = torch.bincount(assign, minlength=c).to(x.dtype)
        sums = x.new_zeros(c, x.shape[1]).index_add_(0, assign, x)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
    return centres


def kmeans_emission(emission: D.Distribution, y: Tensor, generator: torch.Generator | None = None):
    """A new emission of the same family and shape whose states start at k-means centres of the observed
    steps y (n, *event)."""
    family = em_family(emission, "emission")
    if family in ("categorical", "multinomial"):
        raise ValueError(
            f"init_emission: k-means initialisation needs real-valued observations, got a "
            f"{type(emission).__name__} emission"
        )
    x = y.reshape(y.shape[0], -1).to(emission.mean.dtype)
    if family == "gmm":
        k, m = emission.mixture_distribution.logits.shape
        comps = emission.component_distribution
        centres = kmeans(x, k * m, generator).reshape(k, m, -1)
        return D.MixtureSameFamily(
            D.Categorical(logits=torch.zeros(k, m, dtype=x.dtype, device=x.device)),
            _gaussian(comps, centres, x),
        )
    k = emission.batch_shape[-1]
    centres = kmeans(x, k, generator)
    if family == "poisson" or family == "exponential":
        mean = centres.clamp_min(torch.finfo(x.dtype).eps)
        rate = mean if family == "poisson" else 1 / mean
        cls = D.Poisson if family == "poisson" else D.Exponential
        return D.Independent(cls(rate), 1) if isinstance(emission, D.Independent) else cls(rate[:, 0])
    return _gaussian(emission, centres, x)


def _gaussian(template: D.Distribution, centres: Tensor, x: Tensor) -> D.Distribution:
    """Gaussians at ``centres`` (..., d), each with the data's covariance (a diagonal one for a diagonal
    template), as hmmlearn starts its covariances."""
    d = x.shape[1]
    cov = torch.cov(x.T).reshape(d, d) if x.shape[0] > 1 else torch.eye(d, dtype=x.dtype, device=x.device)
    cov = cov + 1e-6 * torch.eye(d, dtype=x.dtype, device=x.device) * cov.diagonal().mean().clamp_min(1)
    if isinstance(template, D.MultivariateNormal):
        return D.MultivariateNormal(centres, covariance_matrix=cov.expand(*centres.shape, d))
    scale = cov.diagonal().sqrt().expand(centres.shape)
    if isinstance(template, D.Independent):
        return D.Independent(D.Normal(centres, scale), 1)
    return D.Normal(centres[..., 0], scale[..., 0])
