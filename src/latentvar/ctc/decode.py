"""Label sequences from frame labels: collapse (merge repeats, drop blanks) and prefix beam search."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

NEG_INF = float("-inf")
PAD = -1  # padding value of alignments and label sequences


class Labels(NamedTuple):
    """Label sequences: ``targets`` (..., l) padded with -1 and their ``lengths`` (...)."""

    targets: Tensor
    lengths: Tensor


class Decoded(NamedTuple):
    """Decoded label sequences: ``labels`` (b, l) padded with -1, ``lengths`` (b,), ``scores`` (b,)."""

    labels: Tensor
    lengths: Tensor
    scores: Tensor


def collapse(z: Tensor, blank: int = 0) -> Labels:
    """collapse(z): merge repeats, then drop blanks, for frame labels z (..., t) padded with -1.
    Returns `Labels` (targets (..., l) padded with -1, lengths (...))."""
    previous = torch.cat([torch.full_like(z[..., :1], PAD), z[..., :-1]], dim=-1)
    keep = (z != blank) & (z >= 0) & (z != previous)
    lengths = keep.sum(-1)
    width = int(lengths.max()) if lengths.numel() else 0
    slot = torch.where(keep, keep.cumsum(-1) - 1, width)  # dropped frames go to a spill column
    out = torch.full((*z.shape[:-1], width + 1), PAD, dtype=torch.long, device=z.device)
    out.scatter_(-1, slot, torch.where(keep, z, PAD))
    return Labels(out[..., :width], lengths)


def collapses_to(z: Tensor, targets: Tensor, target_lengths: Tensor, blank: int) -> Tensor:
    """True where collapse(z) == y, for z (..., b, t) and targets (..., b, l) broadcastable: (..., b)."""
    got = collapse(z, blank)
    width = max(got.targets.shape[-1], targets.shape[-1])
    a = torch.nn.functional.pad(got.targets, (0, width - got.targets.shape[-1]), value=PAD)
    within = torch.arange(targets.shape[-1], device=targets.device) < target_lengths[..., None]
    b = torch.nn.functional.pad(torch.where(within, targets, PAD), (0, width - targets.shape[-1]), value=PAD)
    return (got.lengths == target_lengths) & (a == b).all(-1)


def prefix_beam_search(
    log_probs,
    blank: int,
    beam_width: int,
    lm=None,
    lm_weight: float = 0.0,
    length_bonus: float = 0.0,
    prune_top: int | None = None,
    nbest: int | None = None,
):
    """CTC prefix beam search over one sequence's log-probabilities (t, c) (Hannun et al. 2014, Alg. 1).

    Each prefix carries the log-probability of the paths so far that end in a blank (p_b) and in its
    last label (p_nb); a prefix extended by label c gains lm_weight · log P_lm(c | prefix) + length_bonus.
    Returns the best prefix and its score log(p_b + p_nb); with ``nbest = k`` a list of the k best
    (prefix, score) pairs of the final beam, best first (fewer if the beam holds fewer distinct possible
    prefixes; ties keep the beam's order). Every score is the probability mass of the paths the beam kept, a lower
    bound on log P(y|x) that is exact when nothing was pruned (beam_width large enough)."""
    import numpy as np

    lse = np.logaddexp
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, NEG_INF]}
    num_classes = log_probs.shape[1]
    lm_cache: dict[tuple[int, ...], np.ndarray] = {}

    def lm_scores(prefix):
        if prefix not in lm_cache:
            scores = np.asarray(torch.as_tensor(lm(prefix), dtype=torch.float64).cpu(), dtype=np.float64)
            if scores.shape != (num_classes,):
                raise ValueError(
                    f"lm: expected next-label log-probabilities of shape ({num_classes},), got {scores.shape}"
                )
            lm_cache[prefix] = scores
        return lm_cache[prefix]

    for frame in log_probs:
        labels = range(num_classes) if prune_top is None else np.argsort(-frame)[:prune_top]
        labels = [c for c in labels if c != blank]
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (p_b, p_nb) in beams.items():
            total = lse(p_b, p_nb)
            entry = nxt.setdefault(prefix, [NEG_INF, NEG_INF])
            entry[0] = lse(entry[0], total + frame[blank])
            if prefix:
                entry[1] = lse(entry[1], p_nb + frame[prefix[-1]])  # the last label repeated, merged
            bonus = lm_weight * lm_scores(prefix) if lm is not None else None
            for c in labels:
                # after its own label, c starts a new token only through a blank
                gain = (p_b if prefix and c == prefix[-1] else total) + frame[c] + length_bonus
                if bonus is not None:
                    gain += bonus[c]
                ext = nxt.setdefault(prefix + (c,), [NEG_INF, NEG_INF])
                ext[1] = lse(ext[1], gain)
        ranked = sorted(nxt.items(), key=lambda kv: -lse(*kv[1]))
        beams = dict(ranked[:beam_width])
    if nbest is not None:
        ranked = sorted(beams.items(), key=lambda kv: -lse(*kv[1]))[:nbest]
        out = [(list(p), float(lse(*v))) for p, v in ranked]
        return out[:1] + [(p, v) for p, v in out[1:] if v > NEG_INF]  # impossible prefixes are no answer
    best, (p_b, p_nb) = max(beams.items(), key=lambda kv: lse(*kv[1]))
    return list(best), float(lse(p_b, p_nb))
