"""Mixture: exact inference against brute-force enumeration and against sklearn's GaussianMixture."""

import itertools

import numpy as np
import pytest
import torch
import torch.distributions as D
from scipy import stats
from sklearn.mixture import GaussianMixture

from latentvar import ConditionalMixture, Mixture, gaussian_mixture_init
from latentvar.data.tabular import load_tabular


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _random_gaussian_mixture(k=3, d=2, batch=()):
    logits = torch.randn(*batch, k)
    loc = torch.randn(*batch, k, d) * 2
    a = torch.randn(*batch, k, d, d)
    cov = a @ a.transpose(-1, -2) + 0.5 * torch.eye(d)
    return Mixture(logits, D.MultivariateNormal(loc, covariance_matrix=cov))


def test_log_prob_posterior_mode_match_enumeration():
    m = _random_gaussian_mixture(k=4, d=3, batch=(2,))
    y = torch.randn(5, 2, 3)
    # enumerate z at every site: log P(y) = log Σ_z exp(log P(z, y))
    joint = torch.stack([m.log_joint(torch.full((5, 2), k), y) for k in range(4)], dim=-1)
    brute = torch.log(joint.exp().sum(-1))
    torch.testing.assert_close(m.log_prob(y), brute, rtol=1e-10, atol=1e-10)
    post = m.posterior(y)
    torch.testing.assert_close(post.marginals, (joint - brute[..., None]).exp())
    assert torch.equal(post.mode, joint.argmax(-1))
    z = torch.randint(4, (5, 2))
    torch.testing.assert_close(post.log_prob(z), m.log_joint(z, y) - brute)


def test_posterior_parity_with_hmm_and_ctc_entropy_and_log_partition_match_enumeration():
    """Cached log_partition / marginals / mode / entropy, batch and event shapes, seeded samples; the
    entropy against -Σ_z p log p over every z, with an unused component (weight 0: 0 · log 0 = 0)."""
    m = _random_gaussian_mixture(k=4, d=3, batch=(2,))
    m = Mixture(m.logits.index_fill(-1, torch.tensor([2]), -torch.inf), m.components)
    y = torch.randn(5, 2, 3)
    joint = torch.stack([m.log_joint(torch.full((5, 2), k), y) for k in range(4)], dim=-1)
    post = m.posterior(y)
    assert post.batch_shape == (5, 2) and post.event_shape == ()
    for name in ("log_partition", "marginals", "mode", "entropy"):
        assert getattr(post, name) is getattr(post, name), name  # cached, not recomputed
    brute = torch.log(joint.exp().sum(-1))
    torch.testing.assert_close(post.log_partition, brute, rtol=1e-10, atol=1e-10)
    p = (joint - brute[..., None]).exp()
    terms = [-(p[..., z] * (joint[..., z] - brute)) for z in range(4) if z != 2]  # p = 0 at z = 2
    torch.testing.assert_close(post.entropy, sum(terms), rtol=1e-10, atol=1e-10)
    assert torch.isfinite(post.entropy).all() and (post.entropy > 0).all()
    a = post.sample((7,), generator=torch.Generator().manual_seed(3))
    b = post.sample((7,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (7, 5, 2) and not (a == 2).any()
    torch.manual_seed(4)
    ours = post.sample((3,))
    torch.manual_seed(4)
    assert torch.equal(ours, D.Categorical(logits=post.logits).sample((3,)))  # the global RNG: as before


def test_posterior_samples_follow_the_marginals():
    """20000 seeded draws at each of two sites: chi-square goodness of fit against P(z | y)."""
    m = _random_gaussian_mixture(k=3, d=2, batch=(2,))
    post = m.posterior(torch.randn(2, 2))
    z = post.sample((20000,), generator=torch.Generator().manual_seed(0))
    for site in range(2):
        counts = torch.bincount(z[:, site], minlength=3).double()
        expected = 20000 * post.marginals[site]
        assert stats.chisquare(counts.numpy(), expected.numpy()).pvalue > 1e-4


def test_posterior_from_normalised_logits_has_no_log_partition():
    from latentvar import MixturePosterior

    post = MixturePosterior(logits=torch.randn(3))
    with pytest.raises(AttributeError, match="^log_partition: this posterior was built from normalised"):
        _ = post.log_partition
    torch.testing.assert_close(post.entropy, D.Categorical(logits=post.logits).entropy())


def test_categorical_components_enumeration_over_sequences_of_sites():
    # three independent sites, each a mixture over K=2 of a categorical over V=3: enumerate all z
    logits = torch.randn(3, 2)
    comp = D.Categorical(logits=torch.randn(3, 2, 3))
    m = Mixture(logits, comp)
    y = torch.tensor([0, 2, 1])
    total = torch.logsumexp(
        torch.stack([m.log_joint(torch.tensor(z), y).sum() for z in itertools.product(range(2), repeat=3)]), 0
    )
    torch.testing.assert_close(m.log_prob(y).sum(), total)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_matches_sklearn_score_samples_and_predict_proba(covariance):
    x, *_ = load_tabular("wine")
    gm = GaussianMixture(3, covariance_type=covariance, random_state=0, max_iter=50).fit(x.numpy())
    if covariance == "full":
        comp = D.MultivariateNormal(
            torch.as_tensor(gm.means_), covariance_matrix=torch.as_tensor(gm.covariances_)
        )
    else:
        comp = D.Independent(D.Normal(torch.as_tensor(gm.means_), torch.as_tensor(gm.covariances_).sqrt()), 1)
    m = Mixture(torch.as_tensor(gm.weights_).log(), comp)
    np.testing.assert_allclose(m.log_prob(x).numpy(), gm.score_samples(x.numpy()), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(
        m.posterior(x).marginals.numpy(), gm.predict_proba(x.numpy()), rtol=1e-5, atol=1e-8
    )


@pytest.mark.parametrize("data,covariance", [("wine", "full"), ("iris", "diag"), ("iris", "full")])
def test_em_reaches_sklearns_loglik_from_same_init(data, covariance):
    x, *_ = load_tabular(data)
    init = gaussian_mixture_init(x, 3, covariance, seed=1)
    if covariance == "full":
        precisions = torch.linalg.inv(init.components.covariance_matrix).numpy()
    else:
        precisions = (1 / init.components.base_dist.scale**2).numpy()
    gm = GaussianMixture(
        3,
        covariance_type=covariance,
        weights_init=init.weights.numpy(),
        means_init=init.components.mean.numpy(),
        precisions_init=precisions,
        tol=1e-10,
        max_iter=1000,
    ).fit(x.numpy())
    result = init.fit(x, method="em", max_iter=1000, tol=1e-10)
    assert result.converged
    assert result.history[-1] == pytest.approx(gm.score(x.numpy()), abs=1e-5)
    np.testing.assert_allclose(result.model.components.mean.numpy(), gm.means_, atol=1e-4)
    # EM never decreases the likelihood
    assert np.all(np.diff(result.history) > -1e-9)


def test_categorical_em_reaches_a_stationary_point():
    # words of real text are overkill here; a KKT check needs no reference: at an EM fixed point the
    # gradient of the mean log-likelihood w.r.t. every free logit vanishes.
    torch.manual_seed(3)
    y = torch.randint(0, 6, (400, 4))
    comp = D.Independent(D.Categorical(logits=torch.randn(3, 4, 6)), 1)
    result = Mixture(torch.zeros(3), comp).fit(y, method="em", max_iter=2000, tol=1e-12)
    fitted = result.model
    logits = fitted.logits.clone().requires_grad_(True)
    clogits = fitted.components.base_dist.logits.clone().requires_grad_(True)
    ll = Mixture(logits, D.Independent(D.Categorical(logits=clogits), 1)).log_prob(y).mean()
    ll.backward()
    assert logits.grad.abs().max() < 1e-5
    assert clogits.grad.abs().max() < 1e-5
    assert np.all(np.diff(result.history) > -1e-12)


def test_gradient_fit_approaches_em_optimum():
    x, *_ = load_tabular("iris")
    init = gaussian_mixture_init(x, 3, "diag", seed=0)
    em = init.fit(x, method="em", max_iter=500, tol=1e-10)
    gd = init.fit(x, method="gradient", max_iter=600, lr=0.03, tol=0)
    assert gd.history[-1] > gd.history[0]
    assert gd.history[-1] == pytest.approx(em.history[-1], abs=0.02)


def test_samples_follow_the_model():
    m = Mixture(
        torch.tensor([0.2, -0.4, 1.0]),
        D.Normal(torch.tensor([-3.0, 0.0, 4.0]), torch.tensor([0.5, 1.0, 2.0])),
    )
    torch.manual_seed(0)
    z, y = m.sample((4000,))
    counts = torch.bincount(z, minlength=3).numpy()
    assert stats.chisquare(counts, m.weights.numpy() * 4000).pvalue > 1e-3

    def cdf(v):
        v = torch.as_tensor(v)[..., None]
        return (m.weights * m.components.cdf(v)).sum(-1).numpy()

    assert stats.kstest(y.numpy(), cdf).pvalue > 1e-3
    # and a sampler that is off by a little is caught by the same test
    assert stats.kstest(y.numpy() + 0.3, cdf).pvalue < 1e-3


def test_conditional_mixture_is_the_same_interface_and_differentiable():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.prior = torch.nn.Linear(2, 3)
            self.loc = torch.nn.Linear(2, 3)

        def forward(self, x):
            return self.prior(x), D.Normal(self.loc(x), torch.ones(3))

    model = ConditionalMixture(Net())
    x, y = torch.randn(7, 2), torch.randn(7)
    lp = model.log_prob(y, x)
    brute = torch.logsumexp(
        torch.log_softmax(model.network.prior(x), -1)
        + D.Normal(model.network.loc(x), 1.0).log_prob(y[:, None]),
        -1,
    )
    torch.testing.assert_close(lp, brute)
    (-lp.sum()).backward()
    assert model.network.prior.weight.grad.abs().sum() > 0
    assert model.posterior(y, x).marginals.shape == (7, 3)
    z, ys = model.sample(x, (2,))
    assert z.shape == (2, 7) and ys.shape == (2, 7)
