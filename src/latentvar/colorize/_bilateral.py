"""The compiled CPU kernel of the joint bilateral upsampling (`grids.joint_bilateral_rows`), numba.

The torch expression (`grids._mix`) gathers the four low-resolution neighbours of every output pixel as
whole tensors -- eight gathers and a dozen temporaries of the strip's size. This kernel visits each output
pixel once: its four range weights from the guide, then every channel mixed with them, nothing allocated
per pixel. Same taps, same weights, same order of the sums in float32; `tests/test_colorize_photo.py`
checks it against the torch expression. Single-threaded, releases the GIL (as `latentvar.inference._numba`,
numba's own parallel layer is not used: it resets torch's thread count).

Shapes: c channels, h/w the low-resolution grid, R/W the output rows and columns.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_jit = nb.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


@_jit
def bilateral_rows(x, guide, guide_out, r0, r1, wr, c0, c1, wc, inv_two_sigma2, floor, out):
    """out[:, i, j] = Σ_taps x[:, q] w_q / Σ_taps w_q over the 2×2 taps (r0|r1[i], c0|c1[j]),
    w_q = bilinear weight × (exp(-(guide_out[i, j] - guide[q])² · inv_two_sigma2) + floor).

    x (h, w, c) float32 (channels last: one pixel's channels are contiguous), guide (h, w), guide_out
    (R, W), r0/r1 (R,) int64 and wr (R,) float32 the row taps, c0/c1/wc the column taps (W,),
    out (c, R, W) float32."""
    num_c = x.shape[2]
    rows, cols = guide_out.shape
    for i in range(rows):
        a0, a1 = r0[i], r1[i]
        v1 = wr[i]
        v0 = np.float32(1.0) - v1
        for j in range(cols):
            b0, b1 = c0[j], c1[j]
            u1 = wc[j]
            u0 = np.float32(1.0) - u1
            p = guide_out[i, j]
            d00, d01 = p - guide[a0, b0], p - guide[a0, b1]
            d10, d11 = p - guide[a1, b0], p - guide[a1, b1]
            w00 = v0 * u0 * (np.float32(math.exp(-(d00 * d00) * inv_two_sigma2)) + floor)
            w01 = v0 * u1 * (np.float32(math.exp(-(d01 * d01) * inv_two_sigma2)) + floor)
            w10 = v1 * u0 * (np.float32(math.exp(-(d10 * d10) * inv_two_sigma2)) + floor)
            w11 = v1 * u1 * (np.float32(math.exp(-(d11 * d11) * inv_two_sigma2)) + floor)
            norm = ((w00 + w01) + w10) + w11
            for ch in range(num_c):
                top = x[a0, b0, ch] * w00 + x[a0, b1, ch] * w01
                out[ch, i, j] = ((top + x[a1, b0, ch] * w10) + x[a1, b1, ch] * w11) / norm
