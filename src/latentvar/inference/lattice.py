"""The CTC lattice as a banded step of the linear chain (Graves et al., ICML 2006, eq. 6-10).

The states of the chain are the positions s of the extended label sequence l' = (blank, y_1, blank, ...,
y_L, blank), S = 2L + 1: at each frame a path stays on its position, moves to the next, or skips a blank
between two different labels. So the transition "matrix" is banded -- three diagonals, the third gated by
``skip`` -- and is never built: `Banded` applies it to α in O(b·s), and names the (at most three)
predecessors for the one backtrace, `latentvar.inference.chain.backtrack`. The emissions are the frame
log-probabilities gathered at l', e_t[s] = log P(z_t = l'_s | x), streamed in time chunks (`Gathered`), so
a no-gradient pass keeps O(b·s) memory.

Shapes (named axes): b batch, t frames, c classes (blank included), l target labels, s extended positions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from latentvar.inference.chain import Chain
from latentvar.inference.semiring import LogSemiring

NEG_INF = float("-inf")
CHUNK_VALUES = 2**18  # gathered emissions computed at once: b·chunk·s near this


def extended_labels(targets: Tensor, target_lengths: Tensor, blank: int) -> tuple[Tensor, Tensor]:
    """l' = (blank, y_1, blank, ..., y_L, blank): (b, s) with s = 2·max(L)+1, and ``skip`` (b, s), True
    where a path may jump from s-2 to s (a label different from the label two positions back)."""
    b, max_len = targets.shape
    ext = torch.full((b, 2 * max_len + 1), blank, dtype=torch.long, device=targets.device)
    within = torch.arange(max_len, device=targets.device) < target_lengths[:, None]
    ext[:, 1::2] = torch.where(within, targets, blank)
    skip = torch.zeros_like(ext, dtype=torch.bool)
    skip[:, 3::2] = within[:, 1:] & (targets[:, 1:] != targets[:, :-1])
    return ext, skip


def final_mask(ext: Tensor, target_lengths: Tensor, dtype: torch.dtype) -> Tensor:
    """0 at the two positions a path may end on (the last label and the trailing blank), else -inf: (b, s)."""
    s = torch.arange(ext.shape[1], device=ext.device)
    end = 2 * target_lengths[:, None]
    ok = (s == end) | ((s == end - 1) & (target_lengths[:, None] > 0))
    return torch.zeros(ext.shape, dtype=dtype, device=ext.device).masked_fill(~ok, NEG_INF)


def skip_bias(skip: Tensor, dtype: torch.dtype) -> Tensor:
    """0 where a skip is allowed, -inf elsewhere: (b, s)."""
    return torch.zeros(skip.shape, dtype=dtype, device=skip.device).masked_fill(~skip, NEG_INF)


def shifted(x: Tensor, by: int, fill: float) -> Tensor:
    """x moved ``by`` positions right along the last axis (by < 0: left), ``fill`` entering."""
    out = torch.full_like(x, fill)
    if by > 0:
        out[..., by:] = x[..., :-by]
    else:
        out[..., :by] = x[..., -by:]
    return out


class Banded:
    """The CTC step α_t(s) = (α_{t-1}(s) ⊕ α_{t-1}(s-1) ⊕ [skip(s)] α_{t-1}(s-2)) ⊗ e_t(s)."""

    def __init__(self, skip: Tensor, target_lengths: Tensor, dtype: torch.dtype):
        self.skip = skip
        self.bias = skip_bias(skip, dtype)
        self.target_lengths = target_lengths
        # for the backtrace: the virtual end position, skip padded for it, the three offsets
        self._end = 2 * target_lengths + 1
        self._skip_padded = torch.cat([skip, skip.new_zeros(skip.shape[0], 1)], dim=1)
        self._offsets = torch.arange(3, device=skip.device)
        self._zero = torch.zeros((), dtype=dtype, device=skip.device)

    def runner(self, semiring, exact: bool) -> _BandedRun:
        return _BandedRun(self.bias, semiring)

    def predecessors(self, t: int, nxt: Tensor, at_end: Tensor, final):
        """Candidates for the position at frame t-1 given the one at t (``nxt`` (..., b)): stay, move one,
        skip one (if allowed); at the start of the walk, a virtual position after the last, whose
        predecessors are the two ends. Returns (candidates (..., b, 3), their scores 0 or -inf)."""
        s = self.skip.shape[1]
        cur = torch.where(at_end, self._end, nxt)
        cand = cur[..., None] - self._offsets
        index = cur[..., None].clamp(max=s)
        can_skip = self._skip_padded.expand(*cur.shape, s + 1).gather(-1, index).squeeze(-1)
        ok = torch.stack((~at_end, cand[..., 1] >= 0, (cand[..., 2] >= 0) & (can_skip | at_end)), dim=-1)
        return cand, torch.where(ok, self._zero, NEG_INF)


class _BandedRun:
    def __init__(self, bias: Tensor, semiring):
        self.bias, self.semiring = bias, semiring

    def __call__(self, alpha: Tensor, t: int) -> Tensor:
        sr = self.semiring
        moves = torch.stack(
            (alpha, shifted(alpha, 1, NEG_INF), sr.mul(shifted(alpha, 2, NEG_INF), self.bias))
        )
        return sr.sum(moves, 0)

    def underflowed(self) -> bool:
        return False


class Gathered:
    """The lattice's emissions e_t[s] = log_probs[b, t, ext[b, s]], as a re-iterable stream of time chunks
    (b, c, s): ``Gathered(...)()`` is an iterator over them."""

    def __init__(self, log_probs: Tensor, ext: Tensor):
        self.log_probs, self.ext = log_probs, ext

    @property
    def requires_grad(self) -> bool:
        return self.log_probs.requires_grad

    def __call__(self):
        b, t_max, _ = self.log_probs.shape
        s = self.ext.shape[1]
        step = max(1, CHUNK_VALUES // max(1, b * s))
        for t0 in range(0, t_max, step):
            part = self.log_probs[:, t0 : t0 + step]
            yield part.gather(2, self.ext[:, None, :].expand(b, part.shape[1], s))


def ctc_chain(log_probs, targets, target_lengths, input_lengths, blank: int, fast: bool = True) -> Chain:
    """The chain over extended positions whose log partition is log P(y|x) (for input lengths > 0)."""
    ext, skip = extended_labels(targets, target_lengths, blank)
    s = ext.shape[1]
    init = torch.full((s,), NEG_INF, dtype=log_probs.dtype, device=log_probs.device)
    init[: min(s, 2)] = LogSemiring.one
    final = final_mask(ext, target_lengths, log_probs.dtype)
    step = Banded(skip, target_lengths, log_probs.dtype)
    return Chain(init, step, Gathered(log_probs, ext), input_lengths, final=final, fast=fast)


def log_partition_of_ctc(chain: Chain, total: Tensor) -> Tensor:
    """log P(y|x) from the chain's log partition: with no frames only the empty target is possible."""
    empty = chain.lengths == 0
    no_labels = chain.step.target_lengths == 0
    return torch.where(empty, torch.where(no_labels, 0.0, NEG_INF).to(total), total)


def positions_to_labels(positions: Tensor, ext: Tensor) -> Tensor:
    """Extended positions (..., b, t) -> frame labels (..., b, t), -1 kept."""
    labels = ext.expand(*positions.shape[:-1], ext.shape[1]).gather(-1, positions.clamp_min(0))
    return torch.where(positions >= 0, labels, -1)
