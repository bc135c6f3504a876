"""CTC against references nobody here wrote: torch.nn.functional.ctc_loss, and brute-force enumeration of
every alignment on tiny inputs."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chisquare

import latentvar
from latentvar.ctc import (
    CTC,
    Labels,
    collapse,
    ctc_loss,
)
from latentvar.inference import ctc_chain

BACKENDS = ["latentvar", "native", "compiled"]


def random_case(seed, b=6, t=12, c=5, max_len=5, blank=0):
    """Ragged batch with repeated labels, an empty target, a target that just fits and one that cannot."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, c, generator=g, dtype=torch.float64) * 2
    input_lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
    input_lengths[0] = t
    target_lengths = torch.randint(1, max_len + 1, (b,), generator=g)
    labels = [k for k in range(c) if k != blank]
    targets = torch.tensor(labels)[torch.randint(0, len(labels), (b, max_len), generator=g)]
    targets[0, :3] = labels[0]  # repeats: needs 2L - 1 frames
    target_lengths[0] = 3
    target_lengths[1] = 0  # empty
    # just fits: L + number of repeats == T_b
    input_lengths[2] = 5
    targets[2, :4] = torch.tensor([labels[1], labels[1], labels[0], labels[2 % len(labels)]])
    target_lengths[2] = 4
    # cannot fit: 3 repeats need 5 frames
    input_lengths[3] = 4
    targets[3, :3] = labels[0]
    target_lengths[3] = 3
    return logits, targets, input_lengths, target_lengths


def torch_loglik(logits, targets, input_lengths, target_lengths, blank):
    lp = logits.log_softmax(-1)
    return -F.ctc_loss(
        lp.transpose(0, 1), targets, input_lengths, target_lengths, blank=blank, reduction="none"
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed,blank", [(0, 0), (1, 0), (2, 4), (3, 2)])
def test_log_prob_and_gradient_match_torch(seed, blank, backend):
    logits, targets, il, tl = random_case(seed, blank=blank)
    ref_logits = logits.clone().requires_grad_()
    ref = torch_loglik(ref_logits, targets, il, tl, blank)
    mine_logits = logits.clone().requires_grad_()
    mine = CTC(mine_logits.log_softmax(-1), il, blank=blank).log_prob(targets, tl, backend=backend)
    assert torch.isneginf(ref[3]) and torch.isneginf(mine[3])
    assert torch.isfinite(mine[[0, 1, 2, 4, 5]]).all()
    torch.testing.assert_close(mine, ref.detach(), atol=1e-5, rtol=0)
    feasible = torch.isfinite(ref)
    weights = torch.rand(len(ref), dtype=torch.float64) * feasible
    ref_grad = torch.autograd.grad((torch.where(feasible, ref, 0) * weights).sum(), ref_logits)[0]
    mine_grad = torch.autograd.grad((torch.where(feasible, mine, 0) * weights).sum(), mine_logits)[0]
    # torch's gradient is NaN on rows whose loss is infinite, even with weight 0; ours is 0 there
    torch.testing.assert_close(mine_grad[feasible], ref_grad[feasible], atol=1e-5, rtol=0)
    assert (mine_grad[3] == 0).all()


def test_concatenated_targets_equal_padded():
    logits, targets, il, tl = random_case(5)
    flat = torch.cat([targets[i, : int(n)] for i, n in enumerate(tl)])
    model = CTC(logits.log_softmax(-1), il)
    torch.testing.assert_close(model.log_prob(flat, tl), model.log_prob(targets, tl))
    ref = -F.ctc_loss(logits.log_softmax(-1).transpose(0, 1), flat, il, tl, reduction="none")
    torch.testing.assert_close(model.log_prob(flat, tl), ref, atol=1e-5, rtol=0)


def test_exact_gradient_wrt_log_probs_equals_autograd_through_the_recursion():
    """Both hand-written gradients (own forward-backward, corrected native) equal autograd of the log
    partition through the generic semiring recursion, for log_probs that are *not* from a log_softmax."""
    logits, targets, il, tl = random_case(7)
    lp = logits.log_softmax(-1) + 0.3 * torch.randn_like(logits)  # unnormalised on purpose
    x = lp.clone().requires_grad_()
    logz = ctc_chain(x, targets, tl, il, 0, fast=False).log_partition()  # no compiled path
    feasible = torch.isfinite(logz)
    (ref_grad,) = torch.autograd.grad(logz[feasible].sum(), x)
    for backend in BACKENDS:
        y = lp.clone().requires_grad_()
        with pytest.warns(UserWarning, match=r"^log_probs: "):
            model = CTC(y, il)
        value = model.log_prob(targets, tl, backend=backend)
        torch.testing.assert_close(value[feasible], logz[feasible].detach())
        (grad,) = torch.autograd.grad(value[feasible].sum(), y)
        torch.testing.assert_close(grad, ref_grad, atol=1e-10, rtol=0)


def test_float32_and_large_case_match_torch():
    g = torch.Generator().manual_seed(3)
    b, t, c, n = 4, 150, 20, 40
    logits = torch.randn(b, t, c, generator=g)
    targets = torch.randint(1, c, (b, n), generator=g)
    il = torch.tensor([150, 140, 120, 100])
    tl = torch.tensor([40, 35, 30, 10])
    ref = torch_loglik(logits, targets, il, tl, 0)
    for backend in BACKENDS:
        mine = CTC(logits.log_softmax(-1), il).log_prob(targets, tl, backend=backend)
        torch.testing.assert_close(mine, ref, atol=1e-3, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# brute force over every alignment


def enumerate_alignments(log_probs, length, c):
    """Every frame-label sequence of ``length`` frames with its log-probability."""
    for z in itertools.product(range(c), repeat=length):
        yield z, float(sum(log_probs[t, k] for t, k in enumerate(z)))


def hand_collapse(z, blank):
    out = []
    previous = None
    for k in z:
        if k != blank and k != previous:
            out.append(k)
        previous = k
    return tuple(out)


TINY = [  # (targets, input length)
    ((1, 1), 5),
    ((2, 1), 4),
    ((), 3),
    ((1, 2, 2), 5),
    ((2,), 5),
]


def tiny_batch(blank=0, c=3, t=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_probs = (torch.randn(len(TINY), t, c, generator=g, dtype=torch.float64) * 1.5).log_softmax(-1)
    labels = [k for k in range(c) if k != blank]
    relabel = {1: labels[0], 2: labels[1]}
    targets = torch.zeros(len(TINY), 3, dtype=torch.long) + blank
    for i, (y, _) in enumerate(TINY):
        targets[i, : len(y)] = torch.tensor([relabel[k] for k in y], dtype=torch.long)
    tl = torch.tensor([len(y) for y, _ in TINY])
    il = torch.tensor([n for _, n in TINY])
    return log_probs, targets, il, tl


def brute_force(log_probs, y, length, blank):
    """log P(y|x), the posterior over alignments {z: log P(z|x,y)}, marginals (t, c)."""
    c = log_probs.shape[-1]
    paths = {z: s for z, s in enumerate_alignments(log_probs, length, c) if hand_collapse(z, blank) == y}
    logz = torch.logsumexp(torch.tensor(list(paths.values()), dtype=torch.float64), 0)
    posterior = {z: s - float(logz) for z, s in paths.items()}
    marginals = torch.zeros(log_probs.shape[0], c, dtype=torch.float64)
    for z, lp in posterior.items():
        for t, k in enumerate(z):
            marginals[t, k] += math.exp(lp)
    return float(logz), posterior, marginals


@pytest.mark.parametrize("blank", [0, 2])
def test_log_prob_marginals_mode_posterior_log_prob_against_enumeration(blank):
    log_probs, targets, il, tl = tiny_batch(blank)
    model = CTC(log_probs, il, blank=blank)
    posterior = model.posterior(targets, tl)
    mode = posterior.mode
    alignment = model.forced_align(targets, tl)
    for i, (_, n) in enumerate(TINY):
        y = tuple(targets[i, : int(tl[i])].tolist())
        logz, exact, marginals = brute_force(log_probs[i], y, n, blank)
        assert float(model.log_prob(targets, tl)[i]) == pytest.approx(logz, abs=1e-9)
        assert float(posterior.log_partition[i]) == pytest.approx(logz, abs=1e-9)
        torch.testing.assert_close(posterior.marginals[i], marginals, atol=1e-9, rtol=0)
        best = max(exact, key=exact.get)
        assert tuple(mode[i, :n].tolist()) == best
        assert (mode[i, n:] == -1).all()
        assert float(alignment.score[i]) == pytest.approx(exact[best] + logz, abs=1e-9)
        # every alignment's posterior log-probability; a wrong collapse gives -inf
        zs = torch.tensor(list(itertools.product(range(3), repeat=n)))
        full = torch.cat([zs, torch.full((len(zs), 5 - n), -1)], dim=1)
        batch = torch.full((len(zs), len(TINY), 5), blank)
        batch[:, i] = full
        got = posterior.log_prob(batch)[:, i]
        want = torch.tensor([exact.get(tuple(z), -math.inf) for z in zs.tolist()], dtype=torch.float64)
        torch.testing.assert_close(got, want)


def test_a_negative_blank_counts_from_the_end():
    """blank=-1 is the last class (TensorFlow's blank_index; tests/peers/test_tf_ctc.py has its loss case):
    every question gives what blank=c-1 gives, and the model reports the index it resolved."""
    log_probs, targets, il, tl = tiny_batch(blank=2)
    last, minus = CTC(log_probs, il, blank=2), CTC(log_probs, il, blank=-1)
    assert minus.blank == 2
    torch.testing.assert_close(minus.log_prob(targets, tl), last.log_prob(targets, tl), atol=0, rtol=0)
    torch.testing.assert_close(minus.posterior(targets, tl).mode, last.posterior(targets, tl).mode)
    a, b = minus.forced_align(targets, tl), last.forced_align(targets, tl)
    torch.testing.assert_close(a.score, b.score, atol=0, rtol=0)
    for width in (1, 3):
        for x, y in zip(minus.decode(beam_width=width), last.decode(beam_width=width), strict=True):
            torch.testing.assert_close(x, y, atol=0, rtol=0)
    lp = log_probs.transpose(0, 1)
    torch.testing.assert_close(
        ctc_loss(lp, targets, il, tl, blank=-1), ctc_loss(lp, targets, il, tl, blank=2)
    )


def test_token_spans_match_the_path():
    log_probs, targets, il, tl = tiny_batch()
    alignment = CTC(log_probs, il).forced_align(targets, tl)
    for i in range(len(TINY)):
        path = alignment.path[i].tolist()
        for j in range(int(tl[i])):
            start, end = alignment.spans[i, j].tolist()
            assert 0 <= start < end <= int(il[i])
            assert all(path[t] == int(targets[i, j]) for t in range(start, end))
        assert (alignment.spans[i, int(tl[i]) :] == -1).all()
        starts = alignment.spans[i, : int(tl[i]), 0].tolist()
        assert starts == sorted(starts)


def test_batched_forced_alignment_equals_one_by_one():
    logits, targets, il, tl = random_case(11, b=8, t=30, c=6, max_len=8)
    model = CTC(logits.log_softmax(-1), il)
    batch = model.forced_align(targets, tl)
    for i in range(len(il)):
        single = CTC(logits[i : i + 1].log_softmax(-1), il[i : i + 1]).forced_align(
            targets[i : i + 1], tl[i : i + 1]
        )
        torch.testing.assert_close(batch.score[i : i + 1], single.score)
        assert torch.equal(batch.path[i : i + 1], single.path)
    assert (batch.path[3] == -1).all() and torch.isneginf(batch.score[3])  # cannot fit


def test_posterior_samples_follow_the_exact_posterior():
    """Chi-square of backward samples against the enumerated posterior (fixed seed)."""
    log_probs, targets, il, tl = tiny_batch()
    posterior = CTC(log_probs, il).posterior(targets, tl)
    n = 20000
    samples = posterior.sample((n,), generator=torch.Generator().manual_seed(1))
    assert samples.shape == (n, len(TINY), 5)
    for i, (_, length) in enumerate(TINY):
        y = tuple(targets[i, : int(tl[i])].tolist())
        _, exact, _ = brute_force(log_probs[i], y, length, 0)
        keys = list(exact)
        counts = {k: 0 for k in keys}
        for z in samples[:, i, :length].tolist():
            counts[tuple(z)] += 1  # a KeyError here is a sample outside the support
        assert (samples[:, i, length:] == -1).all()
        expected = torch.tensor([math.exp(exact[k]) for k in keys], dtype=torch.float64)
        expected = expected / expected.sum() * n
        if len(keys) > 1:
            assert chisquare([counts[k] for k in keys], expected.numpy()).pvalue > 1e-3


def test_model_samples_collapse_and_log_joint():
    log_probs, _, il, _ = tiny_batch()
    model = CTC(log_probs, il)
    z, y = model.sample((2000,), generator=torch.Generator().manual_seed(0))
    assert z.shape == (2000, len(TINY), 5) and y.targets.shape[:2] == (2000, len(TINY))
    for zi, yi, li in zip(
        z[:50].reshape(-1, 5).tolist(),
        y.targets[:50].reshape(len(y.lengths[:50].flatten()), -1).tolist(),
        y.lengths[:50].flatten().tolist(),
        strict=True,
    ):
        assert tuple(yi[:li]) == hand_collapse([k for k in zi if k >= 0], 0)
    # frame frequencies follow P(z_t|x)
    freq = F.one_hot(z[:, 0, :].clamp_min(0), 3).double().mean(0)
    torch.testing.assert_close(freq, log_probs[0].exp(), atol=0.04, rtol=0)
    joint = model.log_joint(z[:10], Labels(y.targets[:10], y.lengths[:10]))
    manual = (
        log_probs.expand(10, -1, -1, -1).gather(-1, z[:10].clamp_min(0)[..., None]).squeeze(-1)
        * (z[:10] >= 0)
    ).sum(-1)
    torch.testing.assert_close(joint, manual)
    wrong = y.targets[:10].clone()
    wrong[..., 0] = torch.where(y.lengths[:10] > 0, 3 - wrong[..., 0].clamp(1, 2), wrong[..., 0])
    assert torch.isneginf(model.log_joint(z[:10], Labels(wrong, y.lengths[:10]))[y.lengths[:10] > 0]).all()


def test_collapse():
    z = torch.tensor([[1, 1, 0, 1, 2, 2, 0, -1], [0, 0, 0, 0, -1, -1, -1, -1]])
    out = collapse(z, 0)
    assert out.targets.tolist() == [[1, 1, 2], [-1, -1, -1]] and out.lengths.tolist() == [3, 0]


# ---------------------------------------------------------------------------------------------
# decoding


def test_greedy_decode_is_the_collapsed_argmax():
    logits, _, il, _ = random_case(4, b=5, t=20, c=6)
    lp = logits.log_softmax(-1)
    decoded = CTC(lp, il).decode()
    for i in range(5):
        best = lp[i, : int(il[i])].argmax(-1).tolist()
        want = hand_collapse(best, 0)
        assert tuple(decoded.labels[i, : int(decoded.lengths[i])].tolist()) == want
        assert float(decoded.scores[i]) == pytest.approx(float(lp[i, : int(il[i])].max(-1).values.sum()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_finds_the_best_labelling(seed):
    g = torch.Generator().manual_seed(seed)
    t, c = 5, 3
    lp = (torch.randn(2, t, c, generator=g, dtype=torch.float64) * 1.2).log_softmax(-1)
    il = torch.tensor([5, 4])
    decoded = CTC(lp, il).decode(beam_width=200)
    for i in range(2):
        n = int(il[i])
        totals = {}
        for z, s in enumerate_alignments(lp[i], n, c):
            y = hand_collapse(z, 0)
            totals[y] = float(
                torch.logaddexp(
                    torch.tensor(totals.get(y, -math.inf), dtype=torch.float64),
                    torch.tensor(s, dtype=torch.float64),
                )
            )
        best = max(totals, key=totals.get)
        assert tuple(decoded.labels[i, : int(decoded.lengths[i])].tolist()) == best
        assert float(decoded.scores[i]) == pytest.approx(totals[best], abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_nbest_against_enumeration(seed):
    """nbest = k with a beam wide enough to prune nothing: the k most probable label sequences and their
    exact log P(y|x), from enumerating every alignment; a narrow beam's n-best is a prefix-closed subset."""
    g = torch.Generator().manual_seed(seed)
    t, c, k = 5, 3, 6
    lp = (torch.randn(2, t, c, generator=g, dtype=torch.float64) * 1.2).log_softmax(-1)
    il = torch.tensor([5, 4])
    decoded = CTC(lp, il).decode(beam_width=200, nbest=k)
    assert decoded.labels.shape[:2] == (2, k) and decoded.scores.shape == (2, k)
    for i in range(2):
        totals = {}
        for z, s in enumerate_alignments(lp[i], int(il[i]), c):
            y = hand_collapse(z, 0)
            totals[y] = float(np.logaddexp(totals.get(y, -math.inf), s))
        ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:k]
        got = [tuple(decoded.labels[i, j, : int(decoded.lengths[i, j])].tolist()) for j in range(k)]
        assert got == [y for y, _ in ranked]
        torch.testing.assert_close(
            decoded.scores[i], torch.tensor([s for _, s in ranked], dtype=torch.float64)
        )
    narrow = CTC(lp, il).decode(beam_width=3, nbest=3)
    assert (narrow.scores[:, :-1] >= narrow.scores[:, 1:]).all()  # best first
    one = CTC(lp, il).decode(beam_width=200)
    torch.testing.assert_close(one.scores, decoded.scores[:, 0])  # nbest[0] is the plain beam's answer


def test_beam_search_nbest_pads_when_the_beam_holds_fewer():
    lp = torch.tensor([[[0.0, -math.inf]]], dtype=torch.float64)  # one frame, surely blank
    decoded = CTC(lp, torch.tensor([1])).decode(beam_width=4, nbest=3)
    assert decoded.lengths.tolist() == [[0, 0, 0]]
    assert decoded.scores[0, 0] == 0.0 and torch.isinf(decoded.scores[0, 1:]).all()
    for bad in (0, 5, 1.5, True):
        with pytest.raises(ValueError, match="^nbest:"):
            CTC(lp, torch.tensor([1])).decode(beam_width=4, nbest=bad)


def test_beam_search_language_model_hook():
    lp = torch.tensor([[0.1, 0.6, 0.3]] * 3, dtype=torch.float64).log()[None]
    model = CTC(lp, torch.tensor([3]))
    plain = model.decode(beam_width=8)
    assert plain.labels[0, : int(plain.lengths[0])].tolist() == [1]

    def no_ones(prefix):  # an "LM" that forbids label 1
        return torch.tensor([0.0, -1e9, 0.0])

    shaped = model.decode(beam_width=8, lm=no_ones, lm_weight=1.0)
    assert 1 not in shaped.labels[0, : int(shaped.lengths[0])].tolist()
    assert shaped.labels[0, 0] == 2


# ---------------------------------------------------------------------------------------------
# the torch-compatible loss


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_loss_reductions_match_torch(reduction, zero_infinity):
    logits, targets, il, tl = random_case(9)
    if not zero_infinity:  # torch's gradient of an infinite loss is NaN; compare on feasible rows
        keep = torch.tensor([0, 1, 2, 4, 5])
        logits, targets, il, tl = logits[keep], targets[keep], il[keep], tl[keep]
    grads, values = [], []
    for fn in (F.ctc_loss, ctc_loss, latentvar.ctc_loss):
        x = logits.clone().requires_grad_()
        lp = x.log_softmax(-1).transpose(0, 1)
        loss = fn(lp, targets, il, tl, blank=0, reduction=reduction, zero_infinity=zero_infinity)
        values.append(loss.detach())
        (grads_x,) = torch.autograd.grad(loss.sum(), x)
        grads.append(grads_x)
    for v, gr in zip(values[1:], grads[1:], strict=True):
        torch.testing.assert_close(v, values[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(gr, grads[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["auto", "latentvar", "native", "compiled"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_loss_target_longer_than_the_frames_is_infinite_like_torch(reduction, backend):
    """issue 21: torch returns inf (0 with zero_infinity) for a target longer than T; so do we, values and
    gradients equal to torch's for every reduction."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    targets = torch.tensor([[1, 2, 3, 1], [1, 2, 0, 0]])
    il, tl = torch.tensor([3, 3]), torch.tensor([4, 2])
    out = []
    for fn, kw in ((F.ctc_loss, {}), (ctc_loss, {"backend": backend})):
        x = logits.clone().requires_grad_()
        lp = x.log_softmax(-1).transpose(0, 1)
        loss = fn(lp, targets, il, tl, reduction=reduction, zero_infinity=True, **kw)
        out.append((loss.detach(), torch.autograd.grad(loss.sum(), x)[0]))
        if reduction == "none":
            inf = fn(lp.detach(), targets, il, tl, reduction="none", **kw)
            assert math.isinf(float(inf[0])) and float(inf[0]) > 0
    torch.testing.assert_close(out[1][0], out[0][0], atol=1e-10, rtol=0)
    torch.testing.assert_close(out[1][1], out[0][1], atol=1e-10, rtol=0)
    assert float(out[0][1][0].abs().sum()) == 0.0  # the zeroed row has no gradient
    with pytest.raises(ValueError, match="^target_lengths:"):  # the model still refuses it
        CTC(logits.log_softmax(-1), il).log_prob(targets, tl)


def test_ctc_loss_zero_dim_lengths_for_a_batch_of_one_like_torch():
    lp = torch.randn(5, 1, 4, dtype=torch.float64).log_softmax(-1)
    for targets in (torch.tensor([[1, 2]]), torch.tensor([1, 2])):
        ref = F.ctc_loss(lp, targets, torch.tensor(5), torch.tensor(2), reduction="none")
        got = ctc_loss(lp, targets, torch.tensor(5), torch.tensor(2), reduction="none")
        torch.testing.assert_close(got, ref)
        assert got.shape == (1,)
    with pytest.raises(ValueError, match="^input_lengths:"):  # a batch of two needs two lengths
        ctc_loss(lp.expand(5, 2, 4), torch.tensor([[1, 2], [1, 2]]), torch.tensor(5), torch.tensor([2, 2]))


@pytest.mark.parametrize("backend", ["auto", "latentvar", "native", "compiled"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_ctc_loss_ignores_nonfinite_padding_like_torch(value, backend):
    """NaN / inf in frames past input_lengths are padding: ignored, values and gradients as torch's."""
    logits, targets, il, tl = random_case(9)
    keep = torch.tensor([0, 1, 2, 4, 5])
    logits, targets, il, tl = logits[keep], targets[keep], il[keep], tl[keep]
    il[1] = 7
    x = logits.clone().requires_grad_()
    pad = (torch.arange(x.shape[1]) >= il[:, None])[..., None]

    def padded():
        return torch.where(pad, torch.full((), value, dtype=x.dtype), x.log_softmax(-1)).transpose(0, 1)

    ref = F.ctc_loss(padded(), targets, il, tl, reduction="none")
    (gref,) = torch.autograd.grad(ref.sum(), x)
    got = ctc_loss(padded(), targets, il, tl, reduction="none", backend=backend)
    (ggot,) = torch.autograd.grad(got.sum(), x)
    lp = padded().detach()
    torch.testing.assert_close(got, ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(ggot, gref, atol=1e-10, rtol=0)
    assert torch.isfinite(ggot).all()
    model = CTC(lp.detach().transpose(0, 1), il)  # the model too: posterior, alignment, sampling
    post = model.posterior(targets, tl)
    torch.testing.assert_close(post.log_partition, -ref.detach(), atol=1e-10, rtol=0)
    assert torch.isfinite(post.marginals).all()
    assert (model.sample((2,))[0] >= -1).all()
    bad = lp.detach().clone()
    bad[0, 1, 0] = value  # within the lengths: refused unless -inf (log 0)
    if value == float("-inf"):
        with pytest.warns(UserWarning, match="^log_probs: expected log-probabilities normalised"):
            assert not torch.isnan(ctc_loss(bad, targets, il, tl))
    else:
        with pytest.raises(ValueError, match="^log_probs:"):
            ctc_loss(bad, targets, il, tl)


def test_greedy_score_is_finite_with_log_zero_padding():
    """issue 21: -inf padding past input_lengths gave a NaN greedy score ((best * valid).sum())."""
    logits, _, il, _ = random_case(4, b=5, t=20, c=6)
    lp = logits.log_softmax(-1)
    padded = torch.where((torch.arange(20) >= il[:, None])[..., None], float("-inf"), lp)
    want = CTC(lp, il).decode()
    got = CTC(padded, il).decode()
    torch.testing.assert_close(got.scores, want.scores)
    assert torch.equal(got.labels, want.labels)


def test_ctc_loss_unbatched_and_own_backend():
    logits, targets, il, tl = random_case(2)
    lp = logits.log_softmax(-1).transpose(0, 1)
    ref = F.ctc_loss(lp[:, 0], targets[0, : int(tl[0])], il[0], tl[0], reduction="sum")
    torch.testing.assert_close(
        ctc_loss(lp[:, 0], targets[0, : int(tl[0])], il[0], tl[0], reduction="sum"), ref
    )
    own = ctc_loss(lp, targets, il, tl, reduction="none", backend="latentvar")
    torch.testing.assert_close(own, F.ctc_loss(lp, targets, il, tl, reduction="none"))


# ---------------------------------------------------------------------------------------------
# bad input


def bad(**changes):
    logits, targets, il, tl = random_case(0)
    args = {
        "log_probs": logits.log_softmax(-1),
        "input_lengths": il,
        "targets": targets,
        "target_lengths": tl,
    }
    args.update(changes)
    model = CTC(args["log_probs"], args["input_lengths"])
    return model.log_prob(args["targets"], args["target_lengths"])


@pytest.mark.parametrize(
    "change,name",
    [
        ({"targets": torch.zeros(6, 5, dtype=torch.long)}, "targets"),  # the blank
        ({"targets": torch.full((6, 5), 7)}, "targets"),  # >= C
        ({"target_lengths": torch.tensor([3, 0, 4, 3, 13, 1])}, "target_lengths"),  # > T
        ({"target_lengths": torch.tensor([3, 0, 4])}, "target_lengths"),  # wrong shape
        ({"input_lengths": torch.tensor([12, 12])}, "input_lengths"),
        ({"input_lengths": torch.tensor([12, 12, 12, 12, 12, 13])}, "input_lengths"),  # > T
        ({"targets": torch.ones(3, 5, dtype=torch.long)}, "targets"),  # rows != batch
        ({"targets": torch.ones(7, dtype=torch.long)}, "targets"),  # concatenated, wrong total
        ({"targets": torch.ones(6, 5)}, "targets"),  # floats
    ],
)
def test_bad_input_names_the_argument(change, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        bad(**change)


def test_nan_and_shape_of_log_probs_are_refused():
    lp = torch.randn(2, 4, 3).log_softmax(-1)
    lp[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="^log_probs:"):
        CTC(lp, torch.tensor([4, 4]))
    with pytest.raises(ValueError, match="^log_probs:"):
        CTC(torch.randn(4, 3).log_softmax(-1), torch.tensor([4]))
    for blank in (3, -4):
        with pytest.raises(ValueError, match="^blank:"):
            CTC(torch.randn(1, 4, 3).log_softmax(-1), torch.tensor([4]), blank=blank)
    with pytest.raises(ValueError, match="^reduction:"):
        ctc_loss(
            torch.randn(4, 1, 3).log_softmax(-1),
            torch.ones(1, 1, dtype=torch.long),
            [4],
            [1],
            reduction="avg",
        )


def test_unnormalised_log_probs_warn():
    with pytest.warns(UserWarning, match="^log_probs: expected log-probabilities normalised"):
        CTC(torch.randn(2, 4, 3), torch.tensor([4, 4]))


def test_posterior_sample_refuses_targets_that_cannot_fit():
    logits, targets, il, tl = random_case(0)
    with pytest.raises(ValueError, match="^targets:"):
        CTC(logits.log_softmax(-1), il).posterior(targets, tl).sample((2,))


def test_docs_examples_run():
    """The python blocks of docs/ctc.md run as written, in order."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "ctc.md").read_text()
    blocks = [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/ctc.md", "exec"), namespace)
    assert namespace["loglik"].shape == (2,) and namespace["beam"].labels.shape[0] == 2
