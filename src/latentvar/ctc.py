"""Connectionist temporal classification as a latent-variable model (Graves et al., ICML 2006).

Given per-frame class log-probabilities log P(z_t = c | x), the latent z is the frame-level label
sequence (blanks included) and the observation y is z collapsed: repeats merged, then blanks removed.

    P(y | x) = Σ_{z : collapse(z) = y} Π_t P(z_t | x)

The sum runs over paths through the *extended* label sequence l' = (blank, y_1, blank, y_2, ..., blank)
of length S = 2L + 1 (Graves et al. 2006, eq. 6-10). That lattice is a linear chain over the S positions
with a banded step (`latentvar.inference.lattice`), so every question is one query of the shared engine:
`LogSemiring` gives log P(y|x) and the forward variables that backward sampling walks through;
`MaxSemiring` gives the forced alignment through the same backtrace the HMM uses; the marginals are the
gradient of log P(y|x) (TorchScript forward-backward kernels as the registered fast path).

Shapes (named axes): b batch, t frames, c classes (blank included), l target labels, s extended
positions (s = 2l + 1), n samples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import cached_property
from typing import NamedTuple

import torch
from torch import Tensor

from latentvar._checks import as_tensor, check_finite, check_integer, check_lengths, check_ndim
from latentvar.core import LatentVariableModel, Posterior
from latentvar.inference import Argmax, GumbelDraw, LogSemiring, MaxSemiring, ctc_chain  # noqa: F401
from latentvar.inference.lattice import (
    extended_labels,  # noqa: F401 (re-exported: latentvar.ctc.extended_labels)
    final_mask,  # noqa: F401 (re-exported)
    log_partition_of_ctc,
    positions_to_labels,
)

NEG_INF = float("-inf")
PAD = -1  # padding value of alignments and label sequences


class Labels(NamedTuple):
    """Label sequences: ``targets`` (..., l) padded with -1 and their ``lengths`` (...)."""

    targets: Tensor
    lengths: Tensor


class Alignment(NamedTuple):
    """A forced alignment.

    ``path`` (b, t): the frame labels (blank included), -1 past each input length (and everywhere for a
    target that cannot fit); ``score`` (b,): its log-probability Σ_t log P(z_t|x) (-inf if none);
    ``spans`` (b, l, 2): each target token's first frame and one past its last frame, -1 past each
    target length.
    """

    path: Tensor
    score: Tensor
    spans: Tensor


class Decoded(NamedTuple):
    """Decoded label sequences: ``labels`` (b, l) padded with -1, ``lengths`` (b,), ``scores`` (b,)."""

    labels: Tensor
    lengths: Tensor
    scores: Tensor


# ----------------------------------------------------------------------------------------------
# log P(y|x): the lattice chain of `latentvar.inference.lattice`, or torch's native kernels


class _NativeCTCLogLikelihood(torch.autograd.Function):
    """log P(y|x) by torch's native CTC kernels (``aten::_ctc_loss`` and its backward), with the exact
    gradient with respect to ``log_probs``. The native backward returns exp(log_probs) - γ, the gradient
    that is right only after a log_softmax (whose backward removes the exp term); subtracting
    exp(log_probs) leaves -γ, the true gradient of the loss, for any ``log_probs``."""

    @staticmethod
    def forward(ctx, log_probs, targets, input_lengths, target_lengths, blank):
        time_first = log_probs.transpose(0, 1)
        nll, log_alpha = torch.ops.aten._ctc_loss.Tensor(
            time_first, targets, input_lengths, target_lengths, blank, False
        )
        ctx.save_for_backward(log_probs, targets, input_lengths, target_lengths, nll, log_alpha)
        ctx.blank = blank
        return -nll

    @staticmethod
    def backward(ctx, grad_logz):
        log_probs, targets, input_lengths, target_lengths, nll, log_alpha = ctx.saved_tensors
        time_first = log_probs.transpose(0, 1)
        grad_nll = -grad_logz
        # zero_infinity: targets that cannot fit get a zero gradient, as in `occupation`
        native = torch.ops.aten._ctc_loss_backward.Tensor(
            grad_nll, time_first, targets, input_lengths, target_lengths, nll, log_alpha, ctx.blank, True
        ).transpose(0, 1)
        frames = torch.arange(log_probs.shape[1], device=log_probs.device) < input_lengths[:, None]
        used = frames & torch.isfinite(nll)[:, None]
        correction = log_probs.exp() * (grad_nll[:, None] * used)[..., None]
        return native - correction, None, None, None, None


BACKENDS = ("auto", "latentvar", "native")


def log_likelihood(
    log_probs, targets, input_lengths, target_lengths, blank: int, backend: str = "auto"
) -> Tensor:
    """log P(y|x) (b,) for checked inputs: log_probs (b, t, c), padded targets (b, l).

    ``backend``: 'latentvar' — this module's recursion (TorchScript forward, hand-written forward-backward
    gradient); 'native' — torch's CTC kernels with the exact gradient; 'auto' — native when a gradient
    will be asked for (the own loop pays a fixed cost per frame, so it is slower for small batches with
    many frames, see BENCHMARKS.md), else this module's forward, which keeps O(b·s) memory. Both are
    tested equal to each other and to torch.nn.functional.ctc_loss."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    wants_grad = torch.is_grad_enabled() and log_probs.requires_grad
    if backend == "native" or (backend == "auto" and wants_grad):
        return _NativeCTCLogLikelihood.apply(log_probs, targets, input_lengths, target_lengths, blank)
    chain = ctc_chain(log_probs, targets, target_lengths, input_lengths, blank)
    return log_partition_of_ctc(chain, chain.log_partition())


# ----------------------------------------------------------------------------------------------
# Collapsing frame labels


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


def _collapses_to(z: Tensor, targets: Tensor, target_lengths: Tensor, blank: int) -> Tensor:
    """True where collapse(z) == y, for z (..., b, t) and targets (..., b, l) broadcastable: (..., b)."""
    got = collapse(z, blank)
    width = max(got.targets.shape[-1], targets.shape[-1])
    a = torch.nn.functional.pad(got.targets, (0, width - got.targets.shape[-1]), value=PAD)
    within = torch.arange(targets.shape[-1], device=targets.device) < target_lengths[..., None]
    b = torch.nn.functional.pad(torch.where(within, targets, PAD), (0, width - targets.shape[-1]), value=PAD)
    return (got.lengths == target_lengths) & (a == b).all(-1)


# ----------------------------------------------------------------------------------------------
# Argument checks


def _check_log_probs(log_probs, input_lengths, time_first: bool = False) -> tuple[Tensor, Tensor]:
    log_probs = as_tensor("log_probs", log_probs)
    axes = "t, b, c" if time_first else "b, t, c"
    check_ndim("log_probs", log_probs, 3, axes)
    if not torch.is_floating_point(log_probs):
        raise ValueError(f"log_probs: expected a floating-point tensor, got dtype {log_probs.dtype}")
    check_finite("log_probs", log_probs.detach(), allow_neg_inf=True)
    if time_first:
        log_probs = log_probs.transpose(0, 1)
    b, t_max, c = log_probs.shape
    if c < 1:
        raise ValueError(
            f"log_probs: expected at least one class (the blank), got shape {tuple(log_probs.shape)}"
        )
    input_lengths = check_lengths("input_lengths", input_lengths, b, t_max).to(log_probs.device, torch.long)
    _warn_unless_normalised(log_probs.detach(), input_lengths)
    return log_probs, input_lengths


def _warn_unless_normalised(log_probs: Tensor, input_lengths: Tensor) -> None:
    valid = torch.arange(log_probs.shape[1], device=log_probs.device) < input_lengths[:, None]
    total = log_probs.logsumexp(-1)[valid]
    tol = 1e-3 if log_probs.dtype != torch.float16 else 1e-2
    if total.numel() and float((total.abs()).max()) > tol:
        warnings.warn(
            f"log_probs: expected log-probabilities normalised over the classes (logsumexp over the last "
            f"axis = 0, e.g. from log_softmax), got logsumexp up to {float(total.abs().max()):.3g} away "
            "from 0; log P(y|x) is then not a probability",
            stacklevel=3,
        )


def _check_blank(blank, num_classes: int) -> int:
    if isinstance(blank, bool) or not isinstance(blank, int) or not 0 <= blank < num_classes:
        raise ValueError(f"blank: expected an integer class index in [0, {num_classes - 1}], got {blank!r}")
    return blank


def _check_targets(targets, target_lengths, batch: int, t_max: int, num_classes: int, blank: int, device):
    """Padded (b, l) targets and lengths (b,), from padded (b, l) or concatenated 1-D targets (as torch).
    ``target_lengths`` may be None for padded targets (lengths = entries >= 0) or `Labels`."""
    if isinstance(targets, Labels) and target_lengths is None:
        targets, target_lengths = targets
    targets = check_integer("targets", as_tensor("targets", targets)).to(device, torch.long)
    if target_lengths is None:
        if targets.dim() != 2:
            raise ValueError(
                "target_lengths: required with 1-D concatenated targets, "
                f"got targets of shape {tuple(targets.shape)}"
            )
        target_lengths = (targets >= 0).sum(-1)
    target_lengths = check_integer("target_lengths", as_tensor("target_lengths", target_lengths)).to(
        device, torch.long
    )
    if target_lengths.shape != (batch,):
        raise ValueError(
            f"target_lengths: expected shape ({batch},), one length per sequence of log_probs, "
            f"got {tuple(target_lengths.shape)}"
        )
    if batch and int(target_lengths.min()) < 0:
        raise ValueError(f"target_lengths: expected non-negative lengths, got {int(target_lengths.min())}")
    if batch and int(target_lengths.max()) > t_max:
        raise ValueError(
            f"target_lengths: expected lengths <= {t_max} (the frames of log_probs), "
            f"got {int(target_lengths.max())}"
        )
    if targets.dim() == 1:
        total = int(target_lengths.sum())
        if targets.numel() != total:
            raise ValueError(
                f"targets: expected 1-D concatenated targets of sum(target_lengths) = {total} labels, "
                f"got {targets.numel()}"
            )
        targets = _pad_concatenated(targets, target_lengths)
    elif targets.dim() == 2:
        if targets.shape[0] != batch:
            raise ValueError(
                f"targets: expected {batch} rows (the batch of log_probs), got shape {tuple(targets.shape)}"
            )
        if batch and int(target_lengths.max()) > targets.shape[1]:
            raise ValueError(
                f"target_lengths: expected lengths <= {targets.shape[1]} (the padded width of targets), "
                f"got {int(target_lengths.max())}"
            )
    else:
        raise ValueError(
            f"targets: expected (b, l) padded or 1-D concatenated labels, got shape {tuple(targets.shape)}"
        )
    width = int(target_lengths.max()) if batch else 0
    targets = targets[:, :width]
    within = torch.arange(width, device=device) < target_lengths[:, None]
    used = targets[within]
    if used.numel() and (int(used.min()) < 0 or int(used.max()) >= num_classes):
        raise ValueError(
            f"targets: expected labels in [0, {num_classes - 1}] (the classes of log_probs), "
            f"got values in [{int(used.min())}, {int(used.max())}]"
        )
    if bool((used == blank).any()):
        raise ValueError(
            f"targets: expected no blank (class {blank}) within the target lengths, "
            f"got {int((used == blank).sum())}"
        )
    return torch.where(within, targets, blank), target_lengths


def _pad_concatenated(flat: Tensor, lengths: Tensor) -> Tensor:
    width = int(lengths.max()) if lengths.numel() else 0
    starts = torch.cumsum(lengths, 0) - lengths
    index = starts[:, None] + torch.arange(width, device=flat.device)
    within = torch.arange(width, device=flat.device) < lengths[:, None]
    if flat.numel() == 0:
        return torch.zeros(lengths.shape[0], width, dtype=torch.long, device=flat.device)
    return torch.where(within, flat[index.clamp(max=flat.numel() - 1)], 0)


# ----------------------------------------------------------------------------------------------
# The model


class CTC(LatentVariableModel):
    """P(y|x) = Σ_{z: collapse(z)=y} Π_t P(z_t|x) (Graves et al. 2006).

    Args:
        log_probs: (b, t, c) per-frame log-probabilities, batch first, normalised over c (a warning
            otherwise); -inf allowed.
        input_lengths: (b,) frames used by each sequence.
        blank: the blank class.
    """

    def __init__(self, log_probs: Tensor, input_lengths, blank: int = 0):
        self.log_probs, self.input_lengths = _check_log_probs(log_probs, input_lengths)
        self.blank = _check_blank(blank, self.log_probs.shape[-1])

    @property
    def batch_size(self) -> int:
        return self.log_probs.shape[0]

    @property
    def num_classes(self) -> int:
        return self.log_probs.shape[-1]

    def _targets(self, targets, target_lengths) -> tuple[Tensor, Tensor]:
        b, t_max, c = self.log_probs.shape
        return _check_targets(targets, target_lengths, b, t_max, c, self.blank, self.log_probs.device)

    def _valid_frames(self) -> Tensor:
        return (
            torch.arange(self.log_probs.shape[1], device=self.log_probs.device) < self.input_lengths[:, None]
        )

    # -- P(y|x) -------------------------------------------------------------------------------
    def log_prob(self, targets, target_lengths=None, backend: str = "auto") -> Tensor:
        """log P(y|x): (b,), -inf where y cannot fit in the input. Differentiable; the gradient is the
        forward-backward occupation -γ (Graves et al. 2006, eq. 16), not autograd through the frames.
        ``backend``: see `log_likelihood`."""
        targets, target_lengths = self._targets(targets, target_lengths)
        return log_likelihood(
            self.log_probs, targets, self.input_lengths, target_lengths, self.blank, backend
        )

    def posterior(self, targets, target_lengths=None) -> CTCPosterior:
        """P(z | x, y): the distribution over alignments of y to the frames."""
        targets, target_lengths = self._targets(targets, target_lengths)
        return CTCPosterior(self.log_probs, self.input_lengths, targets, target_lengths, self.blank)

    def forced_align(self, targets, target_lengths=None) -> Alignment:
        """The best alignment argmax_{z: collapse(z)=y} P(z|x) of the whole batch at once (Viterbi in the
        max semiring, then one batched backtrace), its log score and each token's frame span."""
        return self.posterior(targets, target_lengths).alignment

    # -- the joint P(z, y | x) -------------------------------------------------------------------
    def sample(self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None):
        """Draw alignments z ~ P(z|x) (independent frames) and y = collapse(z).

        Returns (z, y): z (*sample_shape, b, t) with -1 past each input length, and y a `Labels`
        (targets (*sample_shape, b, l) padded with -1, lengths (*sample_shape, b))."""
        shape = torch.Size(sample_shape)
        probs = self.log_probs.detach().exp()
        flat = probs.reshape(-1, self.num_classes)
        n = math.prod(shape)
        z = torch.multinomial(flat, max(n, 1), replacement=True, generator=generator)[:, :n]
        z = z.T.reshape(*shape, *self.log_probs.shape[:2])
        z = torch.where(self._valid_frames(), z, PAD)
        return z, collapse(z, self.blank)

    def log_joint(self, z: Tensor, y) -> Tensor:
        """log P(z, y | x) = Σ_t log P(z_t|x) if collapse(z) = y, else -inf: (..., b).
        ``y``: `Labels` (targets (..., b, l), lengths (..., b)), or targets (..., b, l) padded with -1."""
        z = self._check_alignment(z)
        if isinstance(y, Labels):
            targets, lengths = y
        else:
            targets = as_tensor("y", y)
            lengths = (targets >= 0).sum(-1)
        score = _path_score(self.log_probs, z)
        return torch.where(
            _collapses_to(z, targets.to(z.device), lengths.to(z.device), self.blank), score, NEG_INF
        )

    def _check_alignment(self, z) -> Tensor:
        return _check_alignment(z, self.log_probs, self.input_lengths)

    # -- decoding --------------------------------------------------------------------------------
    def decode(
        self,
        beam_width: int = 1,
        lm: Callable[[tuple[int, ...]], Tensor] | None = None,
        lm_weight: float = 0.0,
        length_bonus: float = 0.0,
        prune_top: int | None = None,
    ) -> Decoded:
        """Label sequences y and their log scores.

        ``beam_width == 1``: greedy (best path) decoding — the per-frame argmax, collapsed; the score is
        that path's log-probability, a lower bound on log P(y|x). ``beam_width > 1``: CTC prefix beam
        search (Hannun et al. 2014, "First-pass large vocabulary continuous speech recognition using
        bi-directional recurrent DNNs", Algorithm 1): the score is log P(y|x) summed over the paths kept
        in the beam, plus ``lm_weight`` · log P_lm(y) and ``length_bonus`` · |y| when a language model
        hook ``lm(prefix) -> (c,) next-label log-probabilities`` is given. ``prune_top`` considers only
        the most probable labels of each frame.
        """
        if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
            raise ValueError(f"beam_width: expected a positive integer, got {beam_width!r}")
        if lm is not None and not callable(lm):
            raise ValueError(
                f"lm: expected a callable prefix -> next-label log-probabilities, got {type(lm).__name__}"
            )
        if beam_width == 1 and lm is None:
            return self._greedy()
        lp = self.log_probs.detach().to(torch.float64).cpu().numpy()
        results = [
            prefix_beam_search(
                lp[i, : int(n)], self.blank, beam_width, lm, lm_weight, length_bonus, prune_top
            )
            for i, n in enumerate(self.input_lengths.tolist())
        ]
        width = max((len(p) for p, _ in results), default=0)
        labels = torch.full((self.batch_size, width), PAD, dtype=torch.long)
        for i, (p, _) in enumerate(results):
            labels[i, : len(p)] = torch.as_tensor(p, dtype=torch.long)
        lengths = torch.as_tensor([len(p) for p, _ in results], dtype=torch.long)
        scores = torch.as_tensor([s for _, s in results], dtype=self.log_probs.dtype)
        dev = self.log_probs.device
        return Decoded(labels.to(dev), lengths.to(dev), scores.to(dev))

    def _greedy(self) -> Decoded:
        best, z = self.log_probs.detach().max(-1)
        valid = self._valid_frames()
        z = torch.where(valid, z, PAD)
        labels = collapse(z, self.blank)
        return Decoded(labels.targets, labels.lengths, (best * valid).sum(-1))

    def __repr__(self) -> str:
        b, t, c = self.log_probs.shape
        return f"CTC(batch={b}, frames={t}, classes={c}, blank={self.blank})"


def _check_alignment(z, log_probs: Tensor, input_lengths: Tensor) -> Tensor:
    """Frame labels z (..., b, t) as a long tensor, -1 past each input length."""
    z = check_integer("z", as_tensor("z", z)).to(log_probs.device, torch.long)
    b, t_max, c = log_probs.shape
    if z.dim() < 2 or tuple(z.shape[-2:]) != (b, t_max):
        raise ValueError(
            f"z: expected frame labels of shape (..., b, t) = (..., {b}, {t_max}), got {tuple(z.shape)}"
        )
    valid = (torch.arange(t_max, device=z.device) < input_lengths[:, None]).expand_as(z)
    if z.numel() and (bool((z[valid] < 0).any()) or int(z.max()) >= c):
        raise ValueError(f"z: expected class indices in [0, {c - 1}] within the input lengths")
    return torch.where(valid, z, PAD)


def _path_score(log_probs: Tensor, z: Tensor) -> Tensor:
    """Σ_t log P(z_t|x) over frames with z_t >= 0: (..., b)."""
    lp = log_probs.expand(*z.shape, log_probs.shape[-1])
    picked = lp.gather(-1, z.clamp_min(0)[..., None]).squeeze(-1)
    return torch.where(z >= 0, picked, 0.0).sum(-1)


def prefix_beam_search(
    log_probs,
    blank: int,
    beam_width: int,
    lm=None,
    lm_weight: float = 0.0,
    length_bonus: float = 0.0,
    prune_top: int | None = None,
) -> tuple[list[int], float]:
    """CTC prefix beam search over one sequence's log-probabilities (t, c) (Hannun et al. 2014, Alg. 1).

    Each prefix carries the log-probability of the paths so far that end in a blank (p_b) and in its
    last label (p_nb); a prefix extended by label c gains lm_weight · log P_lm(c | prefix) + length_bonus.
    Returns the best prefix and its score log(p_b + p_nb)."""
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
    best, (p_b, p_nb) = max(beams.items(), key=lambda kv: lse(*kv[1]))
    return list(best), float(lse(p_b, p_nb))


# ----------------------------------------------------------------------------------------------
# The posterior over alignments


class CTCPosterior(Posterior):
    """P(z | x, y): alignments of the targets y to the frames, one `latentvar.inference.lattice` chain.

    ``batch_shape`` (b,), ``event_shape`` (t,). ``log_partition`` log P(y|x) (b,); ``marginals`` (b, t, c)
    = P(z_t = c | x, y) (forward-backward); ``mode`` (b, t) the forced alignment (``alignment`` with its
    score and token spans); ``entropy`` H(z|x,y) (b,) (0 where y cannot fit); ``sample(sample_shape,
    generator)`` (*sample_shape, b, t) exact draws by backward sampling through the stored forward
    variables; ``log_prob(z)`` (..., b). Memory O(b·t·l).
    """

    def __init__(self, log_probs, input_lengths, targets, target_lengths, blank):
        self.log_probs = log_probs.detach()
        self.input_lengths = input_lengths
        self.targets = targets
        self.target_lengths = target_lengths
        self.blank = blank
        self.chain = ctc_chain(self.log_probs, targets, target_lengths, input_lengths, blank)
        self.ext, self.skip, self.final = self.chain.emissions.ext, self.chain.step.skip, self.chain.final
        self.batch_shape = torch.Size(self.log_probs.shape[:1])
        self.event_shape = torch.Size(self.log_probs.shape[1:2])

    @cached_property
    def _best(self) -> tuple[Tensor, Tensor]:
        """The max-semiring forward variables (b, t, s) and the best score (b,)."""
        with torch.no_grad():
            score, alphas = self.chain.forward(MaxSemiring, keep=True)
        return alphas, log_partition_of_ctc(self.chain, score)

    @cached_property
    def log_partition(self) -> Tensor:
        """log P(y|x): (b,)."""
        return log_partition_of_ctc(self.chain, self.chain._log_alphas[0])

    @cached_property
    def marginals(self) -> Tensor:
        """P(z_t = c | x, y): (b, t, c), the position occupations summed over the positions holding each
        class; zero past each input length and for targets that cannot fit."""
        gamma = self.chain.marginals
        b, t_max, _ = self.log_probs.shape
        out = torch.zeros_like(self.log_probs)
        return out.scatter_add_(2, self.ext[:, None, :].expand(b, t_max, self.ext.shape[1]), gamma)

    @cached_property
    def alignment(self) -> Alignment:
        """The best alignment, its log score and each token's frame span."""
        alphas, score = self._best
        positions = self.chain.backtrack(alphas, Argmax())
        positions = torch.where(torch.isfinite(score)[:, None], positions, PAD)
        path = positions_to_labels(positions, self.ext)
        return Alignment(path, score, _token_spans(positions, self.target_lengths))

    @property
    def mode(self) -> Tensor:
        return self.alignment.path

    @cached_property
    def entropy(self) -> Tensor:
        """H(z | x, y) = log P(y|x) - E[Σ_t log P(z_t|x) | x, y]: (b,), in nats."""
        return self.chain.entropy

    def sample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None
    ) -> Tensor:
        shape = torch.Size(sample_shape)
        feasible = torch.isfinite(self.log_partition)
        if not bool(feasible.all()):
            raise ValueError(
                f"targets: sequences {torch.nonzero(~feasible).flatten().tolist()} cannot fit in their input "
                "lengths, so P(z|x,y) has no samples"
            )
        alphas = self.chain._log_alphas[1]
        positions = self.chain.backtrack(alphas.expand(*shape, *alphas.shape), GumbelDraw(generator))
        return positions_to_labels(positions, self.ext)

    def log_prob(self, z: Tensor) -> Tensor:
        """log P(z|x,y) = Σ_t log P(z_t|x) - log P(y|x) if collapse(z) = y, else -inf: (..., b)."""
        z = _check_alignment(z, self.log_probs, self.input_lengths)
        score = _path_score(self.log_probs, z) - self.log_partition
        return torch.where(_collapses_to(z, self.targets, self.target_lengths, self.blank), score, NEG_INF)


def _token_spans(positions: Tensor, target_lengths: Tensor) -> Tensor:
    """(start, end) frames of each target token from extended positions (b, t): token j sits at position
    2j+1; end is one past its last frame. (b, l, 2), -1 past each target length."""
    b, t_max = positions.shape
    width = int(target_lengths.max()) if b else 0
    is_token = (positions % 2 == 1) & (positions >= 0)
    token = torch.where(is_token, positions // 2, width)  # width: a spill column
    frames = torch.arange(t_max, device=positions.device).expand(b, t_max)
    start = torch.full((b, width + 1), t_max, dtype=torch.long, device=positions.device)
    start.scatter_reduce_(1, token, frames, reduce="amin")
    end = torch.full((b, width + 1), -1, dtype=torch.long, device=positions.device)
    end.scatter_reduce_(1, token, frames, reduce="amax")
    spans = torch.stack((start[:, :width], end[:, :width] + 1), dim=-1)
    found = (start[:, :width] < t_max)[..., None]
    return torch.where(found, spans, PAD)


# ----------------------------------------------------------------------------------------------
# torch-compatible loss


def ctc_loss(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths,
    target_lengths,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    backend: str = "auto",
) -> Tensor:
    """-log P(y|x) with torch.nn.functional.ctc_loss's signature: ``log_probs`` (t, b, c) time first (or
    (t, c) unbatched), targets padded (b, l) or concatenated 1-D. ``reduction``: 'none' (b,), 'sum', or
    'mean' (each loss divided by its target length, then averaged over the batch); ``zero_infinity``
    replaces the infinite losses of targets that cannot fit (and their gradients) by zero. ``backend``:
    see `log_likelihood`."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}")
    log_probs = as_tensor("log_probs", log_probs)
    unbatched = log_probs.dim() == 2
    if unbatched:
        log_probs = log_probs[:, None]
        targets = as_tensor("targets", targets)[None]
        input_lengths = as_tensor("input_lengths", input_lengths).reshape(1)
        target_lengths = as_tensor("target_lengths", target_lengths).reshape(1)
    lp, input_lengths = _check_log_probs(log_probs, input_lengths, time_first=True)
    blank = _check_blank(blank, lp.shape[-1])
    b, t_max, c = lp.shape
    targets, target_lengths = _check_targets(targets, target_lengths, b, t_max, c, blank, lp.device)
    loss = -log_likelihood(lp, targets, input_lengths, target_lengths, blank, backend)
    if zero_infinity:
        loss = torch.where(torch.isinf(loss), torch.zeros((), dtype=loss.dtype, device=loss.device), loss)
    if unbatched:
        loss = loss[0]
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return (loss / target_lengths.clamp_min(1).to(loss.dtype).reshape(loss.shape)).mean()
    return loss
