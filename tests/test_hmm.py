"""HMM exactness: brute-force enumeration over every state sequence, hmmlearn on identical parameters,
ragged lengths, float32 stability at T = 100,000, Baum-Welch against hmmlearn, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.distributions as D
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from latentvar import HMM

F64 = torch.float64


def random_categorical_hmm(k=3, v=4, dtype=F64, seed=0) -> HMM:
    g = torch.Generator().manual_seed(seed)
    return HMM(
        torch.randn(k, generator=g, dtype=dtype),
        torch.randn(k, k, generator=g, dtype=dtype) * 1.5,
        D.Categorical(logits=torch.randn(k, v, generator=g, dtype=dtype) * 1.5),
    )


def random_gaussian_hmm(k=3, dtype=F64, seed=0) -> HMM:
    g = torch.Generator().manual_seed(seed)
    return HMM(
        torch.randn(k, generator=g, dtype=dtype),
        torch.randn(k, k, generator=g, dtype=dtype),
        D.Normal(torch.randn(k, generator=g, dtype=dtype) * 2, torch.rand(k, generator=g, dtype=dtype) + 0.5),
    )


def enumerate_states(model: HMM, y: torch.Tensor):
    """Every state sequence of one sequence y (t,) with its log P(z, y): (k^t, t), (k^t,)."""
    t = y.shape[0]
    zs = torch.tensor(list(itertools.product(range(model.num_states), repeat=t)), dtype=torch.long)
    zs = zs.reshape(-1, t)
    return zs, model.log_joint(zs, y.unsqueeze(0).expand(zs.shape[0], *y.shape))


def brute_marginals(zs, log_joint, k):
    w = (log_joint - torch.logsumexp(log_joint, 0)).exp()
    return torch.stack([torch.zeros(k, dtype=w.dtype).index_add_(0, zs[:, s], w) for s in range(zs.shape[1])])


# -- brute force ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["categorical", "gaussian"])
@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_log_prob_marginals_mode_match_enumeration(family, method):
    model = random_categorical_hmm() if family == "categorical" else random_gaussian_hmm()
    y = model.sample((3,), 6)[1]
    lengths = torch.tensor([6, 4, 1])
    post = model.posterior(y, lengths, method=method)
    lp = model.log_prob(y, lengths, method=method)
    for b in range(3):
        n = int(lengths[b])
        zs, lj = enumerate_states(model, y[b, :n])
        torch.testing.assert_close(lp[b], torch.logsumexp(lj, 0))
        torch.testing.assert_close(post.marginals[b, :n], brute_marginals(zs, lj, model.num_states))
        assert post.mode[b, :n].tolist() == zs[lj.argmax()].tolist()
        assert (post.mode[b, n:] == -1).all() and (post.marginals[b, n:] == 0).all()
        # log P(z | y) of every sequence
        z_full = torch.cat([zs, torch.zeros(zs.shape[0], 6 - n, dtype=torch.long)], 1)
        z_batch = post.mode.unsqueeze(0).repeat(zs.shape[0], 1, 1)
        z_batch[:, b] = z_full
        torch.testing.assert_close(post.log_prob(z_batch)[:, b], lj - torch.logsumexp(lj, 0))


def test_marginals_forward_backward_equal_autograd():
    model = random_categorical_hmm(k=4, v=5, seed=3)
    y = model.sample((4,), 9)[1]
    lengths = torch.tensor([9, 0, 1, 5])
    for method in ("sequential", "parallel"):
        post = model.posterior(y, lengths, method=method)
        torch.testing.assert_close(post.marginals, post.marginals_autograd)


def test_posterior_samples_match_enumeration_chi_square():
    model = random_categorical_hmm(k=2, v=3, seed=1)
    y = torch.tensor([[0, 2, 1, 1]])
    zs, lj = enumerate_states(model, y[0])
    probs = (lj - torch.logsumexp(lj, 0)).exp().numpy()
    torch.manual_seed(123)
    draws = model.posterior(y).sample((20000,))[:, 0]  # (n, t)
    codes = (draws * torch.tensor([8, 4, 2, 1])).sum(-1)  # zs are in lexicographic order
    observed = np.bincount(codes.numpy(), minlength=16)
    assert stats.chisquare(observed, probs * observed.sum()).pvalue > 1e-3


def test_prior_samples_match_enumeration_chi_square():
    model = random_categorical_hmm(k=2, v=2, seed=2)
    z, y = model.sample((20000,), 3)
    # P(z, y) of every (z, y) pair
    zs = torch.tensor(list(itertools.product(range(2), repeat=3)))
    pairs = [(a, b) for a in zs for b in zs]
    probs = torch.stack([model.log_joint(a[None], b[None])[0] for a, b in pairs]).exp().numpy()
    code = ((z * torch.tensor([4, 2, 1])).sum(-1) * 8 + (y * torch.tensor([4, 2, 1])).sum(-1)).numpy()
    observed = np.bincount(code, minlength=64)
    assert abs(probs.sum() - 1) < 1e-9
    assert stats.chisquare(observed, probs * observed.sum()).pvalue > 1e-3


def test_length_zero_and_one():
    model = random_gaussian_hmm()
    y = torch.randn(3, 4, dtype=F64)
    lengths = torch.tensor([0, 1, 4])
    lp = model.log_prob(y, lengths)
    assert lp[0] == 0
    torch.testing.assert_close(
        lp[1], torch.logsumexp(model.log_init + model.emission.log_prob(y[1, :1, None])[0], 0)
    )
    assert model.log_prob(torch.zeros(2, 0, dtype=F64)).tolist() == [0.0, 0.0]
    post = model.posterior(y, lengths)
    assert post.mode[0].tolist() == [-1] * 4 and post.sample((2,))[:, 0].eq(-1).all()


# -- hmmlearn ---------------------------------------------------------------------------------------


def _hmmlearn_params(model: HMM, ref):
    ref.startprob_ = model.log_init.exp().numpy()
    ref.transmat_ = model.log_trans.exp().numpy()


def test_agrees_with_hmmlearn_categorical():
    import hmmlearn.hmm as hmmlearn

    model = random_categorical_hmm(k=4, v=6, seed=5)
    y = model.sample((5,), 30)[1]
    lengths = torch.tensor([30, 12, 1, 25, 7])
    ref = hmmlearn.CategoricalHMM(n_components=4)
    _hmmlearn_params(model, ref)
    ref.emissionprob_ = model.emission.probs.numpy()
    ref.n_features = 6
    post = model.posterior(y, lengths)
    for b in range(5):
        n = int(lengths[b])
        x = y[b, :n].numpy().reshape(-1, 1)
        np.testing.assert_allclose(
            float(model.log_prob(y[b : b + 1], lengths[b : b + 1])), ref.score(x), rtol=1e-10
        )
        np.testing.assert_allclose(post.marginals[b, :n].numpy(), ref.predict_proba(x), atol=1e-10)
        logp, path = ref.decode(x, algorithm="viterbi")
        assert post.mode[b, :n].tolist() == path.tolist()
    # batched score over concatenated sequences equals the sum
    concat = np.concatenate([y[b, : int(lengths[b])].numpy() for b in range(5)]).reshape(-1, 1)
    np.testing.assert_allclose(
        float(model.log_prob(y, lengths).sum()), ref.score(concat, lengths.numpy()), rtol=1e-10
    )


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_agrees_with_hmmlearn_gaussian(covariance):
    import hmmlearn.hmm as hmmlearn

    g = torch.Generator().manual_seed(7)
    k, d = 3, 2
    means = torch.randn(k, d, generator=g, dtype=F64) * 2
    if covariance == "diag":
        var = torch.rand(k, d, generator=g, dtype=F64) + 0.3
        emission = D.Independent(D.Normal(means, var.sqrt()), 1)
    else:
        a = torch.randn(k, d, d, generator=g, dtype=F64)
        cov = a @ a.transpose(-1, -2) + 0.5 * torch.eye(d, dtype=F64)
        emission = D.MultivariateNormal(means, covariance_matrix=cov)
    model = HMM(torch.randn(k, generator=g, dtype=F64), torch.randn(k, k, generator=g, dtype=F64), emission)
    y = model.sample((1,), 40)[1]
    ref = hmmlearn.GaussianHMM(n_components=k, covariance_type=covariance)
    _hmmlearn_params(model, ref)
    ref.means_ = means.numpy()
    ref.covars_ = (var if covariance == "diag" else cov).numpy()
    x = y[0].numpy()
    post = model.posterior(y)
    np.testing.assert_allclose(float(model.log_prob(y)[0]), ref.score(x), rtol=1e-10)
    np.testing.assert_allclose(post.marginals[0].numpy(), ref.predict_proba(x), atol=1e-9)
    assert post.mode[0].tolist() == ref.decode(x)[1].tolist()


# -- ragged lengths, dtype, stability ---------------------------------------------------------------


def test_padding_never_changes_results():
    model = random_categorical_hmm(k=3, v=5, seed=4)
    y = model.sample((4,), 10)[1]
    lengths = torch.tensor([10, 3, 7, 0])
    post = model.posterior(y, lengths)
    garbage = y.clone()
    mask = torch.arange(10) >= lengths[:, None]
    garbage[mask] = 4
    post2 = model.posterior(garbage, lengths)
    torch.testing.assert_close(model.log_prob(garbage, lengths), model.log_prob(y, lengths))
    torch.testing.assert_close(post.marginals, post2.marginals)
    assert torch.equal(post.mode, post2.mode)
    for b in range(4):  # each sequence alone, unpadded
        n = int(lengths[b])
        alone = model.log_prob(y[b : b + 1, :n])
        torch.testing.assert_close(model.log_prob(y, lengths)[b : b + 1], alone)
    padded_wider = torch.cat([y, torch.full((4, 5), -1)], 1)  # out-of-support padding is ignored
    torch.testing.assert_close(model.log_prob(padded_wider, lengths), model.log_prob(y, lengths))
    chunked = model.log_prob(y, lengths, chunk=3)
    torch.testing.assert_close(chunked, model.log_prob(y, lengths))


def test_float32_long_sequence_peaked_matches_float64():
    """T = 100,000 with near-deterministic transitions and emissions: float32 stays within 1e-5 relative of
    float64 (log P ~ -1e5), and the parallel scan agrees with the sequential recursion."""
    k, v, T = 4, 6, 100_000
    g = torch.Generator().manual_seed(0)
    trans = torch.full((k, k), -30.0, dtype=F64)
    trans.diagonal().fill_(0.0)
    trans[0, 1] = -8.0
    emit = torch.randn(k, v, generator=g, dtype=F64) * 10
    emit[:, 0] = -60.0  # near-impossible symbol
    model64 = HMM(torch.zeros(k, dtype=F64), trans, D.Categorical(logits=emit))
    y = torch.randint(v, (1, T), generator=g)
    y[0, 500] = 0
    model32 = HMM(torch.zeros(k), trans.float(), D.Categorical(logits=emit.float()))
    lp64 = model64.log_prob(y, method="parallel")
    lp32 = model32.log_prob(y)
    assert lp32.dtype == torch.float32 and lp64.dtype == F64
    assert torch.isfinite(lp32).all()
    np.testing.assert_allclose(float(lp32), float(lp64), rtol=1e-6)
    np.testing.assert_allclose(float(model32.log_prob(y, method="parallel")), float(lp64), rtol=1e-6)
    post32, post64 = model32.posterior(y, method="parallel"), model64.posterior(y, method="parallel")
    assert torch.isfinite(post32.marginals).all()
    torch.testing.assert_close(post32.marginals.double(), post64.marginals, atol=1e-3, rtol=0)
    assert (post32.mode != post64.mode).float().mean() < 1e-3


def test_tiny_probabilities_on_both_sides_do_not_underflow():
    # the only path runs through an e^-200 transition after an e^-200 state: the shifted matmul underflows
    log_trans = torch.tensor([[0.0, -200.0], [-200.0, 0.0]])
    model = HMM(
        torch.tensor([0.0, -200.0]), log_trans, D.Categorical(logits=torch.tensor([[0.0, -1e4], [-1e4, 0.0]]))
    )
    y = torch.tensor([[0, 1]])
    ref = HMM(
        model.init_logits.double(), log_trans.double(), D.Categorical(logits=model.emission.logits.double())
    )
    lp = model.log_prob(y)
    assert torch.isfinite(lp).all()
    np.testing.assert_allclose(float(lp), float(ref.log_prob(y)), rtol=1e-6)


def test_compiled_kernels_flag_underflow_and_fall_back_to_log_space():
    # float64 this time: the only path needs an e^-700 transition, below what the scaled kernels trust
    # (their normaliser falls under TINY), so the exact log-space recursion must answer
    log_trans = torch.tensor([[0.0, -700.0], [-700.0, 0.0]], dtype=F64)
    emission = D.Categorical(logits=torch.tensor([[0.0, -1e4], [-1e4, 0.0]], dtype=F64))
    model = HMM(torch.tensor([0.0, -700.0], dtype=F64), log_trans, emission)
    y = torch.tensor([[0, 1], [0, 0]])
    exact = torch.logsumexp(enumerate_states(model, y[0])[1], 0)
    assert -710 < float(exact) < -690
    lp = model.log_prob(y)
    torch.testing.assert_close(lp[0], exact)
    post = model.posterior(y)
    torch.testing.assert_close(post.log_partition, lp)
    with pytest.warns(DeprecationWarning, match=r"^HMMPosterior\.log_evidence is deprecated"):
        torch.testing.assert_close(post.log_evidence, lp)  # the old name, kept as an alias
    torch.testing.assert_close(post.marginals[0], torch.eye(2, dtype=F64))
    assert post.mode.tolist() == [[0, 1], [0, 0]]


def test_compiled_gradient_equals_log_space_autograd():
    """The compiled log-partition's backward (expected counts weighted per sequence) against autograd of
    the log-space recursion, for log π, log A and the emissions, with ragged and empty sequences."""
    from latentvar.inference import Chain

    model = random_gaussian_hmm(k=4, seed=5)
    y = torch.randn(5, 11, dtype=F64)
    lengths = torch.tensor([11, 0, 1, 7, 11])
    weights = torch.tensor([0.5, 2.0, -1.0, 3.0, 1.5], dtype=F64)
    grads = []
    for fast in (True, False):
        fn = lambda *a, fast=fast: Chain(*a, fast=fast).log_partition()  # noqa: E731
        li = model.log_init.detach().requires_grad_(True)
        lt = model.log_trans.detach().requires_grad_(True)
        e = model.emission_log_prob(y).detach().requires_grad_(True)
        total = fn(li, lt, e, lengths)
        grads.append((total, *torch.autograd.grad((weights * total).sum(), (li, lt, e))))
    for ours, ref in zip(*grads, strict=True):
        torch.testing.assert_close(ours, ref)


def test_parallel_viterbi_is_one_best_path_under_ties():
    """Many state sequences of this model tie (equal emission rows, transitions in powers of two): the
    max-semiring gradient must still pick one consistent path. With an evenly split gradient at ties
    (amax) the per-step argmax blended co-optimal paths into one scoring 4 nats below the optimum."""
    trans = torch.tensor([[0.25, 0.5, 0.25], [0.5, 0.25, 0.25], [0.25, 0.5, 0.25]], dtype=F64)
    emit = torch.tensor([[2 / 3, 1 / 3]] * 3, dtype=F64)
    model = HMM(torch.zeros(3, dtype=F64), trans.log(), D.Categorical(probs=emit))
    y = torch.tensor([[1, 0, 1, 1, 1, 0, 1, 0]])
    best = enumerate_states(model, y[0])[1].max().reshape(1)
    for method in ("parallel", "sequential"):
        torch.testing.assert_close(model.log_joint(model.posterior(y, method=method).mode, y), best)


def test_compiled_kernels_on_several_threads_equal_one_thread():
    from latentvar.inference._compiled import forward_backward

    model = random_categorical_hmm(k=4, v=5, seed=6)
    y = model.sample((7,), 25)[1]
    lengths = torch.tensor([25, 3, 0, 25, 12, 1, 20])
    e = model.emission_log_prob(y)
    before = torch.get_num_threads()

    def run():
        post = model.posterior(y, lengths)
        counts = forward_backward(model.log_init, model.log_trans, e, lengths)
        return (model.log_prob(y, lengths), post.marginals, post.mode, *counts)

    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(3)
        three = run()
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, three, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


def test_viterbi_ties_go_to_the_lowest_state_like_the_torch_recursion():
    from latentvar.inference import Chain

    model = HMM(
        torch.zeros(3, dtype=F64),
        torch.zeros(3, 3, dtype=F64),
        D.Categorical(logits=torch.zeros(3, 2, dtype=F64)),
    )
    y = torch.zeros(2, 5, dtype=torch.long)
    lengths = torch.tensor([5, 3])
    assert model.posterior(y, lengths).mode.tolist() == [[0] * 5, [0, 0, 0, -1, -1]]
    rnd = random_categorical_hmm(k=5, v=3, seed=8)
    y = rnd.sample((6,), 30)[1]
    lengths = torch.tensor([30, 29, 1, 0, 17, 30])
    e = rnd.emission_log_prob(y)
    args = (rnd.log_init, rnd.log_trans, e, lengths)
    assert torch.equal(Chain(*args).viterbi, Chain(*args, fast=False).viterbi)


def test_parallel_equals_sequential_ragged():
    model = random_gaussian_hmm(k=3, seed=9)
    y = torch.randn(5, 37, dtype=F64)
    lengths = torch.tensor([37, 36, 1, 0, 20])
    torch.testing.assert_close(model.log_prob(y, lengths, method="parallel"), model.log_prob(y, lengths))
    seq, par = model.posterior(y, lengths), model.posterior(y, lengths, method="parallel")
    assert torch.equal(seq.mode, par.mode)
    torch.testing.assert_close(seq.marginals_autograd, par.marginals_autograd)


# -- fitting -----------------------------------------------------------------------------------------


def test_baum_welch_monotone_and_matches_hmmlearn():
    import hmmlearn.hmm as hmmlearn

    truth = random_categorical_hmm(k=3, v=5, seed=11)
    y = truth.sample((20,), 40)[1]
    lengths = torch.randint(5, 41, (20,))
    start = random_categorical_hmm(k=3, v=5, seed=12)
    result = start.fit(y, lengths, max_iter=8, tol=-1.0, batch_size=7)
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(result.history))
    ref = hmmlearn.CategoricalHMM(n_components=3, n_iter=8, tol=-1.0, init_params="", params="ste")
    _hmmlearn_params(start, ref)
    ref.emissionprob_ = start.emission.probs.numpy()
    ref.n_features = 5
    x = np.concatenate([y[b, : int(lengths[b])].numpy() for b in range(20)]).reshape(-1, 1)
    ref.fit(x, lengths.numpy())
    n_obs = int(lengths.sum())
    np.testing.assert_allclose(np.array(result.history), np.array(ref.monitor_.history) / n_obs, rtol=1e-9)
    np.testing.assert_allclose(result.model.log_trans.exp().numpy(), ref.transmat_, atol=1e-9)
    np.testing.assert_allclose(result.model.emission.probs.numpy(), ref.emissionprob_, atol=1e-9)
    np.testing.assert_allclose(result.model.log_init.exp().numpy(), ref.startprob_, atol=1e-9)


def test_baum_welch_gaussian_monotone():
    truth = random_gaussian_hmm(k=2, seed=3)
    y = truth.sample((10,), 50)[1]
    start = random_gaussian_hmm(k=2, seed=4)
    result = start.fit(y, max_iter=20, tol=-1.0)
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(result.history))
    assert result.history[-1] > result.history[0]


def test_gradient_fit_increases_exact_marginal():
    truth = random_categorical_hmm(k=3, v=5, seed=21)
    y = truth.sample((30,), 20)[1]
    start = random_categorical_hmm(k=3, v=5, seed=22)
    before = float(start.log_prob(y).mean())
    result = start.fit(y, method="gradient", max_iter=30, lr=0.05, batch_size=10)
    assert float(result.model.log_prob(y).mean()) > before + 0.5


def test_gradient_fit_with_module_emission():
    class Table(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = torch.nn.Parameter(torch.zeros(3, 5))

        def forward(self, y):
            return torch.log_softmax(self.logits, -1).T[y]

    truth = random_categorical_hmm(k=3, v=5, seed=31, dtype=torch.float32)
    y = truth.sample((30,), 20)[1]
    table = Table()
    model = HMM(torch.zeros(3), torch.randn(3, 3), table)
    before = float(model.log_prob(y).mean().detach())
    result = model.fit(y, method="gradient", max_iter=20, lr=0.1)
    assert float(result.model.log_prob(y).mean().detach()) > before + 0.3
    assert result.model.emission is table


# -- shapes (hypothesis) -----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 4),
    b=st.integers(1, 3),
    t=st.integers(0, 6),
    n=st.integers(1, 3),
    data=st.data(),
)
def test_shapes(k, b, t, n, data):
    model = random_categorical_hmm(k=k, v=3, seed=k)
    y = torch.randint(3, (b, t))
    lengths = torch.tensor(data.draw(st.lists(st.integers(0, t), min_size=b, max_size=b)), dtype=torch.long)
    assert model.log_prob(y, lengths).shape == (b,)
    post = model.posterior(y, lengths)
    assert post.marginals.shape == (b, t, k)
    assert post.mode.shape == (b, t)
    s = post.sample((n,))
    assert s.shape == (n, b, t)
    assert post.log_prob(s).shape == (n, b)
    assert torch.isfinite(post.log_prob(s)).all()
    z, yy = model.sample((n, 2), t)
    assert z.shape == (n, 2, t) and yy.shape == (n, 2, t)
    valid = torch.arange(t) < lengths[:, None]
    torch.testing.assert_close(post.marginals.sum(-1), valid.to(F64))


# -- bad input ---------------------------------------------------------------------------------------


def test_bad_input_raises_value_error_naming_argument():
    model = random_categorical_hmm(k=3, v=4)
    y = torch.randint(4, (2, 5))
    with pytest.raises(ValueError, match=r"^trans_logits: "):
        HMM(torch.zeros(3), torch.zeros(4, 4), D.Categorical(logits=torch.zeros(3, 4)))
    with pytest.raises(ValueError, match=r"^emission: "):
        HMM(torch.zeros(3), torch.zeros(3, 3), D.Categorical(logits=torch.zeros(2, 4)))
    with pytest.raises(ValueError, match=r"^init_logits: "):
        HMM(torch.tensor([0.0, float("nan")]), torch.zeros(2, 2), D.Normal(torch.zeros(2), 1.0))
    with pytest.raises(ValueError, match=r"^lengths: "):
        model.log_prob(y, torch.tensor([5, 6]))
    with pytest.raises(ValueError, match=r"^lengths: "):
        model.log_prob(y, torch.tensor([-1, 2]))
    with pytest.raises(ValueError, match=r"^lengths: "):
        model.log_prob(y, torch.tensor([5]))
    with pytest.raises(ValueError, match=r"^y: "):
        model.log_prob(torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match=r"^y: "):
        model.log_prob(torch.tensor([[0.5, 1.0]]))
    gauss = random_gaussian_hmm()
    with pytest.raises(ValueError, match=r"^y: "):
        gauss.log_prob(torch.tensor([[0.0, float("nan")]], dtype=F64))
    assert torch.isfinite(
        gauss.log_prob(torch.tensor([[0.0, float("nan")]], dtype=F64), torch.tensor([1]))
    ).all()
    with pytest.raises(ValueError, match=r"^method: "):
        model.log_prob(y, method="magic")
    with pytest.raises(ValueError, match=r"^z: "):
        model.posterior(y).log_prob(torch.full((2, 5), 3))
    with pytest.raises(ValueError, match=r"^emission: "):
        model.fit(y, method="em") if False else HMM(
            torch.zeros(2), torch.zeros(2, 2), D.Gamma(torch.ones(2), 1.0)
        ).fit(torch.ones(1, 3))


# -- the EM layer shared with the mixture ------------------------------------------------------------


@pytest.mark.parametrize(
    "dist",
    [
        D.Normal(torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)),
        D.Independent(D.Normal(torch.zeros(3, 2, dtype=F64), torch.ones(3, 2, dtype=F64)), 1),
        D.MultivariateNormal(torch.zeros(3, 2, dtype=F64), torch.eye(2, dtype=F64).expand(3, 2, 2)),
        D.Categorical(logits=torch.zeros(3, 4, dtype=F64)),
        D.Independent(D.Categorical(logits=torch.zeros(3, 2, 4, dtype=F64)), 1),
    ],
)
def test_sufficient_statistics_streamed_equal_one_batch_and_weighted_moments(dist):
    """Summaries accumulated over batches give the M-step of one batch, which is the responsibility-weighted
    mean and (co)variance (or the normalised weighted counts) computed directly."""
    from latentvar.mixture import SufficientStatistics

    g = torch.Generator().manual_seed(0)
    n = 50
    event = dist.event_shape
    if isinstance((dist.base_dist if isinstance(dist, D.Independent) else dist), D.Categorical):
        y = torch.randint(4, (n, *event), generator=g)
    else:
        y = torch.randn(n, *event, generator=g, dtype=F64) * 3 + 100  # a large mean: shifted statistics
    resp = torch.rand(n, 3, generator=g, dtype=F64).softmax(-1)
    whole, parts = SufficientStatistics(dist), SufficientStatistics(dist)
    whole.summarize(y, resp)
    for idx in torch.arange(n).split(13):
        parts.summarize(y[idx], resp[idx])
    (a, nk_a), (b, nk_b) = whole.from_summaries(reg_covar=0.0), parts.from_summaries(reg_covar=0.0)
    torch.testing.assert_close(nk_a, nk_b)
    base = lambda d: d.base_dist if isinstance(d, D.Independent) else d  # noqa: E731
    for x, y_ in ((base(a), base(b)),):
        for name in ("probs",) if isinstance(x, D.Categorical) else ("mean", "variance"):
            torch.testing.assert_close(getattr(x, name), getattr(y_, name))
    w = resp / resp.sum(0)
    if isinstance(a, D.Categorical) or isinstance(getattr(a, "base_dist", None), D.Categorical):
        onehot = torch.nn.functional.one_hot(y, 4).to(F64)
        want = torch.einsum("nk,n...v->k...v", w, onehot)
        got = a.probs if isinstance(a, D.Categorical) else a.base_dist.probs
        torch.testing.assert_close(got, want)
        return
    yy = y if event else y[:, None]
    mean = w.T @ yy
    torch.testing.assert_close(a.mean.reshape(mean.shape), mean)
    diff = yy[None] - mean[:, None]  # (k, n, d)
    cov = torch.einsum("nk,knd,kne->kde", w, diff, diff)
    if isinstance(a, D.MultivariateNormal):
        torch.testing.assert_close(a.covariance_matrix, cov)
    else:
        torch.testing.assert_close(a.variance.reshape(3, -1), cov.diagonal(dim1=-2, dim2=-1))


def test_fit_iteration_hook_runs_every_iteration_and_can_stop():
    from latentvar import Mixture

    model = random_categorical_hmm(k=2, v=3, seed=11)
    y = model.sample((20,), 8)[1]
    seen = []
    result = model.fit(
        y, max_iter=10, tol=-math.inf, callback=lambda m, it, ll: seen.append((it, ll)) or it == 3
    )
    assert [it for it, _ in seen] == [1, 2, 3] and result.n_iter == 3 and not result.converged
    assert [ll for _, ll in seen] == result.history
    mix = Mixture(
        torch.zeros(2, dtype=F64), D.Normal(torch.tensor([-1.0, 1.0], dtype=F64), torch.ones(2, dtype=F64))
    )
    calls = []
    fit = mix.fit(
        torch.randn(100, dtype=F64),
        max_iter=50,
        tol=-1.0,
        callback=lambda m, it, ll: calls.append(it) or it == 2,
    )
    assert calls == [1, 2] and fit.n_iter == 2
