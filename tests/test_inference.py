"""The exact-inference engine (latentvar.inference) against brute-force enumeration on tiny inputs --
shared, batched and time-varying transitions, final weights, ragged and empty sequences; every registered
fast path against the generic recursion; the CTC lattice against enumeration of alignments; and the
posterior parity of HMM and CTC (cached properties, shapes, entropy, seeded samples, ConditionalHMM)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.distributions as D
from scipy import stats
from torch import nn

import latentvar
from latentvar import HMM, ConditionalHMM
from latentvar.ctc import CTC
from latentvar.inference import (
    Chain,
    LogSemiring,
    MaxSemiring,
    ctc_chain,
    parallel_log_partition,
    parallel_marginals,
    parallel_viterbi,
    registered,
)

F64 = torch.float64


def potentials(kind: str, b=4, t=5, k=3, seed=0):
    """(init, transitions, emissions, lengths, final) of a random chain; ``kind`` picks the factoring."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)  # noqa: E731
    init = r(b, k) if kind in ("init", "batched", "time", "final") else r(k)
    trans = {
        "shared": r(k, k),
        "init": r(k, k),
        "batched": r(b, 1, k, k),
        "time": r(b, t, k, k),
        "final": r(k, k),
    }[kind]
    emissions = r(b, t, k) * 1.5
    lengths = torch.tensor([t, t - 2, 1, 0][:b])
    final = r(b, k) if kind == "final" else None
    return init, trans, emissions, lengths, final


def enumerate_chain(init, trans, emissions, lengths, final):
    """Per sequence: every state sequence of its length and its score, by the definition."""
    b, _, k = emissions.shape
    out = []
    for i in range(b):
        n = int(lengths[i])
        zs = list(itertools.product(range(k), repeat=n))
        scores = []
        for z in zs:
            s = (
                (init if init.dim() == 1 else init[i])[z[0]] + emissions[i, 0, z[0]]
                if n
                else torch.tensor(0.0)
            )
            for t in range(1, n):
                a = trans if trans.dim() == 2 else trans[i, t if trans.shape[1] > 1 else 0]
                s = s + a[z[t - 1], z[t]] + emissions[i, t, z[t]]
            if final is not None and n:
                s = s + final[i, z[-1]]
            scores.append(s)
        out.append((zs, torch.stack(scores).double()))
    return out


KINDS = ["shared", "init", "batched", "time", "final"]  # "init": one initial distribution per sequence


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fast", [True, False])
def test_chain_matches_enumeration(kind, fast):
    init, trans, e, lengths, final = potentials(kind)
    chain = Chain(init, trans, e, lengths, final=final, fast=fast)
    logz = chain.log_partition()
    best = chain.forward(MaxSemiring)[0]
    marginals, viterbi, entropy = chain.marginals, chain.viterbi, chain.entropy
    for i, (zs, scores) in enumerate(enumerate_chain(init, trans, e, lengths, final)):
        n = len(zs[0])
        torch.testing.assert_close(logz[i], scores.logsumexp(0))
        torch.testing.assert_close(best[i], scores.max())
        p = (scores - scores.logsumexp(0)).exp()
        torch.testing.assert_close(entropy[i], -(p * p.log()).sum())
        assert viterbi[i, :n].tolist() == list(zs[int(scores.argmax())])
        assert (viterbi[i, n:] == -1).all() and (marginals[i, n:] == 0).all()
        for t in range(n):
            want = torch.zeros(e.shape[-1], dtype=F64)
            want.index_add_(0, torch.tensor([z[t] for z in zs]), p)
            torch.testing.assert_close(marginals[i, t], want)
        z = torch.full((len(zs), e.shape[1]), -1, dtype=torch.long)
        if n:
            z[:, :n] = torch.tensor(zs)
        z_all = viterbi.expand(len(zs), -1, -1).clone()
        z_all[:, i] = z
        torch.testing.assert_close(chain.score(z_all)[:, i], scores)


@pytest.mark.parametrize("kind", ["shared", "batched", "time"])
def test_parallel_scan_equals_sequential(kind):
    init, trans, e, lengths, _ = potentials(kind, t=9, seed=3)
    chain = Chain(init, trans, e, lengths)
    for semiring in (LogSemiring, MaxSemiring):
        torch.testing.assert_close(parallel_log_partition(chain, semiring), chain.forward(semiring)[0])
    torch.testing.assert_close(parallel_marginals(chain), chain.marginals)
    assert torch.equal(parallel_viterbi(chain), chain.viterbi)


@pytest.mark.parametrize("kind", KINDS)
def test_samples_follow_the_enumerated_posterior(kind):
    init, trans, e, lengths, final = potentials(kind, t=3, k=2, seed=4)
    chain = Chain(init, trans, e, lengths, final=final)
    n = 20000
    draws = chain.sample((n,), generator=torch.Generator().manual_seed(0))
    assert draws.shape == (n, 4, 3)
    for i, (zs, scores) in enumerate(enumerate_chain(init, trans, e, lengths, final)):
        m = len(zs[0])
        assert (draws[:, i, m:] == -1).all()
        if m == 0:
            continue
        codes = (draws[:, i, :m] * (2 ** torch.arange(m - 1, -1, -1))).sum(-1)  # zs are lexicographic
        observed = np.bincount(codes.numpy(), minlength=2**m)
        p = (scores - scores.logsumexp(0)).exp().numpy()
        assert stats.chisquare(observed, p * n).pvalue > 1e-3


def test_every_registered_fast_path_equals_the_generic_recursion():
    """Each fast path registered for a question gives what the generic recursion (fast=False) gives:
    numba for a shared (k, k) matrix, TorchScript for the CTC lattice."""
    # every registered path is exercised below: a new registration must be added to this test
    assert {q: len(names) for q, names in registered().items()} == {
        "forward": 2,  # numba (scoring), TorchScript CTC (log / max)
        "log_partition_grad": 2,  # numba autograd Function, TorchScript CTC with hand-written gradient
        "marginals": 2,  # numba forward-backward, TorchScript CTC forward-backward
        "expected_counts": 1,  # numba forward-backward with counts
        "viterbi": 1,  # numba max-product
    }
    g = torch.Generator().manual_seed(6)
    lp = torch.randn(3, 8, 4, generator=g, dtype=F64).log_softmax(-1)
    targets = torch.tensor([[1, 2, 2], [3, 0, 0], [1, 3, 1]])
    il, tl = torch.tensor([8, 5, 0]), torch.tensor([3, 1, 0])
    dense = [potentials(kind, b=4, t=7, k=4, seed=5)[:4] for kind in ("shared", "init")]
    chains = [lambda fast, p=p: Chain(*p, fast=fast) for p in dense]
    chains.append(lambda fast: ctc_chain(lp, targets, tl, il, blank=0, fast=fast))
    for make in chains:
        fast, slow = make(True), make(False)
        for semiring in (LogSemiring, MaxSemiring):
            torch.testing.assert_close(fast.forward(semiring)[0], slow.forward(semiring)[0])
            a_fast, a_slow = fast.forward(semiring, keep=True)[1], slow.forward(semiring, keep=True)[1]
            # alphas may differ by a constant per step (the generic recursion shifts them)
            finite = torch.isfinite(a_slow)
            assert torch.equal(finite, torch.isfinite(a_fast))
            diff = torch.where(finite, a_fast - a_slow, 0.0)
            top = torch.where(finite, diff, -math.inf).amax(-1, keepdim=True)
            torch.testing.assert_close(torch.where(finite, diff - top, 0.0), torch.zeros_like(diff))
        torch.testing.assert_close(fast.marginals, slow.marginals)
        assert torch.equal(fast.viterbi, slow.viterbi)
        for x, y in zip(fast.expected_counts(), slow.expected_counts(), strict=True):
            if x is not None:
                torch.testing.assert_close(x, y)
    # the differentiable log partitions: gradients in every potential
    init, trans, e, lengths = dense[1]
    for fast in (True, False):
        leaves = [x.clone().requires_grad_(True) for x in (init, trans, e)]
        total = Chain(*leaves, lengths, fast=fast).log_partition()
        grads = torch.autograd.grad((total * torch.arange(1.0, 5.0, dtype=F64)).sum(), leaves)
        if fast:
            ref = (total, *grads)
        else:
            for x, y in zip(ref, (total, *grads), strict=True):
                torch.testing.assert_close(x, y)
    x = lp.clone().requires_grad_(True)
    grads = []
    for fast in (True, False):
        chain = ctc_chain(x, targets, tl, il, blank=0, fast=fast)
        (g,) = torch.autograd.grad(chain.log_partition()[:2].sum(), x)
        grads.append(g)
    torch.testing.assert_close(*grads)


def test_chunked_emissions_equal_one_tensor():
    init, trans, e, lengths, _ = potentials("shared", t=11, seed=7)
    chunks = lambda: iter(e.split(3, dim=1))  # noqa: E731
    for fast in (True, False):
        torch.testing.assert_close(
            Chain(init, trans, chunks, lengths, fast=fast).log_partition(),
            Chain(init, trans, e, lengths).log_partition(),
        )


# -- the HMM: a batch of models, time-varying transitions, posterior parity ---------------------------


def batched_hmm(seed=0, m=2, t=4, k=2, v=3, time_varying=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)  # noqa: E731
    trans = r(m, t, k, k) if time_varying else r(m, 1, k, k)
    return HMM(r(m, k), trans, D.Categorical(logits=r(k, v)))


def brute_hmm(model: HMM, y: torch.Tensor, i: int):
    """log P(z, y) of every z for sequence y (t,) of model i of a batch (by the definition)."""
    k, t = model.num_states, y.shape[0]
    li, lt = model.log_init[i], model.log_trans[i]
    le = model.emission.logits.log_softmax(-1)
    zs = list(itertools.product(range(k), repeat=t))
    scores = []
    for z in zs:
        s = li[z[0]] + le[z[0], y[0]]
        for s_t in range(1, t):
            a = lt[s_t if lt.shape[0] > 1 else 0]
            s = s + a[z[s_t - 1], z[s_t]] + le[z[s_t], y[s_t]]
        scores.append(s)
    return zs, torch.stack(scores)


@pytest.mark.parametrize("time_varying", [True, False])
def test_batched_and_time_varying_hmm_match_enumeration(time_varying):
    model = batched_hmm(time_varying=time_varying)
    assert model.batch_shape == (2,)
    y = torch.tensor([[0, 2, 1, 1], [1, 1, 0, 2]])
    post = model.posterior(y)
    assert post.batch_shape == (2,) and post.event_shape == (4,)
    lp = model.log_prob(y)
    assert lp.shape == (2,)
    for i in range(2):
        zs, scores = brute_hmm(model, y[i], i)
        torch.testing.assert_close(lp[i], scores.logsumexp(0))
        p = (scores - scores.logsumexp(0)).exp()
        torch.testing.assert_close(post.entropy[i], -(p * p.log()).sum())
        assert post.mode[i].tolist() == list(zs[int(scores.argmax())])
        torch.testing.assert_close(model.log_joint(post.mode, y)[i], scores.max())
    both_z = post.mode.expand(3, 2, 4)  # (samples, models, steps)
    assert model.log_joint(both_z, y).shape == (3, 2)
    torch.testing.assert_close(post.marginals.sum(-1), torch.ones(2, 4, dtype=F64))
    torch.testing.assert_close(model.log_prob(y, method="parallel"), lp)
    # y broadcasts against the models: the same 3 sequences under each of the 2 models
    ys = torch.tensor([[0, 2, 1, 1], [1, 1, 0, 2], [2, 2, 2, 0]])
    both = model.log_prob(ys[:, None])
    assert both.shape == (3, 2)
    torch.testing.assert_close(both[:2].diagonal(), lp)
    z, yy = model.sample((5,), 4)
    assert z.shape == (5, 2, 4) and yy.shape == (5, 2, 4)
    seeded = [model.sample((5,), 4, generator=torch.Generator().manual_seed(2)) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*seeded, strict=True))


def test_batched_gaussian_emissions_and_lengths():
    g = torch.Generator().manual_seed(1)
    k = 3
    means = torch.randn(2, 1, k, generator=g, dtype=F64)  # (models, time 1, states)
    model = HMM(torch.zeros(2, k, dtype=F64), torch.randn(k, k, generator=g, dtype=F64), D.Normal(means, 1.0))
    y = torch.randn(2, 5, generator=g, dtype=F64)
    lengths = torch.tensor([5, 3])
    lp = model.log_prob(y, lengths)
    for i in range(2):
        one = HMM(torch.zeros(k, dtype=F64), model.trans_logits, D.Normal(means[i, 0], 1.0))
        torch.testing.assert_close(lp[i], one.log_prob(y[i : i + 1], lengths[i : i + 1])[0])


def test_posterior_parity():
    model = batched_hmm(seed=2, m=3)
    y = torch.randint(3, (3, 4), generator=torch.Generator().manual_seed(0))
    post = model.posterior(y)
    for name in ("log_partition", "marginals", "mode", "entropy"):
        assert getattr(post, name) is getattr(post, name), name  # cached, not recomputed
    a = post.sample((7,), generator=torch.Generator().manual_seed(3))
    b = post.sample((7,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (7, 3, 4)
    assert torch.isfinite(post.log_prob(a)).all() and post.log_prob(a).shape == (7, 3)
    log_probs = torch.randn(2, 6, 4, dtype=F64).log_softmax(-1)
    ctc = CTC(log_probs, torch.tensor([6, 4])).posterior(torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1]))
    assert ctc.batch_shape == (2,) and ctc.event_shape == (6,)
    for name in ("log_partition", "marginals", "alignment", "entropy"):
        assert getattr(ctc, name) is getattr(ctc, name), name


def test_ctc_entropy_matches_enumeration():
    g = torch.Generator().manual_seed(2)
    log_probs = torch.randn(1, 5, 3, generator=g, dtype=F64).log_softmax(-1)
    post = CTC(log_probs, torch.tensor([5])).posterior(torch.tensor([[1, 2]]), torch.tensor([2]))
    zs = torch.tensor(list(itertools.product(range(3), repeat=5)))
    lp = post.log_prob(zs[:, None])[:, 0]
    p = lp[torch.isfinite(lp)].exp()
    torch.testing.assert_close(p.sum(), torch.tensor(1.0, dtype=F64))
    torch.testing.assert_close(post.entropy[0], -(p * p.log()).sum())


def test_conditional_hmm_mirrors_conditional_mixture():
    class Net(nn.Module):
        """x (b, t, d) -> an HMM with per-sequence initial and per-step transition logits."""

        def __init__(self, d=2, k=2, v=3):
            super().__init__()
            self.init, self.trans = nn.Linear(d, k), nn.Linear(d, k * k)
            self.emit = nn.Parameter(torch.zeros(k, v))
            self.k = k

        def forward(self, x):
            b, t, _ = x.shape
            trans = self.trans(x).reshape(b, t, self.k, self.k)
            return HMM(self.init(x[:, 0]), trans, D.Categorical(logits=self.emit))

    net = Net()
    model = ConditionalHMM(net)
    x = torch.randn(4, 5, 2)
    y = torch.randint(3, (4, 5))
    hmm = model(x)
    assert isinstance(hmm, HMM) and hmm.batch_shape == (4,)
    lp = model.log_prob(y, x)
    assert lp.shape == (4,) and lp.requires_grad
    (-lp.sum()).backward()
    assert net.trans.weight.grad is not None and net.trans.weight.grad.abs().sum() > 0
    assert model.posterior(y, x).marginals.shape == (4, 5, 2)
    assert model.sample(x, (2,), 5)[0].shape == (2, 4, 5)
    assert latentvar.ConditionalHMM is ConditionalHMM


def test_old_names_stay_importable():
    from latentvar.ctc import extended_labels, final_mask  # noqa: F401
    from latentvar.hmm import _em_family, _log_partition  # noqa: F401  (old names, kept importable)
    from latentvar.semiring import LogSemiring as Old

    assert Old is LogSemiring


def test_bad_batched_input_names_the_argument():
    with pytest.raises(ValueError, match=r"^trans_logits: expected leading \(batch\) axes"):
        HMM(torch.zeros(2, 3), torch.zeros(4, 1, 3, 3), D.Categorical(logits=torch.zeros(3, 2)))
    with pytest.raises(ValueError, match=r"^trans_logits: expected shape \(3, 3\)"):
        HMM(torch.zeros(3), torch.zeros(2, 3, 2), D.Categorical(logits=torch.zeros(3, 2)))
    model = batched_hmm(t=4)
    with pytest.raises(ValueError, match=r"^y: expected at most 4 steps"):
        model.log_prob(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^y: expected leading axes broadcasting"):
        model.log_prob(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^length: expected at most 4 steps"):
        model.sample((), 5)
    with pytest.raises(ValueError, match=r"^trans_logits: fit expects one model"):
        model.fit(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^network: expected an HMM"):
        ConditionalHMM(lambda x: x)(torch.zeros(1))
    with pytest.raises(ValueError, match=r"^transitions: expected log A of shape"):
        Chain(torch.zeros(2), torch.zeros(2, 2, 2), torch.zeros(1, 1, 2), torch.ones(1, dtype=torch.long))


def test_hmm_docs_examples_run():
    """The python blocks of docs/hmm.md's usage section run as written, in order."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "hmm.md").read_text()
    blocks = [part.split("```", 1)[0] for part in text.split("```python\n")[1:3]]
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/hmm.md", "exec"), namespace)
    assert namespace["batch"].batch_shape == (2,)


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")),
]


@pytest.mark.parametrize("device", DEVICES)
def test_results_stay_on_the_inputs_device_and_match_the_cpu(device):
    """Every question of a batched, time-varying HMM and of CTC on ``device`` (the generic recursion off the
    CPU) gives the CPU's answer on that device; runs on a GPU where one is present."""
    model = batched_hmm(seed=5)
    y = torch.tensor([[0, 2, 1, 1], [1, 1, 0, 2]])
    on = HMM(
        model.init_logits.to(device),
        model.trans_logits.to(device),
        D.Categorical(logits=model.emission.logits.to(device)),
    )
    post, ref = on.posterior(y.to(device), torch.tensor([4, 3])), model.posterior(y, torch.tensor([4, 3]))
    for name in ("log_partition", "marginals", "mode", "entropy"):
        got = getattr(post, name)
        assert got.device.type == device, name
        torch.testing.assert_close(got.cpu(), getattr(ref, name))
    assert post.sample((3,)).device.type == device and on.sample((2,), 4)[0].device.type == device
    lp = torch.randn(2, 6, 4, dtype=F64).log_softmax(-1)
    il, targets, tl = torch.tensor([6, 4]), torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1])
    ctc = CTC(lp.to(device), il.to(device)).posterior(targets.to(device), tl.to(device))
    ref = CTC(lp, il).posterior(targets, tl)
    for name in ("log_partition", "marginals", "mode", "entropy"):
        torch.testing.assert_close(getattr(ctc, name).cpu(), getattr(ref, name))
    shared = HMM(
        torch.zeros(3, device=device),
        torch.zeros(3, 3, device=device),
        D.Normal(torch.zeros(3, device=device), 1.0),
    )
    ys = torch.randn(4, 7, device=device)
    fit = shared.fit(ys, max_iter=2)
    assert fit.model.log_trans.device.type == device


def test_time_varying_emissions_of_a_batch():
    """An emission batch (m, t, k): a different Normal per model, step and state, against enumeration."""
    g = torch.Generator().manual_seed(8)
    m, t, k = 2, 3, 2
    means = torch.randn(m, t, k, generator=g, dtype=F64)
    model = HMM(torch.zeros(m, k, dtype=F64), torch.randn(k, k, generator=g, dtype=F64), D.Normal(means, 1.0))
    y = torch.randn(m, t, generator=g, dtype=F64)
    lp, post = model.log_prob(y), model.posterior(y)
    for i in range(m):
        zs = list(itertools.product(range(k), repeat=t))
        scores = []
        for z in zs:
            s = model.log_init[i, z[0]] + D.Normal(means[i, 0, z[0]], 1.0).log_prob(y[i, 0])
            for s_t in range(1, t):
                s = (
                    s
                    + model.log_trans[z[s_t - 1], z[s_t]]
                    + D.Normal(means[i, s_t, z[s_t]], 1.0).log_prob(y[i, s_t])
                )
            scores.append(s)
        scores = torch.stack(scores)
        torch.testing.assert_close(lp[i], scores.logsumexp(0))
        assert post.mode[i].tolist() == list(zs[int(scores.argmax())])
    z, yy = model.sample((4,), t)
    assert z.shape == (4, m, t) and yy.shape == (4, m, t)


def test_entropy_float32_long_chain_matches_float64_and_the_expectation_identity():
    """The expectation recursion in float32 over 3,000 steps against float64, and against log Z − Σ θ·∂ log Z/∂θ
    (autograd through the generic recursion) in float64."""
    init, trans, e, _, _ = potentials("time", b=2, t=3000, k=3, seed=9)
    lengths = torch.tensor([3000, 1700])
    h64 = Chain(init, trans, e, lengths).entropy
    h32 = Chain(init.float(), trans.float(), e.float(), lengths).entropy
    torch.testing.assert_close(h32.double(), h64, rtol=1e-4, atol=1e-3)
    leaves = [x.clone().requires_grad_(True) for x in (init, trans, e)]
    logz = Chain(*leaves, lengths, fast=False).log_partition()
    grads = torch.autograd.grad(logz.sum(), leaves)
    expected = sum((g * x.detach()).reshape(2, -1).sum(-1) for g, x in zip(grads, leaves, strict=True))
    torch.testing.assert_close(h64, logz.detach() - expected)
