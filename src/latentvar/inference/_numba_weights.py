"""Compiled per-step weights for the scaled kernels of `latentvar.inference._numba` (numba): the same numbers
as the vectorised torch form in `latentvar.inference._compiled` (up to the last bit of exp), in one
compiled pass and NumPy's vectorised exp instead of eight tensor operations -- on small problems (a few thousand steps, a few states) each
operation's fixed cost of a few microseconds dominates.

    shifted_t = e_t + offset_t   (offset: log π at t = 0, the transition column maxima after)
    top_t = max_k shifted_t (0 where it is NaN or infinite),  probs_t = exp(shifted_t − top_t)

Shapes (named axes): b sequences, c steps of one chunk, k states; float64 NumPy arrays.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_jit = nb.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


@_jit
def shifted_weights(em, log_init, col_max, first):
    """(shifted_t − top_t (b, c, k), tops (b, c)) -- exp of the first is the probs -- for the emission chunk
    ``em`` (b, c, k); ``log_init`` (b, k) (one row per sequence, or a (1, k) row shared); ``first``: the
    chunk starts at step 0."""
    b, c, k = em.shape
    out = np.empty((b, c, k))
    tops = np.empty((b, c))
    shared = log_init.shape[0] == 1
    for n in range(b):
        for s in range(c):
            if first and s == 0:
                row = 0 if shared else n
                for j in range(k):
                    out[n, 0, j] = em[n, 0, j] + log_init[row, j]
            else:
                for j in range(k):
                    out[n, s, j] = em[n, s, j] + col_max[j]
            top = out[n, s, 0]
            for j in range(1, k):
                top = max(top, out[n, s, j])  # NaN-blind: NaN is found below
            total = 0.0
            for j in range(k):
                total += out[n, s, j]
            if not math.isfinite(total) or not math.isfinite(top):  # a NaN, or an infinite value
                top = _top(out[n, s])
            tops[n, s] = top
            for j in range(k):
                out[n, s, j] -= top
    return out, tops


@_jit
def _top(x):
    """torch's ``amax(...).nan_to_num(0, 0, 0)`` of one step: NaN if any is NaN, then 0 unless finite."""
    top = -np.inf
    for v in x:
        if v != v:
            return 0.0
        top = max(top, v)
    return top if math.isfinite(top) else 0.0


def step_weights(em, log_init, col_max, first):
    """(probs (b, c, k), tops (b, c)): `shifted_weights` and NumPy's exp in place."""
    probs, tops = shifted_weights(em, log_init, col_max, first)
    return np.exp(probs, out=probs), tops
