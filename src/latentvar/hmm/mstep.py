"""Baum-Welch's M-step for an HMM's start, transition and end probabilities (the emission's is
`latentvar.stats.SufficientStatistics`), with the fit controls: which parameters update (``params``) and
Dirichlet priors on the start and transition rows (MAP: pseudo-counts α − 1, as hmmlearn's
``startprob_prior`` / ``transmat_prior``). A row with no expected counts keeps its previous value with a
`ZeroTransitionsWarning` -- never a NaN, never an error.

Shapes (named axes): k states.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.distributions as D
from torch import Tensor

from latentvar._checks import as_tensor, check_finite
from latentvar.hmm.diagnostics import ZeroTransitionsWarning
from latentvar.hmm.model import HMM

PARAMS = "stfe"  # start, transitions, final (end), emission


def check_params(params: str, model: HMM) -> str:
    if not isinstance(params, str) or set(params) - set(PARAMS):
        raise ValueError(
            f"params: expected a string of the letters 's' (start), 't' (transitions), 'f' (end states), "
            f"'e' (emission), got {params!r}"
        )
    return params if model.final_logits is not None else params.replace("f", "")


def _prior(name: str, alpha, shape: tuple, like: Tensor, pseudocount: float) -> Tensor:
    """Pseudo-counts α − 1 of a Dirichlet prior (float or ``shape``), or ``pseudocount`` without one."""
    if alpha is None:
        return like.new_full(shape, pseudocount)
    a = check_finite(name, as_tensor(name, alpha).to(like))
    try:
        a = a.expand(shape)
    except RuntimeError:
        raise ValueError(f"{name}: expected a number or shape {shape}, got {tuple(a.shape)}") from None
    if bool((a < 0).any()):
        raise ValueError(f"{name}: expected Dirichlet concentrations >= 0, got {float(a.min())}")
    return a - 1


@dataclass
class Counts:
    """EM's expected counts summed over the data: log-likelihood, initial (k,), transitions (k, k), ends
    (k,) (None without end states)."""

    loglik: float
    init: Tensor
    trans: Tensor
    final: Tensor | None

    @classmethod
    def zeros(cls, model: HMM) -> Counts:
        k, like = model.num_states, model.init_logits.detach()
        final = like.new_zeros(k) if model.final_logits is not None else None
        return cls(0.0, like.new_zeros(k), like.new_zeros(k, k), final)

    def add(self, total: float, g_init: Tensor, g_trans: Tensor, g_final: Tensor | None) -> None:
        self.loglik += total
        self.init = self.init + g_init.reshape(-1, self.init.shape[0]).sum(0).to(self.init)
        self.trans = self.trans + g_trans.to(self.trans)
        if self.final is not None and g_final is not None:
            self.final = self.final + g_final.reshape(-1, self.final.shape[0]).sum(0).to(self.final)

    def log_prior(self, model: HMM, o) -> float:
        """Σ (α − 1) log θ over the start and transition rows (the MAP objective's prior term), per observed
        step of the data is the caller's business: here the sum."""
        if o.init_prior is None and o.trans_prior is None and o.pseudocount == 0:
            return 0.0  # every pseudo-count is zero
        k = model.num_states
        total = 0.0
        pairs = [(_prior("init_prior", o.init_prior, (k,), self.init, o.pseudocount), model.log_init)]
        rows = model.log_rows if model.final_logits is not None else model.log_trans
        pairs.append((_trans_prior(o, rows.shape, self.trans), rows))
        for pseudo, log_theta in pairs:
            term = torch.where(pseudo != 0, pseudo * log_theta.detach().to(pseudo), torch.zeros_like(pseudo))
            total += float(term.sum())
        return total


def _trans_prior(o, shape: tuple, like: Tensor) -> Tensor:
    """Pseudo-counts (k, k) or, with end states, (k, k + 1); a (k, k) prior leaves the ends ``pseudocount``."""
    if o.trans_prior is not None and shape[-1] != shape[-2]:
        a = as_tensor("trans_prior", o.trans_prior)
        if a.dim() == 2 and a.shape == (shape[0], shape[0]):
            ends = like.new_full((shape[0], 1), o.pseudocount)
            return torch.cat([_prior("trans_prior", a, (shape[0], shape[0]), like, 0.0), ends], 1)
    return _prior("trans_prior", o.trans_prior, tuple(shape), like, o.pseudocount)


def normalise_rows(counts: Tensor, old: Tensor, what: str = "outgoing transitions") -> Tensor:
    """Rows of probabilities from counts (k, n); a row with no positive count keeps ``old``'s row, with a
    `ZeroTransitionsWarning` that says the state had no expected ``what``."""
    total = counts.sum(-1, keepdim=True)
    empty = total.squeeze(-1) <= 0
    if bool(empty.any()):
        warnings.warn(
            f"EM: state(s) {empty.nonzero().flatten().tolist()} had no expected {what}; their rows are kept "
            "from the previous iteration",
            ZeroTransitionsWarning,
            stacklevel=4,
        )
    return torch.where(empty[:, None], old, counts / torch.where(empty[:, None], 1.0, total))


def m_step(model: HMM, counts: Counts, stats, params: str, o) -> HMM:
    """The re-estimated HMM; parameters whose letter is not in ``params`` are kept."""
    k = model.num_states
    log_init = model.log_init.detach()
    if "s" in params:
        c = (counts.init + _prior("init_prior", o.init_prior, (k,), counts.init, o.pseudocount)).clamp_min(0)
        if float(c.sum()) > 0:
            log_init = (c / c.sum()).log()
    ends = model.final_logits is not None
    old = (model.log_rows if ends else model.log_trans).detach().exp()  # (k, k[+1])
    if "t" in params or "f" in params:
        raw = torch.cat([counts.trans, counts.final[:, None]], 1) if ends else counts.trans
        c = (raw + _trans_prior(o, tuple(old.shape), raw)).clamp_min(0)
        if ends and "t" not in params:  # new end probabilities, the moves among states as they were
            was = torch.stack([1 - old[:, k], old[:, k]], 1)
            p_end = normalise_rows(torch.stack([c[:, :k].sum(-1), c[:, k]], 1), was)[:, 1]
            moves = old[:, :k] / old[:, :k].sum(-1, keepdim=True).clamp_min(torch.finfo(old.dtype).tiny)
            new = torch.cat([(1 - p_end)[:, None] * moves, p_end[:, None]], 1)
        elif ends and "f" not in params:  # new moves, the end probabilities as they were
            moves = normalise_rows(c[:, :k], old[:, :k])
            moves = moves / moves.sum(-1, keepdim=True).clamp_min(torch.finfo(old.dtype).tiny)
            new = torch.cat([(1 - old[:, k : k + 1]) * moves, old[:, k : k + 1]], 1)
        else:
            new = normalise_rows(c, old)
    else:
        new = old
    emission = model.emission
    if "e" in params:
        emission, _ = stats.from_summaries(o.reg_covar, o.pseudocount, previous=model.emission)
        if isinstance(emission, D.Categorical):  # log-probabilities as they are (zero counts: -inf)
            emission = D.Categorical(logits=emission.probs.log())
    logs = new.log()
    return HMM(log_init, logs[:, :k], emission, logs[:, k] if ends else None)
