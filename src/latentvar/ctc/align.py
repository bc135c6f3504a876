"""Forced alignment beyond the stored-table Viterbi: bounded memory for long inputs, and a wildcard (star)
token for partial transcripts.

**Bounded memory** (checkpointed Viterbi; Griewank 1992's checkpointing applied to the max-semiring forward
pass, as in Tarnas & Hughey 1998's reduced-space sequence alignment). The plain forced alignment keeps
every max-semiring forward variable, O(b·t·s) -- 1.6 GB for one sequence of t = 100,000 frames and
l = 2,000 labels (s = 2l + 1) in float32. Here the forward pass keeps only the variables at the start of
every segment of ``segment`` frames (default ⌈√t⌉); the backtrace then walks the segments last to first,
recomputing each segment's variables from its checkpoint. Memory O(b·s·(t/segment + segment)) = O(b·s·√t),
time two forward passes. The recomputation runs the same TorchScript kernel arithmetic on the same inputs,
and the walk is the one backtrace of `latentvar.inference.backtrack` step for step (a TorchScript loop), so
the path equals the plain Viterbi path exactly (ties included; tested).

**Star token** (`STAR`, -2 in a target): a wildcard for the parts of the audio a partial transcript does not
cover (MMS's ``<star>``, Pratap et al. 2023). Precisely: a target y with stars is aligned as a CTC target
over c + 1 classes, the star being class c, whose per-frame log-score is ``star_score`` -- a float, or
None for the frame's best class score max_k log P(z_t = k | x). So a star matches one or more consecutive
frames (never zero), whatever those frames hold; it obeys the CTC rules of any label (a blank is needed
between two adjacent stars, none between a star and a different label). Its frames show as `STAR` in the
path and it has a span like any token. A star with ``star_score = 0`` costs nothing per frame (the frames
are left unexplained); with None each frame costs what its best label costs.

Shapes (named axes): b batch, t frames, c classes, l target labels, s = 2l + 1 extended positions.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from latentvar.inference.backtrack import PAD
from latentvar.inference.lattice import ctc_chain, log_partition_of_ctc

STAR = -2  # the wildcard token in a target, and the label of its frames in an alignment path
FULL_TABLE_BYTES = 2**28  # 'auto' keeps the whole table below this size (256 MiB), else checkpoints


def _segment_kernel(
    log_probs: Tensor,
    ext: Tensor,
    skip_bias: Tensor,
    input_lengths: Tensor,
    alpha: Tensor,
    t0: int,
    t1: int,
    keep: bool,
) -> tuple[Tensor, Tensor]:
    """The max-semiring CTC forward recursion over frames [t0, t1) from ``alpha`` (b, s + 2) (two impossible
    positions in front), the arithmetic of `latentvar.inference._scripted._forward_kernel` operation for
    operation. Returns α after frame t1 - 1 (b, s + 2) and, with ``keep``, α of every frame (t1 - t0, b, s)."""
    b = log_probs.shape[0]
    s = ext.shape[1]
    alpha = alpha.clone()
    stored = torch.full(
        (t1 - t0 if keep else 0, b, s), float("-inf"), dtype=log_probs.dtype, device=ext.device
    )
    ragged_from = int(input_lengths.min()) if b > 0 else t1
    for t in range(t0, t1):
        emit = log_probs[:, t].gather(1, ext)
        if t == 0:
            new = alpha[:, 2:] + emit
        else:
            new = torch.maximum(torch.maximum(alpha[:, 2:], alpha[:, 1:-1]), alpha[:, :-2] + skip_bias) + emit
        if t >= ragged_from:
            new = torch.where((input_lengths > t)[:, None], new, alpha[:, 2:])
        alpha[:, 2:] = new
        if keep:
            stored[t - t0] = new
    return alpha, stored


def _walk_kernel(
    alphas: Tensor,
    t0: int,
    t_stop: int,
    input_lengths: Tensor,
    skip_padded: Tensor,
    end: Tensor,
    nxt: Tensor,
    positions: Tensor,
) -> Tensor:
    """The backtrace over frames t_stop - 1 down to t0 of segment alphas (t1 - t0, b, s): for the banded
    lattice, `Banded.predecessors` and `latentvar.inference.backtrack`'s Argmax step, operation for
    operation (ties to the lowest candidate: stay, then move one, then skip). Writes ``positions`` (b, t),
    returns the position carried into frame t0 - 1."""
    s = alphas.shape[2]
    offsets = torch.arange(3, device=alphas.device)
    zero = torch.zeros((), dtype=alphas.dtype, device=alphas.device)
    neg_inf = torch.full((), float("-inf"), dtype=alphas.dtype, device=alphas.device)
    for t in range(t_stop - 1, t0 - 1, -1):
        active = t < input_lengths
        at_end = t == input_lengths - 1
        cur = torch.where(at_end, end, nxt)
        cand = cur[:, None] - offsets
        can_skip = skip_padded.gather(1, cur[:, None].clamp(max=s)).squeeze(1)
        ok = torch.stack((~at_end, cand[:, 1] >= 0, (cand[:, 2] >= 0) & (can_skip | at_end)), dim=-1)
        scores = alphas[t - t0].gather(1, cand.clamp(0, s - 1)) + torch.where(ok, zero, neg_inf)
        picked = cand.gather(1, scores.argmax(-1)[:, None]).squeeze(1)
        positions[:, t] = torch.where(active, picked, torch.full_like(picked, -1))
        nxt = torch.where(active, picked, nxt)
    return nxt


_scripted_kernels: dict = {}


def _kernel(fn):
    """``fn`` compiled by TorchScript on first use (its deprecation warning silenced, as in
    `latentvar.inference._scripted`: the scripted loops are plain TorchScript and stay correct)."""
    if fn not in _scripted_kernels:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            _scripted_kernels[fn] = torch.jit.script(fn)
    return _scripted_kernels[fn]


def _segment(*args):
    return _kernel(_segment_kernel)(*args)


def checkpointed_alignment(
    log_probs: Tensor,
    input_lengths: Tensor,
    targets: Tensor,
    target_lengths: Tensor,
    blank: int,
    segment=None,
) -> tuple[Tensor, Tensor]:
    """The Viterbi positions (b, t) on the extended labels (-1 past each length and for targets that cannot
    fit) and the best score (b,), in O(b·s·(t/segment + segment)) memory (module docstring). Inputs are
    checked: log_probs (b, t, c), padded targets (b, l)."""
    chain = ctc_chain(log_probs.detach(), targets, target_lengths, input_lengths, blank)
    ext, step, final = chain.emissions.ext, chain.step, chain.final
    lp = log_probs.detach()
    b, t_max, _ = lp.shape
    s = ext.shape[1]
    segment = max(1, math.isqrt(max(t_max - 1, 0)) + 1) if segment is None else int(segment)
    alpha = torch.full((b, s + 2), float("-inf"), dtype=lp.dtype, device=lp.device)
    alpha[:, 2 : 2 + min(s, 2)] = 0.0
    checkpoints = []
    with torch.no_grad():
        for t0 in range(0, t_max, segment):  # pass 1: keep α at each segment's start
            checkpoints.append(alpha)
            alpha, _ = _segment(lp, ext, step.bias, input_lengths, alpha, t0, min(t0 + segment, t_max), False)
        total = (alpha[:, 2:] + final).amax(-1)
        total = torch.where(input_lengths > 0, total, torch.zeros_like(total))
        score = log_partition_of_ctc(chain, total)
        positions = torch.full((b, t_max), PAD, dtype=torch.long, device=lp.device)
        nxt = torch.zeros(b, dtype=torch.long, device=lp.device)
        longest = int(input_lengths.max()) if b else 0
        walk = _kernel(_walk_kernel)
        # `Banded.predecessors`' inputs: skip padded for the virtual end position after the last, 2l + 1
        skip_padded = torch.cat([step.skip, step.skip.new_zeros(b, 1)], dim=1)
        virtual_end = 2 * target_lengths + 1
        for index in range((min(t_max, longest) - 1) // segment, -1, -1):  # pass 2: segments last to first
            t0 = index * segment
            t1 = min(t0 + segment, t_max)
            _, alphas = _segment(lp, ext, step.bias, input_lengths, checkpoints[index], t0, t1, True)
            end = min(t1, longest)
            nxt = walk(alphas, t0, end, input_lengths, skip_padded, virtual_end, nxt, positions)
    positions = torch.where(torch.isfinite(score)[:, None], positions, PAD)
    return positions, score


def full_table_bytes(log_probs: Tensor, target_lengths: Tensor) -> int:
    """The bytes of the plain alignment's stored table (b, t, s)."""
    b, t_max, _ = log_probs.shape
    width = int(target_lengths.max()) if b else 0
    return b * t_max * (2 * width + 1) * log_probs.element_size()


def with_star_class(log_probs: Tensor, star_score: float | None) -> Tensor:
    """log_probs (b, t, c) with the star's column appended: (b, t, c + 1)."""
    if star_score is None:
        column = log_probs.amax(-1, keepdim=True)
    else:
        column = torch.full_like(log_probs[..., :1], float(star_score))
    return torch.cat([log_probs, column], dim=-1)


def star_path(path: Tensor, star_class: int) -> Tensor:
    """Frame labels with the star's class shown as `STAR`."""
    return torch.where(path == star_class, torch.full_like(path, STAR), path)
