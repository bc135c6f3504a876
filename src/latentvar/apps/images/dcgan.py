"""DCGAN networks (Radford, Metz & Chintala 2016) for 32x32 images, and their training as a GAN or a VAE.

The decoder is the DCGAN generator: *project and reshape* z (b, j, 1, 1) to (b, 4f, 4, 4), then
fractionally strided (transposed) convolutions 4 -> 8 -> 16 -> 32 with batch norm and ReLU, ending in
tanh, so images live in [-1, 1]. The same decoder serves both objectives:

- ``vae``: jointly with an encoder q(z|y) by the ELBO (Kingma & Welling 2014), Gaussian P(y|z) with a
  learned σ;
- ``gan``: against a DCGAN discriminator by the non-saturating GAN loss (Goodfellow et al. 2014). A GAN
  has no observation model, so one is added afterwards: the decoder is frozen, an encoder and a single
  log σ are fitted by the ELBO on the training images (amortised inference), and σ is then chosen on
  the validation images (`choose_sigma`).

Images: RGBA emoji composited on white, scaled to [-1, 1] (`latentvar.apps.images.data.twemoji_tensor`). Shapes: ``b`` images,
``j`` latent channels, ``f`` base feature width, ``c h w`` image channels and pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributions as D
import torch.nn.functional as F
from torch import Tensor, nn

from latentvar.generator import GaussianLikelihood, Generator


class DCGANDecoder(nn.Module):
    """z (b, j, 1, 1) -> images (b, 3, 32, 32) in [-1, 1]."""

    def __init__(self, latent_channels: int = 64, features: int = 32, channels: int = 3):
        super().__init__()
        f = features
        self.project = nn.Linear(latent_channels, 4 * f * 4 * 4, bias=False)
        self.f = f
        self.body = nn.Sequential(
            nn.BatchNorm2d(4 * f),
            nn.ReLU(True),
            nn.ConvTranspose2d(4 * f, 2 * f, 4, 2, 1, bias=False),  # 4 -> 8
            nn.BatchNorm2d(2 * f),
            nn.ReLU(True),
            nn.ConvTranspose2d(2 * f, f, 4, 2, 1, bias=False),  # 8 -> 16
            nn.BatchNorm2d(f),
            nn.ReLU(True),
            nn.ConvTranspose2d(f, channels, 4, 2, 1),  # 16 -> 32
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z.flatten(1)).reshape(-1, 4 * self.f, 4, 4)
        return self.body(h)


def _conv_trunk(features: int, channels: int, batch_norm: bool) -> nn.Sequential:
    f = features
    norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
    return nn.Sequential(
        nn.Conv2d(channels, f, 4, 2, 1),  # 32 -> 16
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(f, 2 * f, 4, 2, 1, bias=not batch_norm),  # 16 -> 8
        norm(2 * f),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(2 * f, 4 * f, 4, 2, 1, bias=not batch_norm),  # 8 -> 4
        norm(4 * f),
        nn.LeakyReLU(0.2, True),
        nn.Flatten(),
    )


class DCGANDiscriminator(nn.Module):
    """images (b, 3, 32, 32) -> logits (b,) that the image is real."""

    def __init__(self, features: int = 32, channels: int = 3):
        super().__init__()
        self.trunk = _conv_trunk(features, channels, batch_norm=True)
        self.head = nn.Linear(4 * features * 16, 1)

    def forward(self, y: Tensor) -> Tensor:
        return self.head(self.trunk(y)).squeeze(-1)


class ConvEncoder(nn.Module):
    """q(z | y) = N(μ(y), diag σ(y)²): images (b, 3, 32, 32) -> Distribution, batch (b,), event (j, 1, 1).
    No batch norm, so q(z|y) of one image does not depend on the rest of the batch."""

    def __init__(self, latent_channels: int = 64, features: int = 32, channels: int = 3):
        super().__init__()
        self.trunk = _conv_trunk(features, channels, batch_norm=False)
        self.head = nn.Linear(4 * features * 16, 2 * latent_channels)
        self.latent_channels = latent_channels

    def forward(self, y: Tensor) -> D.Distribution:
        mu, log_std = self.head(self.trunk(y)).chunk(2, dim=-1)
        shape = (-1, self.latent_channels, 1, 1)
        std = F.softplus(log_std).clamp_min(1e-4)
        return D.Independent(D.Normal(mu.reshape(shape), std.reshape(shape), validate_args=False), 3)


def make_generator(
    latent_channels: int, features: int, sigma: float = 0.1, learn_sigma: bool = True
) -> Generator:
    decoder = DCGANDecoder(latent_channels, features)
    return Generator(decoder, (latent_channels, 1, 1), GaussianLikelihood(sigma, learn=learn_sigma))


def elbo_loss(model: Generator, encoder: ConvEncoder, y: Tensor) -> Tensor:
    """-ELBO per image, one reparameterised sample (Kingma & Welling 2014, eq. 10 with an analytic KL)."""
    q = encoder(y)
    z = q.rsample()
    log_lik = model.likelihood.log_prob(y, model.decoder(z))
    kl = D.kl_divergence(q.base_dist, D.Normal(0.0, 1.0)).flatten(1).sum(-1)
    return (kl - log_lik).mean()


def discriminator_loss(disc: DCGANDiscriminator, real: Tensor, fake: Tensor) -> Tensor:
    """-log D(real) - log(1 - D(fake)) (Goodfellow et al. 2014, eq. 1), fakes detached."""
    return F.softplus(-disc(real)).mean() + F.softplus(disc(fake.detach())).mean()


def generator_loss(disc: DCGANDiscriminator, fake: Tensor) -> Tensor:
    """The non-saturating generator loss -log D(fake) (Goodfellow et al. 2014, sec. 3)."""
    return F.softplus(-disc(fake)).mean()


@torch.no_grad()
def choose_sigma(model: Generator, encoder: ConvEncoder, y_val: Tensor, num_samples: int = 16) -> dict:
    """The Gaussian observation noise σ maximising the validation IWAE(k=num_samples) bound, on a log
    grid of 13 values spanning σ_fit / 4 ... 4 σ_fit around the ELBO-fitted σ; encoder held fixed. Sets
    σ in place and returns {"grid": [...], "val_iwae": [...], "sigma": chosen}."""
    from latentvar import estimate

    fitted = float(model.likelihood.sigma.detach())
    grid = [fitted * 2.0 ** (k / 3) for k in range(-6, 7)]
    scores = []
    for s in grid:
        model.likelihood.log_sigma.fill_(math.log(s))
        scores.append(estimate.iwae(model, y_val, encoder, num_samples).mean)
    best = grid[int(np.argmax(scores))]
    model.likelihood.log_sigma.fill_(math.log(best))
    return {"grid": grid, "val_iwae": scores, "sigma": best, "sigma_elbo_fit": fitted}
