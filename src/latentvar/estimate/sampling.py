"""The sampling estimators: naive Monte Carlo from the prior, importance sampling from a proposal, the
ELBO and the IWAE bound from an encoder q(z|y), all on log-weights drawn a few samples at a time.

Shapes: ``b`` images, ``s`` samples (or ``c`` AIS chains), ``...`` the latent shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.distributions as D
from torch import Tensor

from latentvar.estimate.weights import (
    Estimate,
    check_batch,
    check_num,
    finite_or_raise,
    proposal_for,
    summarise_lme,
)

# (sample, image) pairs per model evaluation. Small passes bound memory and stay in the CPU cache: the
# Twemoji DCGAN decoder on 1 thread took 0.09-0.13 ms per image in passes of 64-128, 0.22 ms in passes of
# 4096, whose large buffers also cost as much system time as compute (measured, docs/generator.md)
MAX_EVALS = 128


def _chunk(num_samples: int, batch: int) -> int:
    return max(1, min(num_samples, MAX_EVALS // max(batch, 1)))


@torch.no_grad()
def _log_weights(model, y: Tensor, proposal, num_samples: int, name: str) -> Tensor:
    """log P(z_i, y) - log q(z_i), z_i ~ q, as (s, b). z is drawn for all b images a few samples at a time,
    and the model is evaluated on at most about MAX_EVALS (sample, image) pairs per pass."""
    q = proposal_for(name, proposal, y, model.latent_shape) if proposal is not None else None
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
            if not bool(torch.isfinite(z).all()) or bool((torch.isnan(log_q) | torch.isposinf(log_q)).any()):
                raise ValueError(f"{name}: drew NaN or infinite latents or log-densities (an invalid q)")
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
    num_samples = check_num("num_samples", num_samples)
    y = check_batch(model, y)
    return summarise_lme("naive_mc", _log_weights(model, y, None, num_samples, "proposal"))


def importance(model, y, proposal, num_samples: int) -> Estimate:
    """log (1/n) Σ_i P(z_i, y) / q(z_i), z_i ~ q. ``proposal``: a Distribution with batch (b,) (or
    broadcastable) over the latent shape, or a callable y -> such a Distribution. With the exact
    posterior as proposal every weight equals P(y): exact, zero variance."""
    num_samples = check_num("num_samples", num_samples)
    y = check_batch(model, y)
    return summarise_lme("importance", _log_weights(model, y, proposal, num_samples, "proposal"))


def elbo(model, y, encoder: Callable[[Tensor], D.Distribution], num_samples: int) -> Estimate:
    """E_{q(z|y)} [log P(z, y) - log q(z|y)] <= log P(y) (Kingma & Welling 2014, eq. 3), estimated by the
    mean of ``num_samples`` terms; stderr = sd / sqrt(n)."""
    num_samples = check_num("num_samples", num_samples)
    y = check_batch(model, y)
    log_w = finite_or_raise("elbo", _log_weights(model, y, encoder, num_samples, "encoder"))
    se = log_w.std(0) / math.sqrt(num_samples) if num_samples > 1 else torch.full_like(log_w[0], float("nan"))
    return Estimate("elbo", log_w.mean(0), se, num_samples)


def iwae(model, y, encoder: Callable[[Tensor], D.Distribution], num_samples: int) -> Estimate:
    """The importance-weighted bound L_k = E log (1/k) Σ_i P(z_i, y)/q(z_i|y), k = ``num_samples``
    (Burda, Grosse & Salakhutdinov 2016, eq. 8): L_1 = ELBO <= L_k <= L_{k+1} -> log P(y) as k -> inf."""
    num_samples = check_num("num_samples", num_samples)
    y = check_batch(model, y)
    return summarise_lme("iwae", _log_weights(model, y, encoder, num_samples, "encoder"))
