"""pytorch-struct's linear-chain tests, ported: harvardnlp/pytorch-struct tests/test_algorithms.py with the
enumeration of tests/extensions.py (LinearChainTest). torch-struct scores a chain of N + 1 positions by
edge potentials (b, N, C, C), edge[b, n, c_new, c_old]; latentvar's engine takes the same as transitions
(b, N + 1, C, C) with row t the step t-1 -> t, trans[b, t, c_old, c_new] = edge[b, t - 1, c_new, c_old],
and zero initial and emission scores. Every check is against brute-force enumeration of all C^(N+1)
paths, as torch-struct's; its hypothesis strategies are kept (b, N, C in [2, 3], potentials in
[-100, 100]) with fewer examples (20) to keep the suite fast. test_hsmm runs on `latentvar.hmm.HSMM` (the
special case of torch-struct's HSMM helper with per-step emissions and no self-transitions); the general
semi-Markov CRF over free segment potentials is a strict xfail.
"""

import itertools
import math

import pytest
import torch
import torch.distributions as D
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from latentvar import HMM
from latentvar.inference import Chain, kbest
from latentvar.inference.semiring import MaxSemiring

DT = torch.float64


@st.composite
def logpotentials(draw):
    """LinearChainTest.logpotentials: (b, N, C, C) in [-100, 100], b, N, C in [2, 3]; plus a jitter of
    1e-6 · U(0, 1) as torch-struct's Gen adds (breaks ties between paths)."""
    b, n, c = (draw(st.integers(2, 3)) for _ in range(3))
    x = draw(arrays(float, (b, n, c, c), elements=st.floats(-100.0, 100.0)))
    return torch.tensor(x, dtype=DT) + 1e-6 * torch.rand(b, n, c, c, dtype=DT)


def to_chain(edge, lengths=None) -> Chain:
    b, n, c, _ = edge.shape
    trans = torch.zeros(b, n + 1, c, c, dtype=edge.dtype)
    trans[:, 1:] = edge.transpose(-1, -2)
    lengths = torch.full((b,), n + 1) if lengths is None else lengths
    return Chain(torch.zeros(c, dtype=edge.dtype), trans, torch.zeros(b, n + 1, c, dtype=edge.dtype), lengths)


def enumerate_paths(edge, length):
    """Every path of ``length`` positions with its score Σ edge[n, z_{n+1}, z_n] (one sequence)."""
    c = edge.shape[-1]
    out = {}
    for z in itertools.product(range(c), repeat=length):
        out[z] = sum(float(edge[n, z[n + 1], z[n]]) for n in range(length - 1))
    return out


def test_linear_chain_counting():
    """test_algorithms.py test_linear_chain_counting: all potentials 1 in the standard (+, x) semiring count
    the paths, C^(N+1); in the log semiring log Z = (N + 1) log C (every batch, N, C in [2, 4])."""
    for batch, n, c in itertools.product(range(2, 5), repeat=3):
        log_z = to_chain(torch.zeros(batch, n, c, c, dtype=DT)).log_partition()
        torch.testing.assert_close(log_z, torch.full((batch,), (n + 1) * math.log(c), dtype=DT))


@settings(max_examples=20, deadline=None)
@given(logpotentials())
def test_log_shapes_log_semiring(edge):
    """test_algorithms.py test_log_shapes (LinearChain, LogSemiring): log Z of shape (b,) equal to the
    enumeration (torch.isclose: rtol 1e-5, atol 1e-8)."""
    log_z = to_chain(edge).log_partition()
    assert log_z.shape == (edge.shape[0],)
    for i in range(edge.shape[0]):
        scores = torch.tensor(list(enumerate_paths(edge[i], edge.shape[1] + 1).values()), dtype=DT)
        assert torch.isclose(log_z[i], scores.logsumexp(0))


@settings(max_examples=20, deadline=None)
@given(logpotentials())
def test_log_shapes_max_semiring_and_max(edge):
    """test_algorithms.py test_log_shapes (LinearChain, MaxSemiring) and test_max: the best score equals the
    enumeration's maximum, and the score of the argmax path equals the max."""
    chain = to_chain(edge)
    best = chain.log_partition(MaxSemiring)
    assert torch.isclose(chain.score(chain.viterbi), best).all()
    for i in range(edge.shape[0]):
        paths = enumerate_paths(edge[i], edge.shape[1] + 1)
        assert torch.isclose(best[i], torch.tensor(max(paths.values()), dtype=DT))


@settings(max_examples=20, deadline=None)
@given(logpotentials())
def test_entropy(edge):
    """test_algorithms.py test_entropy (LinearChain): H = -Σ p log p by enumeration (torch.isclose)."""
    entropy = to_chain(edge).entropy
    for i in range(edge.shape[0]):
        scores = torch.tensor(list(enumerate_paths(edge[i], edge.shape[1] + 1).values()), dtype=DT)
        logp = scores - scores.logsumexp(0)
        assert torch.isclose(entropy[i], -(logp.exp() * logp).sum(), atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(logpotentials())
def test_kmax(edge):
    """test_algorithms.py test_kmax (LinearChain, K = 2), as `latentvar.inference.kbest`: the best score
    equals the max-semiring score and its path the argmax, the second is <= it, the 2-best paths differ,
    the second path's score is the second score, and both scores equal the enumeration's top 2
    (torch.isclose)."""
    chain = to_chain(edge)
    paths, scores = kbest(chain, 2)
    best = chain.log_partition(MaxSemiring)
    assert torch.isclose(scores[0], best).all() and (scores[1] <= best).all()
    assert (paths[0] == chain.viterbi).all()
    assert (paths[0] != paths[1]).any(-1).all()
    assert torch.isclose(chain.score(paths[1]), scores[1]).all()
    for i in range(edge.shape[0]):
        top = sorted(enumerate_paths(edge[i], edge.shape[1] + 1).values(), reverse=True)[:2]
        assert torch.isclose(scores[:, i], torch.tensor(top, dtype=DT)).all()


@settings(max_examples=20, deadline=None)
@given(logpotentials(), st.data())
def test_generic_lengths(edge, data):
    """test_algorithms.py test_generic_lengths (LinearChain): ragged lengths in [2, N + 1] (the last full):
    the argmax's score is <= log Z + 1e-3 and equals the max-semiring score; the argmax ends at each
    length (-1 after)."""
    b, n = edge.shape[:2]
    lengths = torch.tensor([data.draw(st.integers(2, n + 1)) for _ in range(b - 1)] + [n + 1])
    chain = to_chain(edge, lengths)
    path = chain.viterbi
    maxes = chain.score(path)
    assert (maxes <= chain.log_partition() + 1e-3).all()
    assert torch.isclose(maxes, chain.log_partition(MaxSemiring)).all()
    for i in range(b):
        assert (path[i, : lengths[i]] >= 0).all() and (path[i, lengths[i] :] == -1).all()
        paths = enumerate_paths(edge[i], int(lengths[i]))
        assert torch.isclose(maxes[i], torch.tensor(max(paths.values()), dtype=DT))


@settings(max_examples=20, deadline=None)
@given(logpotentials())
def test_params(edge):
    """test_algorithms.py test_params (LinearChain): log Z backpropagates to the potentials. torch-struct
    asserts nothing more; tightened: the gradient w.r.t. the transitions is the edge marginals, which sum to
    1 at every step and match the enumeration's."""
    b, n, c, _ = edge.shape
    trans = torch.zeros(b, n + 1, c, c, dtype=DT)
    trans[:, 1:] = edge.transpose(-1, -2)
    trans.requires_grad_(True)
    chain = Chain(
        torch.zeros(c, dtype=DT), trans, torch.zeros(b, n + 1, c, dtype=DT), torch.full((b,), n + 1)
    )
    (grad,) = torch.autograd.grad(chain.log_partition().sum(), trans)
    torch.testing.assert_close(grad[:, 1:].sum((-1, -2)), torch.ones(b, n, dtype=DT))
    paths = enumerate_paths(edge[0], n + 1)
    log_z = torch.tensor(list(paths.values()), dtype=DT).logsumexp(0)
    want = torch.zeros(n, c, c, dtype=DT)
    for z, s in paths.items():
        for t in range(n):
            want[t, z[t], z[t + 1]] += math.exp(s - log_z)
    torch.testing.assert_close(grad[0, 1:], want, atol=1e-9, rtol=1e-6)


def test_gumbel():
    """test_algorithms.py test_gumbel (LinearChain) prints the marginals and their gradient and asserts
    nothing; tightened to what it exercises, sampling: 4000 exact posterior draws of a 2-sequence chain
    match the enumerated path probabilities (max deviation 0.03)."""
    edge = torch.randn(2, 2, 2, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    draws = to_chain(edge).sample((4000,), generator=torch.Generator().manual_seed(1))
    for i in range(2):
        paths = enumerate_paths(edge[i], 3)
        log_z = torch.tensor(list(paths.values()), dtype=DT).logsumexp(0)
        for z, s in paths.items():
            freq = (draws[:, i] == torch.tensor(z)).all(-1).double().mean()
            assert abs(float(freq) - math.exp(s - float(log_z))) < 0.03


def test_hmm():
    """test_algorithms.py test_hmm: LinearChain.hmm(transition (C, C) [to, from], emission (V, C), init (C,),
    observations (b, N)) builds edge potentials; torch-struct only sums them. Tightened: their log Z
    equals latentvar's HMM log P(y) with the same (here normalised) log-probabilities (C = 5, V = 20,
    b = 2, N = 5)."""
    g = torch.Generator().manual_seed(0)
    c, v, b, n = 5, 20, 2, 5
    transition = torch.rand(c, c, generator=g, dtype=DT).log().log_softmax(0)  # [to, from]
    emission = torch.rand(v, c, generator=g, dtype=DT).log().log_softmax(0)
    init = torch.rand(c, generator=g, dtype=DT).log().log_softmax(0)
    y = torch.randint(0, v, (b, n), generator=g)
    edge = torch.zeros(b, n - 1, c, c, dtype=DT) + transition.view(1, 1, c, c)
    edge[:, 0] += init.view(1, 1, c)
    obs = emission[y.reshape(-1)].view(b, n, c)
    edge += obs[:, 1:, :, None]
    edge[:, 0] += obs[:, 0, None, :]
    struct_log_z = to_chain(edge).log_partition()
    # the same log-probabilities as an HMM: the module emission returns log emission[y]
    hmm = HMM(init, transition.T, _Table(emission))
    torch.testing.assert_close(hmm.log_prob(y), struct_log_z)


class _Table(torch.nn.Module):
    def __init__(self, log_table):
        super().__init__()
        self.log_table = log_table

    def forward(self, y):
        return self.log_table[y]


@settings(max_examples=20, deadline=None)
@given(logpotentials())
def test_lc_custom(edge):
    """test_algorithms.py test_lc_custom: the checkpointed semirings give the same log Z and marginals as the
    plain one; latentvar's counterpart: the compiled fast paths against the generic recursion."""
    fast, slow = to_chain(edge), to_chain(edge).replace(fast=False)
    torch.testing.assert_close(fast.log_partition(), slow.log_partition())
    torch.testing.assert_close(fast.marginals, slow.marginals)


@pytest.mark.xfail(
    strict=True,
    reason="feature: a semi-Markov CRF over free segment potentials (b, N, K, C, C) in latentvar.inference "
    "(only the explicit-duration HMM latentvar.hmm.HSMM exists)",
)
def test_semimarkov_log_shapes():
    """test_algorithms.py test_log_shapes / test_entropy / test_kmax / test_batching_lengths for SemiMarkov:
    the semi-Markov chain's log Z against enumeration of segmentations."""
    from latentvar.inference import SemiMarkovChain  # noqa: F401


def _segmentations(n, max_duration):
    """Every way to cut n steps into segments of 1..max_duration steps: lists of (start, duration)."""
    if n == 0:
        return [[]]
    out = []
    for d in range(1, min(max_duration, n) + 1):
        out += [[(0, d)] + [(s + d, e) for s, e in rest] for rest in _segmentations(n - d, max_duration)]
    return out


def _enumerate_hsmm(log_init, log_trans, log_dur, frames):
    """{(states per segment, segmentation): log P(z, y)} over every segmentation and state assignment of
    one sequence; frames (N, C) = log P(y_t | c); no segment is followed by its own state."""
    n, c = frames.shape
    out = {}
    for segs in _segmentations(n, log_dur.shape[1]):
        for states in itertools.product(range(c), repeat=len(segs)):
            if any(a == b for a, b in zip(states, states[1:], strict=False)):
                continue
            score = float(log_init[states[0]])
            for i, ((start, d), j) in enumerate(zip(segs, states, strict=True)):
                score += float(log_dur[j, d - 1] + frames[start : start + d, j].sum())
                score += float(log_trans[states[i - 1], j]) if i else 0.0
            out[(states, tuple(segs))] = score
    return out


def test_hsmm():
    """test_algorithms.py test_hsmm (C = 5 states, K = 3 durations, batch 2, N = 5; log and max semirings):
    torch-struct builds SemiMarkov edges from init (C), transitions (C, C), durations (C, K) and segment
    emissions and checks log Z against enumeration. latentvar's `HSMM` is the special case with per-step
    emissions (a segment's emission the sum of its steps') and no self-transitions (the diagonal of A is
    ignored); against the same enumeration: log P(y) (log semiring) and the best segmentation's states and
    durations (max semiring), torch.isclose."""
    from latentvar.hmm import HSMM

    c, k, batch, n, v = 5, 3, 2, 5, 4
    g = torch.Generator().manual_seed(0)
    init, trans, dur = (torch.rand(*shape, generator=g, dtype=DT) for shape in [(c,), (c, c), (c, k)])
    emission = D.Categorical(logits=torch.rand(c, v, generator=g, dtype=DT))
    y = torch.randint(0, v, (batch, n), generator=g)
    hsmm = HSMM(init, trans, dur, emission)
    log_init, log_dur = init.log_softmax(-1), dur.log_softmax(-1)
    log_trans = trans.masked_fill(torch.eye(c, dtype=torch.bool), -torch.inf).log_softmax(-1)
    log_z = hsmm.log_prob(y)
    states, durations = hsmm.mode(y)
    for i in range(batch):
        frames = emission.log_prob(y[i][:, None])  # (N, C)
        paths = _enumerate_hsmm(log_init, log_trans, log_dur, frames)
        assert torch.isclose(log_z[i], torch.tensor(list(paths.values()), dtype=DT).logsumexp(0))
        (best_states, best_segs), _ = max(paths.items(), key=lambda kv: kv[1])
        want = [j for j, (_, d) in zip(best_states, best_segs, strict=True) for _ in range(d)]
        want_dur = [d for _, d in best_segs for _ in range(d)]
        assert states[i].tolist() == want and durations[i].tolist() == want_dur
