"""The hidden semi-Markov model on the engine against brute-force enumeration of every segmentation
(pytorch-struct's SemiMarkov is the only anchor implementation; its tests enumerate too)."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
import torch.distributions as D

from latentvar.hmm.semimarkov import HSMM

F64 = torch.float64


def make(k=2, dmax=3, v=3, seed=0, dead=False) -> HSMM:
    g = torch.Generator().manual_seed(seed)
    dur = torch.randn(k, dmax, generator=g, dtype=F64)
    if dead:
        dur[0, -1] = -math.inf  # state 0 never lasts dmax steps
    return HSMM(
        torch.randn(k, generator=g, dtype=F64),
        torch.randn(k, k, generator=g, dtype=F64),
        dur,
        D.Categorical(logits=torch.randn(k, v, generator=g, dtype=F64)),
    )


def segmentations(t, k, dmax):
    """Every (states, durations) of t steps: durations 1..dmax summing to t, consecutive states differ."""
    for n in range(1, t + 1):
        for durs in itertools.product(range(1, dmax + 1), repeat=n):
            if sum(durs) != t:
                continue
            for states in itertools.product(range(k), repeat=n):
                if all(a != b for a, b in itertools.pairwise(states)):
                    yield states, durs


def brute(model: HSMM, y):
    k, dmax = model.num_states, model.max_duration
    pi = model.init_logits.log_softmax(-1)
    a = model.trans_logits.masked_fill(torch.eye(k, dtype=torch.bool), -math.inf).log_softmax(-1)
    dur = model.duration_logits.log_softmax(-1)
    b = model.emission.logits.log_softmax(-1)
    out = []
    for states, durs in segmentations(len(y), k, dmax):
        s, t = float(pi[states[0]]), 0
        for i, (j, n) in enumerate(zip(states, durs, strict=True)):
            s += float(dur[j, n - 1]) + sum(float(b[j, y[t + u]]) for u in range(n))
            if i:
                s += float(a[states[i - 1], j])
            t += n
        out.append((states, durs, s))
    return out


@pytest.mark.parametrize("dead", [False, True])
def test_log_prob_marginals_and_mode_match_enumeration(dead):
    model = make(k=3, dmax=3, seed=1, dead=dead)
    y = torch.tensor([[0, 2, 1, 1, 0], [2, 2, 0, 1, 1]])
    lengths = torch.tensor([5, 4])
    lp = model.log_prob(y, lengths)
    marg = model.marginals(y, lengths)
    states, durations = model.mode(y, lengths)
    for i in range(2):
        n = int(lengths[i])
        segs = brute(model, y[i, :n].tolist())
        scores = torch.tensor([s for _, _, s in segs], dtype=F64)
        torch.testing.assert_close(lp[i], torch.logsumexp(scores, 0))
        w = (scores - torch.logsumexp(scores, 0)).exp()
        want = torch.zeros(n, 3, dtype=F64)
        for (st, du, _), p in zip(segs, w.tolist(), strict=True):
            labels = [j for j, d in zip(st, du, strict=True) for _ in range(d)]
            want[torch.arange(n), labels] += p
        torch.testing.assert_close(marg[i, :n], want)
        assert bool((marg[i, n:] == 0).all())
        best_states, best_durs, _ = segs[int(scores.argmax())]
        assert states[i, :n].tolist() == [
            j for j, d in zip(best_states, best_durs, strict=True) for _ in range(d)
        ]
        assert durations[i, :n].tolist() == [d for d in best_durs for _ in range(d)]
        assert states[i, n:].tolist() == [-1] * (5 - n)


def test_durations_of_one_step_are_an_hmm_without_self_loops():
    # D = 1: every segment lasts one step, the model is an HMM whose diagonal is forbidden
    from latentvar import HMM

    model = make(k=3, dmax=1, seed=2)
    a = model.trans_logits.masked_fill(torch.eye(3, dtype=torch.bool), -math.inf)
    hmm = HMM(model.init_logits, a, model.emission)
    y = torch.tensor([[0, 1, 2, 2, 1]])
    torch.testing.assert_close(model.log_prob(y), hmm.log_prob(y))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="^duration_logits: "):
        HSMM(torch.zeros(2), torch.zeros(2, 2), torch.zeros(3, 2), D.Categorical(logits=torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="^trans_logits: "):
        HSMM(torch.zeros(2), torch.zeros(3, 3), torch.zeros(2, 2), D.Categorical(logits=torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="^emission: "):
        HSMM(torch.zeros(2), torch.zeros(2, 2), torch.zeros(2, 2), D.Categorical(logits=torch.zeros(3, 3)))
    with pytest.raises(ValueError, match="^y: "):
        make().log_prob(torch.tensor([[0, 5]]))


# -- sampling ------------------------------------------------------------------------------------------
def labels(states, durs):
    return tuple(j for j, d in zip(states, durs, strict=True) for _ in range(d))


def chi2_pvalue(counts: dict, probs: dict, n: int) -> float:
    """Pearson's test of observed ``counts`` against ``probs``, the outcomes expected fewer than 5 times
    pooled into one cell (the test's usual validity rule); an outcome of probability zero drawn fails."""
    from scipy.stats import chisquare

    probs = {key: p for key, p in probs.items() if p > 0}
    assert set(counts) <= set(probs), set(counts) - set(probs)
    big = sorted(key for key, p in probs.items() if p * n >= 5)
    obs = [counts.get(key, 0) for key in big]
    exp = [probs[key] * n for key in big]
    if len(big) < len(probs):
        obs.append(n - sum(obs))
        exp.append(n - sum(exp))
    return float(chisquare(obs, exp).pvalue)


@pytest.mark.parametrize("dead", [False, True])
def test_sample_is_exact_given_the_length(dead):
    # P(z, y | the last segment ends at t) by enumeration: the emission-free score of each segmentation,
    # normalised over those of t steps, times P(y | z); (z, y) pairs tested jointly
    model = make(k=2, dmax=3, v=2, seed=3, dead=dead)
    t, n = 4, 40000
    em = model.emission.logits.log_softmax(-1)
    silent = HSMM(model.init_logits, model.trans_logits, model.duration_logits, D.Categorical(logits=em * 0))
    segs = brute(silent, [0] * t)  # emission log-probs all log 1/2: a constant shift
    scores = torch.tensor([s for _, _, s in segs], dtype=F64)
    prior = (scores - scores.logsumexp(0)).exp().tolist()
    probs = {}
    for (st, du, _), p in zip(segs, prior, strict=True):
        z = labels(st, du)
        for y in itertools.product(range(2), repeat=t):
            probs[(z, y)] = p * math.exp(sum(float(em[j, v]) for j, v in zip(z, y, strict=True)))
    z, y = model.sample((n,), t, generator=torch.Generator().manual_seed(0))
    assert z.shape == (n, t) and y.shape == (n, t)
    counts = {}
    for key in zip(map(tuple, z.tolist()), map(tuple, y.tolist()), strict=True):
        counts[key] = counts.get(key, 0) + 1
    assert chi2_pvalue(counts, probs, n) > 1e-3


def test_sample_shapes_reproducibility_and_bad_lengths():
    model = make(k=2, dmax=3)
    z, y = model.sample((), 5)
    assert z.shape == (5,) and y.shape == (5,)
    z, y = model.sample((2, 3), 0)
    assert z.shape == (2, 3, 0) and y.shape == (2, 3, 0)
    a = model.sample((4,), 7, generator=torch.Generator().manual_seed(5))
    b = model.sample((4,), 7, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    one = HSMM(torch.zeros(1), torch.zeros(1, 1), torch.zeros(1, 3), D.Categorical(logits=torch.zeros(1, 2)))
    assert one.sample((3,), 3)[0].tolist() == [[0, 0, 0]] * 3
    with pytest.raises(ValueError, match="^length: "):
        one.sample((3,), 4)  # one state lasting at most 3 steps
    with pytest.raises(ValueError, match="^length: "):
        model.sample((3,), -1)
    with pytest.raises(ValueError, match="^sample_shape: "):
        model.sample("3", 2)


def test_sample_posterior_is_exact():
    model = make(k=3, dmax=3, seed=4, dead=True)
    y = torch.tensor([[0, 2, 1, 1, 0], [2, 2, 0, 1, 1]])
    lengths = torch.tensor([5, 4])
    n = 20000
    states, durations = model.sample_posterior(y, lengths, (n,), torch.Generator().manual_seed(1))
    assert states.shape == durations.shape == (n, 2, 5)
    for i in range(2):
        m = int(lengths[i])
        segs = brute(model, y[i, :m].tolist())
        scores = torch.tensor([s for _, _, s in segs], dtype=F64)
        post = (scores - scores.logsumexp(0)).exp().tolist()
        want = {}
        for (st, du, _), p in zip(segs, post, strict=True):
            want[(labels(st, du), tuple(d for d in du for _ in range(d)))] = p
        counts = {}
        for z, d in zip(states[:, i, :m].tolist(), durations[:, i, :m].tolist(), strict=True):
            counts[(tuple(z), tuple(d))] = counts.get((tuple(z), tuple(d)), 0) + 1
        assert chi2_pvalue(counts, want, n) > 1e-3
        assert bool((states[:, i, m:] == -1).all()) and bool((durations[:, i, m:] == -1).all())


# -- fitting -------------------------------------------------------------------------------------------
def brute_em_step(model: HSMM, y, lengths, pseudocount=0.0):
    """One EM step by enumeration: expected counts over every segmentation of every sequence, normalised.
    Returns (π, A, P(n | j), B) as probabilities and Σ log P(y)."""
    k, dmax, v = model.num_states, model.max_duration, model.emission.logits.shape[-1]
    init, trans = torch.zeros(k, dtype=F64), torch.zeros(k, k, dtype=F64)
    dur, emit = torch.zeros(k, dmax, dtype=F64), torch.zeros(k, v, dtype=F64)
    loglik = 0.0
    for row, m in zip(y.tolist(), lengths.tolist(), strict=True):
        segs = brute(model, row[:m])
        scores = torch.tensor([s for _, _, s in segs], dtype=F64)
        loglik += float(scores.logsumexp(0))
        for (st, du, _), p in zip(segs, (scores - scores.logsumexp(0)).exp().tolist(), strict=True):
            init[st[0]] += p
            for a, b in itertools.pairwise(st):
                trans[a, b] += p
            for j, d in zip(st, du, strict=True):
                dur[j, d - 1] += p
            for t, j in enumerate(labels(st, du)):
                emit[j, row[t]] += p
    norm = lambda c: c / c.sum(-1, keepdim=True)  # noqa: E731
    off = 1 - torch.eye(k, dtype=F64)
    out = norm(init + pseudocount), norm((trans + pseudocount) * off), norm(dur + pseudocount)
    return (*out, norm(emit + pseudocount)), loglik


def probabilities(model: HSMM):
    k = model.num_states
    a = model.trans_logits.masked_fill(torch.eye(k, dtype=torch.bool), -math.inf).softmax(-1)
    return (
        model.init_logits.softmax(-1),
        a,
        model.duration_logits.softmax(-1),
        model.emission.logits.softmax(-1),
    )


@pytest.mark.parametrize(("dead", "pseudocount"), [(False, 0.0), (True, 0.0), (False, 0.5)])
def test_one_em_step_equals_enumeration(dead, pseudocount):
    model = make(k=3, dmax=3, seed=5, dead=dead)
    y = torch.tensor([[0, 2, 1, 1, 0], [2, 2, 0, 1, 1], [1, 0, 0, 2, 2]])
    lengths = torch.tensor([5, 4, 2])
    want, loglik = brute_em_step(model, y, lengths, pseudocount)
    result = model.fit(y, lengths, max_iter=1, pseudocount=pseudocount, batch_size=2)
    for got, expected in zip(probabilities(result.model), want, strict=True):
        torch.testing.assert_close(got, expected)
    assert result.history[0] == pytest.approx(loglik / 11, rel=1e-10)
    # params: the letters left out keep their values
    kept = model.fit(y, lengths, max_iter=1, pseudocount=pseudocount, params="d").model
    torch.testing.assert_close(probabilities(kept)[2], want[2])
    for got, old in zip(probabilities(kept)[::3], probabilities(model)[::3], strict=True):
        torch.testing.assert_close(got, old)


def known_model() -> HSMM:
    dur = torch.tensor([[0.05, 0.7, 0.2, 0.05, 0.0, 0.0], [0.0, 0.0, 0.1, 0.2, 0.6, 0.1]], dtype=F64)
    return HSMM(
        torch.tensor([0.5, 0.5], dtype=F64).log(),
        torch.zeros(2, 2, dtype=F64),
        dur.log(),
        D.Categorical(probs=torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=F64)),
    )


def test_fit_is_monotone_and_recovers_known_durations():
    truth = known_model()
    _, y = truth.sample((200,), 60, generator=torch.Generator().manual_seed(0))
    start = HSMM(
        torch.zeros(2, dtype=F64),
        torch.zeros(2, 2, dtype=F64),
        torch.zeros(2, 6, dtype=F64),  # uniform durations
        D.Categorical(probs=torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]], dtype=F64)),
    )
    result = start.fit(y, max_iter=25, tol=1e-9)
    history = torch.tensor(result.history)
    assert bool((history.diff() >= -1e-12).all()) and not result.decreases
    assert result.history[-1] > result.history[0] + 0.05
    got = result.model.duration_logits.softmax(-1)
    assert float((got - truth.duration_logits.softmax(-1)).abs().max()) < 0.06
    assert float((result.model.emission.probs - truth.emission.probs).abs().max()) < 0.05
    # the fitted model explains the data at least as well as the truth, less little
    lp_fit, lp_true = result.model.log_prob(y).sum(), truth.log_prob(y).sum()
    assert float(lp_fit) >= float(lp_true) - 1e-6


def test_fit_gaussian_emission_is_monotone():
    truth = HSMM(
        torch.zeros(2, dtype=F64),
        torch.zeros(2, 2, dtype=F64),
        torch.tensor([[0.0, 2.0, 0.0, -9.0], [-9.0, 0.0, 1.0, 2.0]], dtype=F64),
        D.Normal(torch.tensor([-1.0, 1.0], dtype=F64), torch.tensor([0.7, 0.5], dtype=F64)),
    )
    _, y = truth.sample((30,), 25, generator=torch.Generator().manual_seed(2))
    start = HSMM(
        torch.zeros(2, dtype=F64),
        torch.zeros(2, 2, dtype=F64),
        torch.zeros(2, 4, dtype=F64),
        D.Normal(torch.tensor([-0.3, 0.4], dtype=F64), torch.tensor([1.0, 1.0], dtype=F64)),
    )
    result = start.fit(y, max_iter=20, tol=0)
    history = torch.tensor(result.history)
    assert bool((history.diff() >= -1e-12).all()) and not result.decreases
    torch.testing.assert_close(result.model.emission.loc, truth.emission.loc, atol=0.15, rtol=0)


def test_fit_bad_input_names_the_argument():
    model = make()
    y = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="^params: "):
        model.fit(y, params="x")
    with pytest.raises(ValueError, match="^max_iter: "):
        model.fit(y, max_iter=0)
    with pytest.raises(ValueError, match="^pseudocount: "):
        model.fit(y, pseudocount=-1)
    with pytest.raises(ValueError, match="^y: "):
        model.fit(torch.tensor([[0, 7]]))
    one = HSMM(torch.zeros(1), torch.zeros(1, 1), torch.zeros(1, 2), D.Categorical(logits=torch.zeros(1, 3)))
    with pytest.raises(ValueError, match="^y: sequence 1 "):
        one.fit(torch.tensor([[0, 1, 0], [0, 1, 2]]), torch.tensor([2, 3]))  # 3 steps: longer than D


def test_map_fit_climbs_its_objective():
    # with pseudo-counts EM climbs log P(y) + the Dirichlet log densities (emission's included); the
    # likelihood alone may go down, the objective may not (iterations 22-24 went down without the
    # emission's prior term)
    from latentvar.hmm.diagnostics import NonMonotoneEMWarning

    model = make(k=3, dmax=3, seed=5)
    y = torch.tensor([[0, 2, 1, 1, 0], [2, 2, 0, 1, 1], [1, 0, 0, 2, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonMonotoneEMWarning)
        result = model.fit(y, max_iter=30, tol=0, pseudocount=0.5)
    assert result.n_iter == 30 and not result.decreases


def test_degenerate_fits_keep_rows_with_a_warning():
    from latentvar.hmm.diagnostics import EmptyStateWarning, ZeroTransitionsWarning

    inf = math.inf
    # state 2 is never entered: its transition and duration rows and its emission are kept
    model = HSMM(
        torch.tensor([0.0, 0.0, -inf], dtype=F64),
        torch.tensor([[0, 0, -inf], [0, 0, -inf], [0, 0, 0]], dtype=F64),
        torch.zeros(3, 3, dtype=F64),
        D.Categorical(logits=torch.zeros(3, 3, dtype=F64)),
    )
    y = torch.tensor([[0, 2, 1, 1, 0], [2, 2, 0, 1, 1]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit(y, max_iter=3)
    messages = {(type(w.message), str(w.message).split(";")[0]) for w in caught}
    assert messages == {
        (ZeroTransitionsWarning, "EM: state(s) [2] had no expected transitions to a next segment"),
        (ZeroTransitionsWarning, "EM: state(s) [2] had no expected segments (durations)"),
        (EmptyStateWarning, "EM: state(s) [2] received no expected observations"),
    }
    fitted = result.model
    for x in probabilities(fitted):
        assert not bool(x.isnan().any())
    torch.testing.assert_close(fitted.duration_logits.softmax(-1)[2], torch.full((3,), 1 / 3, dtype=F64))
    assert bool((torch.tensor(result.history).diff() >= -1e-12).all())
    # one state: no transitions to learn, its durations from the lengths
    one = HSMM(torch.zeros(1), torch.zeros(1, 1), torch.zeros(1, 3), D.Categorical(logits=torch.zeros(1, 3)))
    fitted = one.fit(torch.tensor([[0, 1, 0], [0, 1, 2]]), torch.tensor([2, 3]), max_iter=2).model
    torch.testing.assert_close(fitted.duration_logits.softmax(-1), torch.tensor([[0.0, 0.5, 0.5]]))


def test_folded_end_weights_answer_the_same_on_the_generic_recursion():
    # chain_of folds the end weights into each last emission so the compiled kernels answer on the CPU;
    # the generic recursion (what other devices run) must give the same counts, and equal the chain
    # with explicit final weights
    from latentvar.hmm.inputs import prepare
    from latentvar.inference import Chain

    model = make(k=3, dmax=4, seed=6, dead=True)
    y = torch.tensor([[0, 2, 1, 1, 0, 2], [2, 2, 0, 1, 1, 0]])
    inputs = prepare(model, y, torch.tensor([6, 3]))
    chain = model.chain_of(inputs)
    init, trans, final = model.expanded()
    em = model.emission.log_prob(inputs.y.unsqueeze(-1)).repeat_interleave(4, -1)
    explicit = Chain(init, trans, em, inputs.lengths, final=final, fast=False)
    for other in (chain.replace(fast=False), explicit):
        for a, b in zip(chain.expected_counts(), other.expected_counts(), strict=True):
            torch.testing.assert_close(a, b)
