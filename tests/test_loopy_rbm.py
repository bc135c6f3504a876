"""latentvar.loopy.rbm.RBM against independent references: brute-force enumeration over every (v, h) pair
(written with explicit loops, not the model's formulas), exact AIS targets, and chi-square tests of the
Gibbs sampler that a wrong sampler fails."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from latentvar.core import IntractableMarginalError
from latentvar.estimate.partition import ais_log_partition
from latentvar.loopy.rbm import RBM


def random_rbm(n_v, n_h, scale=1.0, seed=0, bias=1.0):
    g = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(n_v, n_h, generator=g, dtype=torch.float64)
    b = bias * torch.randn(n_v, generator=g, dtype=torch.float64)
    c = bias * torch.randn(n_h, generator=g, dtype=torch.float64)
    return RBM(W, b, c)


def states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def brute_log_joint(rbm):
    """-E(v, h) for every pair, by explicit sums: (2^n_v, 2^n_h), rows v and columns h as in states()."""
    W, b, c = rbm.W.numpy(), rbm.visible_bias.numpy(), rbm.hidden_bias.numpy()
    vs, hs = states(rbm.num_visible), states(rbm.num_hidden)
    out = np.empty((len(vs), len(hs)))
    for a, v in enumerate(vs):
        for k, h in enumerate(hs):
            s = sum(v[i] * b[i] for i in range(len(v))) + sum(h[j] * c[j] for j in range(len(h)))
            s += sum(v[i] * W[i, j] * h[j] for i in range(len(v)) for j in range(len(h)))
            out[a, k] = s
    return out


def logsumexp(x, axis=None):
    return torch.logsumexp(torch.as_tensor(x), dim=axis if axis is not None else tuple(range(x.ndim))).numpy()


@pytest.mark.parametrize("n_v, n_h", [(5, 4), (3, 6)])
def test_free_energy_log_z_and_log_prob_against_every_v_h_pair(n_v, n_h):
    rbm = random_rbm(n_v, n_h, seed=n_v)
    joint = brute_log_joint(rbm)
    vs = torch.as_tensor(states(n_v))
    np.testing.assert_allclose(rbm.log_unnormalized(vs).numpy(), logsumexp(joint, 1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(rbm.free_energy(vs).numpy(), -logsumexp(joint, 1), rtol=0, atol=1e-12)
    hs = torch.as_tensor(states(n_h))
    np.testing.assert_allclose(rbm.energy(vs[:, None], hs[None]).numpy(), -joint, rtol=0, atol=1e-12)
    log_z = logsumexp(joint)
    for side in ("auto", "hidden", "visible"):
        assert abs(rbm.log_partition(side=side).item() - log_z) < 1e-12, side
    log_p = rbm.log_prob(vs, exact=True)
    np.testing.assert_allclose(log_p.numpy(), logsumexp(joint, 1) - log_z, rtol=0, atol=1e-12)
    assert abs(torch.logsumexp(log_p, 0).item()) < 1e-12
    # batched over leading axes
    batch = vs[torch.randint(len(vs), (12,), generator=torch.Generator().manual_seed(1))].reshape(3, 4, n_v)
    assert rbm.log_unnormalized(batch).shape == (3, 4)
    np.testing.assert_allclose(
        rbm.log_unnormalized(batch).flatten(), rbm.log_unnormalized(batch.reshape(-1, n_v))
    )


def test_conditionals_against_the_joint():
    rbm = random_rbm(4, 3, seed=3)
    p = np.exp(brute_log_joint(rbm))
    vs, hs = states(4), states(3)
    p_h_given_v = p / p.sum(1, keepdims=True)
    p_v_given_h = p / p.sum(0, keepdims=True)
    np.testing.assert_allclose(rbm.conditional_h(torch.as_tensor(vs)).numpy(), p_h_given_v @ hs, atol=1e-12)
    np.testing.assert_allclose(rbm.conditional_v(torch.as_tensor(hs)).numpy(), p_v_given_h.T @ vs, atol=1e-12)


def test_both_enumeration_sides_agree_beyond_brute_force():
    rbm = random_rbm(17, 9, scale=0.5, seed=4)
    hidden, visible = rbm.log_partition(side="hidden"), rbm.log_partition(side="visible")
    assert abs(hidden.item() - visible.item()) < 1e-9
    assert rbm.log_partition().dtype == torch.float64


def test_intractable_beyond_the_limit_and_without_exact():
    rbm = random_rbm(6, 4)
    v = torch.zeros(6)
    with pytest.raises(IntractableMarginalError, match=r"^RBM: log P\(v\) is intractable.*ais_log_partition"):
        rbm.log_prob(v)
    with pytest.raises(IntractableMarginalError, match=r"^RBM: log Z is intractable.*2\^4 states"):
        rbm.log_partition(exact=False)
    big = RBM(torch.zeros(21, 22), torch.zeros(21), torch.zeros(22))
    with pytest.raises(ValueError, match=r"^exact: summing over the visible side enumerates 2\^21 states"):
        big.log_partition()
    with pytest.raises(ValueError, match=r"^exact: summing over the visible side .*ais_log_partition"):
        big.log_prob(torch.zeros(21), exact=True)
    # a wide model with few hidden units is exact: W = 0 gives Z = 2^(n_v + n_h)
    wide = RBM(torch.zeros(40, 3), torch.zeros(40), torch.zeros(3))
    assert abs(wide.log_partition().item() - 43 * math.log(2)) < 1e-10


def chi_square_p(samples, probs):
    """p-value of Pearson's chi-square of the binary rows ``samples`` (s, n) against ``probs`` over states()."""
    n = samples.shape[1]
    codes = (samples.long() * 2 ** torch.arange(n - 1, -1, -1)).sum(1)
    counts = torch.bincount(codes, minlength=2**n).numpy()
    expected = probs * len(samples)
    return stats.chisquare(counts, expected).pvalue


def test_gibbs_samples_follow_the_exact_distribution_and_a_wrong_sampler_fails():
    rbm = random_rbm(4, 3, seed=5)
    probs = np.exp(rbm.log_prob(torch.as_tensor(states(4)), exact=True).numpy())
    g = torch.Generator().manual_seed(0)
    v = rbm.sample((20000,), num_steps=30, generator=g)
    assert v.shape == (20000, 4) and set(v.unique().tolist()) <= {0.0, 1.0}
    assert chi_square_p(v, probs) > 1e-3
    # the same test rejects a sampler that forgot the hidden bias, and one that stopped after one step
    wrong = RBM(rbm.W, rbm.visible_bias, torch.zeros(3, dtype=torch.float64)).sample((20000,), 30, g)
    assert chi_square_p(wrong, probs) < 1e-6
    one_step = rbm.sample((20000,), num_steps=1, generator=g, init=torch.zeros(4))
    assert chi_square_p(one_step, probs) < 1e-6


def test_sample_shapes_and_seeding():
    rbm = random_rbm(5, 4)
    a = rbm.sample((2, 3), 5, torch.Generator().manual_seed(7))
    b = rbm.sample((2, 3), 5, torch.Generator().manual_seed(7))
    assert a.shape == (2, 3, 5) and torch.equal(a, b)
    assert rbm.sample(num_steps=2).shape == (5,)
    assert rbm.sample((4,), 1, init=torch.ones(5)).shape == (4, 5)


def test_annealing_path_against_brute_force_at_several_betas():
    rbm = random_rbm(4, 3, seed=6)
    base = torch.tensor([0.3, -1.0, 2.0, 0.0], dtype=torch.float64)
    path = rbm.annealing_path(base)
    W, b, c, bA = (t.numpy() for t in (rbm.W, rbm.visible_bias, rbm.hidden_bias, base))
    vs, hs = states(4), states(3)
    base_joint = np.array([[v @ bA for _ in hs] for v in vs])
    assert abs(path.log_partition_base().item() - logsumexp(base_joint)) < 1e-12
    for beta in (0.0, 0.3, 1.0):
        joint = np.array([[(1 - beta) * v @ bA + beta * (v @ b + h @ c + v @ W @ h) for h in hs] for v in vs])
        got = path.log_unnormalized(torch.as_tensor(vs), beta)
        assert got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), logsumexp(joint, 1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        path.log_unnormalized(torch.as_tensor(vs), 1.0).numpy(),
        rbm.log_unnormalized(torch.as_tensor(vs)).numpy(),
    )


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_transition_leaves_p_beta_invariant(beta):
    rbm = random_rbm(4, 3, seed=8)
    path = rbm.annealing_path(torch.tensor([1.0, -0.5, 0.0, 0.5], dtype=torch.float64))
    vs = torch.as_tensor(states(4))
    log_f = path.log_unnormalized(vs, beta)
    probs = torch.softmax(log_f, 0)
    g = torch.Generator().manual_seed(1)
    start = vs[torch.multinomial(probs, 20000, replacement=True, generator=g)]  # exact draws of p_β
    after = path.transition(start, beta, g)
    assert after.shape == start.shape
    assert chi_square_p(after, probs.numpy()) > 1e-3
    if beta == 0.0:  # base draws are exact too
        assert chi_square_p(path.sample_base(20000, g), probs.numpy()) > 1e-3


# (n_v, n_h, weight scale, bias scale, base biases, chains, steps): stderrs near 0.01-0.05 nats
AIS_CASES = [
    (20, 10, 0.1, 1.0, "model", 100, 300),
    (12, 16, 0.5, 0.5, "model", 200, 1000),
    (16, 12, 0.5, 1.0, "marginals", 200, 1000),
    (24, 8, 1.5, 1.0, "model", 300, 3000),  # larger weights: sharper modes, harder to anneal
    (20, 16, 1.5, 1.0, "model", 300, 3000),  # 16 hidden units, as the digits app's exact model
]


@pytest.mark.parametrize("n_v, n_h, scale, bias, base, chains, steps", AIS_CASES)
def test_ais_within_three_stderr_of_exact(n_v, n_h, scale, bias, base, chains, steps):
    rbm = random_rbm(n_v, n_h, scale=scale, bias=bias, seed=n_v + n_h)
    exact = rbm.log_partition().item()
    if base == "marginals":  # b_A from the model's own (approximate) visible marginals, as from data
        mean = rbm.sample((2000,), 50, torch.Generator().manual_seed(2)).mean(0).clamp(0.02, 0.98)
        rbm.annealing_path = lambda m=mean: RBM.annealing_path(rbm, torch.logit(m))
    est = ais_log_partition(rbm, steps, chains, "linear", torch.Generator().manual_seed(3))
    got, se = est.estimate.item(), est.stderr.item()
    assert est.num_samples == chains and 0 < se < 0.1
    assert abs(got - exact) < 3 * se, (got, exact, se)


def test_bad_input_names_the_argument():
    W, b, c = torch.zeros(5, 4), torch.zeros(5), torch.zeros(4)
    with pytest.raises(ValueError, match=r"^W: expected 2 dimensions \(n_v, n_h\), got shape \(5,\)"):
        RBM(torch.zeros(5), b, c)
    with pytest.raises(ValueError, match=r"^W: expected finite values, got 1 NaN or infinite entry"):
        RBM(W.index_put((torch.tensor(0), torch.tensor(1)), torch.tensor(float("nan"))), b, c)
    with pytest.raises(ValueError, match=r"^W: expected at least one visible and one hidden unit"):
        RBM(torch.zeros(5, 0), b, torch.zeros(0))
    with pytest.raises(ValueError, match=r"^visible_bias: expected shape \(5,\) \(n_v, from W\), got \(4,\)"):
        RBM(W, c, c)
    with pytest.raises(ValueError, match=r"^hidden_bias: expected finite values"):
        RBM(W, b, torch.tensor([0.0, float("inf"), 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"^hidden_bias: expected shape \(4,\) \(n_h, from W\), got \(5,\)"):
        RBM(W, b, b)
    with pytest.raises(ValueError, match=r"^W: expected a tensor or array, got str"):
        RBM("W", b, c)
    rbm = RBM(W, b, c)
    with pytest.raises(
        ValueError, match=r"^v: expected binary values \(0 or 1\), got 1 other entries \(e\.g\. 0\.5\)"
    ):
        rbm.log_unnormalized(torch.tensor([0, 1, 0.5, 1, 0]))
    with pytest.raises(
        ValueError, match=r"^v: expected binary values \(0 or 1\), got 1 other entries \(e\.g\. 2"
    ):
        rbm.free_energy(torch.tensor([0, 1, 2, 1, 0]))
    with pytest.raises(ValueError, match=r"^v: expected shape \(\.\.\., 5\) \(n_v last\), got \(3, 4\)"):
        rbm.conditional_h(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"^v: expected binary values"):
        rbm.log_prob(torch.full((5,), float("nan")), exact=True)
    with pytest.raises(ValueError, match=r"^h: expected shape \(\.\.\., 4\) \(n_h last\), got \(5,\)"):
        rbm.conditional_v(torch.zeros(5))
    with pytest.raises(ValueError, match=r"^h: expected binary values"):
        rbm.energy(torch.zeros(5), torch.full((4,), -1.0))
    with pytest.raises(ValueError, match=r"^init: expected binary values"):
        rbm.sample((2,), 1, init=torch.full((5,), 0.5))
    with pytest.raises(ValueError, match=r"^init: expected a shape broadcastable to \(2, 5\), got \(3, 5\)"):
        rbm.sample((2,), 1, init=torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"^num_steps: expected a positive integer, got 0"):
        rbm.sample((2,), 0)
    with pytest.raises(ValueError, match=r"^side: expected 'auto', 'hidden' or 'visible', got 'both'"):
        rbm.log_partition(side="both")
    with pytest.raises(ValueError, match=r"^base_visible_bias: expected shape \(5,\) \(n_v\), got \(4,\)"):
        rbm.annealing_path(torch.zeros(4))
    with pytest.raises(ValueError, match=r"^base_visible_bias: expected finite values"):
        rbm.annealing_path(torch.full((5,), float("nan")))


# -- the digits application (latentvar.apps.rbm) ---------------------------------------------------------
QUICK = ["--hidden", "6", "24", "--limit", "80", "--eval-every", "2", "--val-chains", "8", "--val-steps", "20",
         "--ais-chains", "16", "--ais-steps", "40", "--gibbs-steps", "1", "3", "--quiet"]  # fmt: skip


def test_digits_app_end_to_end_and_resume_continues_exactly(tmp_path):
    from latentvar.apps.rbm.experiment import main
    from latentvar.io import load_checkpoint

    whole = main(["--out", str(tmp_path / "whole"), "--epochs", "4", *QUICK])
    assert (tmp_path / "whole" / "report.html").stat().st_size > 10_000
    assert json.loads((tmp_path / "whole" / "results.json").read_text())["models"][0]["hidden"] == 6
    small, large = whole["models"]
    assert small["test"]["exact"] is not None and large["test"]["exact"] is None  # 2^24 > 2^20: AIS only
    assert abs(small["test"]["ais"] - small["test"]["exact"]) < 0.5
    assert [h["epoch"] for h in small["history"]] == [2, 4] and small["best_epoch"] in (2, 4)
    assert whole["data"] == {"train": 80, "val": 80, "test": 80, "threshold": 8, "split_seed": 20080705}
    # the RBMs beat nothing yet after 4 epochs on 80 images, but are proper: log-likelihoods below 0
    assert all(m["test"]["ais"] < 0 for m in whole["models"])

    main(["--out", str(tmp_path / "split"), "--epochs", "2", *QUICK])
    resumed = main(["--out", str(tmp_path / "split"), "--epochs", "4", "--resume", *QUICK])
    for hidden in (6, 24):
        a, meta_a = load_checkpoint(tmp_path / "whole" / f"h{hidden}")
        b, meta_b = load_checkpoint(tmp_path / "split" / f"h{hidden}")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), hidden
        assert meta_a["history"] == meta_b["history"] and meta_a["epoch"] == meta_b["epoch"] == 4
    for a, b in zip(resumed["models"], whole["models"], strict=True):
        assert (a["test"]["ais"], a["test"]["exact"]) == (b["test"]["ais"], b["test"]["exact"])
    with pytest.raises(ValueError, match=r"^--lr: .* was fitted with 0\.02, got 0\.03"):
        main(["--out", str(tmp_path / "split"), "--epochs", "6", "--resume", "--lr", "0.03", *QUICK])


def test_digits_split_is_fixed_and_disjoint():
    from latentvar.apps.rbm.data import split_digits, split_indices

    train, val, test = split_indices(1797)
    assert (len(train), len(val), len(test)) == (1079, 359, 359)
    assert torch.equal(torch.cat([train, val, test]).sort().values, torch.arange(1797))  # disjoint, complete
    assert torch.equal(split_indices(1797)[2], test)
    s = split_digits()
    assert set(s.train.unique().tolist()) == {0.0, 1.0} and s.test.shape == (359, 64)
    assert torch.equal(split_digits(40).test, s.test[:40])
