"""Hidden Markov models: z_1..z_T a Markov chain over k states, y_t ~ P(y | z_t).

    P(y) = Σ_z π_{z_1} P(y_1|z_1) Π_{t>1} A_{z_{t-1} z_t} P(y_t|z_t)      (Rabiner 1989, eq. 19-21)

Shapes (named axes): b batch of sequences, t time, k states; ``y`` is (b, t, *event) padded, with
``lengths`` (b,) giving each sequence's true length (steps past it are ignored, whatever they hold).

A batch of models and time-varying transitions come from broadcasting, as in Pyro's ``DiscreteHMM``:
``init_logits`` (..., k), ``trans_logits`` (k, k) shared or (..., t|1, k, k) with the time axis third from
the right (row t is the step t-1 → t; row 0 is not used), a Distribution emission with batch_shape (k,) or
(..., t|1, k). ``batch_shape`` is their broadcast; then y is (..., t, *event) with its leading axes
broadcasting against it. Every question is one `latentvar.inference.Chain` over the flattened batch: a shared
(k, k) matrix keeps the compiled fast paths and O(b·k) scoring memory (emissions in time chunks).

End states: ``final_logits`` (..., k), log P(end | z_L) normalised together with each row of A, make P(y) a
distribution over sequences of every length (pomegranate's ``ends``); the chain then has ``final``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar._checks import (
    as_tensor,
    check_count,
    check_integer,
    check_positive,
    check_range,
    check_sample_shape,
)
from latentvar.core import FitResult, LatentVariableModel
from latentvar.hmm import small
from latentvar.hmm.criteria import Criteria
from latentvar.hmm.fast_emission import gaussian_log_prob, gaussian_parts, gaussian_table
from latentvar.hmm.inputs import Inputs, check_inputs, prepare
from latentvar.hmm.inputs import is_categorical as _is_categorical
from latentvar.hmm.parameters import check_parameters
from latentvar.hmm.sampling import sample_emissions, sample_states
from latentvar.hmm.sampling import seeded as _seeded
from latentvar.inference import Chain, parallel_log_partition

METHODS = ("sequential", "parallel")
CHUNK_VALUES = 2**18  # emission log-likelihoods computed at once when scoring: b·chunk·k near this


def _log_partition(log_init: Tensor, log_trans: Tensor, emission_lp: Tensor, lengths: Tensor) -> Tensor:
    """log P(y) (b,) from emission log-likelihoods (b, t, k), differentiable in all three inputs."""
    return Chain(log_init, log_trans, emission_lp, lengths).log_partition()


class HMM(LatentVariableModel, Criteria):
    """A hidden Markov model with k states (or a batch of them, see the module docstring).

    Args:
        init_logits: (..., k) unnormalised log P(z_1).
        trans_logits: (k, k) unnormalised log P(z_t = j | z_{t-1} = i), rows i = from-state; or
            (..., t|1, k, k) per model and step.
        emission: a `torch.distributions.Distribution` with batch_shape (k,) or (..., t|1, k) (Categorical,
            Normal, MultivariateNormal, Independent(...)), or an `nn.Module` mapping y (b, t, ...) to
            per-step log-likelihoods log P(y_t | z_t = k) of shape (b, t, k) (neural emissions).

    Computation follows the dtype of the parameters: build them in float64 for a float64 model.
    """

    def __init__(
        self,
        init_logits: Tensor,
        trans_logits: Tensor,
        emission: D.Distribution | nn.Module,
        final_logits: Tensor | None = None,
    ):
        init_logits, trans_logits, final_logits, self.batch_shape = check_parameters(
            init_logits, trans_logits, emission, final_logits
        )
        k = init_logits.shape[-1]
        self.init_logits = init_logits
        self.trans_logits = trans_logits
        self.final_logits = final_logits
        self.emission = emission
        self.num_states = k

    @classmethod
    def _checked(cls, init_logits: Tensor, trans_logits: Tensor, emission: D.Distribution) -> HMM:
        """One model (k,), (k, k) and an emission of batch_shape (k,) whose parameters hold by construction
        (Baum-Welch's M-step of `latentvar.hmm.small_fit`): built without `check_parameters`."""
        model = cls.__new__(cls)
        model.init_logits, model.trans_logits, model.final_logits = init_logits, trans_logits, None
        model.emission, model.num_states, model.batch_shape = emission, init_logits.shape[0], torch.Size()
        return model

    # -- parameters --------------------------------------------------------------------------------
    @property
    def log_init(self) -> Tensor:
        """log π: (..., k)."""
        return torch.log_softmax(self.init_logits, -1)

    @property
    def log_trans(self) -> Tensor:
        """log A: (k, k) or (..., t|1, k, k), rows = from-state, each row normalised (with end states: each
        row and its end probability together, so a row sums to 1 − P(end | from-state))."""
        if self.final_logits is None:
            return torch.log_softmax(self.trans_logits, -1)
        return self.log_rows[..., :-1]

    @property
    def log_final(self) -> Tensor | None:
        """log P(end | z_L = i): (..., k), None for a model without end states (sequences of any given
        length)."""
        if self.final_logits is None:
            return None
        rows = self.log_rows[..., -1]
        return rows if self.trans_logits.dim() == 2 and self.final_logits.dim() == 1 else rows[..., 0, :]

    @property
    def log_rows(self) -> Tensor:
        """With end states, each from-state's row over the k next states and the end (column k),
        normalised together: (k, k + 1), or (..., 1, k, k + 1) for a batch."""
        a, f = self.trans_logits, self.final_logits
        if a.dim() == 2 and f.dim() == 1:
            return torch.log_softmax(torch.cat([a, f[:, None]], -1), -1)
        a = a if a.dim() > 2 else a.unsqueeze(0)  # (..., 1, k, k)
        f = f[..., None, :, None]  # (..., 1, k, 1)
        lead = torch.broadcast_shapes(a.shape[:-3], f.shape[:-3])
        k = self.num_states
        joint = torch.cat([a.expand(*lead, 1, k, k), f.expand(*lead, 1, k, 1)], -1)
        return torch.log_softmax(joint, -1)

    @property
    def num_steps(self) -> int | None:
        """The steps of time-varying transitions, None where A does not depend on t."""
        a = self.trans_logits
        return a.shape[-3] if a.dim() >= 3 and a.shape[-3] > 1 else None

    @property
    def event_shape(self) -> torch.Size:
        """The shape of one observation y_t."""
        return self.emission.event_shape if isinstance(self.emission, D.Distribution) else torch.Size()

    def __repr__(self) -> str:
        emission = type(self.emission).__name__
        batch = f", batch_shape={tuple(self.batch_shape)}" if self.batch_shape else ""
        ends = ", final" if self.final_logits is not None else ""
        return f"HMM(K={self.num_states}{batch}{ends}, emission={emission}, dtype={self.init_logits.dtype})"

    # -- inputs ------------------------------------------------------------------------------------
    def _check_inputs(self, y, lengths) -> tuple[Tensor, Tensor, torch.Size]:
        return check_inputs(self, y, lengths)

    def emission_log_prob(self, y: Tensor, shape: torch.Size | None = None) -> Tensor:
        """log P(y_t | z_t = k): (b, t, k) for y (b, t, *event) (no checks; padding must be valid values).
        ``shape``: the batch shape b flattens, where the emission itself is batched (..., t|1, k)."""
        em = self.emission
        if isinstance(em, nn.Module):
            out = em(y)
            if out.shape != (*y.shape[:2], self.num_states):
                raise ValueError(
                    f"emission: the module returned shape {tuple(out.shape)}, expected "
                    f"{(*y.shape[:2], self.num_states)} (b, t, k) log-likelihoods"
                )
            return out
        ev = len(self.event_shape)
        if em.batch_shape == (self.num_states,):
            if _is_categorical(em):  # index the (k, v) table instead of broadcasting to (b, t, k, v)
                return em.logits.T[y.long()]
            gaussian = gaussian_parts(em)
            if gaussian is not None:  # the same numbers in fewer tensor operations (small problems)
                return gaussian_table(*gaussian, y)
            return em.log_prob(y.unsqueeze(y.dim() - ev))
        shape = torch.Size(y.shape[:1]) if shape is None else shape
        if em.batch_shape[-2] not in (1, y.shape[1]):
            raise ValueError(
                f"emission: expected a time axis of 1 or {y.shape[1]} steps in batch_shape, "
                f"got {tuple(em.batch_shape)}"
            )
        yb = y.reshape(*shape, *y.shape[1:])
        out = em.log_prob(yb.unsqueeze(yb.dim() - ev))
        return out.expand(*shape, *out.shape[-2:]).reshape(y.shape[0], y.shape[1], self.num_states)

    def _emission_chunks(self, y: Tensor, chunk: int, shape) -> Iterator[Tensor]:
        for t0 in range(0, y.shape[1], chunk):
            yield self.emission_log_prob(y[:, t0 : t0 + chunk], shape)

    def _flat_potentials(self, shape: torch.Size, T: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """log π as (k,) or (b, k), log A as (k, k) shared or (b, t|1, k, k), log P(end | z) None, (k,) or
        (b, k), over the flat batch of shape."""
        k = self.num_states
        b = math.prod(shape)
        log_init = self.log_init
        if log_init.dim() > 1:
            log_init = log_init.expand(*shape, k).reshape(b, k)
        log_trans = self.log_trans
        if log_trans.dim() > 2:
            if math.prod(log_trans.shape[:-2]) == 1:  # one matrix after all: the shared fast path
                log_trans = log_trans.reshape(k, k)
            else:
                steps = log_trans.shape[-3]
                log_trans = log_trans[..., : max(T, 1), :, :] if steps > 1 else log_trans
                log_trans = log_trans.expand(*shape, *log_trans.shape[-3:]).reshape(-1, *log_trans.shape[-3:])
        log_final = self.log_final
        if log_final is not None and log_final.dim() > 1:
            log_final = log_final.expand(*shape, k).reshape(b, k)
        return log_init, log_trans, log_final

    def chain(
        self, y, lengths=None, chunk: int | str | None = None, observed=None, constraints=None
    ) -> tuple[Chain, torch.Size]:
        """The `latentvar.inference.Chain` of y (checked) over the flat batch, and the batch shape it
        flattens. ``chunk``: stream the emissions that many steps at a time ("auto": near 2^18 values).
        ``observed`` and ``constraints``: see `log_prob`."""
        inputs = prepare(self, y, lengths, observed, constraints)
        return self._chain(inputs, chunk), inputs.shape

    def _chain(self, inputs: Inputs, chunk: int | str | None = None) -> Chain:
        y, lengths, shape = inputs.y, inputs.lengths, inputs.shape
        log_init, log_trans, log_final = self._flat_potentials(shape, y.shape[1])
        if chunk == "auto":
            chunk = max(1, CHUNK_VALUES // max(1, y.shape[0] * self.num_states))
        em = self.emission
        streamable = chunk is not None and (
            not isinstance(em, D.Distribution) or em.batch_shape == (self.num_states,)
        )
        tensors = (log_init, log_trans, log_final)
        if streamable and torch.is_grad_enabled():  # a gradient needs the whole (b, t, k) tensor anyway
            streamable = not (
                any(x is not None and x.requires_grad for x in tensors)
                or next(self._emission_chunks(y, chunk, shape), y).requires_grad
            )
        plain = inputs.observed is None and inputs.prior is None
        if streamable:
            starts = range(0, y.shape[1], chunk)
            emissions = lambda: (  # noqa: E731 (re-iterable)
                e if plain else inputs.adjust(e, t0)
                for t0, e in zip(starts, self._emission_chunks(y, chunk, shape), strict=True)
            )
        else:
            emissions = self.emission_log_prob(y, shape)
            emissions = emissions if plain else inputs.adjust(emissions)
        return Chain(log_init, log_trans, emissions, lengths, final=log_final)

    # -- the API -----------------------------------------------------------------------------------
    def log_prob(
        self,
        y,
        lengths=None,
        method: str = "sequential",
        chunk: int | None = None,
        observed=None,
        constraints=None,
    ) -> Tensor:
        """Exact log P(y) of each padded sequence over its first ``lengths`` steps: the batch shape, (b,)
        for one model and b sequences, () for one unbatched (t, *event) sequence (as Pyro's DiscreteHMM;
        it was (1,) before issue 21). With end states (``final_logits``), the probability of y *and* the
        end after it (an empty sequence has probability 0).

        ``method="sequential"``: the forward recursion, memory O(b·k) besides the emissions of ``chunk``
        steps at a time (default: as many steps as keep a chunk near 2^18 values, 2 MiB in float64);
        ``"parallel"``: a log-depth scan of (k, k) products, memory O(b·t·k²).

        ``observed`` (..., t) bool, or ``"nan"``: a step where it is False (or whose y holds a NaN) emits
        nothing -- a missing observation, marginalised out. ``constraints``: the states allowed at each
        step, as partial labels (..., t) long (-1: unlabelled), a mask (..., t, k) bool, or log priors
        (..., t, k) float added to log P(y_t | z_t) (-inf forbids a state); the result is then
        log Σ_z P(z, y) Π_t exp(prior_t(z_t)), for a mask log P(y, z allowed)."""
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if chunk is not None:
            check_positive("chunk", chunk, integer=True)
        direct = small.direct(self, y, lengths, observed, constraints) if method == "sequential" else None
        if direct is not None and (total := small.log_prob(self, p=direct)) is not None:
            return total  # small problems: one compiled pass, no checks to repeat
        inputs = prepare(self, y, lengths, observed, constraints)
        if method == "parallel":
            total = parallel_log_partition(self._chain(inputs))
        elif (total := gaussian_log_prob(self, inputs)) is not None:  # small problems: one compiled pass
            pass
        else:  # streamed emissions; a gradient (if one is asked for) goes through the whole (b, t, k) tensor
            total = self._chain(inputs, "auto" if chunk is None else chunk).log_partition()
        if self.final_logits is not None:
            total = torch.where(inputs.lengths > 0, total, -torch.inf)
        return total.reshape(inputs.shape)

    def log_joint(self, z, y, lengths=None) -> Tensor:
        """log P(z, y) = log π_{z_1} + Σ_t log A_{z_{t-1} z_t} + Σ_t log P(y_t | z_t): (..., *batch shape)
        for z (..., *batch shape, t) ((..., b) for b sequences of one model)."""
        chain, shape = self.chain(y, lengths)
        z = self._check_z(z, chain, shape)
        return chain.score(z).reshape((*z.shape[:-2], *shape))

    def _check_z(self, z, chain: Chain, shape) -> Tensor:
        z = check_integer("z", as_tensor("z", z)).to(chain.lengths.device)
        b, T = chain.batch, chain.emission_tensor.shape[1]
        if len(shape) != 1 and tuple(z.shape[z.dim() - len(shape) - 1 :]) == (*shape, T):
            z = z.reshape(*z.shape[: z.dim() - len(shape) - 1], b, T)
        if z.dim() == 1:
            z = z.unsqueeze(0)
        if tuple(z.shape[-2:]) != (b, T):
            raise ValueError(f"z: expected shape (..., {b}, {T}) like y, got {tuple(z.shape)}")
        valid = torch.arange(T, device=z.device) < chain.lengths.unsqueeze(-1)
        check_range("z", z[..., valid], 0, self.num_states)
        return z

    def posterior(self, y, lengths=None, method: str = "sequential", observed=None, constraints=None):
        """The exact P(z | y): `HMMPosterior` with marginals (..., t, k), mode (..., t), sample, entropy.
        ``observed`` and ``constraints`` as in `log_prob`: then P(z | y, z allowed)."""
        from latentvar.hmm.posterior import HMMPosterior

        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        with torch.no_grad():
            direct = small.direct(self, y, lengths, observed, constraints) if method == "sequential" else None
            if direct is not None:  # small problems: nothing to check again, no Chain yet
                return HMMPosterior(self, None, direct.lengths_t.shape, method, direct)
            inputs = prepare(self, y, lengths, observed, constraints)
            if method == "sequential" and (direct := small.plain(self, inputs)) is not None:
                return HMMPosterior(self, None, inputs.shape, method, direct)  # small problems: no Chain yet
            return HMMPosterior(self, self._chain(inputs), inputs.shape, method)

    def sample(
        self,
        sample_shape: torch.Size = torch.Size(),
        length: int = 1,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(z, y): z (*sample_shape, *batch_shape, length) states, y (..., length, *event) observations.
        With end states the end is not drawn here (each row of A renormalised without it);
        `sample_variable_length` draws where the sequences end.

        ``generator`` makes the draws reproducible (torch's global generator is forked and seeded from it,
        so any emission family can be sampled). A module emission can be sampled if it has a
        ``sample_given_states(z) -> y`` method."""
        z, y, _ = self._sample(sample_shape, length, generator, ends=False)
        return z, y

    def sample_variable_length(
        self,
        sample_shape: torch.Size = torch.Size(),
        max_length: int = 100,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(z, y, lengths): sequences that stop through the end states (``final_logits``): after each step
        the chain moves to a next state or ends, drawn jointly from the row of A and P(end | z).
        z (*sample_shape, *batch_shape, max_length) is -1 past each length and y holds zeros there; a
        sequence still running after ``max_length`` steps is cut (its length is ``max_length``)."""
        if self.final_logits is None:
            raise ValueError("final_logits: sampling until the end needs end states; this HMM has none")
        return self._sample(sample_shape, max_length, generator, ends=True)

    def _sample(self, sample_shape, length, generator, ends: bool) -> tuple[Tensor, Tensor, Tensor]:
        name = "max_length" if ends else "length"
        length = check_count(name, length)
        if self.num_steps is not None and length > self.num_steps:
            raise ValueError(f"{name}: expected at most {self.num_steps} steps (trans_logits), got {length}")
        per_draw = max(self.batch_shape.numel(), 1) * max(length, 1) * max(self.event_shape.numel(), 1)
        shape = check_sample_shape("sample_shape", sample_shape, per_draw) + self.batch_shape
        model = (
            self
            if ends or self.final_logits is None
            else HMM(self.init_logits, self.log_trans, self.emission)
        )
        with torch.no_grad(), _seeded(generator):
            z, lengths = sample_states(model, shape, length)
            y = sample_emissions(self, z)
        if ends:
            past = (z < 0).view(*z.shape, *([1] * len(self.event_shape)))
            y = torch.where(past, torch.zeros_like(y), y)
        return z, y, lengths

    # -- fitting -----------------------------------------------------------------------------------
    def fit(
        self,
        y,
        lengths=None,
        method: str = "em",
        max_iter: int = 100,
        tol: float = 1e-6,
        batch_size: int = 256,
        lr: float = 0.05,
        pseudocount: float = 0.0,
        reg_covar: float = 1e-6,
        parameters: list[Tensor] | None = None,
        callback=None,
        show_progress: bool = False,
        *,
        observed=None,
        constraints=None,
        sample_weight=None,
        params: str = "stfe",
        init_prior=None,
        trans_prior=None,
        covariance_type: str | None = None,
        init_emission: str | None = None,
        generator: torch.Generator | None = None,
        distributed: bool = False,
        step_decay: float = 0.7,
    ) -> FitResult:
        """Fit to sequences y (b, t, *event) with ``lengths``, starting from this model's parameters.

        ``method="em"``: Baum-Welch (Baum et al. 1970; Rabiner 1989 §III.C) for Categorical, Gaussian
        (Normal, Independent(Normal), MultivariateNormal; ``covariance_type`` 'tied' or 'spherical' ties
        them), Poisson, Exponential, Multinomial and Gaussian-mixture (MixtureSameFamily, a GMM-HMM)
        emissions (`latentvar.stats.SufficientStatistics`); each iteration streams the sequences
        in minibatches of ``batch_size``, summing expected counts -- the gradients of log P(y) with
        respect to log π, log A and the emission log-likelihoods (Eisner 2016) -- then re-estimates
        (``pseudocount`` added to counts, ``reg_covar`` to variances). The likelihood never decreases;
        degenerate states never abort the fit (`latentvar.hmm.diagnostics`: a state with no expected
        transitions or observations keeps its parameters with a named warning, and an objective that went
        down is listed in the result's ``decreases``).

        ``method="gradient"``: Adam on the exact -log P(y) per token over minibatches, for the families of
        `latentvar.stats.unconstrained` (Normal, MultivariateNormal, Categorical, Poisson, Exponential,
        Multinomial, optionally in Independent, and MixtureSameFamily of them) or module emissions (their
        parameters); one iteration is one pass over the data. ``parameters`` adds extra tensors to optimise;
        ``params``, the priors and ``covariance_type`` are EM's (ignored here).

        ``observed`` / ``constraints`` as in `log_prob` (missing observations; partial labels, state masks
        or log priors: semi-supervised EM maximises log P(y, z allowed)); ``sample_weight`` (b,) weighs each
        sequence's counts; ``params`` (EM): the letters of the parameters to update, 's' start, 't'
        transitions, 'f' end states, 'e' emission; ``init_prior`` (k,) / ``trans_prior`` (k, k) (or
        (k, k + 1) with end states): Dirichlet concentrations α on π and the rows of A (MAP EM, pseudo-counts
        α − 1, as hmmlearn's startprob_prior / transmat_prior; without them ``pseudocount``);
        ``init_emission="kmeans"``: first set the emission from k-means centres of the observed steps
        (`latentvar.hmm.kmeans`, seeded by ``generator``), as hmmlearn's ``init_params``.

        ``method="stepwise"``: stepwise (online) EM, an M-step after every minibatch on running statistics
        with step sizes (k + 2)^(−``step_decay``); ``distributed=True`` (EM): each process of an initialised
        ``torch.distributed`` group (torchrun) passes its own sequences, and the counts are all-reduced every
        iteration, so all take the M-step one process with all the data would (`latentvar.hmm.online`).

        ``callback(model, iteration, mean_ll)`` runs after every iteration (the iteration hook).
        History: mean log-likelihood per observed step after each iteration."""
        from latentvar.hmm.fit import FitOptions
        from latentvar.hmm.fit import fit as fit_model

        options = FitOptions(
            method, max_iter, tol, batch_size, lr, pseudocount, reg_covar, parameters, callback,
            show_progress, params, init_prior, trans_prior, covariance_type, init_emission, generator,
            distributed, step_decay,
        )  # fmt: skip
        return fit_model(self, y, lengths, observed, constraints, sample_weight, options)
