"""Compiled CPU kernels for the HMM recursions (numba): one sequence (or four in lockstep) per loop
iteration, every time step a tight loop over (from-state, to-state) pairs with no interpreter or dispatch
overhead. The kernels are single-threaded and release the GIL; the caller runs groups of sequences on
several Python threads (numba's own parallel layer is not used: its OpenMP layer resets torch's thread
count, its workqueue layer aborts on concurrent calls).

Shapes (named axes): b sequences, t time, k states; float64 NumPy arrays, ``lengths`` (b,) int64.
The scaled kernels take the step weights the caller computed with vectorised exponentials (hmm.py,
`_step_weights`): ``trans_p`` (k, k) = exp(log A − its column maxima) and, per step, ``probs`` (b, t, k) =
exp(e_t + offset − top_t) with ``tops`` (b, t) = top_t, the offset being log π at t = 0 and the column
maxima after. So every product is exact up to rounding unless a step's normaliser falls below `TINY`;
such sequences are flagged (``ok`` False) and the caller recomputes them by the exact log-space recursion.

- `forward_chunk`: the scaled forward recursion in probability space (Rabiner 1989 §V.A) over one time
  chunk, carrying the normalised alphas (b, k) and the summed log-normalisers (b,) from chunk to chunk:
  scoring memory O(b·k) besides one chunk of weights.
- `forward_backward`: scaled forward-backward for a batch: state posteriors γ (b, t, k) and, weighted per
  sequence, the expected initial counts Σ_b w_b γ_b,1 (k,) and transition counts Σ_b w_b Σ_t ξ_b,t (k, k)
  (Rabiner 1989 eqs. 27, 37). These are exactly the gradients of Σ_b w_b log P(y_b) with respect to log π,
  log A and the emission log-likelihoods (Eisner 2016), so they serve EM and the autograd backward alike.
- `viterbi`: max-product in log space with per-sequence int32 backpointers (Viterbi 1967); ties go to the
  lowest from-state index, as ``argmax``.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# A step's normaliser below this could have lost terms to underflow (float64's smallest normal is 2.2e-308);
# the sequence is then recomputed in log space.
TINY = 1e-280

_jit = nb.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


@_jit
def _gather(prod, norm):
    """Multiply a step's normaliser into the running product (its log is taken only when the product leaves
    [1e-20, 1e20], not every step; norm > TINY keeps it normal): returns (new product, log to add)."""
    if prod < 1e-20 or prod > 1e20:
        return norm, math.log(prod)
    return prod * norm, 0.0


@_jit
def _vecmat(x, m, out):
    """out = x @ m as a sum of rows of m (no float reduction in the inner loop: it vectorises)."""
    k = x.shape[0]
    for j in range(k):
        out[j] = 0.0
    for i in range(k):
        a = x[i]
        if a != 0.0:
            for j in range(k):
                out[j] += a * m[i, j]


@_jit
def _advance(alpha, trans_p, p, new):
    """new = (alpha @ trans_p) * p, normalised; returns the normaliser."""
    k = alpha.shape[0]
    _vecmat(alpha, trans_p, new)
    norm = 0.0
    for j in range(k):
        new[j] *= p[j]
        norm += new[j]
    if norm > 0.0:
        inv = 1.0 / norm
        for j in range(k):
            new[j] *= inv
    return norm


@_jit
def forward_chunk(trans_p, probs, tops, lengths, t0, alpha, loglik, ok):
    """Advance the scaled forward recursion over steps t0 .. t0 + c - 1 (``probs`` (b, c, k), ``tops``
    (b, c)), updating the normalised ``alpha`` (b, k), ``loglik`` (b,) and ``ok`` (b,) in place, four
    sequences in lockstep. Steps at or past a sequence's length are skipped."""
    b, c, k = probs.shape
    new0, new1, new2, new3 = np.empty(k), np.empty(k), np.empty(k), np.empty(k)
    new = (new0, new1, new2, new3)
    rows = np.empty(4, dtype=np.int64)
    stops = np.empty(4, dtype=np.int64)
    active = np.empty(4, dtype=np.bool_)
    prod = np.empty(4)  # the product of the normalisers since the last log (see _gather)
    for n0 in range(0, b, 4):
        prod[:] = 1.0
        longest = 0
        for m in range(4):
            n = n0 + m
            rows[m] = n if n < b else n0
            stops[m] = min(c, lengths[n] - t0) if n < b and ok[n] else 0
            longest = max(longest, stops[m])
        for s in range(longest):
            t = t0 + s
            for m in range(4):
                active[m] = s < stops[m] and ok[rows[m]]
            if t > 0:
                # new_m = alpha[rows[m]] @ A' for the four at once (0 for inactive members): each row of A'
                # is read once for all four; for large k a step is bound by streaming A' from cache. The
                # outputs are separate arrays allocated here, so the inner loop vectorises.
                new0[:] = 0.0
                new1[:] = 0.0
                new2[:] = 0.0
                new3[:] = 0.0
                for i in range(k):
                    a0 = alpha[rows[0], i] if active[0] else 0.0
                    a1 = alpha[rows[1], i] if active[1] else 0.0
                    a2 = alpha[rows[2], i] if active[2] else 0.0
                    a3 = alpha[rows[3], i] if active[3] else 0.0
                    row = trans_p[i]
                    for j in range(k):
                        x = row[j]
                        new0[j] += a0 * x
                        new1[j] += a1 * x
                        new2[j] += a2 * x
                        new3[j] += a3 * x
            for m in range(4):
                if not active[m]:
                    continue
                n = rows[m]
                out = new[m]
                norm = 0.0
                for j in range(k):
                    x = probs[n, s, j] if t == 0 else out[j] * probs[n, s, j]
                    out[j] = x
                    norm += x
                if not norm > TINY:
                    ok[n] = False
                    continue
                inv = 1.0 / norm
                for j in range(k):
                    alpha[n, j] = out[j] * inv
                prod[m], logged = _gather(prod[m], norm)
                loglik[n] += tops[n, s] + logged
        for m in range(4):
            if n0 + m < b and ok[n0 + m]:
                loglik[n0 + m] += math.log(prod[m])


@_jit
def forward_backward(trans_p, probs, tops, lengths, weights, counts):
    """Scaled forward-backward over a batch. Returns (γ (b, t, k), log P(y) (b,), ok (b,),
    Σ_b w_b γ_b,1 (k,), Σ_b w_b Σ_t ξ_b,t (k, k)). ``counts`` False skips the transition counts (zero
    then) for marginals alone.

    Sequences go in blocks run in lockstep, step by step: one sequence's recursion is a chain of dependent
    multiply-adds and a division per step, so at small k a lone sequence waits on latency; a block's
    independent chains overlap. The block shrinks as k grows (one sequence from k = 32), keeping its
    (block, t, k) working set in cache. The scaled alphas are kept in γ's own storage and turned into γ in
    place by the backward pass."""
    b, T, k = probs.shape
    trans_t = np.ascontiguousarray(trans_p.T)
    gamma = np.zeros((b, T, k))  # the scaled alphas until the backward pass makes them γ
    loglik = np.zeros(b)
    ok = np.ones(b, dtype=np.bool_)
    init_acc = np.zeros(k)
    trans_acc = np.zeros((k, k))
    block = max(1, min(8, 32 // k))
    norms = np.empty((block, T))
    prod = np.empty(block)  # the product of the normalisers since the last log (see _gather)
    new = np.empty((block, k))
    beta = np.empty((block, k))
    pb = np.empty(k)
    for n0 in range(0, b, block):
        n1 = min(b, n0 + block)
        prod[:] = 1.0
        longest = 0
        for n in range(n0, n1):
            longest = max(longest, lengths[n])
        for t in range(longest):  # forward
            for n in range(n0, n1):
                if t >= lengths[n] or not ok[n]:
                    continue
                m = n - n0
                norm = 0.0
                if t == 0:
                    for j in range(k):
                        norm += probs[n, 0, j]
                else:
                    for j in range(k):
                        new[m, j] = 0.0
                    for i in range(k):
                        a = gamma[n, t - 1, i]
                        if a != 0.0:
                            for j in range(k):
                                new[m, j] += a * trans_p[i, j]
                    for j in range(k):
                        new[m, j] *= probs[n, t, j]
                        norm += new[m, j]
                if not norm > TINY:
                    ok[n] = False
                    continue
                if t == 0:
                    for j in range(k):
                        gamma[n, 0, j] = probs[n, 0, j] / norm
                else:
                    inv = 1.0 / norm
                    for j in range(k):
                        gamma[n, t, j] = new[m, j] * inv
                norms[m, t] = norm
                prod[m], logged = _gather(prod[m], norm)
                loglik[n] += tops[n, t] + logged
        for n in range(n0, n1):
            loglik[n] += math.log(prod[n - n0])
        # backward: beta_t scaled so that γ_t = alpha_t * beta_t (Rabiner 1989 eqs. 24, 27)
        for n in range(n0, n1):
            for j in range(k):
                beta[n - n0, j] = 1.0
        for t in range(longest - 1, 0, -1):
            for n in range(n0, n1):
                if t >= lengths[n] or not ok[n]:
                    continue
                m = n - n0
                # ξ_t(i, j) = alpha_{t-1}(i) A'(i, j) p_t(j) beta_t(j) / norm_t
                inv = 1.0 / norms[m, t]
                for j in range(k):
                    pb[j] = probs[n, t, j] * beta[m, j] * inv
                for j in range(k):
                    new[m, j] = 0.0
                for i in range(k):  # new = A' @ pb
                    a = pb[i]
                    if a != 0.0:
                        for j in range(k):
                            new[m, j] += a * trans_t[i, j]
                if counts:
                    w = weights[n]
                    for i in range(k):
                        a = gamma[n, t - 1, i] * w
                        if a != 0.0:
                            for j in range(k):
                                trans_acc[i, j] += a * trans_p[i, j] * pb[j]
                for i in range(k):
                    beta[m, i] = new[m, i]
                    gamma[n, t - 1, i] *= new[m, i]
        for n in range(n0, n1):
            if not ok[n]:  # the caller recomputes it in log space: no partial results
                loglik[n] = 0.0
                gamma[n] = 0.0
            elif lengths[n] > 0:
                for j in range(k):
                    init_acc[j] += weights[n] * gamma[n, 0, j]
    return gamma, loglik, ok, init_acc, trans_acc


@_jit
def _max_step_rows(delta, log_trans, best, back, t):
    """best[j] = max_i delta[i] + log A[i, j], back[t, j] its first argmax: from-state rows outer, the
    to-state loop inner and branch-free enough to vectorise (wide k)."""
    k = delta.shape[0]
    for j in range(k):
        best[j] = -np.inf
        back[t, j] = 0
    for i in range(k):
        d = delta[i]
        for j in range(k):
            v = d + log_trans[i, j]
            if v > best[j]:
                best[j] = v
                back[t, j] = i


@_jit
def _max_step_cols(delta, trans_t, best, back, t):
    """The same with the maximum over i kept in registers (small k, where the row form's stores dominate);
    ``trans_t`` is log A transposed."""
    k = delta.shape[0]
    for j in range(k):
        m = delta[0] + trans_t[j, 0]
        arg = 0
        for i in range(1, k):
            v = delta[i] + trans_t[j, i]
            if v > m:
                m = v
                arg = i
        best[j] = m
        back[t, j] = arg


@_jit
def viterbi(log_init, log_trans, em, lengths):
    """The Viterbi path (b, t) int64, -1 past each length."""
    b, T, k = em.shape
    z = np.full((b, T), -1, dtype=np.int64)
    trans_t = np.ascontiguousarray(log_trans.T)
    narrow = k <= 16
    for n in range(b):
        L = lengths[n]
        if L == 0:
            continue
        back = np.zeros((L, k), dtype=np.int32)
        delta = np.empty(k)
        best = np.empty(k)
        for j in range(k):
            delta[j] = log_init[j] + em[n, 0, j]
        for t in range(1, L):
            if narrow:
                _max_step_cols(delta, trans_t, best, back, t)
            else:
                _max_step_rows(delta, log_trans, best, back, t)
            for j in range(k):
                delta[j] = best[j] + em[n, t, j]
        cur = 0
        for j in range(1, k):
            if delta[j] > delta[cur]:
                cur = j
        for t in range(L - 1, -1, -1):
            z[n, t] = cur
            if t > 0:
                cur = back[t, cur]
    return z
