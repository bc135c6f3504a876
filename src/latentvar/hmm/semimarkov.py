"""A hidden semi-Markov model (explicit durations) on the engine: y is cut into segments, each with a state j
held for a duration n ∈ 1..D drawn from P(n | j); the next segment's state differs (Ferguson 1980; Yu 2010).

    P(y, segments) = π_{j_1} Π_s P(n_s | j_s) Π_{t in s} P(y_t | j_s) Π_{s>1} A_{j_{s-1} j_s},  A_jj = 0

and the last segment ends exactly at the sequence's end (as pytorch-struct's ``SemiMarkov``). It is answered
as a `latentvar.inference.Chain` over k·D expanded states (j, d), d + 1 the steps of the current segment so
far (Murphy 2002, "Hidden semi-Markov models", §3): (j, d) → (j, d + 1) with P(n > d + 1 | n > d), and
(j, d) → (i, 0) with P(n = d + 1 | n > d) A_ji; the end weight of (j, d) is P(n = d + 1 | n > d). So log P(y),
the state marginals, the best segmentation and samples are the engine's, at O(t·k²·D²) per sequence.

Sampling is exact under the same condition: `HSMM.sample` draws (z, y) from P(z, y | the last segment ends
at step t), the expanded chain's posterior with no observations (every emission 0, the end weights kept),
by the engine's forward-filtering backward-sampling -- not the generative story cut at t, whose last
segment would be truncated. `HSMM.sample_posterior` draws segmentations given y the same way; `HSMM.fit`
is EM on the expanded chain's expected counts (`latentvar.hmm.semimarkov_fit`).

Shapes (named axes): b sequences, t steps, k states, D the longest duration.
"""

from __future__ import annotations

import torch
import torch.distributions as D
from torch import Tensor

from latentvar._checks import as_tensor, check_count, check_finite, check_sample_shape
from latentvar.hmm.inputs import Inputs, prepare
from latentvar.hmm.sampling import PAD, sample_emissions, seeded
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
        return self.chain_of(inputs), inputs.shape

    def chain_of(self, inputs: Inputs) -> Chain:
        """The expanded chain of checked, flat inputs (`latentvar.hmm.inputs.prepare`)."""
        em = self.emission.log_prob(inputs.y.unsqueeze(inputs.y.dim() - len(self.event_shape)))  # (b, t, k)
        init, trans, final = self.expanded()
        emissions = em.repeat_interleave(self.max_duration, -1)
        # the end weights added to each sequence's last step: the same potentials as ``final=``, but a
        # chain without final weights, which the compiled kernels answer
        steps = torch.arange(emissions.shape[1], device=emissions.device)
        last = (steps == (inputs.lengths.to(steps.device) - 1)[:, None])[..., None]  # (b, t, 1)
        emissions = torch.where(last, emissions + final, emissions)
        return Chain(init, trans, emissions, inputs.lengths)

    def segments(self, path: Tensor) -> tuple[Tensor, Tensor]:
        """(states, durations) (..., t) of expanded paths (..., t) (-1 past each length): the state of each
        step and the length of the segment it belongs to."""
        states = torch.where(path >= 0, path // self.max_duration, PAD)
        elapsed = torch.where(path >= 0, path % self.max_duration, PAD)
        durations = torch.full_like(path, PAD)
        if path.shape[-1]:
            durations[..., -1] = torch.where(path[..., -1] >= 0, elapsed[..., -1] + 1, PAD)
        # backwards: a step whose successor continues its segment (elapsed > 0) shares that one's length
        for t in range(path.shape[-1] - 2, -1, -1):
            own = torch.where(elapsed[..., t + 1] > 0, durations[..., t + 1], elapsed[..., t] + 1)
            durations[..., t] = torch.where(path[..., t] >= 0, own, PAD)
        return states, durations

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
        states, durations = self.segments(chain.viterbi)
        return states.reshape((*shape, -1)), durations.reshape((*shape, -1))

    # -- sampling ----------------------------------------------------------------------------------
    def sample(
        self,
        sample_shape: torch.Size = torch.Size(),
        length: int = 1,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(z, y): z (*sample_shape, length) states, y (*sample_shape, length, *event) observations, drawn
        exactly from P(z, y | the last segment ends at step ``length``) -- the distribution `log_prob` sums
        (see the module docstring). Consecutive segments have different states, so z alone gives the
        segmentation. ``generator`` as in `HMM.sample`. A ``length`` no segmentation reaches (one state
        that cannot last that long, or durations that cannot add up to it) is a ValueError."""
        length = check_count("length", length)
        per_draw = max(length, 1) * max(self.event_shape.numel(), 1)
        shape = check_sample_shape("sample_shape", sample_shape, per_draw)
        with torch.no_grad(), seeded(generator):
            z = self._prior_states(shape, length)
            y = sample_emissions(self, z)
        return z, y

    def _prior_states(self, shape: torch.Size, length: int) -> Tensor:
        """States (*shape, length) from P(z | the last segment ends at ``length``): backward sampling on
        the expanded chain with every emission 0."""
        dev = self.init_logits.device
        if not length:
            return torch.full((*shape, 0), PAD, dtype=torch.long, device=dev)
        init, trans, final = self.expanded()
        silent = init.new_zeros(1, length, init.shape[-1])
        chain = Chain(init, trans, silent, torch.tensor([length], device=dev), final=final)
        if not bool(torch.isfinite(chain.log_alphas[0]).all()):
            raise ValueError(
                f"length: no segmentation of {length} steps has positive probability (the durations "
                "duration_logits allows cannot add up to it)"
            )
        return self.segments(chain.sample(shape).squeeze(-2))[0]

    def sample_posterior(
        self, y, lengths=None, sample_shape: torch.Size = torch.Size(), generator=None
    ) -> tuple[Tensor, Tensor]:
        """Exact draws of segmentations from P(segments | y): (states, durations), each
        (*sample_shape, ..., t) long as `mode`'s, -1 past each length."""
        shape = check_sample_shape("sample_shape", sample_shape)
        with torch.no_grad():
            chain, batch = self._chain(y, lengths)
            if not bool(torch.isfinite(chain.log_alphas[0]).all()):
                raise ValueError(
                    "y: a sequence has probability zero under the model (no segmentation allows it)"
                )
            path = chain.sample(shape, generator)
        states, durations = self.segments(path)
        out = (*shape, *batch, path.shape[-1])
        return states.reshape(out), durations.reshape(out)

    # -- fitting -----------------------------------------------------------------------------------
    def fit(
        self,
        y,
        lengths=None,
        max_iter: int = 100,
        tol: float = 1e-6,
        batch_size: int = 256,
        pseudocount: float = 0.0,
        reg_covar: float = 1e-6,
        *,
        params: str = "stde",
        covariance_type: str | None = None,
        callback=None,
    ):
        """Fit to sequences y (b, t, *event) with ``lengths`` by EM from this model's parameters
        (`latentvar.hmm.semimarkov_fit`): an `HMMFitResult` whose history is the mean log-likelihood per
        observed step before each M-step (never decreasing; with a ``pseudocount``, EM climbs the MAP
        objective, and that is what the result's ``decreases`` watches). ``params``: the letters of the parameters to
        update, 's' start, 't' transitions, 'd' durations, 'e' emission (the families of `HMM.fit`);
        ``pseudocount`` is added to every count, ``reg_covar`` to variances; ``callback(model, iteration,
        mean_ll)`` as in `HMM.fit`."""
        from latentvar.hmm.semimarkov_fit import fit_em

        return fit_em(self, y, lengths, max_iter, tol, batch_size, pseudocount, reg_covar, params,
                      covariance_type, callback)  # fmt: skip
