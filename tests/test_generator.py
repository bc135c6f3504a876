"""LinearGaussian against torch's MultivariateNormal and the closed-form posterior (Bishop PRML 2.116,
12.42); Generator's likelihoods against torch.distributions; bad input."""

import math

import pytest
import torch
import torch.distributions as D
from torch import nn

import latentvar
from latentvar.generator import (
    BernoulliLikelihood,
    DiscretizedLogisticLikelihood,
    GaussianLikelihood,
    Generator,
    LinearGaussian,
)

F64 = torch.float64


def _linear_gaussian(d_y=7, d_z=3, sigma=0.7):
    W = torch.randn(d_y, d_z, dtype=F64)
    b = torch.randn(d_y, dtype=F64)
    return LinearGaussian(W, b, sigma), W, b, sigma


def test_exported_from_package():
    assert latentvar.LinearGaussian is LinearGaussian
    assert latentvar.Generator is Generator


def test_log_prob_equals_multivariate_normal():
    model, W, b, sigma = _linear_gaussian()
    _, y = model.sample((50,))
    ref = D.MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(7, dtype=F64)).log_prob(y)
    torch.testing.assert_close(model.log_prob(y), ref, rtol=0, atol=1e-10)


def test_log_prob_high_dimensional_woodbury():
    model, W, b, sigma = _linear_gaussian(d_y=256, d_z=16, sigma=0.3)
    _, y = model.sample((5,))
    ref = D.MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(256, dtype=F64)).log_prob(y)
    torch.testing.assert_close(model.log_prob(y), ref, rtol=1e-10, atol=1e-8)


def test_posterior_equals_closed_form():
    """PRML 2.116-2.117 with A = W, L = σ⁻² I, Λ = I: Σ = (I + WᵀW/σ²)⁻¹, mean = Σ Wᵀ (y - b) / σ²."""
    model, W, b, sigma = _linear_gaussian()
    _, y = model.sample((4,))
    cov = torch.linalg.inv(torch.eye(3, dtype=F64) + W.T @ W / sigma**2)
    mean = (y - b) @ W @ cov / sigma**2
    post = model.posterior(y)
    torch.testing.assert_close(post.mean, mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(post.covariance_matrix, cov.expand(4, 3, 3), rtol=0, atol=1e-10)
    torch.testing.assert_close(post.mode, mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(post.marginals[..., 0], mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(post.marginals[..., 1], torch.diagonal(cov).expand(4, 3), rtol=0, atol=1e-10)


def test_posterior_is_bayes_rule():
    """log P(z|y) = log P(z, y) - log P(y) at arbitrary z: ties posterior, joint and marginal together."""
    model, *_ = _linear_gaussian()
    _, y = model.sample((4,))
    z = torch.randn(6, 4, 3, dtype=F64)
    torch.testing.assert_close(
        model.posterior(y).log_prob(z), model.log_joint(z, y) - model.log_prob(y), rtol=0, atol=1e-9
    )


def test_samples_have_the_marginal_covariance():
    model, W, b, sigma = _linear_gaussian(d_y=4, d_z=2, sigma=0.5)
    z, y = model.sample((40000,))
    assert z.shape == (40000, 2) and y.shape == (40000, 4)
    cov = W @ W.T + sigma**2 * torch.eye(4, dtype=F64)
    torch.testing.assert_close(torch.cov(y.T), cov, rtol=0, atol=0.1)
    torch.testing.assert_close(y.mean(0), b, rtol=0, atol=0.05)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"noise_std": 0.0}, "noise_std"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"noise_std": float("nan")}, "noise_std"),
        ({"W": torch.randn(5)}, "W"),
        ({"W": torch.full((5, 2), float("nan"))}, "W"),
        ({"b": torch.zeros(4)}, "b"),
    ],
)
def test_linear_gaussian_bad_parameters(kwargs, name):
    args = {"W": torch.randn(5, 2), "b": torch.zeros(5), "noise_std": 1.0} | kwargs
    with pytest.raises(ValueError, match=name):
        LinearGaussian(**args)


def test_linear_gaussian_bad_observations():
    model, *_ = _linear_gaussian()
    with pytest.raises(ValueError, match=r"^y: "):
        model.log_prob(torch.zeros(4, 6, dtype=F64))
    with pytest.raises(ValueError, match=r"^y: "):
        model.log_prob(torch.full((2, 7), float("nan"), dtype=F64))


# ---------------------------------------------------------------------------------------------------------
# Generator


class TinyDecoder(nn.Module):
    def __init__(self, j=3, out_act=torch.tanh):
        super().__init__()
        self.fc = nn.Linear(j * 2 * 2, 2 * 4 * 4)
        self.out_act = out_act

    def forward(self, z):
        return self.out_act(self.fc(z.flatten(1)).reshape(-1, 2, 4, 4))


def _generator(likelihood="gaussian", out_act=torch.tanh):
    return Generator(TinyDecoder(out_act=out_act), (3, 2, 2), likelihood)


def test_generator_log_prob_is_intractable_and_names_estimators():
    gen = _generator()
    _, y = gen.sample((2,))
    with pytest.raises(latentvar.IntractableMarginalError) as err:
        gen.log_prob(y.clamp(-1, 1))
    for name in ("elbo", "iwae", "ais", "bdmc", "importance"):
        assert f"latentvar.estimate.{name}" in str(err.value)
    with pytest.raises(latentvar.IntractableMarginalError):
        gen.posterior(y.clamp(-1, 1))


def test_generator_log_joint_gaussian_matches_torch():
    gen = _generator(GaussianLikelihood(sigma=0.3))
    z = torch.randn(5, 3, 2, 2)
    y = torch.rand(5, 2, 4, 4) * 2 - 1
    mu = gen.decoder(z)
    ref = D.Normal(0.0, 1.0).log_prob(z).sum((1, 2, 3)) + D.Normal(mu, 0.3).log_prob(y).sum((1, 2, 3))
    torch.testing.assert_close(gen.log_joint(z, y), ref, rtol=1e-5, atol=1e-4)


def test_generator_broadcasts_samples_over_images():
    gen = _generator()
    z = torch.randn(7, 5, 3, 2, 2)
    y = torch.rand(5, 2, 4, 4) * 2 - 1
    out = gen.log_joint(z, y)
    assert out.shape == (7, 5)
    torch.testing.assert_close(out[3], gen.log_joint(z[3], y))


def test_generator_sample_shapes():
    gen = _generator()
    z, y = gen.sample((6,))
    assert z.shape == (6, 3, 2, 2) and y.shape == (6, 2, 4, 4)
    assert gen.event_shape == (2, 4, 4)


def test_learned_sigma_is_a_parameter():
    lik = GaussianLikelihood(sigma=0.5, learn=True)
    assert any(p is lik.log_sigma for p in lik.parameters())
    assert math.isclose(float(lik.sigma.detach()), 0.5, rel_tol=1e-6)
    assert not list(GaussianLikelihood(sigma=0.5).parameters())


def test_bernoulli_likelihood_matches_torch():
    lik = BernoulliLikelihood()
    logits = torch.randn(3, 2, 4, 4)
    y = torch.bernoulli(torch.full((3, 2, 4, 4), 0.5))
    ref = D.Bernoulli(logits=logits).log_prob(y).sum((1, 2, 3))
    torch.testing.assert_close(lik.log_prob(y, logits), ref)


def test_discretized_logistic_sums_to_one_over_bins():
    lik = DiscretizedLogisticLikelihood(channels=1, log_scale=-2.0)
    levels = torch.arange(256, dtype=torch.float32) / 255 * 2 - 1
    mu = torch.full((256, 1, 1, 1), 0.3)
    p = lik.log_prob(levels.reshape(256, 1, 1, 1), mu).exp().detach()
    assert abs(float(p.sum()) - 1.0) < 1e-4


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan")])
def test_gaussian_likelihood_bad_sigma(sigma):
    with pytest.raises(ValueError, match=r"^sigma: "):
        GaussianLikelihood(sigma=sigma)


def test_generator_bad_images_and_arguments():
    gen = _generator()
    z = torch.randn(2, 3, 2, 2)
    with pytest.raises(ValueError, match=r"^y: "):
        gen.log_joint(z, torch.zeros(2, 3, 4, 4))  # wrong channel count
    with pytest.raises(ValueError, match=r"^y: expected pixel values in \[-1.0, 1.0\]"):
        gen.log_joint(z, torch.full((2, 2, 4, 4), 3.0))  # out of range for a tanh decoder
    with pytest.raises(ValueError, match=r"^y: "):
        gen.log_joint(z, torch.full((2, 2, 4, 4), float("nan")))
    with pytest.raises(ValueError, match=r"^z: "):
        gen.log_joint(torch.randn(2, 4, 2, 2), torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match=r"^latent_shape: "):
        Generator(TinyDecoder(), (12,), "gaussian")
    with pytest.raises(ValueError, match=r"^likelihood: "):
        Generator(TinyDecoder(), (3, 2, 2), "poisson")
    with pytest.raises(ValueError, match=r"^decoder: "):
        Generator(lambda z: z, (3, 2, 2), "gaussian")


def test_closed_form_gradient_matches_autograd():
    model, *_ = _linear_gaussian()
    _, y = model.sample((4,))
    z = torch.randn(3, 4, 3, dtype=F64, requires_grad=True)
    ll, grad = model.log_likelihood_and_grad(y, z.detach())
    (ref,) = torch.autograd.grad(model.log_likelihood(y, z).sum(), z)
    torch.testing.assert_close(grad, ref)
    torch.testing.assert_close(ll, model.log_likelihood(y, z).detach())
