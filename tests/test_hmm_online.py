"""Stepwise (online) EM and EM distributed over processes (issue 21, item 7): two gloo processes, each with
half of the sequences, give the fit one process gives with all of them; stepwise EM with step size 1 over one
minibatch is batch EM, and with small minibatches it reaches batch EM's likelihood."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.distributions as D
import torch.multiprocessing as mp

from latentvar import HMM

F64 = torch.float64


def gaussian_hmm(seed) -> HMM:
    g = torch.Generator().manual_seed(seed)
    return HMM(
        torch.randn(3, generator=g, dtype=F64),
        torch.randn(3, 3, generator=g, dtype=F64),
        D.Independent(
            D.Normal(torch.randn(3, 2, generator=g, dtype=F64) * 3, torch.ones(3, 2, dtype=F64)), 1
        ),
    )


def near_data(seed) -> HMM:
    """A start whose states sit among the data (which is shifted by 100)."""
    m = gaussian_hmm(seed)
    return HMM(m.init_logits, m.trans_logits, D.Independent(D.Normal(m.emission.mean + 100, 1.0), 1))


def data(n=12, t=25):
    truth = gaussian_hmm(0)
    y = truth.sample((n,), t, generator=torch.Generator().manual_seed(1))[1] + 100.0  # far from 0: the shift
    lengths = torch.randint(5, t + 1, (n,), generator=torch.Generator().manual_seed(2))
    return y, lengths


def _worker(rank: int, world: int, path: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world)
    try:
        y, lengths = data()
        mine = torch.arange(rank, y.shape[0], world)  # each process its own sequences
        start = gaussian_hmm(3)
        start = HMM(
            start.init_logits, start.trans_logits, D.Independent(D.Normal(start.emission.mean + 100, 1.0), 1)
        )
        fit = start.fit(y[mine], lengths[mine], max_iter=6, tol=-1.0, batch_size=4, distributed=True)
        torch.save(
            {"history": fit.history, "trans": fit.model.log_trans, "mean": fit.model.emission.mean,
             "var": fit.model.emission.variance},
            f"{out}.{rank}",
        )  # fmt: skip
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one_process():
    y, lengths = data()
    start = gaussian_hmm(3)
    start = HMM(
        start.init_logits, start.trans_logits, D.Independent(D.Normal(start.emission.mean + 100, 1.0), 1)
    )
    one = start.fit(y, lengths, max_iter=6, tol=-1.0)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "fit")
        mp.spawn(_worker, args=(2, os.path.join(tmp, "rendezvous"), out), nprocs=2, join=True)
        results = [torch.load(f"{out}.{r}") for r in range(2)]
    for r in results:
        np.testing.assert_allclose(r["history"], one.history, rtol=1e-10)
        torch.testing.assert_close(r["trans"], one.model.log_trans)
        torch.testing.assert_close(r["mean"], one.model.emission.mean)
        torch.testing.assert_close(r["var"], one.model.emission.variance)
    assert one.history[-1] > one.history[0] + 0.1  # the fit moved: the comparison is not of a fixed point


def test_distributed_needs_a_process_group():
    y, lengths = data()
    with pytest.raises(ValueError, match="^distributed: "):
        gaussian_hmm(3).fit(y, lengths, max_iter=1, distributed=True)


def test_stepwise_with_unit_steps_over_one_minibatch_is_batch_em():
    y, lengths = data()
    start = near_data(4)
    batch = start.fit(y, lengths, max_iter=5, tol=-1.0)
    step = start.fit(y, lengths, method="stepwise", max_iter=5, tol=-1.0, batch_size=100, step_decay=0.0)
    np.testing.assert_allclose(step.history, batch.history, rtol=1e-10)
    torch.testing.assert_close(step.model.emission.mean, batch.model.emission.mean)
    torch.testing.assert_close(step.model.log_trans, batch.model.log_trans)


def test_stepwise_minibatches_reach_batch_em():
    truth = HMM(
        torch.zeros(3, dtype=F64),
        torch.eye(3, dtype=F64) * 3,
        D.Categorical(logits=torch.randn(3, 6, generator=torch.Generator().manual_seed(0), dtype=F64) * 2),
    )
    y = truth.sample((200,), 30, generator=torch.Generator().manual_seed(1))[1]
    g = torch.Generator().manual_seed(2)
    start = HMM(torch.zeros(3, dtype=F64), torch.randn(3, 3, generator=g, dtype=F64),
                D.Categorical(logits=torch.randn(3, 6, generator=g, dtype=F64)))  # fmt: skip
    torch.manual_seed(0)  # the minibatch order
    step = start.fit(y, method="stepwise", max_iter=4, batch_size=20, step_decay=0.7, tol=-1.0)
    batch = start.fit(y, max_iter=4, tol=-1.0)
    final_step = float(step.model.log_prob(y).mean()) / 30
    final_batch = float(batch.model.log_prob(y).mean()) / 30
    assert final_step > final_batch  # ten M-steps per pass: further than four batch iterations
    with pytest.raises(ValueError, match="^step_decay: "):
        start.fit(y, method="stepwise", step_decay=1.5)


def test_stepwise_survives_a_word_first_met_in_a_later_minibatch():
    # one sequence holds word 3; the minibatch order puts it last. Running statistics that started from the
    # first minibatch alone would give word 3 probability zero in every state, and its minibatch would be
    # impossible; they start from one E-step over all the data instead.
    g = torch.Generator().manual_seed(3)
    y = torch.randint(3, (20, 8), generator=g)
    torch.manual_seed(0)
    rare = int(torch.randperm(20)[-1])
    y[rare, 4] = 3
    start = HMM(torch.zeros(2, dtype=F64), torch.randn(2, 2, generator=g, dtype=F64),
                D.Categorical(logits=torch.randn(2, 4, generator=g, dtype=F64)))  # fmt: skip
    torch.manual_seed(0)
    fit = start.fit(y, method="stepwise", max_iter=1, batch_size=5, step_decay=0.7)
    assert torch.isfinite(fit.model.log_prob(y)).all()
