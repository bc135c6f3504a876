"""Fitting an HMM: Baum-Welch over expected counts (the gradients of log P(y), `Chain.expected_counts`),
or Adam on the exact -log P(y). One iteration is one pass over the sequences in minibatches;
``callback(model, iteration, mean_ll)`` is the iteration hook."""

from __future__ import annotations

import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar.core import FitResult, track_convergence
from latentvar.hmm.model import HMM, _is_categorical
from latentvar.inference import Chain
from latentvar.progress import progress


def _batches(n: int, batch_size: int, shuffle: bool = False) -> list[Tensor]:
    order = torch.randperm(n) if shuffle else torch.arange(n)  # indices on the CPU: y's rows are picked
    return list(order.split(batch_size))


def _trim(y: Tensor, lengths: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """The minibatch idx, cut to its longest sequence."""
    lb = lengths[idx]
    T = int(lb.max()) if lb.numel() else 0
    return y[idx, :T], lb


def _em_family(emission) -> str:
    if _is_categorical(emission):
        return "categorical"
    if isinstance(emission, D.MultivariateNormal):
        return "full"
    if isinstance(emission, D.Normal):
        return "normal"
    if isinstance(emission, D.Independent) and isinstance(emission.base_dist, D.Normal):
        return "diag"
    raise ValueError(
        f"emission: EM supports Categorical, Normal, Independent(Normal) and MultivariateNormal emissions, "
        f"got {type(emission).__name__}; use method='gradient' for others"
    )


def _expected_counts(model: HMM, y: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """E-step for one minibatch: (log P(y) summed, initial counts (k,), transition counts (k, k),
    state posteriors (b, t, k)), as gradients of log P(y) w.r.t. log π, log A and the emissions."""
    e = model.emission_log_prob(y).detach()
    chain = Chain(model.log_init.detach(), model.log_trans.detach(), e, lengths)
    total, g_init, g_trans, gamma = chain.expected_counts()
    return total.sum(), g_init, g_trans, gamma


def _m_step_emission(family: str, emission, stats: dict, pseudocount: float, reg_covar: float):
    nk = stats["n"] + 10 * torch.finfo(stats["n"].dtype).eps
    if family == "categorical":
        counts = stats["counts"] + pseudocount
        return D.Categorical(logits=(counts / counts.sum(-1, keepdim=True)).log())
    mean = stats["sy"] / nk.view(-1, *([1] * (stats["sy"].dim() - 1)))
    if family == "full":
        cov = stats["syy"] / nk[:, None, None] - mean.unsqueeze(-1) * mean.unsqueeze(-2)
        cov = cov + reg_covar * torch.eye(mean.shape[-1], dtype=mean.dtype, device=mean.device)
        return D.MultivariateNormal(mean, covariance_matrix=cov)
    var = (stats["syy"] / nk.view(-1, *([1] * (mean.dim() - 1))) - mean**2).clamp_min(0) + reg_covar
    if family == "normal":
        return D.Normal(mean, var.sqrt())
    return D.Independent(D.Normal(mean, var.sqrt()), 1)


def _accumulate_emission(family: str, stats: dict, y: Tensor, gamma: Tensor, valid: Tensor, k: int, v: int):
    g = gamma[valid]  # (n, k)
    yv = y[valid]
    stats["n"] = stats.get("n", 0) + g.sum(0)
    if family == "categorical":
        counts = torch.zeros(k, v, dtype=g.dtype, device=g.device).index_add_(1, yv.long(), g.T)
        stats["counts"] = stats.get("counts", 0) + counts
        return
    yv = yv.to(g.dtype)
    if family == "normal":
        stats["sy"] = stats.get("sy", 0) + g.T @ yv
        stats["syy"] = stats.get("syy", 0) + g.T @ (yv * yv)
        return
    stats["sy"] = stats.get("sy", 0) + g.T @ yv
    if family == "full":
        stats["syy"] = stats.get("syy", 0) + torch.einsum("nk,nd,ne->kde", g, yv, yv)
    else:
        stats["syy"] = stats.get("syy", 0) + g.T @ (yv * yv)


def fit_em(
    model: HMM, y, lengths, max_iter, tol, batch_size, pseudocount, reg_covar, callback, show_progress
):
    family = _em_family(model.emission)
    k = model.num_states
    v = model.emission.logits.shape[-1] if family == "categorical" else 0
    n_obs = max(int(lengths.sum()), 1)
    history: list[float] = []
    converged = False
    bar = progress(range(max_iter), desc="Baum-Welch", disable=not show_progress)
    for _ in bar:
        loglik = 0.0
        init_c = model.init_logits.new_zeros(k)
        trans_c = model.init_logits.new_zeros(k, k)
        stats: dict = {}
        for idx in _batches(y.shape[0], batch_size):
            yb, lb = _trim(y, lengths, idx)
            total, g_init, g_trans, gamma = _expected_counts(model, yb, lb)
            loglik += float(total)
            init_c += g_init
            trans_c += g_trans
            _accumulate_emission(
                family, stats, yb, gamma, torch.arange(yb.shape[1], device=lb.device) < lb[:, None], k, v
            )
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
        model = HMM(
            (init_c / init_c.sum()).log(),
            (trans_c / trans_c.sum(-1, keepdim=True).clamp_min(torch.finfo(trans_c.dtype).tiny)).log(),
            _m_step_emission(family, model.emission, stats, pseudocount, reg_covar),
        )
        if callback is not None:
            callback(model, len(history), mean_ll)
    return FitResult(model, history, converged)


def fit_gradient(model: HMM, y, lengths, max_iter, tol, batch_size, lr, parameters, callback, show_progress):
    from latentvar.mixture import _unconstrained

    init = model.init_logits.detach().clone().requires_grad_(True)
    trans = model.trans_logits.detach().clone().requires_grad_(True)
    if isinstance(model.emission, nn.Module):
        leaves, rebuild = list(model.emission.parameters()), (lambda p, m=model.emission: m)
    else:
        leaves, rebuild = _unconstrained(model.emission)
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
        if callback is not None:
            callback(HMM(init.detach(), trans.detach(), rebuild(leaves)), it + 1, mean_ll)
        if done:
            converged = True
            break
    emission = rebuild(leaves)
    if isinstance(emission, D.Distribution):
        emission = rebuild([p.detach() for p in leaves])
    return FitResult(HMM(init.detach(), trans.detach(), emission), history, converged)
