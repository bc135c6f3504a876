"""The HMM as its users expect it (issue 21): degenerate EM fits, the unbatched shape, end states, partial
labels / state constraints, missing observations, sample weights, ``params`` and Dirichlet priors -- each
against brute-force enumeration written here from the parameters (not through `HMM.log_joint`), closed forms,
or hmmlearn on the same model."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
import torch.distributions as D

from hmm_models import F64, cat_hmm
from latentvar import HMM
from latentvar.hmm.diagnostics import (
    DegenerateFitWarning,
    EmptyStateWarning,
    NonMonotoneEMWarning,
    ZeroTransitionsWarning,
)


def brute(model: HMM, y, observed=None, prior=None):
    """Every state path of one categorical sequence y (t,) with its log weight, computed from π, A, the end
    probabilities and the emission table directly: (paths (k^t, t), log weights (k^t,))."""
    k, t = model.num_states, len(y)
    pi, a = model.log_init, model.log_trans
    b = model.emission.logits.log_softmax(-1)
    end = model.log_final
    paths = list(itertools.product(range(k), repeat=t))
    out = []
    for z in paths:
        s = pi[z[0]].item()
        for i in range(1, t):
            s += a[z[i - 1], z[i]].item()
        for i in range(t):
            if observed is None or observed[i]:
                s += b[z[i], int(y[i])].item()
            if prior is not None:
                s += float(prior[i, z[i]])
        if end is not None and t:
            s += end[z[-1]].item()
        out.append(s)
    return torch.tensor(paths, dtype=torch.long).reshape(-1, t), torch.tensor(out, dtype=F64)


def brute_marginals(paths, lw, k):
    w = (lw - torch.logsumexp(lw, 0)).exp()
    return torch.stack(
        [torch.zeros(k, dtype=F64).index_add_(0, paths[:, s], w) for s in range(paths.shape[1])]
    )


def brute_em_step(model: HMM, ys, observed=None, priors=None, weights=None):
    """One Baum-Welch step by enumeration: (π, A rows [with the end column], emission table)."""
    k, v = model.num_states, model.emission.logits.shape[-1]
    ends = model.log_final is not None
    init, trans, emit = (
        torch.zeros(k, dtype=F64),
        torch.zeros(k, k + ends, dtype=F64),
        torch.zeros(k, v, dtype=F64),
    )
    for n, y in enumerate(ys):
        obs = None if observed is None else observed[n]
        paths, lw = brute(model, y, obs, None if priors is None else priors[n])
        w = (lw - torch.logsumexp(lw, 0)).exp() * (1.0 if weights is None else float(weights[n]))
        for z, p in zip(paths.tolist(), w.tolist(), strict=True):
            init[z[0]] += p
            for i in range(1, len(z)):
                trans[z[i - 1], z[i]] += p
            if ends:
                trans[z[-1], k] += p
            for i in range(len(z)):
                if obs is None or obs[i]:
                    emit[z[i], int(y[i])] += p
    return init / init.sum(), trans / trans.sum(-1, keepdim=True), emit / emit.sum(-1, keepdim=True)


# -- 1. degenerate fits never abort, never NaN ------------------------------------------------------


def test_state_with_no_outgoing_transitions_keeps_its_row_and_warns():
    # state 1 (mean 100) only ever explains the last frame: hmmlearn's variable-length diagonal-Gaussian case
    start = HMM(
        torch.tensor([0.0, -30.0], dtype=F64),
        torch.tensor([[0.0, -2.0], [0.3, -0.7]], dtype=F64),
        D.Independent(D.Normal(torch.tensor([[0.0], [100.0]], dtype=F64), torch.ones(2, 1, dtype=F64)), 1),
    )
    g = torch.Generator().manual_seed(0)
    y = torch.randn(6, 5, 1, generator=g, dtype=F64)
    lengths = torch.tensor([5, 4, 5, 3, 2, 5])
    y[torch.arange(6), lengths - 1] += 100.0
    with pytest.warns(ZeroTransitionsWarning, match=r"state\(s\) \[1\]"):
        fit = start.fit(y, lengths, max_iter=1)
    torch.testing.assert_close(fit.model.log_trans[1], start.log_trans[1])
    assert torch.isfinite(fit.model.log_trans[0]).any() and not torch.isnan(fit.model.log_trans).any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        fit = start.fit(y, lengths, max_iter=5, tol=-1.0)
    assert fit.n_iter == 5 and all(math.isfinite(h) for h in fit.history)


@pytest.mark.parametrize("family", ["categorical", "diag", "full"])
def test_empty_state_keeps_its_emission_and_warns(family):
    # state 2 can never be reached (π and every column into it are 0): it gets no expected observations
    g = torch.Generator().manual_seed(1)
    trans = torch.randn(3, 3, generator=g, dtype=F64)
    trans[:, 2] = -torch.inf
    init = torch.tensor([0.0, 0.0, -torch.inf], dtype=F64)
    if family == "categorical":
        emission = D.Categorical(logits=torch.randn(3, 4, generator=g, dtype=F64))
        y = torch.randint(4, (5, 6), generator=g)
    elif family == "diag":
        emission = D.Normal(torch.tensor([-1.0, 1.0, 9.0], dtype=F64), torch.ones(3, dtype=F64))
        y = torch.randn(5, 6, generator=g, dtype=F64)
    else:
        emission = D.MultivariateNormal(
            torch.randn(3, 2, generator=g, dtype=F64), torch.eye(2, dtype=F64).expand(3, 2, 2)
        )
        y = torch.randn(5, 6, 2, generator=g, dtype=F64)
    model = HMM(init, trans, emission)
    with pytest.warns(EmptyStateWarning, match=r"state\(s\) \[2\]"):
        fit = model.fit(y, max_iter=1, pseudocount=0.0)
    new = fit.model.emission
    if family == "categorical":
        torch.testing.assert_close(new.probs[2], emission.probs[2])
        assert not torch.isnan(new.probs).any()
    else:
        torch.testing.assert_close(new.mean[2], emission.mean[2])
        torch.testing.assert_close(new.variance[2], emission.variance[2])
        assert not torch.isnan(new.mean).any()


def test_collapsed_variance_keeps_the_previous_one():
    # state 1 explains one distinct value: with reg_covar = 0 its variance would be 0 (a Normal refuses it)
    model = HMM(
        torch.zeros(2, dtype=F64),
        torch.zeros(2, 2, dtype=F64),
        D.Normal(torch.tensor([0.0, 50.0], dtype=F64), torch.tensor([1.0, 2.0], dtype=F64)),
    )
    y = torch.tensor([[0.3, -0.4, 50.0, 1.1, 50.0, -0.2]], dtype=F64)
    labels = torch.tensor([[0, 0, 1, 0, 1, 0]])  # hard assignments: state 1 sees 50.0 twice, nothing else
    with pytest.warns(EmptyStateWarning, match="collapsed"):
        fit = model.fit(y, max_iter=1, reg_covar=0.0, constraints=labels)
    assert float(fit.model.emission.scale[1]) == pytest.approx(2.0)
    assert torch.isfinite(fit.model.log_prob(y)).all()


def test_decreasing_objective_is_reported_in_the_result():
    # start at a converged fit, then refit with a variance floor far above the data's spread: the M-step is
    # no longer the maximiser and the likelihood goes down (EM's guarantee broken on purpose)
    g = torch.Generator().manual_seed(3)
    truth = HMM(torch.zeros(2, dtype=F64), torch.zeros(2, 2, dtype=F64),
                D.Normal(torch.tensor([-2.0, 2.0], dtype=F64), torch.tensor([0.3, 0.3], dtype=F64)))  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        y = truth.sample((4,), 30)[1]
    del g
    with pytest.warns(NonMonotoneEMWarning):
        fit = truth.fit(y, max_iter=3, tol=-1.0, reg_covar=5.0)
    assert fit.decreases and fit.decreases[0][0] == 2 and fit.decreases[0][1] > 0
    assert fit.history[1] < fit.history[0]
    plain = truth.fit(y, max_iter=3, tol=-1.0)
    assert plain.decreases == []


# -- unbatched shape -------------------------------------------------------------------------------------


def test_one_unbatched_sequence_gives_scalar_results():
    model = cat_hmm()
    y = torch.tensor([0, 3, 1, 2, 2])
    lp = model.log_prob(y)
    assert lp.shape == ()
    assert model.log_prob(y, 3).shape == () and model.log_prob(y, torch.tensor([3])).shape == ()
    torch.testing.assert_close(lp, model.log_prob(y[None])[0])
    paths, lw = brute(model, y)
    torch.testing.assert_close(lp, torch.logsumexp(lw, 0))
    post = model.posterior(y)
    assert post.batch_shape == () and post.marginals.shape == (5, 3) and post.mode.shape == (5,)
    assert (
        post.entropy.shape == ()
        and post.sample((7,)).shape == (7, 5)
        and post.log_prob(post.mode).shape == ()
    )
    assert model.log_joint(post.mode, y).shape == ()
    assert model.log_prob(y, method="parallel").shape == ()


# -- end states -------------------------------------------------------------------------------------


def test_end_states_log_prob_posterior_and_mode_match_enumeration():
    model = cat_hmm(seed=2, final=True)
    y = torch.tensor([[1, 0, 3, 2], [2, 2, 0, 0]])
    lengths = torch.tensor([4, 2])
    for method in ("sequential", "parallel"):
        lp = model.log_prob(y, lengths, method=method)
        post = model.posterior(y, lengths, method=method)
        for b in range(2):
            n = int(lengths[b])
            paths, lw = brute(model, y[b, :n])
            torch.testing.assert_close(lp[b], torch.logsumexp(lw, 0))
            torch.testing.assert_close(post.marginals[b, :n], brute_marginals(paths, lw, 3))
            assert post.mode[b, :n].tolist() == paths[lw.argmax()].tolist()
    assert float(model.log_prob(y, torch.tensor([0, 2]))[0]) == -math.inf  # an empty sequence cannot end
    # without end states the same parameters give a different number
    plain = HMM(model.init_logits, model.trans_logits, model.emission)
    assert not torch.allclose(plain.log_prob(y, lengths), lp)


def test_end_states_make_a_distribution_over_all_lengths():
    """Σ over every sequence of length 1..N of P(y) = 1 − P(still running after N), the tail in closed form."""
    model = cat_hmm(k=2, v=2, seed=4, final=True)
    total = 0.0
    N = 7
    for n in range(1, N + 1):
        ys = torch.tensor(list(itertools.product(range(2), repeat=n)))
        total += float(model.log_prob(ys).exp().sum())
    rows = model.log_rows.exp()  # (k, k + 1)
    running = model.log_init.exp() @ torch.linalg.matrix_power(rows[:, :2], N - 1)  # alive at step N
    tail = float((running * (1 - rows[:, 2])).sum())  # ... and not ending there
    assert total == pytest.approx(1.0 - tail, abs=1e-12)
    assert tail > 1e-3  # the check is not vacuous


def test_variable_length_samples_follow_the_end_probabilities():
    model = cat_hmm(k=2, v=3, seed=5, final=True)
    z, y, lengths = model.sample_variable_length(
        (20000,), max_length=50, generator=torch.Generator().manual_seed(0)
    )
    assert z.shape == (20000, 50) and y.shape == (20000, 50)
    assert bool(((z >= 0).sum(-1) == lengths).all()) and bool((y[z < 0] == 0).all())
    rows = model.log_rows.exp()
    alive = model.log_init.exp()
    from scipy import stats

    observed, expected = [], []
    for n in range(1, 6):
        expected.append(float((alive * rows[:, 2]).sum()))
        observed.append(int((lengths == n).sum()))
        alive = alive @ rows[:, :2]
    expected.append(1 - sum(expected))
    observed.append(int((lengths > 5).sum()))
    chi2 = stats.chisquare(np.array(observed), np.array(expected) * 20000)
    assert chi2.pvalue > 1e-3
    with pytest.raises(ValueError, match="^final_logits: "):
        cat_hmm().sample_variable_length((2,), 5)


def test_end_states_em_step_equals_enumeration():
    model = cat_hmm(k=2, v=3, seed=6, final=True)
    g = torch.Generator().manual_seed(1)
    ys = [torch.randint(3, (n,), generator=g) for n in (4, 2, 5, 1)]
    y = torch.zeros(4, 5, dtype=torch.long)
    for i, s in enumerate(ys):
        y[i, : len(s)] = s
    lengths = torch.tensor([len(s) for s in ys])
    fit = model.fit(y, lengths, max_iter=1)
    pi, rows, emit = brute_em_step(model, ys)
    torch.testing.assert_close(fit.model.log_init.exp(), pi)
    torch.testing.assert_close(fit.model.log_rows.exp(), rows)
    torch.testing.assert_close(fit.model.emission.probs, emit)
    long = model.fit(y, lengths, max_iter=10, tol=-1.0)
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(long.history))


def test_final_logits_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="^final_logits: "):
        HMM(torch.zeros(2), torch.zeros(2, 2), D.Categorical(logits=torch.zeros(2, 3)), torch.zeros(3))
    with pytest.raises(ValueError, match="^final_logits: "):
        HMM(torch.zeros(2), torch.zeros(4, 2, 2), D.Categorical(logits=torch.zeros(2, 3)), torch.zeros(2))
    with pytest.raises(ValueError, match="^final_logits: "):
        HMM(torch.zeros(2), torch.tensor([[0.0, 0.0], [-math.inf, -math.inf]]),
            D.Categorical(logits=torch.zeros(2, 3)), torch.tensor([0.0, -math.inf]))  # fmt: skip
    # a state that always ends is allowed: its row of A may be all -inf
    ok = HMM(torch.zeros(2), torch.tensor([[0.0, 0.0], [-math.inf, -math.inf]]),
             D.Categorical(logits=torch.zeros(2, 3)), torch.tensor([0.0, 0.0]))  # fmt: skip
    assert torch.isfinite(ok.log_prob(torch.tensor([0, 1]))).all()


# -- partial labels, state constraints, missing observations ---------------------------------------------


def test_constraints_labels_mask_and_log_prior_match_enumeration():
    model = cat_hmm(seed=7)
    y = torch.tensor([[1, 0, 3, 2]])
    labels = torch.tensor([[-1, 2, -1, 0]])
    mask = torch.ones(1, 4, 3, dtype=torch.bool)
    mask[0, 1] = torch.tensor([False, False, True])
    mask[0, 3] = torch.tensor([True, False, False])
    prior = torch.randn(1, 4, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    prior[0, 2, 1] = -math.inf
    paths, lw = brute(model, y[0])
    allowed = (paths[:, 1] == 2) & (paths[:, 3] == 0)
    for c in (labels, mask):
        torch.testing.assert_close(model.log_prob(y, constraints=c)[0], torch.logsumexp(lw[allowed], 0))
        post = model.posterior(y, constraints=c)
        torch.testing.assert_close(post.marginals[0], brute_marginals(paths[allowed], lw[allowed], 3))
        assert post.mode[0].tolist() == paths[allowed][lw[allowed].argmax()].tolist()
    _, lwp = brute(model, y[0], prior=prior[0])
    torch.testing.assert_close(model.log_prob(y, constraints=prior)[0], torch.logsumexp(lwp, 0))
    # fully labelled: the joint
    z = torch.tensor([[0, 2, 1, 0]])
    torch.testing.assert_close(model.log_prob(y, constraints=z), model.log_joint(z, y))
    with pytest.raises(ValueError, match="^constraints: "):
        model.log_prob(y, constraints=torch.tensor([[0, 3, 0, 0]]))
    with pytest.raises(ValueError, match="^constraints: "):
        model.log_prob(y, constraints=torch.zeros(1, 4, 2, dtype=torch.bool))


def test_missing_observations_marginalise_the_step_out():
    model = cat_hmm(seed=8)
    y = torch.tensor([[1, 0, 3, 2, 1]])
    observed = torch.tensor([[True, False, True, True, False]])
    # closed form: summing P(y) over every value of the missing steps
    filled = torch.tensor([[1, a, 3, 2, b] for a in range(4) for b in range(4)])
    ref = torch.logsumexp(model.log_prob(filled), 0)
    torch.testing.assert_close(model.log_prob(y, observed=observed)[0], ref)
    # the values at missing steps are ignored, even out of range
    y_bad = y.clone()
    y_bad[0, 1] = 99
    torch.testing.assert_close(model.log_prob(y_bad, observed=observed)[0], ref)
    paths, lw = brute(model, y[0], observed=observed[0])
    torch.testing.assert_close(
        model.posterior(y, observed=observed).marginals[0], brute_marginals(paths, lw, 3)
    )
    # NaN marks a missing step in float observations only when asked
    gauss = HMM(
        model.init_logits, model.trans_logits, D.Normal(torch.tensor([0.0, 1.0, 2.0], dtype=F64), 1.0)
    )
    x = torch.tensor([[0.3, float("nan"), 1.7]], dtype=F64)
    mask = torch.tensor([[True, False, True]])
    torch.testing.assert_close(
        gauss.log_prob(x, observed="nan"), gauss.log_prob(x.nan_to_num(5.0), observed=mask)
    )
    with pytest.raises(ValueError, match="^y: "):
        gauss.log_prob(x)
    with pytest.raises(ValueError, match="^observed: "):
        gauss.log_prob(x, observed="missing")


def test_semi_supervised_em_with_missing_steps_equals_enumeration():
    model = cat_hmm(k=2, v=3, seed=9)
    g = torch.Generator().manual_seed(2)
    y = torch.randint(3, (3, 4), generator=g)
    labels = torch.tensor([[0, -1, -1, 1], [-1, -1, -1, -1], [-1, 1, -1, -1]])
    observed = torch.tensor([[True, True, False, True], [True, True, True, True], [False, True, True, True]])
    prior = torch.zeros(3, 4, 2, dtype=F64)
    for b, t in (labels >= 0).nonzero().tolist():
        prior[b, t, 1 - int(labels[b, t])] = -math.inf
    fit = model.fit(y, max_iter=1, constraints=labels, observed=observed)
    pi, a, emit = brute_em_step(model, list(y), observed=observed, priors=prior)
    torch.testing.assert_close(fit.model.log_init.exp(), pi)
    torch.testing.assert_close(fit.model.log_trans.exp(), a)
    torch.testing.assert_close(fit.model.emission.probs, emit)
    # a path that alternates 0, 1, 0, ... cannot meet labels 0, 0: a clear error, not a NaN model
    blocked = HMM(
        torch.tensor([0.0, -math.inf], dtype=F64),
        torch.tensor([[-math.inf, 0.0], [0.0, -math.inf]], dtype=F64),
        model.emission,
    )
    with pytest.raises(ValueError, match="^constraints: sequence 0"):
        blocked.fit(y, max_iter=1, constraints=torch.tensor([[0, 0, -1, -1]] * 3))


# -- sample weights, params, Dirichlet priors -------------------------------------------------------------


def test_integer_sample_weights_equal_repeated_sequences():
    model = cat_hmm(seed=10)
    g = torch.Generator().manual_seed(3)
    y = torch.randint(4, (4, 6), generator=g)
    lengths = torch.tensor([6, 3, 5, 1])
    w = torch.tensor([2, 0, 1, 3])
    rep = torch.repeat_interleave(torch.arange(4), w)
    a = model.fit(y, lengths, max_iter=4, tol=-1.0, sample_weight=w.double())
    b = model.fit(y[rep], lengths[rep], max_iter=4, tol=-1.0)
    np.testing.assert_allclose(a.history, b.history, rtol=1e-10)
    torch.testing.assert_close(a.model.log_trans, b.model.log_trans)
    torch.testing.assert_close(a.model.emission.logits, b.model.emission.logits)
    with pytest.raises(ValueError, match="^sample_weight: "):
        model.fit(y, lengths, max_iter=1, sample_weight=torch.tensor([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="^sample_weight: "):
        model.fit(y, lengths, max_iter=1, sample_weight=torch.ones(3))


def test_params_selects_what_em_updates():
    model = cat_hmm(seed=11)
    y = torch.randint(4, (5, 7), generator=torch.Generator().manual_seed(4))
    only_e = model.fit(y, max_iter=2, tol=-1.0, params="e").model
    torch.testing.assert_close(only_e.log_init, model.log_init)
    torch.testing.assert_close(only_e.log_trans, model.log_trans)
    assert not torch.allclose(only_e.emission.logits, model.emission.logits.log_softmax(-1))
    st = model.fit(y, max_iter=2, tol=-1.0, params="st").model
    torch.testing.assert_close(st.emission.logits.log_softmax(-1), model.emission.logits.log_softmax(-1))
    assert not torch.allclose(st.log_trans, model.log_trans)
    with pytest.raises(ValueError, match="^params: "):
        model.fit(y, params="stx")
    ended = cat_hmm(seed=11, final=True)
    f_only = ended.fit(y, max_iter=1, params="f").model
    moves = lambda m: m.log_trans.exp() / m.log_trans.exp().sum(-1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(moves(f_only), moves(ended))
    assert not torch.allclose(f_only.log_final, ended.log_final)
    t_only = ended.fit(y, max_iter=1, params="t").model
    torch.testing.assert_close(t_only.log_final, ended.log_final)


def test_dirichlet_priors_match_hmmlearn():
    import hmmlearn.hmm as hmmlearn

    start = cat_hmm(k=3, v=4, seed=12)
    y = start.sample((6,), 15, generator=torch.Generator().manual_seed(5))[1]
    alpha_s = np.array([2.0, 3.0, 1.5])
    alpha_t = np.full((3, 3), 1.5) + np.eye(3) * 4
    fit = start.fit(
        y, max_iter=5, tol=-1.0, init_prior=torch.tensor(alpha_s), trans_prior=torch.tensor(alpha_t)
    )
    ref = hmmlearn.CategoricalHMM(
        n_components=3, n_iter=5, tol=-1.0, init_params="", params="ste",
        startprob_prior=alpha_s, transmat_prior=alpha_t,
    )  # fmt: skip
    ref.startprob_ = start.log_init.exp().numpy()
    ref.transmat_ = start.log_trans.exp().numpy()
    ref.emissionprob_ = start.emission.probs.numpy()
    ref.n_features = 4
    ref.fit(y.reshape(-1, 1).numpy(), np.full(6, 15))
    np.testing.assert_allclose(fit.model.log_init.exp().numpy(), ref.startprob_, atol=1e-9)
    np.testing.assert_allclose(fit.model.log_trans.exp().numpy(), ref.transmat_, atol=1e-9)
    np.testing.assert_allclose(fit.model.emission.probs.numpy(), ref.emissionprob_, atol=1e-9)
    assert fit.decreases == []  # the MAP objective (likelihood + log prior) never goes down


def test_gradient_fit_with_end_states_constraints_and_weights():
    model = cat_hmm(k=2, v=3, seed=13, final=True)
    y = torch.randint(3, (6, 5), generator=torch.Generator().manual_seed(6))
    lengths = torch.tensor([5, 4, 5, 2, 3, 5])
    labels = torch.full((6, 5), -1)
    labels[:, 0] = 1
    w = torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0, 1.0])
    before = (model.log_prob(y, lengths, constraints=labels) * w).sum()
    fit = model.fit(y, lengths, method="gradient", max_iter=30, lr=0.05, constraints=labels, sample_weight=w)
    after = (fit.model.log_prob(y, lengths, constraints=labels) * w).sum()
    assert fit.model.final_logits is not None and float(after) > float(before) + 0.1
    assert all(math.isfinite(h) for h in fit.history)
