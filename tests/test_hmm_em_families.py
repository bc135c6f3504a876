"""Baum-Welch for the emission families of issue 21 -- Poisson, Multinomial, Exponential, Gaussian mixtures
(GMM-HMM), tied and spherical covariances -- through the one sufficient-statistics layer (latentvar.stats),
each against hmmlearn's own model from the same start (PoissonHMM, MultinomialHMM, GaussianHMM with
covariance_type='tied' / 'spherical', GMMHMM), or against the weighted closed form where hmmlearn has none."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.distributions as D

from latentvar import HMM

F64 = torch.float64
ITERS = 5


def _start(k, seed):
    g = torch.Generator().manual_seed(seed)
    return g, torch.randn(k, generator=g, dtype=F64), torch.randn(k, k, generator=g, dtype=F64)


def _reference(ref, model: HMM, x, lengths):
    ref.startprob_ = model.log_init.exp().numpy()
    ref.transmat_ = model.log_trans.exp().numpy()
    return ref


def _check_common(fit, ref, n_obs):
    np.testing.assert_allclose(fit.model.log_init.exp().numpy(), ref.startprob_, atol=1e-8)
    np.testing.assert_allclose(fit.model.log_trans.exp().numpy(), ref.transmat_, atol=1e-8)
    np.testing.assert_allclose(np.array(fit.history), np.array(ref.monitor_.history) / n_obs, rtol=1e-8)
    assert all(b >= a - 1e-10 for a, b in itertools.pairwise(fit.history))


def _data(model: HMM, n=6, t=30, seed=0):
    y = model.sample((n,), t, generator=torch.Generator().manual_seed(seed))[1]
    lengths = torch.tensor([t, t - 7, t, t - 12, t - 3, t][:n])
    x = np.concatenate([y[b, : int(lengths[b])].numpy() for b in range(n)])
    return y, lengths, x


def test_poisson_matches_hmmlearn():
    import hmmlearn.hmm as hmmlearn

    g, init, trans = _start(3, 0)
    rates = torch.rand(3, 2, generator=g, dtype=F64) * 8 + 0.5
    model = HMM(init, trans, D.Independent(D.Poisson(rates), 1))
    y, lengths, x = _data(model)
    fit = model.fit(y, lengths, max_iter=ITERS, tol=-1.0)
    ref = _reference(
        hmmlearn.PoissonHMM(3, n_iter=ITERS, tol=-1.0, init_params="", params="stl"), model, x, lengths
    )
    ref.lambdas_ = rates.numpy()
    ref.fit(x.astype(int), lengths.numpy())
    _check_common(fit, ref, int(lengths.sum()))
    np.testing.assert_allclose(fit.model.emission.base_dist.rate.numpy(), ref.lambdas_, rtol=1e-8)


def test_multinomial_matches_hmmlearn():
    import hmmlearn.hmm as hmmlearn

    g, init, trans = _start(2, 1)
    probs = torch.rand(2, 4, generator=g, dtype=F64) + 0.1
    model = HMM(init, trans, D.Multinomial(5, probs=probs / probs.sum(-1, keepdim=True)))
    y, lengths, x = _data(model, seed=1)
    fit = model.fit(y, lengths, max_iter=ITERS, tol=-1.0)
    ref = _reference(
        hmmlearn.MultinomialHMM(2, n_trials=5, n_iter=ITERS, tol=-1.0, init_params="", params="ste"),
        model,
        x,
        lengths,
    )
    ref.emissionprob_ = model.emission.probs.numpy()
    ref.fit(x.astype(int), lengths.numpy())
    _check_common(fit, ref, int(lengths.sum()))
    np.testing.assert_allclose(fit.model.emission.probs.numpy(), ref.emissionprob_, atol=1e-8)


@pytest.mark.parametrize("covariance_type", ["tied", "spherical"])
def test_tied_and_spherical_covariances_match_hmmlearn(covariance_type):
    import hmmlearn.hmm as hmmlearn

    g, init, trans = _start(3, 2)
    d = 2
    means = torch.randn(3, d, generator=g, dtype=F64) * 3
    if covariance_type == "tied":
        a = torch.randn(d, d, generator=g, dtype=F64)
        cov = a @ a.T + 0.5 * torch.eye(d, dtype=F64)
        emission = D.MultivariateNormal(means, covariance_matrix=cov.expand(3, d, d))
    else:
        var = torch.rand(3, 1, generator=g, dtype=F64) + 0.5
        emission = D.Independent(D.Normal(means, var.sqrt().expand(3, d)), 1)
    model = HMM(init, trans, emission)
    y, lengths, x = _data(model, seed=2)
    fit = model.fit(y, lengths, max_iter=ITERS, tol=-1.0, reg_covar=0.0, covariance_type=covariance_type)
    ref = hmmlearn.GaussianHMM(
        3, covariance_type=covariance_type, n_iter=ITERS, tol=-1.0, init_params="", params="stmc",
        covars_prior=0.0, min_covar=0.0,
    )  # fmt: skip
    _reference(ref, model, x, lengths)
    ref.means_ = means.numpy()
    ref.covars_ = cov.numpy() if covariance_type == "tied" else var[:, 0].numpy()
    ref.fit(x, lengths.numpy())
    _check_common(fit, ref, int(lengths.sum()))
    np.testing.assert_allclose(fit.model.emission.mean.numpy(), ref.means_, atol=1e-8)
    if covariance_type == "tied":
        got = fit.model.emission.covariance_matrix
        torch.testing.assert_close(got[0], got[2])  # one covariance, shared
        np.testing.assert_allclose(got[0].numpy(), ref.covars_[0], atol=1e-8)
    else:
        got = fit.model.emission.variance
        torch.testing.assert_close(got[:, 0], got[:, 1])  # one variance per state, shared over dimensions
        np.testing.assert_allclose(got.numpy(), ref._covars_, atol=1e-8)  # (k, d), tiled by hmmlearn
    with pytest.raises(ValueError, match="^covariance_type: "):
        model.fit(y, max_iter=1, covariance_type="spherical" if covariance_type == "tied" else "tied")


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_gmm_hmm_matches_hmmlearn(covariance):
    """One iteration against hmmlearn's GMMHMM (its default priors are flat for 'diag' and 'full').
    hmmlearn accumulates the covariance statistics about the *previous* means (_emissions.py,
    BaseGMMHMM._accumulate_sufficient_statistics: ``centered = X - self.means_``), so its covariance is
    ours plus (μ_new − μ_old)(μ_new − μ_old)ᵀ; ours is the exact M-step, and the likelihood never decreases."""
    import hmmlearn.hmm as hmmlearn

    g, init, trans = _start(2, 3)
    k, m, d = 2, 3, 2
    weights = torch.rand(k, m, generator=g, dtype=F64) + 0.2
    weights = weights / weights.sum(-1, keepdim=True)
    means = torch.randn(k, m, d, generator=g, dtype=F64) * 3
    if covariance == "diag":
        covars = torch.rand(k, m, d, generator=g, dtype=F64) + 0.3
        comps = D.Independent(D.Normal(means, covars.sqrt()), 1)
    else:
        a = torch.randn(k, m, d, d, generator=g, dtype=F64)
        covars = a @ a.transpose(-1, -2) + 0.5 * torch.eye(d, dtype=F64)
        comps = D.MultivariateNormal(means, covariance_matrix=covars)
    model = HMM(init, trans, D.MixtureSameFamily(D.Categorical(probs=weights), comps))
    y, lengths, x = _data(model, seed=3)
    fit = model.fit(y, lengths, max_iter=1, tol=-1.0, reg_covar=0.0)
    ref = hmmlearn.GMMHMM(
        k, n_mix=m, covariance_type=covariance, n_iter=1, tol=-1.0, init_params="", params="stmcw"
    )
    _reference(ref, model, x, lengths)
    ref.weights_, ref.means_, ref.covars_ = weights.numpy(), means.numpy(), covars.numpy()
    ref.fit(x, lengths.numpy())
    _check_common(fit, ref, int(lengths.sum()))
    em = fit.model.emission
    np.testing.assert_allclose(em.mixture_distribution.probs.numpy(), ref.weights_, atol=1e-10)
    new_means = em.component_distribution.mean
    np.testing.assert_allclose(new_means.numpy(), ref.means_, atol=1e-10)
    shift = new_means - means
    if covariance == "diag":
        got = em.component_distribution.variance + shift**2
    else:
        got = em.component_distribution.covariance_matrix + shift.unsqueeze(-1) * shift.unsqueeze(-2)
    np.testing.assert_allclose(got.numpy(), ref.covars_, atol=1e-10)
    assert not np.allclose(shift.numpy(), 0, atol=1e-3)  # the two updates do differ here
    long = model.fit(y, lengths, max_iter=8, tol=-1.0, reg_covar=0.0)
    assert all(b >= a - 1e-10 for a, b in itertools.pairwise(long.history))


def test_exponential_em_step_is_the_weighted_closed_form():
    g, init, trans = _start(2, 4)
    model = HMM(init, trans, D.Exponential(torch.tensor([0.3, 3.0], dtype=F64)))
    y, lengths, _ = _data(model, seed=4)
    gamma = model.posterior(y, lengths).marginals  # (b, t, k), zero past each length
    fit = model.fit(y, lengths, max_iter=1)
    rate = gamma.sum((0, 1)) / (gamma * y.unsqueeze(-1)).sum((0, 1))  # Σ γ / Σ γ y
    torch.testing.assert_close(fit.model.emission.rate, rate)
    long = model.fit(y, lengths, max_iter=10, tol=-1.0)
    assert all(b >= a - 1e-10 for a, b in itertools.pairwise(long.history))


@pytest.mark.parametrize(
    "emission",
    [
        D.Independent(D.Poisson(torch.tensor([[1.0], [6.0]], dtype=F64)), 1),
        D.Exponential(torch.tensor([0.5, 2.0], dtype=F64)),
        D.MixtureSameFamily(
            D.Categorical(logits=torch.zeros(2, 2, dtype=F64)),
            D.Normal(torch.tensor([[-2.0, 0.0], [2.0, 4.0]], dtype=F64), torch.ones(2, 2, dtype=F64)),
        ),
    ],
)
def test_new_families_fit_by_gradient_too(emission):
    model = HMM(torch.zeros(2, dtype=F64), torch.zeros(2, 2, dtype=F64), emission)
    y = model.sample((4,), 20, generator=torch.Generator().manual_seed(5))[1]
    start = model.log_prob(y).sum()
    fit = model.fit(y, method="gradient", max_iter=20, lr=0.05)
    assert float(fit.model.log_prob(y).sum()) >= float(start) - 1e-6


def test_kmeans_centres_equal_sklearn_and_unstick_a_symmetric_start():
    from sklearn.cluster import KMeans

    from latentvar.hmm.kmeans import kmeans

    g = torch.Generator().manual_seed(6)
    truth = torch.tensor([[-6.0, 0.0], [0.0, 5.0], [7.0, -1.0]], dtype=F64)
    x = truth[torch.randint(3, (300,), generator=g)] + torch.randn(300, 2, generator=g, dtype=F64)
    ours = kmeans(x, 3, torch.Generator().manual_seed(0))
    ref = KMeans(3, n_init=10, random_state=0).fit(x.numpy()).cluster_centers_
    order = lambda c: c[np.lexsort(c.T[::-1])]  # noqa: E731 (centres up to permutation)
    np.testing.assert_allclose(order(ours.numpy()), order(ref), atol=1e-8)
    # an HMM whose states start identical cannot separate them by EM; k-means starts them apart
    y = x.reshape(10, 30, 2)
    same = HMM(torch.zeros(3, dtype=F64), torch.zeros(3, 3, dtype=F64),
               D.Independent(D.Normal(torch.zeros(3, 2, dtype=F64), torch.ones(3, 2, dtype=F64)), 1))  # fmt: skip
    stuck = same.fit(y, max_iter=20)
    moved = same.fit(y, max_iter=20, init_emission="kmeans", generator=torch.Generator().manual_seed(0))
    assert moved.history[-1] > stuck.history[-1] + 0.5
    found = moved.model.emission.mean.numpy()
    np.testing.assert_allclose(order(found), order(truth.numpy()), atol=0.4)
    with pytest.raises(ValueError, match="^init_emission: "):
        same.fit(y, max_iter=1, init_emission="random")
    with pytest.raises(ValueError, match="^init_emission: "):
        HMM(torch.zeros(2), torch.zeros(2, 2), D.Categorical(logits=torch.zeros(2, 3))).fit(
            torch.zeros(1, 4, dtype=torch.long), init_emission="kmeans"
        )
