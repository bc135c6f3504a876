"""Fitting an `HSMM` by EM: Baum-Welch for explicit durations (Ferguson 1980; Yu 2010, "Hidden semi-Markov
models", §3.1), with the E-step read off the expanded chain over (j, d) rather than a recursion of its own.

The engine's expected counts of the expanded chain (`Chain.expected_counts`: ∂ log P(y) / ∂ its potentials)
give every count EM needs, because a segment is a run of expanded states:
- segments starting the sequence in state j: the initial count of (j, 0);
- segments of j followed by one of i: Σ_d the transition counts (j, d) → (i, 0);
- segments of j lasting n steps: those leaving (j, n − 1) for a new segment, plus the last segment's, the
  state marginal of (j, n − 1) at each sequence's last step (the end weight is P(n = d + 1 | n > d));
- emissions: the state marginals P(z_t = j | y) = Σ_d P(z_t = (j, d) | y), into the statistics shared with
  `HMM.fit` (`latentvar.stats.SufficientStatistics`).
The M-step normalises them: π, the rows of A off the diagonal (kept -inf: a segment is followed by another
state), P(n | j), and the emission family's ``from_summaries``. A state with no expected segments (or no
outgoing transitions) keeps its row, with a `ZeroTransitionsWarning`.

Shapes (named axes): b sequences, t steps, k states, D the longest duration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributions as D
from torch import Tensor

from latentvar._checks import check_non_negative, check_number, check_positive
from latentvar.hmm.diagnostics import HMMFitResult, Monotonicity
from latentvar.hmm.inputs import Inputs, prepare
from latentvar.hmm.mstep import normalise_rows
from latentvar.hmm.semimarkov import HSMM
from latentvar.stats import SufficientStatistics, em_family

PARAMS = "stde"  # start, transitions, durations, emission


@dataclass
class SegmentCounts:
    """EM's expected counts summed over the data: log-likelihood, first segments' states (k,), segment
    transitions (k, k) (zero diagonal), segment durations (k, D) (column n − 1: duration n)."""

    loglik: float
    init: Tensor
    trans: Tensor
    durations: Tensor


def expected_counts(model: HSMM, inputs: Inputs) -> tuple[SegmentCounts, Tensor]:
    """The E-step on one batch of flat inputs: (`SegmentCounts`, state marginals (b, t, k))."""
    k, n = model.num_states, model.max_duration
    with torch.no_grad():
        chain = model.chain_of(inputs)
        total, g_init, g_trans, gamma = chain.expected_counts()
    if not bool(torch.isfinite(total).all()):
        i = int((~torch.isfinite(total)).nonzero()[0, 0])
        raise ValueError(
            f"y: sequence {i} has probability zero under the model being fitted (no segmentation allows it)"
        )
    b, T = gamma.shape[:2]
    starts = g_init.reshape(-1, k, n).sum(0)[:, 0]
    moves = g_trans.reshape(k, n, k, n)[..., 0]  # (j, d) -> (i, 0): (k, D, k)
    trans = moves.sum(1) * (1 - torch.eye(k, dtype=moves.dtype, device=moves.device))
    lengths = inputs.lengths
    last = gamma[torch.arange(b, device=gamma.device), (lengths - 1).clamp_min(0)]  # (b, k·D)
    last = torch.where((lengths > 0)[:, None], last, torch.zeros_like(last))
    durations = moves.sum(-1) + last.sum(0).reshape(k, n)
    counts = SegmentCounts(float(total.sum()), starts, trans, durations)
    return counts, gamma.reshape(b, T, k, n).sum(-1)


def _log_trans(model: HSMM) -> Tensor:
    """log A (k, k) with the diagonal -inf (k = 1: the one entry -inf)."""
    k = model.num_states
    eye = torch.eye(k, dtype=torch.bool, device=model.trans_logits.device)
    a = model.trans_logits.detach().masked_fill(eye, -math.inf)
    return a.log_softmax(-1) if k > 1 else a


def m_step(model: HSMM, c: SegmentCounts, stats, params: str, pseudocount: float, reg_covar: float) -> HSMM:
    """The re-estimated HSMM; parameters whose letter is not in ``params`` are kept."""
    k = model.num_states
    init, trans = model.init_logits.detach(), model.trans_logits.detach()
    dur = model.duration_logits.detach()
    off = 1 - torch.eye(k, dtype=c.trans.dtype, device=c.trans.device)
    if "s" in params:
        counts = c.init + pseudocount
        if float(counts.sum()) > 0:
            init = (counts / counts.sum()).log()
    if "t" in params and k > 1:
        old = _log_trans(model).exp()
        trans = normalise_rows((c.trans + pseudocount) * off, old, "transitions to a next segment").log()
    if "d" in params:
        old = dur.log_softmax(-1).exp()
        dur = normalise_rows(c.durations + pseudocount, old, "segments (durations)").log()
    emission = model.emission
    if "e" in params:
        emission, _ = stats.from_summaries(reg_covar, pseudocount, previous=model.emission)
        if isinstance(emission, D.Categorical):  # log-probabilities as they are (zero counts: -inf)
            emission = D.Categorical(logits=emission.probs.log())
    return HSMM(init, trans, dur, emission)


def log_prior(model: HSMM, pseudocount: float, params: str) -> float:
    """Σ pseudocount · log θ over the probabilities the M-step adds ``pseudocount`` to (π, A off its
    diagonal, the durations, categorical / multinomial emissions and mixture weights): the MAP objective's
    prior, so that the objective EM watches is the one it climbs."""
    if pseudocount == 0:
        return 0.0
    k = model.num_states
    logs = []
    if "s" in params:
        logs.append(model.init_logits.log_softmax(-1))
    if "t" in params and k > 1:
        logs.append(_log_trans(model)[~torch.eye(k, dtype=torch.bool, device=model.trans_logits.device)])
    if "d" in params:
        logs.append(model.duration_logits.log_softmax(-1))
    if "e" in params:
        em = model.emission
        family = em_family(em, "emission")
        if family == "gmm":
            logs.append(em.mixture_distribution.logits.log_softmax(-1))
        elif family in ("categorical", "multinomial"):
            base = em.base_dist if isinstance(em, D.Independent) else em
            logs.append(base.logits.log_softmax(-1))
    return float(sum(pseudocount * x.detach().clamp_min(-1e300).sum() for x in logs))


def fit_em(
    model: HSMM,
    y,
    lengths,
    max_iter,
    tol,
    batch_size,
    pseudocount,
    reg_covar,
    params,
    covariance_type,
    callback,
) -> HMMFitResult:
    """`HSMM.fit` (see its docstring)."""
    if not isinstance(params, str) or set(params) - set(PARAMS):
        raise ValueError(
            f"params: expected a string of the letters 's' (start), 't' (transitions), 'd' (durations), "
            f"'e' (emission), got {params!r}"
        )
    check_positive("max_iter", max_iter, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    check_number("tol", tol)
    check_non_negative("pseudocount", pseudocount)
    check_non_negative("reg_covar", reg_covar)
    inputs = prepare(model, y, lengths)
    n_obs = float(inputs.lengths.sum())
    if n_obs == 0:
        raise ValueError(f"y: expected at least one observed step to fit, got shape {tuple(inputs.y.shape)}")
    if "e" in params:  # refuse unsupported families and covariance types before any work
        SufficientStatistics(model.emission, "emission", covariance_type)
    batches = torch.arange(inputs.y.shape[0]).split(batch_size)
    monitor, history, converged = Monotonicity(), [], False
    for _ in range(max_iter):
        total = None
        stats = SufficientStatistics(model.emission, "emission", covariance_type) if "e" in params else None
        for idx in batches:
            batch = _subset(inputs, idx)
            counts, gamma = expected_counts(model, batch)
            total = counts if total is None else _add(total, counts)
            if stats is not None:
                valid = torch.arange(batch.y.shape[1], device=batch.lengths.device) < batch.lengths[:, None]
                stats.summarize(batch.y[valid], gamma[valid])
        # the log-likelihood of the parameters *before* this M-step: EM's monotone sequence
        mean_ll = total.loglik / n_obs
        monitor.check(len(history) + 1, mean_ll, history, log_prior(model, pseudocount, params) / n_obs)
        if history and mean_ll - history[-1] < tol:
            history.append(mean_ll)
            converged = True
            break
        history.append(mean_ll)
        model = m_step(model, total, stats, params, pseudocount, reg_covar)
        if callback is not None and callback(model, len(history), mean_ll):
            break
    return HMMFitResult(model, history, converged, monitor.decreases)


def _subset(inputs: Inputs, idx: Tensor) -> Inputs:
    """The minibatch idx of the flat inputs, cut to its longest sequence."""
    lb = inputs.lengths[idx.to(inputs.lengths.device)]
    T = int(lb.max()) if lb.numel() else 0
    return Inputs(inputs.y[idx.to(inputs.y.device), :T], lb, torch.Size((len(idx),)), None, None)


def _add(a: SegmentCounts, b: SegmentCounts) -> SegmentCounts:
    return SegmentCounts(a.loglik + b.loglik, a.init + b.init, a.trans + b.trans, a.durations + b.durations)
