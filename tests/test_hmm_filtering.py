"""Forward / backward tables, online filtering and fixed-lag smoothing against enumeration of prefixes; AIC,
BIC and the stationary distribution against hmmlearn (issue 21, item 5)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.distributions as D

from hmm_models import F64, cat_hmm
from latentvar import HMM


def prefix_alpha(model: HMM, y, t):
    """log P(y_1..y_t, z_t = j) by enumerating every path of the prefix: (k,)."""
    k = model.num_states
    pi, a, b = model.log_init, model.log_trans, model.emission.logits.log_softmax(-1)
    out = torch.full((k,), -torch.inf, dtype=F64)
    for z in itertools.product(range(k), repeat=t + 1):
        s = pi[z[0]] + b[z[0], y[0]] + sum(a[z[i - 1], z[i]] + b[z[i], y[i]] for i in range(1, t + 1))
        out[z[-1]] = torch.logaddexp(out[z[-1]], s)
    return out


def test_forward_backward_tables_match_enumeration():
    for final in (False, True):
        model = cat_hmm(seed=1, final=final)
        y = torch.tensor([[1, 0, 3, 2, 2], [3, 3, 1, 0, 0]])
        lengths = torch.tensor([5, 3])
        post = model.posterior(y, lengths)
        for b in range(2):
            n = int(lengths[b])
            for t in range(n):
                torch.testing.assert_close(post.forward[b, t], prefix_alpha(model, y[b], t))
            assert torch.isneginf(post.forward[b, n:]).all() and torch.isneginf(post.backward[b, n:]).all()
            end = model.log_final if final else torch.zeros(3, dtype=F64)
            torch.testing.assert_close(post.backward[b, n - 1], end)
        got = (post.forward + post.backward - post.log_partition[:, None, None]).exp()
        torch.testing.assert_close(got, post.marginals)
    one = cat_hmm(seed=1).posterior(torch.tensor([1, 0, 3]))
    assert one.forward.shape == (3, 3) and one.backward.shape == (3, 3)


def test_filter_equals_prefix_posteriors_and_chunks_carry_state():
    model = cat_hmm(seed=2)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(4, (3, 9), generator=g)
    f = model.filter(y)
    for t in range(9):
        want = model.posterior(y[:, : t + 1]).marginals[:, t]
        torch.testing.assert_close(f.probs[:, t], want)
    torch.testing.assert_close(f.log_likelihood, model.log_prob(y))
    # a stream in three chunks of a ragged batch: the same numbers as one pass
    first = model.filter(y[:, :4])
    second = model.filter(y[:, 4:7], state=first.state)
    third = model.filter(y[:, 7:], state=second.state)
    torch.testing.assert_close(torch.cat([first.probs, second.probs, third.probs], 1), f.probs)
    torch.testing.assert_close(third.log_likelihood, model.log_prob(y))
    # fixed-lag smoothing: P(z_t | y_1..y_{t+2})
    lagged = model.filter(y, lag=2)
    for t in range(9):
        want = model.posterior(y[:, : min(t + 3, 9)]).marginals[:, t]
        torch.testing.assert_close(lagged.probs[:, t], want)
    assert not torch.allclose(lagged.probs, f.probs)
    with pytest.raises(ValueError, match="^lag: "):
        model.filter(y, lag=-1)
    with pytest.raises(ValueError, match="^state: "):
        model.filter(y[:2], state=first.state)


def test_filter_ragged_lengths_and_missing_steps():
    model = cat_hmm(seed=3)
    y = torch.tensor([[1, 0, 3, 2], [2, 1, 0, 0]])
    lengths = torch.tensor([4, 2])
    observed = torch.tensor([[True, False, True, True], [True, True, True, True]])
    f = model.filter(y, lengths, observed=observed)
    torch.testing.assert_close(f.log_likelihood, model.log_prob(y, lengths, observed=observed))
    assert bool((f.probs[1, 2:] == 0).all())
    torch.testing.assert_close(f.probs[1, 1], model.posterior(y[1:, :2]).marginals[0, 1])


def test_aic_bic_and_parameter_counts_match_hmmlearn():
    import hmmlearn.hmm as hmmlearn

    model = cat_hmm(k=3, v=5, seed=4)
    y = model.sample((4,), 25, generator=torch.Generator().manual_seed(1))[1]
    ref = hmmlearn.CategoricalHMM(3)
    ref.startprob_, ref.transmat_ = model.log_init.exp().numpy(), model.log_trans.exp().numpy()
    ref.emissionprob_, ref.n_features = model.emission.probs.numpy(), 5
    x = y.reshape(-1, 1).numpy()
    np.testing.assert_allclose(float(model.aic(y)), ref.aic(x, [25] * 4), rtol=1e-10)
    np.testing.assert_allclose(float(model.bic(y)), ref.bic(x, [25] * 4), rtol=1e-10)
    assert model.num_parameters() == 2 + 6 + 12
    g = torch.Generator().manual_seed(5)
    means, var = torch.randn(3, 2, generator=g, dtype=F64), torch.rand(3, 2, generator=g, dtype=F64) + 0.5
    gauss = HMM(model.init_logits, model.trans_logits, D.Independent(D.Normal(means, var.sqrt()), 1))
    yg = gauss.sample((2,), 30, generator=g)[1]
    for kind in ("diag", "spherical"):
        ref = hmmlearn.GaussianHMM(3, covariance_type=kind)
        ref.startprob_, ref.transmat_, ref.means_ = (
            model.log_init.exp().numpy(),
            model.log_trans.exp().numpy(),
            means.numpy(),
        )
        ref.covars_ = var.numpy() if kind == "diag" else var[:, 0].numpy()
        ref.n_features = 2
        assert gauss.num_parameters(kind) == sum(ref._get_n_fit_scalars_per_param().values())
    ref.covars_ = var.numpy()
    ref.covariance_type = "diag"
    np.testing.assert_allclose(float(gauss.bic(yg)), ref.bic(yg.reshape(-1, 2).numpy(), [30, 30]), rtol=1e-10)
    assert cat_hmm(final=True).num_parameters() == 2 + 9 + 9


def test_stationary_distribution_matches_hmmlearn():
    import hmmlearn.hmm as hmmlearn

    model = cat_hmm(k=4, seed=6)
    pi = model.stationary_distribution()
    torch.testing.assert_close(pi @ model.log_trans.exp(), pi)
    ref = hmmlearn.CategoricalHMM(4)
    ref.transmat_ = model.log_trans.exp().numpy()
    np.testing.assert_allclose(pi.numpy(), ref.get_stationary_distribution(), atol=1e-10)
    batch = HMM(torch.zeros(2, 4), torch.randn(2, 1, 4, 4), D.Categorical(logits=torch.zeros(4, 3)))
    assert batch.stationary_distribution().shape == (2, 4)
    with pytest.raises(ValueError, match="^trans_logits: "):
        HMM(
            torch.zeros(2), torch.zeros(5, 2, 2), D.Categorical(logits=torch.zeros(2, 3))
        ).stationary_distribution()
