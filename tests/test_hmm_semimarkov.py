"""The hidden semi-Markov model on the engine against brute-force enumeration of every segmentation
(pytorch-struct's SemiMarkov is the only anchor implementation; its tests enumerate too)."""

from __future__ import annotations

import itertools
import math

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
