"""Fitting an HMM: Baum-Welch over expected counts (the gradients of log P(y), `Chain.expected_counts`),
the emission's M-step by the EM layer shared with the mixture (`latentvar.stats.SufficientStatistics`),
or Adam on the exact -log P(y). One iteration is one pass over the sequences in minibatches;
``callback(model, iteration, mean_ll)`` is the iteration hook."""

from __future__ import annotations

import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar.core import FitResult, track_convergence
from latentvar.hmm.model import HMM
from latentvar.inference import Chain
from latentvar.progress import progress
from latentvar.stats import SufficientStatistics, em_family, unconstrained


def _batches(n: int, batch_size: int, shuffle: bool = False) -> list[Tensor]:
    order = torch.randperm(n) if shuffle else torch.arange(n)  # indices on the CPU: y's rows are picked
    return list(order.split(batch_size))


def _trim(y: Tensor, lengths: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """The minibatch idx, cut to its longest sequence."""
    lb = lengths[idx]
    T = int(lb.max()) if lb.numel() else 0
    return y[idx, :T], lb


def _em_family(emission) -> str:
    """The emission's EM family (`latentvar.stats.em_family`), or a ValueError naming ``emission``."""
    return em_family(emission, "emission")


def _expected_counts(model: HMM, y: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """E-step for one minibatch: (log P(y) summed, initial counts (k,), transition counts (k, k),
    state posteriors (b, t, k)), as gradients of log P(y) w.r.t. log π, log A and the emissions."""
    e = model.emission_log_prob(y).detach()
    chain = Chain(model.log_init.detach(), model.log_trans.detach(), e, lengths)
    total, g_init, g_trans, gamma = chain.expected_counts()
    return total.sum(), g_init, g_trans, gamma


def fit_em(
    model: HMM, y, lengths, max_iter, tol, batch_size, pseudocount, reg_covar, callback, show_progress
):
    _em_family(model.emission)  # refuse unsupported families before any work
    k = model.num_states
    n_obs = max(int(lengths.sum()), 1)
    history: list[float] = []
    converged = False
    bar = progress(range(max_iter), desc="Baum-Welch", disable=not show_progress)
    for _ in bar:
        loglik = 0.0
        init_c = model.init_logits.new_zeros(k)
        trans_c = model.init_logits.new_zeros(k, k)
        stats = SufficientStatistics(model.emission, "emission")
        for idx in _batches(y.shape[0], batch_size):
            yb, lb = _trim(y, lengths, idx)
            total, g_init, g_trans, gamma = _expected_counts(model, yb, lb)
            loglik += float(total)
            init_c += g_init
            trans_c += g_trans
            valid = torch.arange(yb.shape[1], device=lb.device) < lb[:, None]
            stats.summarize(yb[valid], gamma[valid])  # every observed step, weighted by P(z_t | y)
        # the log-likelihood of the parameters *before* this M-step: EM's monotone sequence
        mean_ll = loglik / n_obs
        if history and mean_ll - history[-1] < tol:
            history.append(mean_ll)
            converged = True
            break
        history.append(mean_ll)
        bar.set_postfix(loglik=f"{mean_ll:.5f}")
        init_c = init_c + pseudocount
        trans_c = trans_c + pseudocount
        emission, _ = stats.from_summaries(reg_covar, pseudocount)
        if isinstance(emission, D.Categorical):  # log-probabilities as they are (zero counts: -inf)
            emission = D.Categorical(logits=emission.probs.log())
        model = HMM(
            (init_c / init_c.sum()).log(),
            (trans_c / trans_c.sum(-1, keepdim=True).clamp_min(torch.finfo(trans_c.dtype).tiny)).log(),
            emission,
        )
        if callback is not None and callback(model, len(history), mean_ll):
            break
    return FitResult(model, history, converged)


def fit_gradient(model: HMM, y, lengths, max_iter, tol, batch_size, lr, parameters, callback, show_progress):

    init = model.init_logits.detach().clone().requires_grad_(True)
    trans = model.trans_logits.detach().clone().requires_grad_(True)
    if isinstance(model.emission, nn.Module):
        leaves, rebuild = list(model.emission.parameters()), (lambda p, m=model.emission: m)
    else:
        leaves, rebuild = unconstrained(model.emission)
        for p in leaves:
            p.requires_grad_(True)
    params = [init, trans, *leaves, *(parameters or [])]
    opt = torch.optim.Adam(params, lr=lr)
    n_obs = max(int(lengths.sum()), 1)
    history: list[float] = []
    converged = False
    bar = progress(range(max_iter), desc="gradient", disable=not show_progress)
    for it in bar:
        loglik = 0.0
        for idx in _batches(y.shape[0], batch_size, shuffle=True):
            yb, lb = _trim(y, lengths, idx)
            current = HMM(init, trans, rebuild(leaves))
            total = Chain(
                current.log_init, current.log_trans, current.emission_log_prob(yb), lb
            ).log_partition()
            loss = -total.sum() / max(int(lb.sum()), 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loglik += float(total.detach().sum())
        mean_ll = loglik / n_obs
        bar.set_postfix(loglik=f"{mean_ll:.5f}")
        done = track_convergence(history, mean_ll, tol, lr)
        if done:
            converged = True
            break
        if callback is not None and callback(
            HMM(init.detach(), trans.detach(), rebuild(leaves)), it + 1, mean_ll
        ):
            break
    emission = rebuild(leaves)
    if isinstance(emission, D.Distribution):
        emission = rebuild([p.detach() for p in leaves])
    return FitResult(HMM(init.detach(), trans.detach(), emission), history, converged)
