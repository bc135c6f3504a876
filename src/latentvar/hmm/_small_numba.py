"""Compiled kernels for small HMM problems (issue 21's regime: tens of sequences, a hundred steps, a few
states), with the sequences in the innermost axis ("lanes"): every time step updates all b sequences at once,
so the b recursions are independent chains the CPU overlaps (and vectorises), instead of one sequence's
chain of dependent multiply-adds and divisions per step, which at k = 2 waits on latency.

The arithmetic is that of `latentvar.inference._numba` (the scaled recursions, same weights, same order of
each sum over states, the same normaliser products) and `latentvar.inference._numba_weights`, so log P(y),
γ and the Viterbi path are the same numbers up to the order of the sums over sequences and steps (the
counts); a sequence whose normaliser falls below `TINY` is flagged (``ok`` False) and the caller answers by
the general path. `latentvar.hmm.small` calls them; tests/test_hmm_small_lanes.py compares them with it.

Every loop over lanes is branch-free (selects, not jumps) so that it vectorises; steps at or past a
sequence's length leave its lane unchanged. The rare logs of the normaliser products are taken in a
separate loop.

Shapes (named axes): b sequences, t steps, k states, d event values; float64 NumPy arrays, ``lengths``
(b,) int64, observations as ``yt`` (t, d, b) (`lanes`). ``w`` (t, k, b) are the scaled kernels' per-step weights exp(e_t + offset − top_t) with
``tops`` (t, b), the offset being log π at t = 0 and the transition column maxima after; ``trans_p`` (k, k)
= exp(log A − its column maxima).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from latentvar.hmm._gaussian_numba import coefficients
from latentvar.inference._numba import TINY

_jit = nb.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


@_jit
def lanes(y):
    """y (b, t, d) as (t, d, b)."""
    return lanes_checked(y)[0]


@_jit
def lanes_checked(y):
    """(y (b, t, d) as (t, d, b), whether every value is finite)."""
    b, T, d = y.shape
    yt = np.empty((T, d, b))
    finite = True
    for n in range(b):
        for t in range(T):
            for i in range(d):
                v = y[n, t, i]
                finite &= v - v == 0.0
                yt[t, i, n] = v
    return yt, finite


@_jit
def observed_mean(yt, lengths):
    """(the mean (d,) of y over every step within each length, the number of those steps)."""
    T, d, b = yt.shape
    total = np.zeros(d)
    count = 0
    for n in range(b):
        count += min(lengths[n], T)
    for t in range(T):
        for i in range(d):
            y = yt[t, i]
            acc = 0.0
            for n in range(b):
                acc += y[n] if t < lengths[n] else 0.0
            total[i] += acc
    for i in range(d):
        total[i] /= max(count, 1)
    return total, count


@_jit
def _log_density(yt, t, j, loc, a, c, row):
    """row (b,) = log N(y_t | μ_j, σ_j²) summed over d, `latentvar.hmm._gaussian_numba`'s formula term by
    term (the same numbers as its table)."""
    b = row.shape[0]
    for n in range(b):
        row[n] = 0.0
    for i in range(yt.shape[1]):
        y = yt[t, i]
        mu, aa, cc = loc[j, i], a[j, i], c[j, i]
        for n in range(b):
            r = y[n] - mu
            row[n] += cc + r * r * aa


@_jit
def gaussian_weights(yt, loc, scale, log_init, col_max):
    """(shifted log weights (t, k, b) -- exp of them is ``w`` --, tops (t, b)) of the Gaussian emission
    (loc, scale (k, d)): e_t + offset − top_t, top_t the maximum over states (0 where it is not finite), e
    the emission table of `latentvar.hmm._gaussian_numba` (the same numbers)."""
    T, _, b = yt.shape
    k = loc.shape[0]
    a, c = coefficients(scale)
    out = np.empty((T, k, b))
    tops = np.empty((T, b))
    for t in range(T):
        for j in range(k):
            row = out[t, j]
            _log_density(yt, t, j, loc, a, c, row)
            off = log_init[j] if t == 0 else col_max[j]
            for n in range(b):
                row[n] += off
        top = tops[t]
        for n in range(b):
            top[n] = out[t, 0, n]
        for j in range(1, k):
            for n in range(b):
                v = out[t, j, n]
                top[n] = v if v > top[n] else top[n]
        for n in range(b):
            v = top[n]
            top[n] = v if v - v == 0.0 else 0.0  # 0 unless finite
        for j in range(k):
            for n in range(b):
                out[t, j, n] -= top[n]
    return out, tops


@_jit
def _longest(lengths):
    longest = 0
    for n in range(lengths.shape[0]):
        longest = max(longest, lengths[n])
    return longest


@_jit
def _scaled_forward(trans_p, w, tops, lengths, abuf, norms):
    """The scaled forward recursion over all lanes: (log P(y) (b,), ok (b,)). With ``abuf`` (t, k, b) the
    normalised alphas are kept (0 at and past each length) and ``norms`` (t, b) the normalisers (1 past
    each length); with empty (0, k, b) arrays only the current alphas are."""
    T, k, b = w.shape
    keep = abuf.shape[0] > 0
    alpha = np.zeros((k, b))
    new = np.empty((k, b))
    norm = np.empty(b)
    inv = np.empty(b)
    act = np.empty(b)  # 1.0 in lanes still running at this step, else 0.0
    loglik = np.zeros(b)
    ok = np.ones(b, dtype=np.bool_)
    prod = np.ones(b)  # the product of the normalisers since the last log (see _numba._gather)
    longest = _longest(lengths)
    for t in range(longest):
        if t == 0:
            for j in range(k):
                for n in range(b):
                    new[j, n] = w[0, j, n]
        else:  # new = (alpha @ A') * w_t
            for j in range(k):
                for n in range(b):
                    new[j, n] = 0.0
            for i in range(k):
                for j in range(k):
                    x = trans_p[i, j]
                    for n in range(b):
                        new[j, n] += alpha[i, n] * x
            for j in range(k):
                for n in range(b):
                    new[j, n] *= w[t, j, n]
        for n in range(b):
            norm[n] = 0.0
        for j in range(k):
            for n in range(b):
                norm[n] += new[j, n]
        for n in range(b):  # rare: log a product about to leave [1e-20, 1e20]
            p = prod[n]
            if (p < 1e-20 or p > 1e20) and t < lengths[n]:
                loglik[n] += math.log(p)
                prod[n] = 1.0
        for n in range(b):
            on = t < lengths[n]
            s = norm[n]
            good = s > TINY
            ok[n] &= good | (not on)
            s = s if good & on else 1.0
            inv[n] = 1.0 / s
            act[n] = 1.0 if on else 0.0
            prod[n] *= s
            loglik[n] += tops[t, n] if on else 0.0
            if keep:
                norms[t, n] = s
        for j in range(k):
            for n in range(b):
                x = new[j, n] * inv[n]
                alpha[j, n] = x
                if keep:
                    abuf[t, j, n] = x * act[n]
    if keep:
        for t in range(longest, T):
            for n in range(b):
                norms[t, n] = 1.0
            for j in range(k):
                for n in range(b):
                    abuf[t, j, n] = 0.0
    for n in range(b):
        loglik[n] += math.log(prod[n])
    return loglik, ok


@_jit
def forward(trans_p, w, tops, lengths):
    """(log P(y) (b,), ok (b,)) by the scaled forward recursion."""
    return _scaled_forward(trans_p, w, tops, lengths, np.empty((0, 0, 0)), np.empty((0, 0)))


@_jit
def forward_backward(trans_p, w, tops, lengths, yt, shift, marginals, counts):
    """Scaled forward-backward over all lanes (Rabiner 1989 eqs. 24-27, 37). Returns (γ (b, t, k), zero past
    each length -- (0, 0, 0) unless ``marginals`` --, log P(y) (b,), ok (b,), Σ_b γ_b,1 (k,),
    Σ_b Σ_t ξ_b,t (k, k), and with ``counts`` the Gaussian statistics of the observations yt (t, d, b)
    about ``shift`` (d,): Σ γ (k,), Σ γ (y − shift) (k, d), Σ γ (y − shift)² (k, d)); without ``counts``
    the last four are zeros."""
    T, k, b = w.shape
    gbuf = np.empty((T, k, b))  # the scaled alphas, turned into γ in place by the backward pass
    norms = np.empty((T, b))
    loglik, ok = _scaled_forward(trans_p, w, tops, lengths, gbuf, norms)
    xi = np.zeros((k, k, b))  # ξ summed over steps, per lane (no reduction across lanes in the hot loop)
    beta = np.ones((k, b))
    pb = np.empty((k, b))
    pm = np.empty((k, b))  # pb in running lanes, 0 in the others
    new = np.empty((k, b))
    for t in range(_longest(lengths) - 1, 0, -1):
        # ξ_t(i, j) = alpha_{t-1}(i) A'(i, j) p_t(j) beta_t(j) / norm_t
        for j in range(k):
            for n in range(b):
                x = w[t, j, n] * beta[j, n] * (1.0 / norms[t, n])
                pb[j, n] = x
                pm[j, n] = x if t < lengths[n] else 0.0
        for j in range(k):
            for n in range(b):
                new[j, n] = 0.0
        for i in range(k):  # new = A' @ pb
            for j in range(k):
                x = trans_p[j, i]
                for n in range(b):
                    new[j, n] += pb[i, n] * x
        if counts:
            for i in range(k):
                g = gbuf[t - 1, i]
                for j in range(k):
                    x = trans_p[i, j]
                    acc = xi[i, j]
                    p = pm[j]
                    for n in range(b):
                        acc[n] += g[n] * x * p[n]
        for i in range(k):
            for n in range(b):
                f = new[i, n] if t < lengths[n] else 1.0  # beta stays 1 past the length
                beta[i, n] = f
                gbuf[t - 1, i, n] *= f
    init_acc = np.zeros(k)
    trans_acc = np.zeros((k, k))
    for j in range(k):
        for n in range(b):
            init_acc[j] += gbuf[0, j, n] if lengths[n] > 0 else 0.0
    if counts:
        for i in range(k):
            for j in range(k):
                for n in range(b):
                    trans_acc[i, j] += xi[i, j, n]
    nk, sy, syy = _gaussian_statistics(gbuf, yt, shift, counts)
    gamma = np.zeros((b, T, k)) if marginals else np.zeros((0, 0, 0))
    if marginals:
        for n in range(b):
            for t in range(T):
                for j in range(k):
                    gamma[n, t, j] = gbuf[t, j, n]
    return gamma, loglik, ok, init_acc, trans_acc, nk, sy, syy


@_jit
def _gaussian_statistics(gbuf, yt, shift, counts):
    """Σ γ (k,), Σ γ (y − shift) (k, d), Σ γ (y − shift)² (k, d) over every step (γ is 0 past each
    length, where y holds valid filler), per lane then summed; zeros unless ``counts``."""
    T, k, b = gbuf.shape
    d = yt.shape[1]
    nk = np.zeros(k)
    sy = np.zeros((k, d))
    syy = np.zeros((k, d))
    if not counts:
        return nk, sy, syy
    n_l = np.zeros((k, b))
    sy_l = np.zeros((k, d, b))
    syy_l = np.zeros((k, d, b))
    yc = np.empty(b)
    for t in range(T):
        for i in range(d):
            y = yt[t, i]
            for n in range(b):
                yc[n] = y[n] - shift[i]
            for j in range(k):
                g = gbuf[t, j]
                s1 = sy_l[j, i]
                s2 = syy_l[j, i]
                for n in range(b):
                    s1[n] += g[n] * yc[n]
                    s2[n] += g[n] * (yc[n] * yc[n])
        for j in range(k):
            g = gbuf[t, j]
            c = n_l[j]
            for n in range(b):
                c[n] += g[n]
    for j in range(k):
        for n in range(b):
            nk[j] += n_l[j, n]
        for i in range(d):
            for n in range(b):
                sy[j, i] += sy_l[j, i, n]
                syy[j, i] += syy_l[j, i, n]
    return nk, sy, syy


@_jit
def viterbi(log_init, log_trans, yt, loc, scale, lengths):
    """The Viterbi path (b, t) int64, -1 past each length, of yt (t, d, b) under the Gaussian emission
    (loc, scale (k, d)): max-product in log space; ties go to the lowest from-state index (as
    `latentvar.inference._numba.viterbi`)."""
    T, _, b = yt.shape
    k = loc.shape[0]
    a, c = coefficients(scale)
    z = np.full((b, T), -1, dtype=np.int64)
    back = np.zeros((T, k, b), dtype=np.int32)
    delta = np.zeros((k, b))
    best = np.empty((k, b))
    e = np.empty(b)
    if T > 0:
        for j in range(k):
            _log_density(yt, 0, j, loc, a, c, e)
            for n in range(b):
                delta[j, n] = log_init[j] + e[n]
    for t in range(1, _longest(lengths)):
        for j in range(k):
            x = log_trans[0, j]
            m = best[j]
            arg = back[t, j]
            for n in range(b):
                m[n] = delta[0, n] + x
            for i in range(1, k):
                x = log_trans[i, j]
                for n in range(b):
                    v = delta[i, n] + x
                    up = v > m[n]
                    m[n] = v if up else m[n]
                    arg[n] = i if up else arg[n]
        for j in range(k):
            _log_density(yt, t, j, loc, a, c, e)
            for n in range(b):
                delta[j, n] = best[j, n] + e[n] if t < lengths[n] else delta[j, n]
    for n in range(b):
        L = lengths[n]
        if L == 0:
            continue
        cur = 0
        for j in range(1, k):
            if delta[j, n] > delta[cur, n]:
                cur = j
        for t in range(L - 1, -1, -1):
            z[n, t] = cur
            if t > 0:
                cur = back[t, cur, n]
    return z
