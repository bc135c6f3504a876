"""Baum-Welch for small problems (issue 21): the E-step of a plain model with a Gaussian emission as one
compiled pass that also sums the emission's sufficient statistics (`latentvar.hmm.small`), and the M-step
of such a model in NumPy on the (k,), (k, k) and (k, d) statistics instead of some fifty small tensor
operations (`latentvar.hmm.mstep.m_step`, `latentvar.stats.SufficientStatistics.from_summaries`).

Both are the same formulas as the general path, chosen automatically, and decline (return None, so the
general path answers) for anything they do not cover: per-sequence weights, missing observations,
constraints, priors, pseudo-counts, tied or spherical covariances, end states, a sequence whose scaled
weights underflowed -- and every degenerate case (a state with no expected transitions or observations, a
collapsed variance), where the general M-step keeps the old parameters with its named warnings.

Shapes (named axes): k states, d event values.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributions as D
from torch import Tensor

from latentvar.hmm import small


def expected_counts(model, batch, stats) -> tuple[float, Tensor, Tensor, None] | None:
    """The E-step of one minibatch of a plain model (`latentvar.hmm.small.plain`) without sample weights:
    (Σ_b log P(y_b), initial counts (k,), transition counts (k, k), None), the Gaussian statistics added to
    ``stats`` (a diagonal `latentvar.stats.SufficientStatistics` with its shift, or None); None where the
    general E-step must answer (the minibatch's expected counts are then untouched)."""
    if stats is not None and (stats.family != "diag" or stats.shift is None):
        return None
    p = small.plain(model, batch)
    if p is None:
        return None
    d = p.yt.shape[1]
    shift = np.zeros(d) if stats is None else stats.shift.detach().numpy().reshape(d)
    out = small.expected_statistics(p, shift)
    if out is None:
        return None
    total, init_c, trans_c, n, sy, syy = out
    if stats is not None:
        for name, value in (("n", n), ("sy", sy), ("syy", syy)):
            old = getattr(stats, name)
            value = torch.from_numpy(value)
            setattr(stats, name, value if old is None else old + value)
    return total, torch.from_numpy(init_c), torch.from_numpy(trans_c), None


def m_step(model, counts, stats, params: str, o):
    """The re-estimated HMM of `latentvar.hmm.mstep.m_step` for a plain model (`latentvar.hmm.small`) with
    a diagonal Gaussian emission, no priors and no pseudo-counts, as one compiled call
    (`latentvar.hmm._small_mstep_numba`); None where that general M-step must answer (a degenerate state,
    or anything else it does not cover)."""
    e = "e" in params
    if (
        o.init_prior is not None
        or o.trans_prior is not None
        or o.pseudocount != 0
        or counts.init.dtype != torch.float64
        or counts.init.device.type != "cpu"
        or small.gaussian_model(model) is None
        or (e and (stats is None or stats.family != "diag" or stats.covariance != "diag"))
    ):
        return None
    from latentvar.hmm._small_mstep_numba import m_step as compiled

    c = small.constants(model)
    k, d = model.num_states, c.loc.shape[1]
    n, sy, syy, shift = (
        (x.numpy() for x in (stats.n, stats.sy, stats.syy, stats.shift)) if e else (np.zeros((k, d)),) * 4
    )
    log_init, log_trans, mean, scale, ok = compiled(
        counts.init.numpy(), counts.trans.numpy(), c.log_init, c.log_trans, n.reshape(k), sy, syy,
        shift.reshape(d), float(o.reg_covar), "s" in params, "t" in params, e,
    )  # fmt: skip
    if not ok:
        return None
    emission = _gaussian(mean, scale, stats.independent) if e else model.emission
    from latentvar.hmm.model import HMM

    return HMM._checked(torch.from_numpy(log_init), torch.from_numpy(log_trans), emission)


def _gaussian(mean: np.ndarray, scale: np.ndarray, independent: bool) -> D.Distribution:
    """``Normal`` (k,) or ``Independent(Normal (k, d), 1)``, as `SufficientStatistics.from_summaries`
    builds them. Their arguments hold by construction (finite means, positive scales): built unvalidated,
    then given the default validation setting back, as the general M-step's would have."""
    loc, scale = torch.from_numpy(mean), torch.from_numpy(scale)
    if not independent:
        loc, scale = loc[:, 0], scale[:, 0]
    normal = D.Normal(loc, scale, validate_args=False)
    del normal._validate_args
    if not independent:
        return normal
    out = D.Independent(normal, 1, validate_args=False)
    del out._validate_args
    return out
