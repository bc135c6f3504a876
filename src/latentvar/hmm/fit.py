"""Fitting an HMM: Baum-Welch over expected counts (the gradients of log P(y), `Chain.expected_counts`),
the emission's M-step by the EM layer shared with the mixture (`latentvar.stats.SufficientStatistics`),
or Adam on the exact -log P(y). One iteration is one pass over the sequences in minibatches;
``callback(model, iteration, mean_ll)`` is the iteration hook.

Both accept missing observations and state constraints (`latentvar.hmm.inputs`; semi-supervised EM is
EM on log P(y, z allowed)) and per-sequence weights. Degenerate fits never abort and never give NaN: see
`latentvar.hmm.mstep` (a state with no expected transitions or observations keeps its parameters, with a
named warning) and `latentvar.hmm.diagnostics` (a likelihood that decreases is reported in the result).

Shapes (named axes): b sequences, t steps, k states.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar._checks import (
    as_tensor,
    check_finite,
    check_non_negative,
    check_number,
    check_positive,
)
from latentvar.core import track_convergence
from latentvar.hmm import online, small, small_fit
from latentvar.hmm.diagnostics import HMMFitResult, Monotonicity
from latentvar.hmm.inputs import Inputs, prepare
from latentvar.hmm.model import HMM
from latentvar.hmm.mstep import Counts, check_params, m_step
from latentvar.inference import Chain
from latentvar.progress import bar as progress_bar
from latentvar.stats import SufficientStatistics, em_family, unconstrained


@dataclass
class FitOptions:
    """`HMM.fit`'s arguments beside the data (see its docstring)."""

    method: str = "em"
    max_iter: int = 100
    tol: float = 1e-6
    batch_size: int = 256
    lr: float = 0.05
    pseudocount: float = 0.0
    reg_covar: float = 1e-6
    parameters: list | None = None
    callback: object = None
    show_progress: bool = False
    params: str = "stfe"
    init_prior: object = None
    trans_prior: object = None
    covariance_type: str | None = None
    init_emission: str | None = None
    generator: torch.Generator | None = None
    distributed: bool = False
    step_decay: float = 0.7


def _batches(n: int, batch_size: int, shuffle: bool = False) -> list[Tensor]:
    order = torch.randperm(n) if shuffle else torch.arange(n)  # indices on the CPU: y's rows are picked
    return list(order.split(batch_size))


def _subset(inputs: Inputs, idx: Tensor) -> Inputs:
    """The minibatch idx of the flat inputs, cut to its longest sequence (views, not copies, where idx is
    the whole data in order: one minibatch)."""
    if len(idx) == inputs.y.shape[0] and torch.equal(idx, torch.arange(len(idx))):
        pick = lambda x: x  # noqa: E731
    else:
        pick = lambda x: x[idx.to(x.device)]  # noqa: E731
    lb = pick(inputs.lengths)
    T = int(lb.max()) if lb.numel() else 0
    cut = lambda x: None if x is None else pick(x)[:, :T]  # noqa: E731
    return Inputs(cut(inputs.y), lb, torch.Size((len(idx),)), cut(inputs.observed), cut(inputs.prior))


def _em_family(emission) -> str:
    """The emission's EM family (`latentvar.stats.em_family`), or a ValueError naming ``emission``."""
    return em_family(emission, "emission")


def _weights(sample_weight, b: int, inputs: Inputs) -> Tensor | None:
    if sample_weight is None:
        return None
    w = as_tensor("sample_weight", sample_weight)
    if not torch.is_floating_point(w):
        w = w.double()
    if w.shape != (b,):
        raise ValueError(
            f"sample_weight: expected shape ({b},), one weight per sequence, got {tuple(w.shape)}"
        )
    check_finite("sample_weight", w)
    if bool((w < 0).any()):
        raise ValueError(f"sample_weight: expected non-negative weights, got {float(w.min())}")
    if float((w * inputs.lengths.to(w.dtype)).sum()) <= 0:
        raise ValueError("sample_weight: expected a positive weight on some non-empty sequence, got all zero")
    return w.to(inputs.lengths.device)


def fit(model: HMM, y, lengths, observed, constraints, sample_weight, o: FitOptions) -> HMMFitResult:
    """`HMM.fit`: check the arguments, then EM or gradient fitting."""
    if model.batch_shape or model.trans_logits.dim() != 2:
        raise ValueError(
            "trans_logits: fit expects one model with a shared (K, K) transition matrix, "
            f"got init_logits {tuple(model.init_logits.shape)}, trans_logits {tuple(model.trans_logits.shape)}"
        )
    quick = o.method == "em" and sample_weight is None and o.init_emission is None and not o.distributed
    direct = small.direct(model, y, lengths, observed, constraints) if quick else None
    inputs = prepare(model, y, lengths, observed, constraints) if direct is None else None
    if inputs is not None and inputs.shape == ():  # one unbatched sequence: a batch of one
        inputs.shape = torch.Size((1,))
    if inputs is not None and int(inputs.lengths.sum()) == 0:
        raise ValueError(f"y: expected at least one observed step to fit, got shape {tuple(inputs.y.shape)}")
    check_positive("max_iter", o.max_iter, integer=True)
    check_positive("batch_size", o.batch_size, integer=True)
    check_number("tol", o.tol)
    check_non_negative("pseudocount", o.pseudocount)
    check_non_negative("reg_covar", o.reg_covar)
    check_positive("lr", o.lr)
    if direct is not None:  # small problems: y needs no further checks; prepared only if a step needs it
        prepared = functools.cache(lambda: prepare(model, y, lengths, observed, constraints))
        found = small_fit.fit_em(model, direct, prepared, o)
        if found is not None:
            return found
        inputs = prepared()
    weights = _weights(sample_weight, inputs.y.shape[0], inputs)
    if o.init_emission is not None:
        model = _initialised(model, inputs, o)
    if o.distributed and o.method != "em":
        raise ValueError(f"distributed: expected method='em' with distributed=True, got {o.method!r}")
    if o.method == "em":
        return fit_em(model, inputs, weights, o)
    if o.method == "stepwise":
        if not 0 <= o.step_decay <= 1:
            raise ValueError(f"step_decay: expected a number in [0, 1], got {o.step_decay!r}")
        return fit_stepwise(model, inputs, weights, o)
    if o.method == "gradient":
        return fit_gradient(model, inputs, weights, o)
    raise ValueError(f"method: expected 'em', 'stepwise' or 'gradient', got {o.method!r}")


def _initialised(model: HMM, inputs: Inputs, o: FitOptions) -> HMM:
    """The model with its emission started from the data (``init_emission="kmeans"``)."""
    from latentvar.hmm.kmeans import kmeans_emission

    if o.init_emission != "kmeans":
        raise ValueError(f"init_emission: expected None or 'kmeans', got {o.init_emission!r}")
    if not isinstance(model.emission, D.Distribution):
        raise ValueError("init_emission: k-means initialisation needs a Distribution emission, not a module")
    emission = kmeans_emission(model.emission, inputs.y[_observed_steps(inputs)], o.generator)
    return HMM(model.init_logits, model.trans_logits, emission, model.final_logits)


def _observed_steps(inputs: Inputs) -> Tensor:
    """(b, t) True at the steps that emit: within each length and observed."""
    valid = torch.arange(inputs.y.shape[1], device=inputs.lengths.device) < inputs.lengths[:, None]
    return valid if inputs.observed is None else valid & inputs.observed


def _at_observed_steps(inputs: Inputs, *tables: Tensor) -> list[Tensor]:
    """y and each (b, t, ...) table at the steps that emit, as (n, ...) rows in (b, t) order: views where
    every step emits (no padding, nothing missing), else copies by the mask."""
    if inputs.observed is None and bool((inputs.lengths == inputs.y.shape[1]).all()):
        return [x.reshape(-1, *x.shape[2:]) for x in (inputs.y, *tables)]
    valid = _observed_steps(inputs)
    return [x[valid] for x in (inputs.y, *tables)]


def _expected_counts(model: HMM, inputs: Inputs, w: Tensor | None):
    """E-step for one minibatch: (Σ_b w_b log P(y_b), initial counts (k,), transition counts (k, k), end
    counts (k,) or None, state posteriors (b, t, k) times w_b), as gradients of Σ_b w_b log P(y_b) with
    respect to log π, log A, log P(end) and the emissions (Eisner 2016)."""
    with torch.no_grad():
        chain = model._chain(inputs)
    init, trans = chain.init.detach(), chain.step.log_trans.detach()
    e = chain.emission_tensor.detach()
    final = None if chain.final is None else chain.final.detach()
    if w is None and final is None:  # the registered forward-backward kernels answer this one
        total, g_init, g_trans, gamma = Chain(init, trans, e, inputs.lengths).expected_counts()
        return total.sum(), g_init, g_trans, None, gamma
    leaves = [x.clone().requires_grad_(True) for x in (init, trans, e)]
    if final is not None:
        leaves.append(final.clone().requires_grad_(True))
    with torch.enable_grad():
        chain = Chain(*leaves[:3], inputs.lengths, final=leaves[3] if final is not None else None)
        total = chain.log_partition()
        total = total if w is None else total * w.to(total.dtype)
        grads = torch.autograd.grad(total.sum(), leaves, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads, strict=True)]
    g_final = grads[3] if final is not None else None
    return total.detach().sum(), grads[0], grads[1], g_final, grads[2]


def _accumulate(model: HMM, inputs: Inputs, weights, params: str, o: FitOptions, batches, shift):
    """E-step over the minibatches ``batches``: (`Counts`, `SufficientStatistics` or None)."""
    counts = Counts.zeros(model)
    stats = None
    if "e" in params:
        stats = SufficientStatistics(model.emission, "emission", o.covariance_type, shift)
    for idx in batches:
        batch = _subset(inputs, idx)
        w = None if weights is None else weights[idx.to(weights.device)]
        if w is None and (direct := small_fit.expected_counts(model, batch, stats)) is not None:
            counts.add(*direct)  # small problems: one compiled pass, the statistics included
            continue
        total, g_init, g_trans, g_final, gamma = _expected_counts(model, batch, w)
        if not math.isfinite(float(total)):
            _impossible(model, batch, idx)
        counts.add(float(total), g_init, g_trans, g_final)
        if stats is not None:
            stats.summarize(*_at_observed_steps(batch, gamma))  # every observed step, weighted by P(z_t | y)
    return counts, stats


def _setup(model: HMM, inputs: Inputs, weights, o: FitOptions):
    """(params, observed steps (weighted), the Gaussian statistics' shift)."""
    params = check_params(o.params, model)
    if "e" in params:  # refuse unsupported families and covariance types before any work
        SufficientStatistics(model.emission, "emission", o.covariance_type)
    # steps per sequence: its length, unless some are missing
    per_step = (
        inputs.lengths.to(torch.float64)
        if inputs.observed is None
        else _observed_steps(inputs).to(torch.float64).sum(1)
    )
    n_obs = float(per_step.sum() if weights is None else (per_step * weights.double()).sum())
    shift = None
    if "e" in params:
        shift = online.common_shift(model.emission, _at_observed_steps(inputs)[0], o.distributed)
    return params, n_obs, shift


def fit_em(model: HMM, inputs: Inputs, weights: Tensor | None, o: FitOptions) -> HMMFitResult:
    if weights is None and not o.distributed and (p := small.plain(model, inputs)) is not None:
        if (direct := small_fit.fit_em(model, p, lambda: inputs, o)) is not None:
            return direct  # small problems: compiled E- and M-steps, no minibatches
    params, n_obs, shift = _setup(model, inputs, weights, o)
    monitor = Monotonicity()
    history: list[float] = []
    converged = False
    bar = progress_bar(range(o.max_iter), "Baum-Welch", o.show_progress)
    for _ in bar:
        counts, stats = _accumulate(
            model, inputs, weights, params, o, _batches(inputs.y.shape[0], o.batch_size), shift
        )
        total_obs = online.reduce_pass(counts, stats, n_obs) if o.distributed else n_obs
        total_obs = total_obs if total_obs > 0 else 1.0  # every step missing: per sequence
        # the log-likelihood of the parameters *before* this M-step: EM's monotone sequence
        mean_ll = counts.loglik / total_obs
        monitor.check(len(history) + 1, mean_ll, history, counts.log_prior(model, o) / total_obs)
        if history and mean_ll - history[-1] < o.tol:
            history.append(mean_ll)
            converged = True
            break
        history.append(mean_ll)
        bar.set_postfix(loglik=f"{mean_ll:.5f}")
        model = small_fit.m_step(model, counts, stats, params, o) or m_step(model, counts, stats, params, o)
        if o.callback is not None and o.callback(model, len(history), mean_ll):
            break
    return HMMFitResult(model, history, converged, monitor.decreases)


def fit_stepwise(model: HMM, inputs: Inputs, weights: Tensor | None, o: FitOptions) -> HMMFitResult:
    """Stepwise EM (`latentvar.hmm.online`): an M-step after every minibatch on running statistics, which
    start as one E-step over all the data under the starting parameters. History:
    the mean log-likelihood per observed step of each pass, summed over its minibatches as they were met
    (each under the parameters of that moment), so it is not EM's monotone sequence."""
    params, n_obs, shift = _setup(model, inputs, weights, o)
    b = inputs.y.shape[0]
    history: list[float] = []
    converged = False
    # the running statistics start as one E-step over all the data under the start (no M-step): every
    # observed value then keeps a positive count, so no later minibatch becomes impossible
    counts, stats = _accumulate(model, inputs, weights, params, o, _batches(b, o.batch_size), shift)
    step = 0
    bar = progress_bar(range(o.max_iter), "stepwise EM", o.show_progress)
    for _ in bar:
        loglik = 0.0
        for idx in _batches(b, o.batch_size, shuffle=True):
            new_counts, new_stats = _accumulate(model, inputs, weights, params, o, [idx], shift)
            loglik += new_counts.loglik
            eta = (step + 2) ** (-o.step_decay)
            scale = b / len(idx)  # the minibatch's statistics at the scale of the whole data
            counts = online.blend(counts, new_counts, eta, scale)
            stats = online.blend(stats, new_stats, eta, scale)
            step += 1
            model = m_step(model, counts, stats, params, o)
        mean_ll = loglik / (n_obs if n_obs > 0 else 1.0)
        done = bool(history) and abs(mean_ll - history[-1]) < o.tol
        history.append(mean_ll)
        bar.set_postfix(loglik=f"{mean_ll:.5f}")
        if done:
            converged = True
            break
        if o.callback is not None and o.callback(model, len(history), mean_ll):
            break
    return HMMFitResult(model, history, converged)


def _impossible(model: HMM, batch: Inputs, idx: Tensor) -> None:
    """A ValueError naming the first sequence of probability zero (bad data, or constraints no path meets)."""
    with torch.no_grad():
        lp = model._chain(batch).log_partition()
    i = int(idx[torch.isneginf(lp).nonzero()[0, 0].cpu()]) if bool(torch.isneginf(lp).any()) else int(idx[0])
    name = "constraints" if batch.prior is not None else "y"
    raise ValueError(
        f"{name}: sequence {i} has probability zero under the model being fitted (no state path allows it)"
    )


def fit_gradient(model: HMM, inputs: Inputs, weights: Tensor | None, o: FitOptions) -> HMMFitResult:
    init = model.init_logits.detach().clone().requires_grad_(True)
    trans = model.trans_logits.detach().clone().requires_grad_(True)
    final = None
    if model.final_logits is not None:
        final = model.final_logits.detach().clone().requires_grad_(True)
    if isinstance(model.emission, nn.Module):
        leaves, rebuild = list(model.emission.parameters()), (lambda p, m=model.emission: m)
    else:
        leaves, rebuild = unconstrained(model.emission)
        for p in leaves:
            p.requires_grad_(True)
    params = [init, trans, *([final] if final is not None else []), *leaves, *(o.parameters or [])]
    opt = torch.optim.Adam(params, lr=o.lr)
    steps = _observed_steps(inputs).to(torch.float64).sum(1)
    n_obs = max(float(steps.sum() if weights is None else (steps * weights.double()).sum()), 1.0)
    history: list[float] = []
    converged = False
    bar = progress_bar(range(o.max_iter), "gradient", o.show_progress)
    for it in bar:
        loglik = 0.0
        for idx in _batches(inputs.y.shape[0], o.batch_size, shuffle=True):
            batch = _subset(inputs, idx)
            current = HMM(init, trans, rebuild(leaves), final)
            total = current._chain(batch).log_partition()
            seen = _observed_steps(batch).sum(1).to(total.dtype)
            if weights is not None:
                w = weights[idx.to(weights.device)].to(total.dtype)
                total, seen = total * w, seen * w
            loss = -total.sum() / max(float(seen.sum()), 1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loglik += float(total.detach().sum())
        mean_ll = loglik / n_obs
        bar.set_postfix(loglik=f"{mean_ll:.5f}")
        done = track_convergence(history, mean_ll, o.tol, o.lr)
        if done:
            converged = True
            break
        if o.callback is not None and o.callback(
            HMM(init.detach(), trans.detach(), rebuild(leaves), None if final is None else final.detach()),
            it + 1,
            mean_ll,
        ):
            break
    emission = rebuild(leaves)
    if isinstance(emission, D.Distribution):
        emission = rebuild([p.detach() for p in leaves])
    end = None if final is None else final.detach()
    return HMMFitResult(HMM(init.detach(), trans.detach(), emission, end), history, converged)
