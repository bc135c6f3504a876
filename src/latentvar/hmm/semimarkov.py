"""A hidden semi-Markov model (explicit durations) on the engine: y is cut into segments, each with a state j
held for a duration n ∈ 1..D drawn from P(n | j); the next segment's state differs (Ferguson 1980; Yu 2010).

    P(y, segments) = π_{j_1} Π_s P(n_s | j_s) Π_{t in s} P(y_t | j_s) Π_{s>1} A_{j_{s-1} j_s},  A_jj = 0

and the last segment ends exactly at the sequence's end (as pytorch-struct's ``SemiMarkov``). It is answered
as a `latentvar.inference.Chain` over k·D expanded states (j, d), d + 1 the steps of the current segment so
far (Murphy 2002, "Hidden semi-Markov models", §3): (j, d) → (j, d + 1) with P(n > d + 1 | n > d), and
(j, d) → (i, 0) with P(n = d + 1 | n > d) A_ji; the end weight of (j, d) is P(n = d + 1 | n > d). So log P(y),
the state marginals, the best segmentation and samples are the engine's, at O(t·k²·D²) per sequence.

Shapes (named axes): b sequences, t steps, k states, D the longest duration.
"""

from __future__ import annotations

import torch
import torch.distributions as D
from torch import Tensor

from latentvar._checks import as_tensor, check_finite
from latentvar.hmm.inputs import prepare
from latentvar.inference import Chain


class HSMM:
    """An explicit-duration HMM.

    Args:
        init_logits: (k,) unnormalised log P(first segment's state).
        trans_logits: (k, k) unnormalised log P(next segment's state | this one); the diagonal is ignored
            (a segment is followed by a different state).
        duration_logits: (k, D) unnormalised log P(n | state) for durations n = 1..D.
        emission: a Distribution with batch_shape (k,), as `HMM`'s.
    """

    def __init__(self, init_logits, trans_logits, duration_logits, emission: D.Distribution):
        init_logits = check_finite("init_logits", as_tensor("init_logits", init_logits), allow_neg_inf=True)
        k = init_logits.shape[-1] if init_logits.dim() == 1 else 0
        if k < 1:
            raise ValueError(f"init_logits: expected shape (K,) with K >= 1, got {tuple(init_logits.shape)}")
        trans_logits = check_finite(
            "trans_logits", as_tensor("trans_logits", trans_logits), allow_neg_inf=True
        )
        if trans_logits.shape != (k, k):
            raise ValueError(f"trans_logits: expected shape ({k}, {k}), got {tuple(trans_logits.shape)}")
        duration_logits = check_finite(
            "duration_logits", as_tensor("duration_logits", duration_logits), allow_neg_inf=True
        )
        if duration_logits.dim() != 2 or duration_logits.shape[0] != k or duration_logits.shape[1] < 1:
            raise ValueError(
                f"duration_logits: expected shape ({k}, D) with D >= 1, got {tuple(duration_logits.shape)}"
            )
        if not isinstance(emission, D.Distribution) or tuple(emission.batch_shape) != (k,):
            raise ValueError(f"emission: expected a Distribution with batch_shape ({k},), got {emission!r}")
        self.init_logits, self.trans_logits, self.duration_logits = init_logits, trans_logits, duration_logits
        self.emission = emission
        self.num_states, self.max_duration = k, duration_logits.shape[1]
        self.batch_shape, self.num_steps, self.final_logits = torch.Size(), None, None

    @property
    def event_shape(self) -> torch.Size:
        return self.emission.event_shape

    def expanded(self) -> tuple[Tensor, Tensor, Tensor]:
        """(init (k·D,), log transitions (k·D, k·D), end weights (k·D,)) of the expanded chain, state
        j·D + d = state j with d + 1 steps of its segment so far."""
        k, n = self.num_states, self.max_duration
        log_dur = torch.log_softmax(self.duration_logits, -1)  # (k, D)
        survive = torch.logcumsumexp(log_dur.flip(-1), -1).flip(-1)  # log P(n >= d + 1), (k, D)
        alive = torch.isfinite(survive)  # durations past the support: impossible, not NaN
        ends = torch.where(alive, log_dur - survive.clamp_min(torch.finfo(survive.dtype).min), -torch.inf)
        ratio = survive[:, 1:] - survive[:, :-1].clamp_min(torch.finfo(survive.dtype).min)
        stays = torch.cat(
            [torch.where(alive[:, 1:], ratio, -torch.inf), survive.new_full((k, 1), -torch.inf)], 1
        )
        dev = log_dur.device
        a = self.trans_logits.masked_fill(torch.eye(k, dtype=torch.bool, device=dev), -torch.inf)
        a = torch.log_softmax(a, -1) if k > 1 else a
        trans = torch.full((k, n, k, n), -torch.inf, dtype=log_dur.dtype, device=dev)
        idx = torch.arange(n - 1, device=dev)
        for j in range(k):
            trans[j, idx, j, idx + 1] = stays[j, :-1]
            trans[j, :, :, 0] = ends[j][:, None] + a[j][None, :]
        init = torch.full((k, n), -torch.inf, dtype=log_dur.dtype, device=dev)
        init[:, 0] = torch.log_softmax(self.init_logits, -1)
        return init.reshape(-1), trans.reshape(k * n, k * n), ends.reshape(-1)

    def _chain(self, y, lengths) -> tuple[Chain, torch.Size]:
        inputs = prepare(self, y, lengths)
        em = self.emission.log_prob(inputs.y.unsqueeze(inputs.y.dim() - len(self.event_shape)))  # (b, t, k)
        init, trans, final = self.expanded()
        emissions = em.repeat_interleave(self.max_duration, -1)
        return Chain(init, trans, emissions, inputs.lengths, final=final), inputs.shape

    def log_prob(self, y, lengths=None) -> Tensor:
        """log P(y) (b,) (() for one unbatched sequence), summed over every segmentation."""
        chain, shape = self._chain(y, lengths)
        return chain.log_partition().reshape(shape)

    def marginals(self, y, lengths=None) -> Tensor:
        """P(z_t = j | y) (..., t, k), zero past each length."""
        chain, shape = self._chain(y, lengths)
        m = chain.marginals
        m = m.reshape(*m.shape[:2], self.num_states, self.max_duration).sum(-1)
        return m.reshape((*shape, *m.shape[1:]))

    def mode(self, y, lengths=None) -> tuple[Tensor, Tensor]:
        """The best segmentation: (states (..., t) long, -1 past each length; durations (..., t) long, the
        length of the segment each step belongs to)."""
        chain, shape = self._chain(y, lengths)
        path = chain.viterbi
        states = torch.where(path >= 0, path // self.max_duration, path)
        elapsed = torch.where(path >= 0, path % self.max_duration, -1)
        # a segment ends where the next step starts a new one (elapsed 0) or the sequence ends
        nxt = torch.cat([elapsed[:, 1:], torch.full_like(elapsed[:, :1], -1)], 1)
        ending = (path >= 0) & (nxt <= 0)
        durations = torch.full_like(path, -1)
        for b in range(path.shape[0]):
            for t in ending[b].nonzero().flatten().tolist():
                n = int(elapsed[b, t]) + 1
                durations[b, t - n + 1 : t + 1] = n
        return states.reshape((*shape, -1)), durations.reshape((*shape, -1))
