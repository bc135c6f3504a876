"""K best paths (the k-max semiring) and cross-entropy / KL between two chains, against enumeration of every
state path (issue 21, item 6)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.distributions as D

from latentvar import HMM

F64 = torch.float64


def model(seed, final=False, time_varying=False, k=3, v=4, t=4) -> HMM:
    g = torch.Generator().manual_seed(seed)
    trans = (
        torch.randn(1, t, k, k, generator=g, dtype=F64)
        if time_varying
        else torch.randn(k, k, generator=g, dtype=F64)
    )
    return HMM(
        torch.randn(k, generator=g, dtype=F64),
        trans.squeeze(0) if time_varying else trans,
        D.Categorical(logits=torch.randn(k, v, generator=g, dtype=F64)),
        torch.randn(k, generator=g, dtype=F64) if final else None,
    )


def all_paths(k, n):
    return torch.tensor(list(itertools.product(range(k), repeat=n)), dtype=torch.long).reshape(-1, n)


@pytest.mark.parametrize("final", [False, True])
def test_kbest_paths_are_the_top_of_the_enumeration(final):
    m = model(0, final=final)
    y = torch.tensor([[1, 0, 3, 2], [2, 2, 0, 0], [0, 0, 0, 0]])
    lengths = torch.tensor([4, 2, 0])
    post = m.posterior(y, lengths)
    paths, scores = post.kbest(12)
    assert paths.shape == (12, 3, 4) and scores.shape == (12, 3)
    for b in range(2):
        n = int(lengths[b])
        zs = all_paths(3, n)
        full = torch.cat([zs, torch.zeros(zs.shape[0], 4 - n, dtype=torch.long)], 1)
        lj = m.log_joint(full, y[b : b + 1].expand(len(zs), 4), torch.full((len(zs),), n))
        top = lj.sort(descending=True)
        want = min(12, len(zs))
        torch.testing.assert_close(scores[:want, b], top.values[:want])
        assert paths[:want, b, :n].tolist() == zs[top.indices[:want]].tolist()
        assert (paths[:, b, n:] == -1).all()
        if want < 12:  # fewer paths than asked: -inf scores, -1 paths
            assert torch.isneginf(scores[want:, b]).all() and (paths[want:, b] == -1).all()
    assert scores[0, 2] == 0 and torch.isneginf(scores[1:, 2]).all()
    one, best = post.kbest(1)
    assert one[0].tolist() == post.mode.tolist()
    with pytest.raises(ValueError, match="^k: "):
        post.kbest(0)


def test_cross_entropy_and_kl_match_enumeration():
    p_model, q_model = model(1, final=True), model(2, time_varying=True)
    y = torch.tensor([[1, 0, 3, 2], [3, 1, 1, 0]])
    lengths = torch.tensor([4, 3])
    p, q = p_model.posterior(y, lengths), q_model.posterior(y, lengths)
    ce, kl = p.cross_entropy(q), p.kl_divergence(q)
    for b in range(2):
        n = int(lengths[b])
        zs = all_paths(3, n)
        full = torch.cat([zs, torch.zeros(zs.shape[0], 4 - n, dtype=torch.long)], 1)
        z = full.unsqueeze(1).expand(len(zs), 2, 4).clone()
        lp, lq = p.log_prob(z)[:, b], q.log_prob(z)[:, b]
        torch.testing.assert_close(ce[b], -(lp.exp() * lq).sum())
        torch.testing.assert_close(kl[b], (lp.exp() * (lp - lq)).sum())
    torch.testing.assert_close(p.cross_entropy(p), p.entropy)
    torch.testing.assert_close(p.kl_divergence(p), torch.zeros(2, dtype=F64), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="^other: "):
        p.kl_divergence(q_model.posterior(y[:, :3]))
    with pytest.raises(ValueError, match="^other: "):
        p.kl_divergence("q")
