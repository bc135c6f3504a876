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
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar._checks import (
    as_tensor,
    check_count,
    check_finite,
    check_integer,
    check_non_negative,
    check_number,
    check_positive,
    check_range,
    check_sample_shape,
)
from latentvar.core import FitResult, LatentVariableModel
from latentvar.hmm.inputs import check_inputs
from latentvar.hmm.inputs import is_categorical as _is_categorical
from latentvar.inference import Chain, parallel_log_partition

METHODS = ("sequential", "parallel")
CHUNK_VALUES = 2**18  # emission log-likelihoods computed at once when scoring: b·chunk·k near this


def _log_partition(log_init: Tensor, log_trans: Tensor, emission_lp: Tensor, lengths: Tensor) -> Tensor:
    """log P(y) (b,) from emission log-likelihoods (b, t, k), differentiable in all three inputs."""
    return Chain(log_init, log_trans, emission_lp, lengths).log_partition()


class HMM(LatentVariableModel):
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

    def __init__(self, init_logits: Tensor, trans_logits: Tensor, emission: D.Distribution | nn.Module):
        init_logits = as_tensor("init_logits", init_logits)
        trans_logits = as_tensor("trans_logits", trans_logits)
        for name, x in (("init_logits", init_logits), ("trans_logits", trans_logits)):
            if not torch.is_floating_point(x):
                raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
            check_finite(name, x, allow_neg_inf=True)
        if init_logits.dim() < 1 or init_logits.shape[-1] < 1:
            raise ValueError(
                f"init_logits: expected shape (..., K) with K >= 1 states, got {tuple(init_logits.shape)}"
            )
        k = init_logits.shape[-1]
        if trans_logits.dim() < 2 or trans_logits.shape[-2:] != (k, k):
            raise ValueError(
                f"trans_logits: expected shape ({k}, {k}) or (..., T, {k}, {k}) (K from init_logits), "
                f"got {tuple(trans_logits.shape)}"
            )
        if bool(torch.isneginf(init_logits).all(-1).any()):
            raise ValueError("init_logits: every state has initial probability zero (all -inf)")
        if bool(torch.isneginf(trans_logits).all(-1).any()):
            raise ValueError(
                "trans_logits: some row (from-state) has all transition probabilities zero (all -inf)"
            )
        shapes = [init_logits.shape[:-1], trans_logits.shape[:-3]]
        if isinstance(emission, D.Distribution):
            eb = tuple(emission.batch_shape)
            if not eb or eb[-1] != k:
                raise ValueError(
                    f"emission: expected batch_shape ({k},) or (..., T, {k}) -- one emission distribution per "
                    f"state, K={k} from init_logits -- got batch_shape {eb}"
                )
            shapes.append(torch.Size(eb[:-2]))
        elif not isinstance(emission, nn.Module):
            raise ValueError(
                "emission: expected a torch.distributions.Distribution or an nn.Module, "
                f"got {type(emission).__name__}"
            )
        try:
            self.batch_shape = torch.broadcast_shapes(*shapes)
        except RuntimeError:
            raise ValueError(
                f"trans_logits: expected leading (batch) axes broadcasting with init_logits "
                f"{tuple(init_logits.shape[:-1])} and the emission, got shape {tuple(trans_logits.shape)}"
            ) from None
        if isinstance(emission, nn.Module) and self.batch_shape:
            raise ValueError("emission: a module emission needs one model (init_logits (K,)), not a batch")
        self.init_logits = init_logits
        self.trans_logits = trans_logits
        self.emission = emission
        self.num_states = k

    # -- parameters --------------------------------------------------------------------------------
    @property
    def log_init(self) -> Tensor:
        """log π: (..., k)."""
        return torch.log_softmax(self.init_logits, -1)

    @property
    def log_trans(self) -> Tensor:
        """log A: (k, k) or (..., t|1, k, k), rows = from-state, each row normalised."""
        return torch.log_softmax(self.trans_logits, -1)

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
        return f"HMM(K={self.num_states}{batch}, emission={emission}, dtype={self.init_logits.dtype})"

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

    def _flat_potentials(self, shape: torch.Size, T: int) -> tuple[Tensor, Tensor]:
        """log π as (k,) or (b, k), log A as (k, k) shared or (b, t|1, k, k), over the flat batch of shape."""
        k = self.num_states
        log_init = self.log_init
        if log_init.dim() > 1:
            log_init = log_init.expand(*shape, k).reshape(-1, k)
        log_trans = self.log_trans
        if log_trans.dim() > 2:
            if math.prod(log_trans.shape[:-2]) == 1:  # one matrix after all: the shared fast path
                log_trans = log_trans.reshape(k, k)
            else:
                steps = log_trans.shape[-3]
                log_trans = log_trans[..., : max(T, 1), :, :] if steps > 1 else log_trans
                log_trans = log_trans.expand(*shape, *log_trans.shape[-3:]).reshape(-1, *log_trans.shape[-3:])
        return log_init, log_trans

    def chain(self, y, lengths=None, chunk: int | str | None = None) -> tuple[Chain, torch.Size]:
        """The `latentvar.inference.Chain` of y (checked) over the flat batch, and the batch shape it
        flattens. ``chunk``: stream the emissions that many steps at a time ("auto": near 2^18 values)."""
        y, lengths, shape = self._check_inputs(y, lengths)
        log_init, log_trans = self._flat_potentials(shape, y.shape[1])
        if chunk == "auto":
            chunk = max(1, CHUNK_VALUES // max(1, y.shape[0] * self.num_states))
        em = self.emission
        streamable = chunk is not None and (
            not isinstance(em, D.Distribution) or em.batch_shape == (self.num_states,)
        )
        if streamable and torch.is_grad_enabled():  # a gradient needs the whole (b, t, k) tensor anyway
            streamable = not (
                log_init.requires_grad
                or log_trans.requires_grad
                or next(self._emission_chunks(y, chunk, shape), y).requires_grad
            )
        if streamable:
            emissions = lambda: self._emission_chunks(y, chunk, shape)  # noqa: E731 (re-iterable)
        else:
            emissions = self.emission_log_prob(y, shape)
        return Chain(log_init, log_trans, emissions, lengths), shape

    # -- the API -----------------------------------------------------------------------------------
    def log_prob(self, y, lengths=None, method: str = "sequential", chunk: int | None = None) -> Tensor:
        """Exact log P(y) of each padded sequence over its first ``lengths`` steps: the batch shape, (b,)
        for one model.

        ``method="sequential"``: the forward recursion, memory O(b·k) besides the emissions of ``chunk``
        steps at a time (default: as many steps as keep a chunk near 2^18 values, 2 MiB in float64);
        ``"parallel"``: a log-depth scan of (k, k) products, memory O(b·t·k²)."""
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if chunk is not None:
            check_positive("chunk", chunk, integer=True)
        if method == "parallel":
            chain, shape = self.chain(y, lengths)
            return parallel_log_partition(chain).reshape(shape)
        # streamed emissions; a gradient (if one is asked for) goes through the whole (b, t, k) tensor
        chain, shape = self.chain(y, lengths, chunk="auto" if chunk is None else chunk)
        return chain.log_partition().reshape(shape)

    def log_joint(self, z, y, lengths=None) -> Tensor:
        """log P(z, y) = log π_{z_1} + Σ_t log A_{z_{t-1} z_t} + Σ_t log P(y_t | z_t): (..., *batch shape)
        for z (..., *batch shape, t) ((..., b) for b sequences of one model)."""
        chain, shape = self.chain(y, lengths)
        z = self._check_z(z, chain, shape)
        return chain.score(z).reshape(*z.shape[:-2], *shape)

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

    def posterior(self, y, lengths=None, method: str = "sequential"):
        """The exact P(z | y): `HMMPosterior` with marginals (..., t, k), mode (..., t), sample, entropy."""
        from latentvar.hmm.posterior import HMMPosterior

        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        with torch.no_grad():
            chain, shape = self.chain(y, lengths)
        return HMMPosterior(self, chain, shape, method)

    def sample(
        self,
        sample_shape: torch.Size = torch.Size(),
        length: int = 1,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(z, y): z (*sample_shape, *batch_shape, length) states, y (..., length, *event) observations.

        ``generator`` makes the draws reproducible (torch's global generator is forked and seeded from it,
        so any emission family can be sampled). A module emission can be sampled if it has a
        ``sample_given_states(z) -> y`` method."""
        length = check_count("length", length)
        if self.num_steps is not None and length > self.num_steps:
            raise ValueError(f"length: expected at most {self.num_steps} steps (trans_logits), got {length}")
        per_draw = max(self.batch_shape.numel(), 1) * max(length, 1) * max(self.event_shape.numel(), 1)
        shape = check_sample_shape("sample_shape", sample_shape, per_draw) + self.batch_shape
        k = self.num_states
        with torch.no_grad(), _seeded(generator):
            init, trans = self.log_init, self.log_trans
            z = torch.empty(*shape, length, dtype=torch.long, device=init.device)
            if length:
                z[..., 0] = D.Categorical(logits=init.expand(*shape, k)).sample()
                for t in range(1, length):
                    a = trans if trans.dim() == 2 else trans[..., t if trans.shape[-3] > 1 else 0, :, :]
                    prev = z[..., t - 1]
                    if a.dim() == 2:
                        rows = a[prev]
                    else:
                        a = a.expand(*shape, k, k)
                        rows = a.gather(-2, prev[..., None, None].expand(*shape, 1, k)).squeeze(-2)
                    z[..., t] = D.Categorical(logits=rows).sample()
            y = self._sample_emissions(z)
        return z, y

    def _sample_emissions(self, z: Tensor) -> Tensor:
        em = self.emission
        if isinstance(em, nn.Module):
            if not hasattr(em, "sample_given_states"):
                raise ValueError(
                    "emission: this module has no sample_given_states(z) method, so y cannot be sampled"
                )
            flat = z.reshape(-1, z.shape[-1])
            y = em.sample_given_states(flat)
            return y.reshape(*z.shape, *y.shape[2:])
        if _is_categorical(em) and em.batch_shape == (self.num_states,):
            if z.numel() == 0:
                return torch.zeros_like(z)
            return D.Categorical(logits=em.logits[z]).sample()
        k = self.num_states
        if em.batch_shape == (k,):
            ys = em.sample(z.shape)  # (..., t, k, *event)
        else:
            ys = em.expand(torch.Size((*z.shape, k))).sample()
        ev = len(self.event_shape)
        index = z.reshape(*z.shape, 1, *([1] * ev)).expand(*z.shape, 1, *self.event_shape)
        return ys.gather(z.dim(), index).squeeze(z.dim())

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
    ) -> FitResult:
        """Fit to sequences y (b, t, *event) with ``lengths``, starting from this model's parameters.

        ``method="em"``: Baum-Welch (Baum et al. 1970; Rabiner 1989 §III.C) for Categorical and Gaussian
        (Normal, Independent(Normal), MultivariateNormal) emissions; each iteration streams the sequences
        in minibatches of ``batch_size``, summing expected counts -- the gradients of log P(y) with
        respect to log π, log A and the emission log-likelihoods (Eisner 2016) -- then re-estimates
        (``pseudocount`` added to counts, ``reg_covar`` to variances). The likelihood never decreases.

        ``method="gradient"``: Adam on the exact -log P(y) per token over minibatches, for Categorical,
        Normal, MultivariateNormal (optionally in Independent) or module emissions (their parameters);
        one iteration is one pass over the data. ``parameters`` adds extra tensors to optimise.

        ``callback(model, iteration, mean_ll)`` runs after every iteration (the iteration hook).
        History: mean log-likelihood per observed step after each iteration."""
        from latentvar.hmm.fit import fit_em, fit_gradient

        if self.batch_shape or self.trans_logits.dim() != 2:
            raise ValueError(
                "trans_logits: fit expects one model with a shared (K, K) transition matrix, "
                f"got init_logits {tuple(self.init_logits.shape)}, trans_logits {tuple(self.trans_logits.shape)}"
            )
        y, lengths, _ = self._check_inputs(y, lengths)
        if int(lengths.sum()) == 0:
            raise ValueError(f"y: expected at least one observed step to fit, got shape {tuple(y.shape)}")
        check_positive("max_iter", max_iter, integer=True)
        check_positive("batch_size", batch_size, integer=True)
        check_number("tol", tol)
        check_non_negative("pseudocount", pseudocount)
        check_non_negative("reg_covar", reg_covar)
        check_positive("lr", lr)
        if method == "em":
            return fit_em(
                self, y, lengths, max_iter, tol, batch_size, pseudocount, reg_covar, callback, show_progress
            )
        if method == "gradient":
            return fit_gradient(
                self, y, lengths, max_iter, tol, batch_size, lr, parameters, callback, show_progress
            )
        raise ValueError(f"method: expected 'em' or 'gradient', got {method!r}")


@contextlib.contextmanager
def _seeded(generator: torch.Generator | None):
    """Draws from torch's global generator, made a function of ``generator``: the global state is forked
    (and restored after) and seeded by a number drawn from it."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    devices = [generator.device.index or 0] if generator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
