"""Every estimator against the exact log P(y) of a LinearGaussian (closed form, checked against
torch's MultivariateNormal in test_generator.py)."""

import pytest
import torch
import torch.distributions as D
from torch import nn

from latentvar import estimate
from latentvar.generator import Generator, LinearGaussian

F64 = torch.float64


def _model(d_y=8, d_z=2, sigma=0.5, scale=1.0):
    return LinearGaussian(torch.randn(d_y, d_z, dtype=F64) * scale, torch.randn(d_y, dtype=F64), sigma)


def _broadened_posterior(model, widen=1.5):
    """An imperfect encoder: the exact posterior mean with a too-wide diagonal scale."""

    def encoder(y):
        post = model.posterior(y)
        return D.Independent(D.Normal(post.mean, widen * post.stddev), 1)

    return encoder


def test_importance_with_exact_posterior_is_exact_with_zero_variance():
    model = _model(d_y=30, d_z=4)
    _, y = model.sample((6,))
    est = estimate.importance(model, y, model.posterior(y), num_samples=50)
    torch.testing.assert_close(est.estimate, model.log_prob(y), rtol=0, atol=1e-9)
    assert float(est.stderr.max()) < 1e-6
    # the same through a callable proposal, and through the ELBO: every weight equals P(y)
    est_elbo = estimate.elbo(model, y, model.posterior, num_samples=20)
    torch.testing.assert_close(est_elbo.estimate, model.log_prob(y), rtol=0, atol=1e-9)


def test_naive_mc_close_in_low_dimension_and_biased_down_in_high():
    small = _model(d_y=2, d_z=1, sigma=1.0)
    _, y = small.sample((20,))
    est = estimate.naive_mc(small, y, num_samples=20000)
    assert float((est.estimate - small.log_prob(y)).abs().max()) < 0.05
    big = _model(d_y=64, d_z=8, sigma=0.3)
    _, y = big.sample((20,))
    est = estimate.naive_mc(big, y, num_samples=1000)
    gap = big.log_prob(y) - est.estimate
    assert float(gap.min()) > 5.0  # far below the truth, for every image


def test_elbo_is_below_log_prob():
    model = _model()
    _, y = model.sample((32,))
    est = estimate.elbo(model, y, _broadened_posterior(model), num_samples=2000)
    assert bool((est.estimate + 4 * est.stderr < model.log_prob(y)).all())


def test_iwae_rises_with_k_towards_the_truth():
    model = _model(d_y=20, d_z=3, sigma=0.5)
    _, y = model.sample((64,))
    exact = model.log_prob(y).mean()
    enc = _broadened_posterior(model, widen=3.0)
    means = [estimate.iwae(model, y, enc, k).mean for k in (1, 5, 25, 125)]
    assert means == sorted(means), means
    assert float(exact) - means[0] > 1.0
    big = estimate.iwae(model, y, enc, 4000)
    assert means[-2] < big.mean < float(exact) + 3 * big.mean_stderr
    assert float(exact) - big.mean < 0.05


def test_iwae_with_k_1_is_the_elbo_in_expectation():
    model = _model()
    _, y = model.sample((200,))
    enc = _broadened_posterior(model)
    a = estimate.iwae(model, y, enc, 1).mean
    b = estimate.elbo(model, y, enc, 50).mean
    assert abs(a - b) < 0.1


def test_ais_close_to_exact_on_a_small_case():
    model = _model(d_y=6, d_z=2, sigma=0.5)
    _, y = model.sample((8,))
    est = estimate.ais(model, y, num_steps=400, num_chains=64, leapfrog_steps=3)
    err = est.estimate - model.log_prob(y)
    assert abs(float(err.mean())) < 0.05, err
    assert float(err.abs().max()) < 0.2, err
    assert 0.4 < float(est.extra["acceptance"].mean()) < 0.9


def test_bdmc_brackets_the_truth():
    model = _model(d_y=16, d_z=4, sigma=0.5, scale=0.5)
    res = estimate.bdmc(model, num_images=8, num_steps=100, num_chains=16, leapfrog_steps=3)
    exact = model.log_prob(res.y)
    lower, upper = res.lower.estimate.mean(), res.upper.estimate.mean()
    assert float(lower) <= float(exact.mean()) + 3 * res.lower.mean_stderr
    assert float(upper) >= float(exact.mean()) - 3 * res.upper.mean_stderr
    assert float(res.gap.mean()) >= -3 * (res.lower.mean_stderr**2 + res.upper.mean_stderr**2) ** 0.5
    assert res.y.shape == (8, 16) and res.z.shape == (8, 4)


def test_bdmc_gap_shrinks_with_more_steps():
    model = _model(d_y=16, d_z=4, sigma=0.3, scale=0.5)
    gaps = [float(estimate.bdmc(model, 8, steps, 8, leapfrog_steps=3).gap.mean()) for steps in (5, 200)]
    assert gaps[1] < gaps[0] / 3, gaps


def _shifted_posterior(model, shift=0.5, widen=1.5):
    """A deliberately imperfect diagonal Gaussian q(z|y): the exact posterior mean moved by ``shift``
    posterior standard deviations, with a scale ``widen`` times too wide."""

    def encoder(y):
        post = model.posterior(y)
        return D.Independent(D.Normal(post.mean + shift * post.stddev, widen * post.stddev), 1)

    return encoder


def test_ais_from_the_exact_posterior_is_exact_with_zero_variance():
    """With q0 = P(z|y), π_β = P(z|y) at every β and each increment is (β_t - β_{t-1}) log P(y): every
    chain's log-weight is log P(y) whatever HMC does. A wrong weight formula (e.g. the prior path's
    increment log P(y|z) with a q0 start, or a missing -log q0) would scatter the weights."""
    model = _model(d_y=12, d_z=3, sigma=0.5)
    _, y = model.sample((5,))
    exact = model.log_prob(y)
    est = estimate.ais(model, y, num_steps=10, num_chains=6, initial=model.posterior, leapfrog_steps=2)
    torch.testing.assert_close(est.estimate, exact, rtol=0, atol=1e-9)
    assert float(est.stderr.max()) < 1e-6
    torch.testing.assert_close(est.extra["ess"], torch.full((5,), 6.0, dtype=F64))
    res = estimate.bdmc(model, 4, 10, 6, initial=model.posterior, leapfrog_steps=2)
    exact = model.log_prob(res.y)
    torch.testing.assert_close(res.lower.estimate, exact, rtol=0, atol=1e-9)
    torch.testing.assert_close(res.upper.estimate, exact, rtol=0, atol=1e-9)


def test_ais_from_an_imperfect_encoder_is_close_with_few_temperatures():
    model = _model(d_y=16, d_z=4, sigma=0.5, scale=0.5)
    _, y = model.sample((8,))
    exact = model.log_prob(y)
    enc = _shifted_posterior(model, shift=1.0, widen=2.0)
    # deliberately imperfect: KL(q || posterior) ≈ 5 nats per image
    assert float((exact - estimate.elbo(model, y, enc, 200).estimate).mean()) > 3.0
    est = estimate.ais(model, y, num_steps=50, num_chains=64, initial=enc, leapfrog_steps=3, step_size=0.2)
    err = est.estimate - exact
    assert abs(float(err.mean())) < 0.1, err
    assert float(err.abs().max()) < 0.4, err
    assert 0.5 < float(est.extra["acceptance"].mean()) < 0.95
    assert float(est.extra["ess"].mean()) > 16


def test_bdmc_from_an_imperfect_encoder_brackets_the_truth():
    model = _model(d_y=16, d_z=4, sigma=0.5, scale=0.5)
    enc = _shifted_posterior(model, shift=1.0, widen=2.0)
    res = estimate.bdmc(model, 8, 50, 64, initial=enc, leapfrog_steps=3, step_size=0.2)
    exact = float(model.log_prob(res.y).mean())
    lower, upper = res.lower.mean, res.upper.mean
    assert lower <= exact + 3 * res.lower.mean_stderr, (lower, exact)
    assert upper >= exact - 3 * res.upper.mean_stderr, (upper, exact)
    assert abs(float(res.gap.mean())) < 0.25, res.gap
    # with 2 temperatures and 4 chains the same encoder leaves a clear gap, which still brackets the truth
    res = estimate.bdmc(model, 8, 2, 4, initial=enc, leapfrog_steps=3, step_size=0.2)
    exact = float(model.log_prob(res.y).mean())
    assert res.lower.mean < exact < res.upper.mean and float(res.gap.mean()) > 0.5, res.gap


def test_ais_initial_with_autograd_gradient_matches_closed_form():
    """A q0 that is not a diagonal Normal (a full-covariance MultivariateNormal) takes the autograd
    gradient; as the exact posterior it must still give log P(y) exactly."""
    model = _model(d_y=10, d_z=3, sigma=0.5)
    _, y = model.sample((3,))

    def full_cov(images):
        post = model.posterior(images)
        return D.MultivariateNormal(post.mean, scale_tril=post.scale_tril)

    est = estimate.ais(model, y, 5, 4, initial=full_cov, leapfrog_steps=2)
    torch.testing.assert_close(est.estimate, model.log_prob(y), rtol=0, atol=1e-9)


def test_bad_initial():
    model = _model()
    _, y = model.sample((2,))
    with pytest.raises(ValueError, match=r"^initial: "):
        estimate.ais(model, y, 5, 2, initial="encoder")
    with pytest.raises(ValueError, match=r"^initial: "):
        estimate.ais(model, y, 5, 2, initial=model.posterior(y))  # a Distribution, not a callable
    with pytest.raises(ValueError, match=r"^initial: "):
        estimate.ais(model, y, 5, 2, initial=lambda images: torch.zeros(2, 2))
    wrong_event = lambda images: D.Independent(D.Normal(torch.zeros(2, 3, dtype=F64), 1.0), 1)  # noqa: E731
    with pytest.raises(ValueError, match=r"^initial: "):
        estimate.ais(model, y, 5, 2, initial=wrong_event)
    wrong_batch = lambda images: D.Independent(D.Normal(torch.zeros(1, 2, dtype=F64), 1.0), 1)  # noqa: E731
    with pytest.raises(ValueError, match=r"^initial: "):
        estimate.bdmc(model, 2, 5, 2, initial=wrong_batch)


def test_log_space_never_overflows():
    """Log-weights around -1e5 (a very unlikely y) give a finite estimate, not -inf or NaN."""
    model = _model(d_y=4, d_z=1, sigma=0.01)
    y = torch.full((2, 4), 30.0, dtype=F64)
    est = estimate.naive_mc(model, y, 100)
    assert bool(torch.isfinite(est.estimate).all()) and bool(torch.isfinite(est.stderr).all())
    assert float(est.estimate.max()) < -1000


class _Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3 * 4 * 4)

    def forward(self, z):
        return torch.tanh(self.fc(z.flatten(1))).reshape(-1, 3, 4, 4)


def test_estimators_run_batched_on_an_image_generator():
    gen = Generator(_Decoder(), (2, 1, 1), "gaussian")
    y = (torch.rand(5, 3, 4, 4) * 2 - 1).clamp(-1, 1)

    def encoder(images):
        return D.Independent(
            D.Normal(torch.zeros(images.shape[0], 2, 1, 1), torch.ones(images.shape[0], 2, 1, 1)), 3
        )

    for est in (
        estimate.elbo(gen, y, encoder, 4),
        estimate.iwae(gen, y, encoder, 4),
        estimate.ais(gen, y, num_steps=5, num_chains=3),
    ):
        assert est.estimate.shape == (5,) and est.stderr.shape == (5,)
        assert bool(torch.isfinite(est.estimate).all())
    # IWAE with the prior as encoder is naive MC: same weights, same seed -> same value
    torch.manual_seed(1)
    a = estimate.iwae(gen, y, encoder, 7).estimate
    torch.manual_seed(1)
    b = estimate.naive_mc(gen, y, 7).estimate
    torch.testing.assert_close(a, b)


def test_weights_evaluated_a_few_images_at_a_time_stay_with_their_images(monkeypatch):
    # 3 (sample, image) pairs per pass: 7 images are scored in blocks of 3, 3 and 1, one sample at a time
    monkeypatch.setattr(estimate.sampling, "MAX_EVALS", 3)
    model = _model(d_y=12, d_z=3)
    _, y = model.sample((7,))
    est = estimate.iwae(model, y, model.posterior, num_samples=5)
    torch.testing.assert_close(est.estimate, model.log_prob(y), rtol=0, atol=1e-9)
    gen = Generator(_Decoder(), (2, 1, 1), "gaussian")
    images = (torch.rand(7, 3, 4, 4) * 2 - 1).clamp(-1, 1)
    prior = lambda images: gen.prior.expand(images.shape[:1])  # noqa: E731
    torch.manual_seed(2)
    a = estimate.iwae(gen, images, prior, 4).estimate
    torch.manual_seed(2)
    b = estimate.naive_mc(gen, images, 4).estimate
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_num_samples(bad):
    model = _model()
    _, y = model.sample((2,))
    with pytest.raises(ValueError, match=r"^num_samples: "):
        estimate.iwae(model, y, model.posterior, bad)
    with pytest.raises(ValueError, match=r"^num_chains: "):
        estimate.ais(model, y, 10, bad)
    with pytest.raises(ValueError, match=r"^num_steps: "):
        estimate.ais(model, y, bad, 4)


def test_bad_images():
    model = _model()
    with pytest.raises(ValueError, match=r"^y: "):
        estimate.naive_mc(model, torch.zeros(3, 5, dtype=F64), 10)
    with pytest.raises(ValueError, match=r"^y: "):
        estimate.naive_mc(model, torch.full((3, 8), float("nan"), dtype=F64), 10)
    with pytest.raises(ValueError, match=r"^y: "):
        estimate.naive_mc(model, torch.zeros(8, dtype=F64), 10)  # one image, not a batch
    gen = Generator(_Decoder(), (2, 1, 1), "gaussian")
    with pytest.raises(ValueError, match=r"^y: expected pixel values"):
        estimate.ais(gen, torch.full((2, 3, 4, 4), 255.0), 5, 2)
    with pytest.raises(ValueError, match=r"^step_size: "):
        estimate.ais(model, torch.zeros(2, 8, dtype=F64), 5, 2, step_size=0.0)
    with pytest.raises(ValueError, match=r"^model: "):
        estimate.naive_mc(object(), torch.zeros(2, 8), 10)


def test_invalid_proposal_density_is_an_error_not_a_nan():
    model = _model()
    _, y = model.sample((2,))

    class Broken(D.Independent):
        def log_prob(self, value):
            return torch.full(value.shape[:-1], float("nan"), dtype=F64)

    def broken(images):
        return Broken(D.Normal(torch.zeros(2, 2, dtype=F64), 1.0), 1)

    with pytest.raises(ValueError, match=r"^encoder: drew NaN"):
        estimate.iwae(model, y, broken, 5)


def test_effective_sample_size_flags_degenerate_weights():
    equal = torch.zeros(10, 3, dtype=F64)
    torch.testing.assert_close(estimate.effective_sample_size(equal), torch.full((3,), 10.0, dtype=F64))
    one = torch.full((10, 2), -1000.0, dtype=F64)
    one[4] = 0.0
    torch.testing.assert_close(estimate.effective_sample_size(one), torch.ones(2, dtype=F64))
    model = _model()
    _, y = model.sample((3,))
    est = estimate.importance(model, y, model.posterior(y), 20)
    torch.testing.assert_close(est.extra["ess"], torch.full((3,), 20.0, dtype=F64))
