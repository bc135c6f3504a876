"""Baum-Welch's M-step of a small Gaussian HMM as one compiled call (numba) on the expected counts and the
Gaussian sufficient statistics (`latentvar.hmm.small_fit`): the formulas of `latentvar.hmm.mstep.m_step`
and `latentvar.stats.SufficientStatistics.from_summaries` (diagonal covariances, no priors, no
pseudo-counts), in the same order of operations, instead of some fifty small tensor and NumPy operations.
Degenerate cases are not handled here: ``ok`` is False and the caller runs the general M-step, which keeps
the old parameters with its named warnings.

Shapes (named axes): k states, d event values; float64 NumPy arrays.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_EPS = float(np.finfo(np.float64).eps)


@nb.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
def m_step(init_c, trans_c, log_init, log_trans, n, sy, syy, shift, reg_covar, start, moves, emission):
    """(log π (k,), log A (k, k), means (k, d), scales (k, d), ok) re-estimated from the initial counts
    (k,), transition counts (k, k), Σ γ (k,), Σ γ (y − shift) (k, d), Σ γ (y − shift)² (k, d); ``start``,
    ``moves``, ``emission``: which parameters to update (the others are kept: log π and log A as given,
    the means and scales left 0). ok is False where a state had no expected transitions or observations, or
    a variance collapsed to zero up to round-off."""
    k, d = sy.shape
    ok = True
    new_init = log_init.copy()
    if start:
        c = np.empty(k)
        total = 0.0
        for j in range(k):
            c[j] = max(init_c[j] + 0.0, 0.0)
            total += c[j]
        if total > 0:
            for j in range(k):
                new_init[j] = math.log(c[j] / total)
    new_trans = np.empty((k, k))
    for i in range(k):
        if moves:
            row = 0.0
            for j in range(k):
                new_trans[i, j] = max(trans_c[i, j] + 0.0, 0.0)
                row += new_trans[i, j]
            if not row > 0:
                ok = False
                row = 1.0
            for j in range(k):
                new_trans[i, j] = math.log(new_trans[i, j] / row)
        else:  # as the general M-step: log of exp of the old values
            for j in range(k):
                new_trans[i, j] = math.log(math.exp(log_trans[i, j]))
    mean = np.zeros((k, d))
    scale = np.zeros((k, d))
    if emission:
        total = 0.0
        for j in range(k):
            total += n[j]
        for j in range(k):
            if n[j] <= 10 * _EPS * max(total, 1.0):
                ok = False
            nk = n[j] + 10 * _EPS
            for i in range(d):
                centred = sy[j, i] / nk
                mean[j, i] = shift[i] + centred
                var = max(syy[j, i] / nk - centred**2, 0.0) + reg_covar
                if var <= 100 * _EPS * (mean[j, i] ** 2 + 1):
                    ok = False
                scale[j, i] = math.sqrt(var)
    return new_init, new_trans, mean, scale, ok
