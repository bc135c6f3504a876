"""The per-state Gaussian log-likelihood table of `latentvar.hmm.fast_emission` as one compiled loop (numba),
for float64 CPU tensors that need no gradient: the same formula, (y − μ)² · a + c summed over the event,
with a = −1/(2σ²), c = −log σ − ½ log 2π, equal to the tensor form up to rounding (a few ulp).

Shapes (named axes): b sequences, t steps, k states, d event values (flattened); float64 NumPy arrays.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@nb.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
def coefficients(scale):
    """a = −1/(2σ²) and c = −log σ − ½ log 2π (k, d): log N(y | μ, σ²) = a (y − μ)² + c per dimension."""
    k, d = scale.shape
    a = np.empty((k, d))
    c = np.empty((k, d))
    for j in range(k):
        for i in range(d):
            s = scale[j, i]
            a[j, i] = -0.5 / (s * s)
            c[j, i] = -math.log(s) - _HALF_LOG_2PI
    return a, c


@nb.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
def gaussian_table(y, loc, scale):
    """log N(y_t | μ_k, σ_k²) summed over d: (b, t, k) for y (b, t, d), loc and scale (k, d)."""
    b, T, d = y.shape
    k = loc.shape[0]
    a, c = coefficients(scale)
    out = np.empty((b, T, k))
    for n in range(b):
        for t in range(T):
            for j in range(k):
                total = 0.0
                for i in range(d):
                    r = y[n, t, i] - loc[j, i]
                    total += c[j, i] + r * r * a[j, i]
                out[n, t, j] = total
    return out
