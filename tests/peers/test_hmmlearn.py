"""hmmlearn's test suite, ported: hmmlearn/hmmlearn src/hmmlearn/tests/ (test_base.py,
test_categorical_hmm.py, test_gaussian_hmm.py, test_poisson_hmm.py, test_multinomial_hmm.py,
test_gmm_hmm_new.py). Each test names the hmmlearn test it ports; the expected numbers (the Wikipedia
examples) and tolerances are hmmlearn's. hmmlearn's StubHMM (fixed per-frame likelihoods) is an
`nn.Module` emission returning those log-likelihoods. Every case runs (the features it once lacked landed in
issue 21). The hmmlearn package itself is not used.
"""

import numpy as np
import pytest
import torch
import torch.distributions as D
from sklearn.datasets import make_spd_matrix
from torch import nn

from latentvar import HMM

DT = torch.float64


class FixedFrames(nn.Module):
    """hmmlearn's StubHMM: the per-frame log-likelihoods are given, whatever y holds (y: (b, t) indices)."""

    def __init__(self, log_frameprob):
        super().__init__()
        self.log_frameprob = torch.as_tensor(log_frameprob, dtype=DT)

    def forward(self, y):
        return self.log_frameprob[y]


def stub(startprob, transmat, frameprob):
    frames = torch.as_tensor(np.log(frameprob), dtype=DT)
    model = HMM(
        torch.tensor(startprob, dtype=DT).log(), torch.tensor(transmat, dtype=DT).log(), FixedFrames(frames)
    )
    return model, torch.arange(len(frameprob))[None]  # y: the frame indices, one sequence


# --- test_base.py TestBaseAgainstWikipedia (en.wikipedia.org/wiki/Forward-backward_algorithm) --------------

WIKI_FRAMES = np.asarray([[0.9, 0.2], [0.9, 0.2], [0.1, 0.8], [0.9, 0.2], [0.9, 0.2]])
WIKI = ([0.5, 0.5], [[0.7, 0.3], [0.3, 0.7]], WIKI_FRAMES)


def test_base_wikipedia_forward_log_prob():
    """test_base.py TestBaseAgainstWikipedia.test_do_forward_pass / test_do_forward_scaling_pass: log P(y)
    rounds to -3.3725."""
    model, y = stub(*WIKI)
    assert round(float(model.log_prob(y)[0]), 4) == -3.3725


def test_base_wikipedia_forward_lattice():
    """test_base.py TestBaseAgainstWikipedia.test_do_forward_pass: the forward lattice α_t (not the
    log-partition). hmmlearn compares with assert_allclose(..., 4), i.e. rtol = 4, which checks nothing;
    tightened here to atol 5e-5 (the table's 4 printed digits). latentvar: ``posterior.forward`` (log α)."""
    model, y = stub(*WIKI)
    ref = np.array([[0.4500, 0.1000], [0.3105, 0.0410], [0.0230, 0.0975], [0.0408, 0.0150], [0.0298, 0.0046]])
    np.testing.assert_allclose(model.posterior(y).forward[0].exp().numpy(), ref, rtol=0, atol=5e-5)


def test_base_wikipedia_backward_lattice():
    """test_base.py TestBaseAgainstWikipedia.test_do_backward_log_pass / test_do_backward_scaling_pass: the
    backward lattice β_t (rtol = 4 in hmmlearn, which checks nothing; atol 5e-5 here), as
    ``posterior.backward`` (log β)."""
    model, y = stub(*WIKI)
    ref = np.array([[0.0661, 0.0455], [0.0906, 0.1503], [0.4593, 0.2437], [0.6900, 0.4100], [1.0, 1.0]])
    np.testing.assert_allclose(model.posterior(y).backward[0].exp().numpy(), ref, rtol=0, atol=5e-5)


def test_base_wikipedia_viterbi():
    """test_base.py TestBaseAgainstWikipedia.test_do_viterbi_pass: path [0, 0, 1, 0, 0], log-probability
    rounding to -4.4590."""
    model, y = stub(*WIKI)
    path = model.posterior(y).mode
    assert path[0].tolist() == [0, 0, 1, 0, 0]
    assert round(float(model.log_joint(path, y)[0]), 4) == -4.4590


def test_base_wikipedia_score_samples():
    """test_base.py TestBaseAgainstWikipedia.test_score_samples: log P(y) -3.3725 and the posteriors,
    atol 1e-4; rows sum to 1."""
    model, y = stub(*WIKI)
    post = model.posterior(y)
    ref = np.array([[0.8673, 0.1327], [0.8204, 0.1796], [0.3075, 0.6925], [0.8204, 0.1796], [0.8673, 0.1327]])
    assert round(float(post.log_partition[0]), 4) == -3.3725
    np.testing.assert_allclose(post.marginals[0].numpy(), ref, atol=1e-4)
    np.testing.assert_allclose(post.marginals[0].sum(-1).numpy(), np.ones(5))


def test_base_generate_samples_from_a_current_state():
    """test_base.py TestBaseAgainstWikipedia.test_generate_samples: sampling continued from the last state
    of a first draw starts there. latentvar has no ``currstate``: the continuation is an HMM whose initial
    distribution is that state, which expresses the same thing."""
    model = HMM(torch.tensor([0.5, 0.5], dtype=DT).log(), torch.tensor(WIKI[1], dtype=DT).log(),
                D.Categorical(probs=torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=DT)))  # fmt: skip
    z0, _ = model.sample((1,), length=10)
    start = torch.full((2,), float("-inf"), dtype=DT)
    start[z0[0, -1]] = 0.0
    z, _ = HMM(start, model.trans_logits, model.emission).sample((1,), length=10)
    assert z0.shape == z.shape == (1, 10) and z[0, 0] == z0[0, -1]


def test_base_consistent_with_gmm():
    """test_base.py TestBaseConsistentWithGMM.test_score_samples / test_decode: with uniform start and
    transitions an HMM's posteriors are the frame-wise normalised likelihoods (a mixture's), and the
    Viterbi path their argmax (8 states, 10 frames; assert_allclose's default rtol 1e-7)."""
    frames = np.random.RandomState(0).random_sample((10, 8))
    model, y = stub(np.ones(8) / 8, np.ones((8, 8)) / 8, frames)
    post = model.posterior(y)
    gmm = frames / frames.sum(1, keepdims=True)
    np.testing.assert_allclose(post.marginals[0].numpy(), gmm, rtol=1e-7)
    np.testing.assert_allclose(post.mode[0].numpy(), gmm.argmax(1))


@pytest.mark.parametrize("bad", [[], np.zeros((18, 2))])
def test_base_hmm_attributes(bad):
    """test_base.py test_base_hmm_attributes: start probabilities or transitions of the wrong shape are
    refused (hmmlearn also refuses unnormalised ones; latentvar takes logits, which need no normalising;
    and a (18, 2) start is a batch of 18 two-state models by broadcasting, so only [] is a bad start)."""
    emission = D.Categorical(logits=torch.zeros(20, 3, dtype=DT))
    if len(bad) == 0:
        with pytest.raises(ValueError, match="^init_logits:"):
            HMM(torch.as_tensor(bad, dtype=DT), torch.zeros(20, 20, dtype=DT), emission)
    with pytest.raises(ValueError, match="^trans_logits:"):
        HMM(torch.zeros(20, dtype=DT), torch.as_tensor(bad, dtype=DT), emission)


def test_stationary_distribution():
    """test_base.py test_stationary_distribution: π A = π for a random 10-state transition matrix."""
    rng = np.random.RandomState(0)
    trans = rng.random_sample((10, 10))
    trans /= trans.sum(1, keepdims=True)
    model = HMM(
        torch.zeros(10, dtype=DT),
        torch.tensor(trans).log(),
        D.Categorical(logits=torch.zeros(10, 2, dtype=DT)),
    )
    pi = model.stationary_distribution()
    np.testing.assert_allclose((pi @ torch.tensor(trans)).numpy(), pi.numpy())


# --- test_categorical_hmm.py ---------------------------------------------------------------------------


def wiki_categorical():
    """Rainy / Sunny with walk / shop / clean (en.wikipedia.org/wiki/Hidden_Markov_model)."""
    return HMM(
        torch.tensor([0.6, 0.4], dtype=DT).log(),
        torch.tensor([[0.7, 0.3], [0.4, 0.6]], dtype=DT).log(),
        D.Categorical(probs=torch.tensor([[0.1, 0.4, 0.5], [0.6, 0.3, 0.1]], dtype=DT)),
    )


def test_categorical_wikipedia_decode_viterbi():
    """test_categorical_hmm.py TestCategoricalAgainstWikipedia.test_decode_viterbi: walk, shop, clean ->
    Sunny, Rainy, Rainy with probability 0.01344 (rounded to 5 places)."""
    model, y = wiki_categorical(), torch.tensor([[0, 1, 2]])
    path = model.posterior(y).mode
    assert path[0].tolist() == [1, 0, 0]
    assert round(float(model.log_joint(path, y)[0].exp()), 5) == 0.01344


def test_categorical_wikipedia_decode_map_and_predict():
    """test_categorical_hmm.py TestCategoricalAgainstWikipedia.test_decode_map / test_predict: the
    posterior-argmax path [1, 0, 0] and the posteriors, atol 1e-6."""
    post = wiki_categorical().posterior(torch.tensor([[0, 1, 2]]))
    assert post.marginals[0].argmax(-1).tolist() == [1, 0, 0]
    ref = [[0.23170303, 0.76829697], [0.62406281, 0.37593719], [0.86397706, 0.13602294]]
    np.testing.assert_allclose(post.marginals[0].numpy(), ref, rtol=0, atol=1e-6)


def test_categorical_score_samples_and_sample():
    """test_categorical_hmm.py TestCategoricalHMM.test_score_samples / test_sample: posteriors of 20 random
    symbols sum to 1; 1000 samples use all 3 symbols."""
    model = wiki_categorical()
    y = torch.as_tensor(np.random.RandomState(0).randint(3, size=(1, 20)))
    post = model.posterior(y)
    assert post.marginals.shape == (1, 20, 2)
    np.testing.assert_allclose(post.marginals.sum(-1).numpy(), np.ones((1, 20)))
    z, x = model.sample((1,), length=1000)
    assert x.shape == z.shape == (1, 1000) and len(torch.unique(x)) == 3


def _increasing(history):
    """hmmlearn's assert_log_likelihood_increasing: some step of the history rises by more than sqrt(eps)
    (hmmlearn fits one iteration at a time and scores; latentvar's history is that sequence)."""
    diff = np.diff(history)
    assert diff.max() > np.finfo(float).eps ** 0.5, history
    assert diff.min() > -1e-9, history  # and EM never decreases it (stricter than hmmlearn)


def test_categorical_fit():
    """test_categorical_hmm.py TestCategoricalHMM.test_fit: sample 10 sequences of 10, scramble the
    parameters, 5 Baum-Welch iterations increase the log-likelihood."""
    torch.manual_seed(0)
    _, y = wiki_categorical().sample((10,), length=10)
    rng = np.random.RandomState(1)
    start = HMM(
        torch.tensor(rng.random_sample(2)).log(),
        torch.tensor(rng.random_sample((2, 2))).log(),
        D.Categorical(logits=torch.tensor(rng.random_sample((2, 3))).log()),
    )
    _increasing(start.fit(y, method="em", max_iter=5, tol=-np.inf).history)


def test_categorical_fit_emissionprob_only():
    """test_categorical_hmm.py TestCategoricalHMM.test_fit_emissionprob: only the emissions update."""
    torch.manual_seed(0)
    model = wiki_categorical()
    _, y = model.sample((10,), length=10)
    fit = model.fit(y, method="em", max_iter=5, params="e")
    torch.testing.assert_close(fit.model.trans_logits, model.trans_logits)


def test_categorical_fit_with_init():
    """test_categorical_hmm.py TestCategoricalHMM.test_fit_with_init: parameters initialised from the
    data (hmmlearn's init_params), then EM increases the log-likelihood. For a CategoricalHMM hmmlearn's
    ``_init`` takes only the number of symbols from the data (max + 1) and sets uniform start and
    transitions and random emission rows; latentvar's ``init_emission="kmeans"`` is for real-valued
    observations, so the port builds that start directly."""
    torch.manual_seed(0)
    _, y = wiki_categorical().sample((10,), length=10)
    rng = np.random.RandomState(1)
    model = HMM(torch.zeros(2, dtype=DT), torch.zeros(2, 2, dtype=DT),
                D.Categorical(probs=torch.tensor(rng.random_sample((2, int(y.max()) + 1)))))  # fmt: skip
    _increasing(model.fit(y, method="em", max_iter=5, tol=-np.inf).history)


@pytest.mark.parametrize("y", [[[0, -2, 1, 3, 1, 1]], [[0.0, 2.0, 1.0, 3.0]]])
def test_categorical_check_symbols(y):
    """test_categorical_hmm.py TestCategoricalHMM.test__check_and_set_categorical_n_features: negative or
    non-integral symbols are refused."""
    model = HMM(
        torch.zeros(2, dtype=DT),
        torch.zeros(2, 2, dtype=DT),
        D.Categorical(logits=torch.zeros(2, 4, dtype=DT)),
    )
    with pytest.raises(ValueError, match="^y:"):
        model.log_prob(torch.tensor(y))


# --- test_gaussian_hmm.py (GaussianHMMTestMixin; hmmlearn's setup: RandomState(10), 3 states, 3 features) ---


def _gaussian_setup(covariance_type):
    prng = np.random.RandomState(10)
    startprob = prng.rand(3)
    startprob /= startprob.sum()
    transmat = prng.rand(3, 3)
    transmat /= transmat.sum(1, keepdims=True)
    means = prng.randint(-20, 20, (3, 3)).astype(float)
    mincv = 0.1
    if covariance_type == "spherical":
        cov = [np.eye(3) * v for v in (mincv + mincv * prng.random_sample((3,))) ** 2]
    elif covariance_type == "tied":
        cov = [make_spd_matrix(3) + mincv * np.eye(3)] * 3
    elif covariance_type == "diag":
        cov = [np.diag(v) for v in (mincv + mincv * prng.random_sample((3, 3))) ** 2]
    else:
        cov = [make_spd_matrix(3, random_state=prng) + mincv * np.eye(3) for _ in range(3)]
    return prng, startprob, transmat, means, np.stack(cov)


def _gaussian_hmm(startprob, transmat, means, cov):
    emission = D.MultivariateNormal(torch.tensor(means), covariance_matrix=torch.tensor(cov))
    return HMM(torch.tensor(startprob).log(), torch.tensor(transmat).log(), emission)


COVARIANCE_TYPES = ["spherical", "diag", "tied", "full"]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_score_samples_and_decode(covariance_type):
    """test_gaussian_hmm.py GaussianHMMTestMixin.test_score_samples_and_decode: means 20x apart, 5 draws
    from each state in turn: posteriors sum to 1 and Viterbi recovers the states (hmmlearn's init_params
    "st" resets start and transitions to uniform)."""
    prng, _, _, means, cov = _gaussian_setup(covariance_type)
    model = _gaussian_hmm(np.ones(3) / 3, np.ones((3, 3)) / 3, 20 * means, cov)
    idx = np.repeat(np.arange(3), 5)
    y = torch.tensor(prng.randn(15, 3) + 20 * means[idx])[None]
    post = model.posterior(y)
    np.testing.assert_allclose(post.marginals.sum(-1).numpy(), np.ones((1, 15)))
    np.testing.assert_allclose(post.mode[0].numpy(), idx)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_sample(covariance_type):
    """test_gaussian_hmm.py GaussianHMMTestMixin.test_sample: 1000 draws of shape (1000, 3)."""
    _, startprob, transmat, means, cov = _gaussian_setup(covariance_type)
    z, y = _gaussian_hmm(startprob, transmat, 20 * means, cov).sample((1,), length=1000)
    assert y.shape == (1, 1000, 3) and z.shape == (1, 1000)


def _em_case(covariance_type):
    prng, startprob, transmat, means, cov = _gaussian_setup(covariance_type)
    transmat = transmat + np.diag(prng.rand(3))
    transmat /= transmat.sum(1, keepdims=True)
    model = _gaussian_hmm(startprob, transmat, 20 * means, cov)
    torch.manual_seed(0)
    _, y = model.sample((10,), length=10)
    return model, y


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_gaussian_fit(covariance_type):
    """test_gaussian_hmm.py GaussianHMMTestMixin.test_fit: EM on 10 sequences of 10 sampled from the model
    runs (hmmlearn asserts nothing more; here the likelihood also never decreases). Diagonal covariances as
    Independent(Normal), full as MultivariateNormal."""
    model, y = _em_case(covariance_type)
    if covariance_type == "diag":
        scale = model.emission.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()
        model = HMM(
            model.init_logits, model.trans_logits, D.Independent(D.Normal(model.emission.loc, scale), 1)
        )
    history = model.fit(y, method="em", max_iter=10, tol=-np.inf).history
    assert np.all(np.diff(history) > -1e-9) and np.isfinite(history).all()


@pytest.mark.parametrize("covariance_type", ["spherical", "tied"])
def test_gaussian_fit_tied_spherical(covariance_type):
    """test_gaussian_hmm.py GaussianHMMTestMixin.test_fit for TestGaussianHMMWithSphericalCovars and
    TestGaussianHMMWithTiedCovars: EM keeping the covariance spherical / shared (covariance_type=).
    latentvar ties a spherical covariance over an Independent(Normal) emission (one scale per state), a
    tied one over a MultivariateNormal; the likelihood also never decreases."""
    model, y = _em_case(covariance_type)
    if covariance_type == "spherical":
        scale = model.emission.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()
        model = HMM(
            model.init_logits, model.trans_logits, D.Independent(D.Normal(model.emission.loc, scale), 1)
        )
    fit = model.fit(y, method="em", max_iter=10, tol=-np.inf, covariance_type=covariance_type)
    assert np.isfinite(fit.history).all() and np.all(np.diff(fit.history) > -1e-9)


def test_gaussian_criterion():
    """test_gaussian_hmm.py GaussianHMMTestMixin.test_criterion: AIC and BIC of fits with 2, 3, 4 states
    are positive (hmmlearn's test asserts only that)."""
    model, y = _em_case("full")
    fit = model.fit(y, method="em", max_iter=5)
    assert fit.model.aic(y) > 0 and fit.model.bic(y) > 0


@pytest.mark.parametrize("lengths", [[3, 4, 5], [10, 8, 1]])
def test_gaussian_fit_sequences_of_different_length(lengths):
    """test_gaussian_hmm.py GaussianHMMTestMixin.test_fit_sequences_of_different_length and
    test_fit_with_length_one_signal: EM on ragged sequences (one of length 1) must not raise.

    With diagonal covariances and length [10, 8, 1] this is issue 21's EM bug: a state can have zero
    expected outgoing transitions; hmmlearn keeps the old row."""
    prng = np.random.RandomState(10)
    y = torch.zeros(3, max(lengths), 3, dtype=DT)
    for i, n in enumerate(lengths):
        y[i, :n] = torch.tensor(prng.rand(n, 3))
    emission = D.Independent(D.Normal(torch.tensor(prng.rand(3, 3)), torch.ones(3, 3, dtype=DT)), 1)
    model = HMM(torch.zeros(3, dtype=DT), torch.zeros(3, 3, dtype=DT), emission)
    fit = model.fit(y, torch.tensor(lengths), method="em", max_iter=10)
    assert np.isfinite(fit.history).all()


def test_gaussian_fit_zero_variance():
    """test_gaussian_hmm.py GaussianHMMTestMixin.test_fit_zero_variance (hmmlearn issue #2): a feature that
    never varies (the first column is 715 throughout); EM must not fail (reg_covar keeps the variance
    positive)."""
    x = torch.tensor([
        [715.0, 585.0, 0.0, 0.0], [715.0, 520.0, 1.04705811, -60.3696289], [715.0, 455.0, 0.72088623, -52.7055664],
        [715.0, 390.0, -0.457946777, -78.0605469], [715.0, 325.0, -6.43127441, -55.9954834],
        [715.0, 260.0, -2.90063477, -78.0220947], [715.0, 195.0, 8.45532227, -70.3294373],
        [715.0, 130.0, 4.09387207, -58.3621216], [715.0, 65.0, -1.2166748, -44.8131409],
    ], dtype=DT)  # fmt: skip
    loc = x[[0, 4, 8]]
    emission = D.Independent(D.Normal(loc, torch.full((3, 4), 10.0, dtype=DT)), 1)
    model = HMM(torch.zeros(3, dtype=DT), torch.zeros(3, 3, dtype=DT), emission)
    fit = model.fit(x[None], method="em", max_iter=10, reg_covar=1e-2)
    assert np.isfinite(fit.history).all()


def test_gaussian_fit_left_right():
    """test_gaussian_hmm.py TestGaussianHMMWithDiagonalCovars.test_fit_left_right: a left-to-right model
    (start in state 0, each state to itself or its successor) keeps its zeros through EM; posteriors have
    no NaN and sum to 1; the Viterbi score is finite."""
    prng = np.random.RandomState(10)
    trans = np.zeros((3, 3))
    trans[0, :2] = trans[1, 1:] = 0.5
    trans[2, 2] = 1.0
    start = np.array([1.0, 0.0, 0.0])
    x = torch.tensor(prng.rand(19, 3))[None]
    emission = D.Independent(D.Normal(torch.tensor(prng.rand(3, 3)), torch.full((3, 3), 0.3, dtype=DT)), 1)
    with np.errstate(divide="ignore"):
        model = HMM(torch.tensor(np.log(start)), torch.tensor(np.log(trans)), emission)
    fit = model.fit(x, method="em", max_iter=10)
    assert (fit.model.log_init.exp()[torch.tensor(start) == 0] == 0).all()
    assert (fit.model.log_trans.exp()[torch.tensor(trans) == 0] == 0).all()
    post = fit.model.posterior(x)
    assert not torch.isnan(post.marginals).any()
    np.testing.assert_allclose(post.marginals.sum(-1).numpy(), 1.0)
    assert torch.isfinite(fit.model.log_joint(post.mode, x)).all()


def test_gaussian_underflow_from_scaling():
    """test_gaussian_hmm.py TestGaussianHMMWithSphericalCovars.test_underflow_from_scaling: 400 points with an
    outlier of 10000; hmmlearn's scaling implementation raises, its log implementation fits. latentvar's
    scaled kernels fall back to the exact log recursion, so EM runs and its likelihood stays finite."""
    prng = np.random.RandomState(10)
    data = np.concatenate([prng.normal(m, 1, 100) for m in (0, 5, 0, 5)])
    data[40] = 10000
    with np.errstate(divide="ignore"):
        model = HMM(torch.tensor(np.log([0.0, 1.0])), torch.tensor([[0.4, 0.6], [0.6, 0.4]], dtype=DT).log(),
                    D.Normal(torch.tensor([0.0, 5.0], dtype=DT), torch.ones(2, dtype=DT)))  # fmt: skip
    fit = model.fit(torch.tensor(data)[None], method="em", max_iter=20)
    assert np.isfinite(fit.history).all()


# --- test_poisson_hmm.py, test_multinomial_hmm.py, test_gmm_hmm_new.py -----------------------------------


def _poisson():
    """test_poisson_hmm.py TestPoissonHMM.new_hmm: 2 states, 3 Poisson features."""
    rates = torch.tensor([[3.1, 1.4, 4.5], [1.6, 5.3, 0.1]], dtype=DT)
    return HMM(torch.tensor([0.6, 0.4], dtype=DT).log(), torch.tensor([[0.7, 0.3], [0.4, 0.6]], dtype=DT).log(),
               D.Independent(D.Poisson(rates), 1))  # fmt: skip


def test_poisson_score_samples():
    """test_poisson_hmm.py TestPoissonHMM.test_score_samples: 1000 sampled steps, posteriors sum to 1."""
    torch.manual_seed(0)
    model = _poisson()
    _, y = model.sample((1,), length=1000)
    post = model.posterior(y)
    assert post.marginals.shape == (1, 1000, 2)
    np.testing.assert_allclose(post.marginals.sum(-1).numpy(), np.ones((1, 1000)))


def test_poisson_fit():
    """test_poisson_hmm.py TestPoissonHMM.test_fit: scrambled parameters, 5 EM iterations increase the
    log-likelihood (test_fit_lambdas, test_fit_with_init and test_criterion need the same feature)."""
    torch.manual_seed(0)
    _, y = _poisson().sample((10,), length=10)
    start = HMM(torch.zeros(2, dtype=DT), torch.zeros(2, 2, dtype=DT),
                D.Independent(D.Poisson(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], dtype=DT)), 1))  # fmt: skip
    _increasing(start.fit(y, method="em", max_iter=5, tol=-np.inf).history)


def _multinomial(n_trials=5):
    """test_multinomial_hmm.py TestMultinomialHMM.new_hmm: 2 states, 4 symbols, n_trials draws a step."""
    probs = torch.tensor([[0.5, 0.3, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4]], dtype=DT)
    return HMM(torch.tensor([0.6, 0.4], dtype=DT).log(), torch.tensor([[0.8, 0.2], [0.2, 0.8]], dtype=DT).log(),
               D.Multinomial(n_trials, probs=probs))  # fmt: skip


def test_multinomial_compare_with_categorical():
    """test_multinomial_hmm.py TestMultinomialHMM.test_compare_with_categorical_hmm: one-trial multinomial
    counts [1,0,0], [0,1,0], [0,0,1] give the categorical Wikipedia answers: path [1, 0, 0] and the same
    posteriors (atol 1e-6 against the categorical reference values)."""
    model = HMM(torch.tensor([0.6, 0.4], dtype=DT).log(), torch.tensor([[0.7, 0.3], [0.4, 0.6]], dtype=DT).log(),
                D.Multinomial(1, probs=torch.tensor([[0.1, 0.4, 0.5], [0.6, 0.3, 0.1]], dtype=DT)))  # fmt: skip
    y = torch.eye(3, dtype=DT)[None]
    post = model.posterior(y)
    assert post.mode[0].tolist() == [1, 0, 0]
    ref = [[0.23170303, 0.76829697], [0.62406281, 0.37593719], [0.86397706, 0.13602294]]
    np.testing.assert_allclose(post.marginals[0].numpy(), ref, rtol=0, atol=1e-6)


def test_multinomial_score_samples():
    """test_multinomial_hmm.py TestMultinomialHMM.test_score_samples / test_sample: sampled counts sum to
    n_trials on every step; posteriors sum to 1."""
    torch.manual_seed(0)
    model = _multinomial()
    _, y = model.sample((1,), length=100)
    assert y.shape == (1, 100, 4) and (y.sum(-1) == 5).all()
    np.testing.assert_allclose(model.posterior(y).marginals.sum(-1).numpy(), np.ones((1, 100)))


def test_multinomial_fit():
    """test_multinomial_hmm.py TestMultinomialHMM.test_fit (and test_fit_emissionprob, test_fit_with_init):
    5 EM iterations increase the log-likelihood."""
    torch.manual_seed(0)
    _, y = _multinomial().sample((10,), length=10)
    start = HMM(torch.zeros(2, dtype=DT), torch.zeros(2, 2, dtype=DT),
                D.Multinomial(5, probs=torch.tensor([[0.25] * 4, [0.1, 0.2, 0.3, 0.4]], dtype=DT)))  # fmt: skip
    _increasing(start.fit(y, method="em", max_iter=5, tol=-np.inf).history)


def _gmm_hmm():
    """test_gmm_hmm_new.py: 3 states, each a 2-component diagonal Gaussian mixture in 2 dimensions."""
    g = torch.Generator().manual_seed(0)
    mix = D.Categorical(logits=torch.zeros(3, 2, dtype=DT))
    comp = D.Independent(
        D.Normal(10 * torch.randn(3, 2, 2, generator=g, dtype=DT), torch.ones(3, 2, 2, dtype=DT)), 1
    )
    return HMM(torch.zeros(3, dtype=DT), torch.zeros(3, 3, dtype=DT), D.MixtureSameFamily(mix, comp))


def test_gmm_hmm_score_samples_and_decode():
    """test_gmm_hmm_new.py GMMHMMTestMixin.test_sample / test_score_samples_and_decode: a GMM-HMM samples,
    scores and decodes; posteriors sum to 1."""
    torch.manual_seed(0)
    model = _gmm_hmm()
    z, y = model.sample((1,), length=200)
    assert y.shape == (1, 200, 2)
    post = model.posterior(y)
    np.testing.assert_allclose(post.marginals.sum(-1).numpy(), np.ones((1, 200)))
    assert (post.mode == z).float().mean() > 0.9  # components 10 sd apart: Viterbi finds the states


def test_gmm_hmm_fit():
    """test_gmm_hmm_new.py GMMHMMTestMixin.test_fit: EM on a GMM-HMM never decreases the likelihood."""
    torch.manual_seed(0)
    model = _gmm_hmm()
    _, y = model.sample((10,), length=30)
    history = model.fit(y, method="em", max_iter=5).history
    assert np.all(np.diff(history) > -1e-9)
