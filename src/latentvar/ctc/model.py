"""The CTC model P(y|x) = Σ_{z: collapse(z)=y} Π_t P(z_t|x) and its posterior over alignments."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property
from typing import NamedTuple

import torch
from torch import Tensor

from latentvar._checks import as_tensor, check_integer, check_sample_shape
from latentvar.core import LatentVariableModel, Posterior
from latentvar.ctc.align import (
    FULL_TABLE_BYTES,
    STAR,
    checkpointed_alignment,
    full_table_bytes,
    star_path,
    with_star_class,
)
from latentvar.ctc.checks import check_blank, check_log_probs, check_targets
from latentvar.ctc.decode import PAD, Decoded, Labels, collapse, collapses_to, prefix_beam_search
from latentvar.ctc.loss import log_likelihood
from latentvar.inference import Argmax, GumbelDraw, MaxSemiring, ctc_chain
from latentvar.inference.lattice import extended_labels, log_partition_of_ctc, positions_to_labels

NEG_INF = float("-inf")


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


class CTC(LatentVariableModel):
    """P(y|x) = Σ_{z: collapse(z)=y} Π_t P(z_t|x) (Graves et al. 2006).

    Args:
        log_probs: (b, t, c) per-frame log-probabilities, batch first, normalised over c (a warning
            otherwise); -inf allowed.
        input_lengths: (b,) frames used by each sequence.
        blank: the blank class.
    """

    def __init__(self, log_probs: Tensor, input_lengths, blank: int = 0):
        self.log_probs, self.input_lengths = check_log_probs(log_probs, input_lengths)
        self.blank = check_blank(blank, self.log_probs.shape[-1])

    @property
    def batch_size(self) -> int:
        return self.log_probs.shape[0]

    @property
    def num_classes(self) -> int:
        return self.log_probs.shape[-1]

    def _targets(self, targets, target_lengths) -> tuple[Tensor, Tensor]:
        b, t_max, c = self.log_probs.shape
        return check_targets(targets, target_lengths, b, t_max, c, self.blank, self.log_probs.device)

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

    def forced_align(
        self,
        targets,
        target_lengths=None,
        star_score: float | None = None,
        memory: str = "auto",
        segment: int | None = None,
    ) -> Alignment:
        """The best alignment argmax_{z: collapse(z)=y} P(z|x) of the whole batch at once (Viterbi in the
        max semiring, then one batched backtrace), its log score and each token's frame span.

        ``targets`` may hold `STAR` (-2): a wildcard matching one or more frames whatever they hold, each
        scored ``star_score`` (None: the frame's best class log-probability); its frames are `STAR` in the
        path (definition: `latentvar.ctc.align`). ``memory``: 'full' keeps the (b, t, 2l+1) max-semiring
        table; 'bounded' keeps checkpoints every ``segment`` frames (default ⌈√t⌉) and recomputes
        segments in the backtrace -- O(b·l·√t) memory, twice the time, the same path; 'auto' (default)
        is 'full' while that table stays under 256 MiB."""
        if memory not in ("auto", "full", "bounded"):
            raise ValueError(f"memory: expected 'auto', 'full' or 'bounded', got {memory!r}")
        if segment is not None and (isinstance(segment, bool) or not isinstance(segment, int) or segment < 1):
            raise ValueError(
                f"segment: expected a positive integer number of frames or None, got {segment!r}"
            )
        if star_score is not None and (
            isinstance(star_score, bool) or not isinstance(star_score, (int, float)) or math.isnan(star_score)
        ):
            raise ValueError(
                f"star_score: expected a number (a log-score per frame) or None, got {star_score!r}"
            )
        log_probs, star = self.log_probs, None
        labels = targets.targets if isinstance(targets, Labels) else as_tensor("targets", targets)
        if not torch.is_floating_point(labels) and bool((labels == STAR).any()):
            star = self.num_classes  # the wildcard as one more class
            log_probs = with_star_class(self.log_probs, star_score)
            labels = torch.where(labels == STAR, star, labels)
        if isinstance(targets, Labels):
            targets = Labels(labels, targets.lengths)
        elif star is not None:
            targets = labels
        b, t_max, c = log_probs.shape
        targets, target_lengths = check_targets(
            targets, target_lengths, b, t_max, c, self.blank, log_probs.device
        )
        bounded = memory == "bounded" or (
            memory == "auto" and full_table_bytes(log_probs, target_lengths) > FULL_TABLE_BYTES
        )
        if bounded:
            positions, score = checkpointed_alignment(
                log_probs, self.input_lengths, targets, target_lengths, self.blank, segment
            )
            ext, _ = extended_labels(targets, target_lengths, self.blank)
            out = Alignment(
                positions_to_labels(positions, ext), score, _token_spans(positions, target_lengths)
            )
        else:
            out = CTCPosterior(log_probs, self.input_lengths, targets, target_lengths, self.blank).alignment
        return out if star is None else Alignment(star_path(out.path, star), out.score, out.spans)

    # -- the joint P(z, y | x) -------------------------------------------------------------------
    def sample(self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None):
        """Draw alignments z ~ P(z|x) (independent frames) and y = collapse(z).

        Returns (z, y): z (*sample_shape, b, t) with -1 past each input length, and y a `Labels`
        (targets (*sample_shape, b, l) padded with -1, lengths (*sample_shape, b))."""
        shape = check_sample_shape("sample_shape", sample_shape, self.log_probs[..., 0].numel())
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
            collapses_to(z, targets.to(z.device), lengths.to(z.device), self.blank), score, NEG_INF
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
        nbest: int | None = None,
    ) -> Decoded:
        """Label sequences y and their log scores.

        ``beam_width == 1``: greedy (best path) decoding — the per-frame argmax, collapsed; the score is
        that path's log-probability, a lower bound on log P(y|x). ``beam_width > 1``: CTC prefix beam
        search (Hannun et al. 2014, "First-pass large vocabulary continuous speech recognition using
        bi-directional recurrent DNNs", Algorithm 1): the score is log P(y|x) summed over the paths kept
        in the beam, plus ``lm_weight`` · log P_lm(y) and ``length_bonus`` · |y| when a language model
        hook ``lm(prefix) -> (c,) next-label log-probabilities`` is given. ``prune_top`` considers only
        the most probable labels of each frame.

        ``nbest = k`` (1 <= k <= beam_width): the k best label sequences of the final beam, best first,
        as a `Decoded` with an n axis: labels (b, k, l) padded with -1, lengths (b, k), scores (b, k);
        where the beam holds fewer than k distinct sequences the rest have length 0 and score -inf.
        TensorFlow's ``ctc_beam_search_decoder(top_paths=k)`` likewise refuses k > beam_width.
        """
        if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
            raise ValueError(f"beam_width: expected a positive integer, got {beam_width!r}")
        if lm is not None and not callable(lm):
            raise ValueError(
                f"lm: expected a callable prefix -> next-label log-probabilities, got {type(lm).__name__}"
            )
        if nbest is not None and (
            isinstance(nbest, bool) or not isinstance(nbest, int) or not 1 <= nbest <= beam_width
        ):
            raise ValueError(
                f"nbest: expected an integer in [1, beam_width = {beam_width}] (the beam holds at most "
                f"beam_width sequences), got {nbest!r}"
            )
        if beam_width == 1 and lm is None and nbest is None:
            return self._greedy()
        lp = self.log_probs.detach().to(torch.float64).cpu().numpy()
        k = 1 if nbest is None else nbest
        results = [
            prefix_beam_search(
                lp[i, : int(n)], self.blank, beam_width, lm, lm_weight, length_bonus, prune_top, nbest=k
            )
            for i, n in enumerate(self.input_lengths.tolist())
        ]
        width = max((len(p) for row in results for p, _ in row), default=0)
        labels = torch.full((self.batch_size, k, width), PAD, dtype=torch.long)
        lengths = torch.zeros((self.batch_size, k), dtype=torch.long)
        scores = torch.full((self.batch_size, k), NEG_INF, dtype=self.log_probs.dtype)
        for i, row in enumerate(results):
            for j, (p, score) in enumerate(row):
                labels[i, j, : len(p)] = torch.as_tensor(p, dtype=torch.long)
                lengths[i, j], scores[i, j] = len(p), score
        if nbest is None:
            labels, lengths, scores = labels[:, 0], lengths[:, 0], scores[:, 0]
        dev = self.log_probs.device
        return Decoded(labels.to(dev), lengths.to(dev), scores.to(dev))

    def _greedy(self) -> Decoded:
        best, z = self.log_probs.detach().max(-1)
        valid = self._valid_frames()
        z = torch.where(valid, z, PAD)
        labels = collapse(z, self.blank)
        # where, not a product: -inf padding times 0 would be NaN
        score = torch.where(valid, best, torch.zeros((), dtype=best.dtype, device=best.device)).sum(-1)
        return Decoded(labels.targets, labels.lengths, score)

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
        return log_partition_of_ctc(self.chain, self.chain.log_alphas[0])

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
        alphas = self.chain.log_alphas[1]
        positions = self.chain.backtrack(alphas.expand(*shape, *alphas.shape), GumbelDraw(generator))
        return positions_to_labels(positions, self.ext)

    def log_prob(self, z: Tensor) -> Tensor:
        """log P(z|x,y) = Σ_t log P(z_t|x) - log P(y|x) if collapse(z) = y, else -inf: (..., b)."""
        z = _check_alignment(z, self.log_probs, self.input_lengths)
        score = _path_score(self.log_probs, z) - self.log_partition
        return torch.where(collapses_to(z, self.targets, self.target_lengths, self.blank), score, NEG_INF)


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
