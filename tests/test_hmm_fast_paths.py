"""The small-problem fast paths (issue 21, bench/hmm_small.py): the compiled forward-backward that runs
sequences in lockstep blocks, the Gaussian emission table with fewer tensor operations, and the input
checks that skip what cannot fail. Each is checked against an independent reference: the generic log-space
recursion differentiated by autograd (Eisner 2016), torch.distributions' own log_prob, and the errors the
checks must still raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributions as D

from latentvar import HMM
from latentvar.hmm.fast_emission import gaussian_parts
from latentvar.inference import Chain
from latentvar.inference._compiled import forward_backward
from latentvar.progress import Silent, bar

F64 = torch.float64


def _reference_counts(init, trans, e, lengths, w):
    """(γ, log Z, Σ_b w_b γ_b,1, Σ_b w_b Σ_t ξ_b,t) as gradients of Σ_b w_b log Z_b through the generic
    recursion (no compiled kernel)."""
    leaves = [x.clone().requires_grad_(True) for x in (init, trans, e)]
    total = Chain(*leaves, lengths, fast=False).log_partition()
    g_init, g_trans, _ = torch.autograd.grad((total * w).sum(), leaves)
    leaves = [x.clone().requires_grad_(True) for x in (init, trans, e)]
    (gamma,) = torch.autograd.grad(Chain(*leaves, lengths, fast=False).log_partition().sum(), leaves[2])
    return gamma, total.detach(), g_init, g_trans


@pytest.mark.parametrize("k", [1, 2, 3, 5, 9, 40])
def test_blocked_forward_backward_equals_the_generic_recursion(k):
    """Several blocks (a block holds up to 8 sequences, fewer as k grows), a partial last block, ragged
    and empty sequences, and per-sequence weights."""
    g = torch.Generator().manual_seed(k)
    b, t = 19, 13
    init = torch.randn(k, generator=g, dtype=F64).log_softmax(-1)
    trans = torch.randn(k, k, generator=g, dtype=F64).log_softmax(-1)
    e = torch.randn(b, t, k, generator=g, dtype=F64) * 2
    lengths = torch.randint(0, t + 1, (b,), generator=g)
    lengths[[0, 9]] = t
    lengths[4] = 0
    w = torch.rand(b, generator=g, dtype=F64) + 0.5
    gamma, loglik, init_c, trans_c = forward_backward(init, trans, e, lengths, w)
    ref_gamma, ref_loglik, ref_init, ref_trans = _reference_counts(init, trans, e, lengths, w)
    torch.testing.assert_close(gamma, ref_gamma)
    torch.testing.assert_close(loglik, ref_loglik)
    torch.testing.assert_close(init_c, ref_init)
    torch.testing.assert_close(trans_c, ref_trans)


def test_a_flagged_sequence_leaves_its_block_mates_exact():
    """A sequence with an impossible step is flagged (the caller then answers in log space); the others
    in its block keep their exact posteriors and likelihoods."""
    from latentvar.inference._compiled import _step_weights, kernels, scaled_transitions

    g = torch.Generator().manual_seed(3)
    b, t, k = 6, 9, 2
    init = torch.randn(k, generator=g, dtype=F64).log_softmax(-1)
    trans = torch.randn(k, k, generator=g, dtype=F64).log_softmax(-1)
    e = torch.randn(b, t, k, generator=g, dtype=F64)
    e[2, 4] = -torch.inf  # no state can emit step 4 of sequence 2
    lengths = torch.full((b,), t)
    trans_p, col_max = scaled_transitions(trans)
    probs, tops = _step_weights(init, col_max, e, 0)
    gamma, loglik, ok, _, _ = kernels.forward_backward(
        trans_p, probs, tops, lengths.numpy(), np.ones(b), True
    )
    assert ok.tolist() == [True, True, False, True, True, True]
    assert (gamma[2] == 0).all() and loglik[2] == 0
    keep = torch.tensor([0, 1, 3, 4, 5])
    ref_gamma, ref_loglik, _, _ = _reference_counts(init, trans, e[keep], lengths[keep], torch.ones(5))
    torch.testing.assert_close(torch.from_numpy(gamma[keep.numpy()]), ref_gamma)
    torch.testing.assert_close(torch.from_numpy(loglik[keep.numpy()]), ref_loglik)
    # the wrapper declines (None): the generic log-space recursion answers instead
    assert forward_backward(init, trans, e, lengths) is None


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("events", [0, 1, 2])
def test_gaussian_table_equals_torch_log_prob(events, dtype):
    g = torch.Generator().manual_seed(events)
    k, event = 4, (3, 2)[:events]
    loc = torch.randn(k, *event, generator=g, dtype=dtype) * 5
    scale = torch.rand(k, *event, generator=g, dtype=dtype) + 0.05
    em = D.Normal(loc, scale) if events == 0 else D.Independent(D.Normal(loc, scale), events)
    model = HMM(torch.zeros(k, dtype=dtype), torch.zeros(k, k, dtype=dtype), em)
    y = torch.randn(5, 7, *event, generator=g, dtype=dtype) * 6
    assert gaussian_parts(em) is not None
    want = em.log_prob(y.unsqueeze(2))
    torch.testing.assert_close(model.emission_log_prob(y), want)
    lengths = torch.tensor([7, 3, 0, 7, 1])
    ref = Chain(model.log_init, model.log_trans, want, lengths, fast=False).log_partition()
    torch.testing.assert_close(model.log_prob(y, lengths), ref)


def test_gaussian_table_leaves_other_families_to_torch():
    class Shifted(D.Normal):  # a subclass may define its own log-likelihood
        def log_prob(self, value):
            return super().log_prob(value) + 1.0

    loc, scale = torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)
    for em in (
        Shifted(loc, scale),
        D.Laplace(loc, scale),
        D.Independent(D.Laplace(loc[:, None], scale[:, None]), 1),
    ):
        assert gaussian_parts(em) is None
    model = HMM(torch.zeros(3, dtype=F64), torch.zeros(3, 3, dtype=F64), Shifted(loc, scale))
    y = torch.randn(2, 4, dtype=F64)
    torch.testing.assert_close(model.emission_log_prob(y), D.Normal(loc, scale).log_prob(y[..., None]) + 1.0)


def test_checks_that_were_shortened_still_refuse_bad_input():
    """One model: y's shape without broadcasting; a real support: the finiteness check alone."""
    k = 2
    model = HMM(
        torch.zeros(k, dtype=F64),
        torch.zeros(k, k, dtype=F64),
        D.Independent(D.Normal(torch.zeros(k, 1, dtype=F64), torch.ones(k, 1, dtype=F64)), 1),
    )
    y = torch.randn(3, 5, 1, dtype=F64)
    for bad in (float("nan"), float("inf"), -float("inf")):
        y_bad = y.clone()
        y_bad[1, 2, 0] = bad
        with pytest.raises(ValueError, match="^y: expected finite values"):
            model.log_prob(y_bad)
    with pytest.raises(ValueError, match="^y: expected shape"):
        model.log_prob(torch.randn(3, 5, 2, dtype=F64))
    with pytest.raises(ValueError, match="^init_logits: expected finite"):
        HMM(torch.tensor([0.0, float("nan")], dtype=F64), torch.zeros(k, k, dtype=F64), model.emission)
    with pytest.raises(ValueError, match="^trans_logits: expected finite"):
        HMM(torch.zeros(k, dtype=F64), torch.full((k, k), float("inf"), dtype=F64), model.emission)
    # -inf logits (an impossible start or move) stay allowed
    HMM(torch.tensor([0.0, -float("inf")], dtype=F64), torch.zeros(k, k, dtype=F64), model.emission)
    # a support that is not the whole line is still checked
    poisson = HMM(
        torch.zeros(k, dtype=F64), torch.zeros(k, k, dtype=F64), D.Poisson(torch.ones(k, dtype=F64))
    )
    with pytest.raises(ValueError, match="^y: values outside the support"):
        poisson.log_prob(torch.tensor([[1.0, -2.0]], dtype=F64))


def test_a_quiet_bar_iterates_and_ignores_updates(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    quiet = bar(range(3), "x", show=False)
    assert isinstance(quiet, Silent)
    assert list(quiet) == [0, 1, 2]
    quiet.set_postfix(loglik="1")
    quiet.update(1)
    quiet.close()
    assert not isinstance(bar(range(3), "x", show=True), Silent)
