"""Compiled CPU kernels for CTC (numba): log P(y|x) and its exact gradient with respect to the frame
log-probabilities, one sequence per loop iteration, every frame a tight loop over the 2l+1 extended
positions with no interpreter or dispatch overhead. Single-threaded and releasing the GIL, as the HMM's
kernels (`latentvar.inference._numba`); the caller may run groups of sequences on Python threads.

Shapes (named axes): b sequences, t frames, c classes, l target labels, s = 2l + 1 extended positions
(blank, y_1, blank, ..., y_l, blank; Graves et al. 2006, eq. 6-10). ``log_probs`` (b, t, c) float32 or
float64 NumPy (any strides: a view of a time-first tensor is read in place), ``targets`` (b, l) int64
padded, lengths (b,) int64. Arithmetic is float64 whatever the input dtype.

- `scaled`: the forward-backward in probability space with one normaliser per frame (Rabiner 1989 §V.A).
  Each frame's probabilities are exp(log p_t - max_c log p_t), so no exp or log runs in the inner loops.
  The forward variables are kept only over the band of positions that can still reach the end (and have
  been reached from the start). A sequence where a frame's normaliser (forward) or the overlap
  Σ_s α_t(s) β_t(s) (backward) falls below `TINY` could have lost terms to underflow: it is flagged
  (``ok`` False) and left to `log_space`.
- `log_space`: the same recursion with log-sum-exp, exact for any input (targets that cannot fit give
  -inf and a zero gradient).

Both write ``logz`` (b,) = log P(y|x) and, when asked, ``grad`` (b, t, c) = ∂ log P(y|x) / ∂ log p_t(c) =
Σ_{s: l'_s = c} γ_t(s), the occupation of class c at frame t (Graves et al. 2006, eq. 14-16), zero past
each input length.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# A normaliser below this could have lost terms to underflow (float64's smallest normal is 2.2e-308).
TINY = 1e-280

_jit = nb.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


@_jit
def _extend(targets, n, length, blank, ext, skip):
    """The extended labels l' (s,) of sequence n and skip[s] = 1.0 where position s may be entered from
    s - 2 (a label differing from the label two back)."""
    size = 2 * length + 1
    for s in range(size):
        if s % 2 == 0:
            ext[s] = blank
            skip[s] = 0.0
        else:
            ext[s] = targets[n, s // 2]
            skip[s] = 1.0 if s >= 3 and targets[n, s // 2] != targets[n, s // 2 - 1] else 0.0
    skip[size] = 0.0
    skip[size + 1] = 0.0


@_jit
def _frame(log_probs, n, t, probs):
    """probs[c] = exp(log p_t(c) - m) with m = max_c log p_t(c); returns m (0 for a frame of all -inf,
    whose probs are then 0)."""
    c = probs.shape[0]
    top = -np.inf
    for j in range(c):
        v = log_probs[n, t, j]
        if v > top:
            top = v
    if top == -np.inf:
        top = 0.0
    for j in range(c):
        probs[j] = math.exp(log_probs[n, t, j] - top)
    return top


@_jit
def _band(t, frames, size):
    """Positions [lo, hi) that are reachable at frame t and can still reach the end by the last frame."""
    return max(0, size - 2 * (frames - t)), min(size, 2 * t + 2)


@_jit
def scaled(log_probs, targets, input_lengths, target_lengths, blank, want_grad, logz, grad, ok):
    """The scaled forward(-backward) for every sequence; fills ``logz``, ``grad`` (when ``want_grad``) and
    ``ok``. Without a gradient only two rows of forward variables are kept (memory O(s))."""
    b, _, c = log_probs.shape
    width = targets.shape[1]
    ext = np.empty(2 * width + 1, dtype=np.int64)
    skip = np.empty(2 * width + 3)
    probs = np.empty(c)
    pe = np.empty(2 * width + 1)
    for n in range(b):
        frames, length = input_lengths[n], target_lengths[n]
        size = 2 * length + 1
        if frames == 0:
            logz[n] = 0.0 if length == 0 else -np.inf
            continue
        _extend(targets, n, length, blank, ext, skip)
        # rows padded with two zero columns in front: position s lives at column s + 2
        alpha = np.zeros((frames if want_grad else 2, size + 2))
        total = 0.0
        good = True
        for t in range(frames):
            top = _frame(log_probs, n, t, probs)
            lo, hi = _band(t, frames, size)
            row = alpha[t if want_grad else t & 1]
            row[max(0, lo - 2) + 2 : lo + 2] = 0.0  # left of the band (a reused row holds older values)
            norm = 0.0
            if t == 0:
                for s in range(lo, hi):
                    a = probs[ext[s]]
                    row[s + 2] = a
                    norm += a
            else:
                prev = alpha[t - 1 if want_grad else (t - 1) & 1]
                for s in range(lo, hi):
                    a = (prev[s + 2] + prev[s + 1] + skip[s] * prev[s]) * probs[ext[s]]
                    row[s + 2] = a
                    norm += a
            if not norm > TINY:
                good = False
                break
            inv = 1.0 / norm
            for s in range(lo, hi):
                row[s + 2] *= inv
            total += top + math.log(norm)
        # the last frame's band is the two final positions, so its normaliser is P(y|x)'s last factor
        if not good:
            ok[n] = False
            continue
        logz[n] = total
        if not want_grad:
            continue
        # backward: β_t(s) = Σ_{s' in s, s+1, s+2 (skip)} p_{t+1}(l'_s') β_{t+1}(s'), scaled per frame
        # (any positive scale: γ_t is normalised per frame); rows padded with two zeros behind
        beta = np.zeros(size + 2)
        nxt = np.zeros(size + 2)
        for s in range(max(0, size - 2), size):
            beta[s] = 1.0
        for t in range(frames - 1, -1, -1):
            lo, hi = _band(t, frames, size)
            if t < frames - 1:
                for s in range(lo, size):
                    beta[s] = nxt[s] + nxt[s + 1] + skip[s + 2] * nxt[s + 2]
            row = alpha[t]
            overlap = 0.0
            for s in range(lo, hi):
                pe[s] = row[s + 2] * beta[s]
                overlap += pe[s]
            if not overlap > TINY:
                good = False
                break
            inv = 1.0 / overlap
            for s in range(lo, hi):
                grad[n, t, ext[s]] += pe[s] * inv
            if t > 0:
                # nxt(s) = p_t(l'_s) β_t(s), normalised, for the step to frame t - 1
                _frame(log_probs, n, t, probs)
                norm = 0.0
                for s in range(lo, size):
                    v = probs[ext[s]] * beta[s]
                    nxt[s] = v
                    norm += v
                inv = 1.0 / norm if norm > 0.0 else 0.0
                for s in range(lo, size):
                    nxt[s] *= inv
                for s in range(max(0, lo - 2), lo):
                    nxt[s] = 0.0
        if not good:
            ok[n] = False
            for t in range(frames):
                for j in range(c):
                    grad[n, t, j] = 0.0


@_jit
def _logaddexp(a, b):
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


@_jit
def log_space(log_probs, targets, input_lengths, target_lengths, blank, want_grad, logz, grad, rows):
    """The log-space forward(-backward) for the sequences ``rows``; fills ``logz`` and ``grad``."""
    _, _, c = log_probs.shape
    width = targets.shape[1]
    ext = np.empty(2 * width + 1, dtype=np.int64)
    skip = np.empty(2 * width + 3)
    for n in rows:
        frames, length = input_lengths[n], target_lengths[n]
        size = 2 * length + 1
        if want_grad:
            for t in range(frames):
                for j in range(c):
                    grad[n, t, j] = 0.0
        if frames == 0:
            logz[n] = 0.0 if length == 0 else -np.inf
            continue
        _extend(targets, n, length, blank, ext, skip)
        alpha = np.full((frames, size + 2), -np.inf)
        for t in range(frames):
            lo, hi = _band(t, frames, size)
            for s in range(lo, hi):
                if t == 0:
                    a = 0.0
                else:
                    a = _logaddexp(alpha[t - 1, s + 2], alpha[t - 1, s + 1])
                    if skip[s] > 0.0:
                        a = _logaddexp(a, alpha[t - 1, s])
                alpha[t, s + 2] = a + log_probs[n, t, ext[s]]
        last = alpha[frames - 1]
        total = _logaddexp(last[size + 1], last[size] if size >= 2 else -np.inf)
        logz[n] = total
        if not want_grad or total == -np.inf:
            continue
        # β_t(s) here includes frame t's own log-probability, so γ_t(s) = α_t(s) + β_t(s) - log p_t - log Z
        beta = np.full(size + 2, -np.inf)
        new = np.full(size + 2, -np.inf)
        for t in range(frames - 1, -1, -1):
            lo, hi = _band(t, frames, size)
            for s in range(size):
                if t == frames - 1:
                    v = 0.0 if s >= size - 2 else -np.inf
                elif s < lo:
                    v = -np.inf
                else:
                    v = _logaddexp(beta[s], beta[s + 1])
                    if s + 2 < size and skip[s + 2] > 0.0:
                        v = _logaddexp(v, beta[s + 2])
                new[s] = v
            for s in range(size):
                lp = log_probs[n, t, ext[s]]
                beta[s] = new[s] + lp if new[s] > -np.inf else -np.inf
            for s in range(lo, hi):
                g = alpha[t, s + 2] + new[s] - total
                if g > -np.inf:
                    grad[n, t, ext[s]] += math.exp(g)
