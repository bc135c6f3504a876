"""Direct compiled routes for small problems (issue 21: a few thousand steps, a few states, where the fixed
cost of each tensor operation and object dominates): `HMM.log_prob`, `HMM.posterior`'s marginals and mode
and Baum-Welch's E-step of a *plain* model -- one model with shared (k, k) transitions, no end states, a
float64 CPU ``Normal`` / ``Independent(Normal)`` emission, inputs without missing steps or constraints, no
gradient -- call the lane kernels of `latentvar.hmm._small_numba` on NumPy arrays, with no `Chain`, no
tensors in between and the per-model constants cached. Anything else returns None and the general path
answers; so does a sequence whose scaled weights underflowed (it needs the log-space recursion).

Every route gives the numbers of the general path (the same emission table and weights; sums over states in
the same order) up to the order of sums over sequences and steps; tests/test_hmm_small_lanes.py compares
them. ``fast_emission.COMPILED = False`` turns these routes off with the compiled emission table.

Shapes (named axes): b sequences, t steps, k states, d event values.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributions as D
from torch import Tensor

from latentvar.hmm import fast_emission
from latentvar.inference import Chain

# model -> (its parameter tensors and emission, their version counters and data pointers, `Constants` or
# None): recomputed when a parameter is replaced, changed in place (its version counter moves) or given new
# storage (.data =)
_CONSTANTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class Constants:
    """A model's per-call constants: the scaled transitions A' = exp(log A − column maxima) (k, k), those
    maxima (k,), log π (k,) and log A (k, k) as NumPy, log π, log A as tensors (for a `Chain`), and the
    emission's loc and scale (k, d) as NumPy (copies)."""

    trans_p: np.ndarray
    col_max: np.ndarray
    log_init: np.ndarray
    log_trans: np.ndarray
    log_init_t: Tensor
    log_trans_t: Tensor
    loc: np.ndarray
    scale: np.ndarray


@dataclass
class Plain:
    """A plain model's checked inputs as the routes need them, copied (a snapshot, as the general path's
    emission table is): y as yt (t, d, b) (`latentvar.hmm._small_numba.lanes`), the emission's loc and
    scale (k, d), lengths (b,) int64 (and as the tensor), the model's `Constants`."""

    yt: np.ndarray
    loc: np.ndarray
    scale: np.ndarray
    lengths: np.ndarray
    lengths_t: Tensor
    constants: Constants

    def chain(self) -> Chain:
        """The `Chain` the general path builds of these inputs (``HMM._chain``)."""
        from latentvar.hmm._gaussian_numba import gaussian_table

        c = self.constants
        y = np.ascontiguousarray(self.yt.transpose(2, 0, 1))
        e = torch.from_numpy(gaussian_table(y, self.loc, self.scale))
        return Chain(c.log_init_t.clone(), c.log_trans_t.clone(), e, self.lengths_t)


def _key(model) -> tuple:
    """What the cached constants depend on: the parameter tensors and emission (by identity), and the
    version counters and storage of the tensors (moved by in-place writes and ``.data =``)."""
    em = model.emission
    base = em.base_dist if type(em) is D.Independent else em
    tensors = (
        model.init_logits,
        model.trans_logits,
        getattr(base, "loc", None),
        getattr(base, "scale", None),
    )
    return (em, base, *tensors), [(x._version, x.data_ptr()) for x in tensors if torch.is_tensor(x)]


def gaussian_model(model) -> Constants | None:
    """The `Constants` of a plain model -- an `HMM` (not a subclass), one model, shared (k, k) transitions,
    no end states, float64
    CPU parameters, a ``Normal`` / ``Independent(Normal)`` emission of batch shape (k,) with finite means
    and scales whose log and 1/(2σ²) are finite -- cached per model (weakly keyed); None for any other."""
    if not (
        fast_emission.COMPILED
        and model.final_logits is None
        and not model.batch_shape
        and model.trans_logits.dim() == 2
        and isinstance(model.emission, D.Distribution)
    ):
        return None
    objects, versions = _key(model)
    cached = _CONSTANTS.get(model)
    if (
        cached is not None
        and cached[1] == versions
        and all(a is b for a, b in zip(cached[0], objects, strict=True))
    ):
        return cached[2]
    found = _constants(model)
    _CONSTANTS[model] = objects, versions, found
    return found


def _constants(model) -> Constants | None:
    from latentvar.hmm.model import HMM
    from latentvar.inference._compiled import scaled_transitions

    if type(model) is not HMM:  # a subclass may redefine its emissions or potentials
        return None
    em, k = model.emission, model.num_states
    gaussian = fast_emission.gaussian_parts(em) if em.batch_shape == (k,) else None
    params = (model.init_logits, model.trans_logits)
    if gaussian is None or not all(x.dtype == torch.float64 and x.device.type == "cpu" for x in params):
        return None
    loc, scale = gaussian[0].loc.detach(), gaussian[0].scale.detach()
    if not all(x.dtype == torch.float64 and x.device.type == "cpu" for x in (loc, scale)):
        return None
    loc, scale = fast_emission.as_numpy(loc, (k,)).copy(), fast_emission.as_numpy(scale, (k,)).copy()
    # a finite table: finite means, scales whose -1/(2σ²) and log σ are finite (y is checked finite)
    if not (np.isfinite(loc).all() and (scale > 1e-150).all() and (scale < 1e300).all()):
        return None
    with torch.no_grad():
        log_init, log_trans = model.log_init.detach(), model.log_trans.detach()
        trans_p, col_max = scaled_transitions(log_trans)
    li, lt = log_init.numpy().reshape(k), log_trans.numpy()
    return Constants(trans_p, col_max.numpy(), li, lt, log_init, log_trans, loc, scale)


MAX_CELLS = 2**23  # (t, k, b) float64 cells per table (64 MiB); larger problems take the chunked general path


def _fits(model, y: Tensor) -> bool:
    """y's tables fit the routes: within `MAX_CELLS` (they hold whole (t, k, b) tables in memory), and
    small when torch runs several threads (larger problems gain from the general path's threads)."""
    cells = y.numel() * model.num_states
    return cells <= MAX_CELLS and not (torch.get_num_threads() > 1 and cells > 2**16)


def _no_gradient(model, y: Tensor) -> bool:
    """No gradient is asked for: grad mode off, or neither y nor a parameter needs one."""
    if not torch.is_grad_enabled():
        return True
    em = model.emission
    base = em.base_dist if type(em) is D.Independent else em
    return not any(x.requires_grad for x in (model.init_logits, model.trans_logits, base.loc, base.scale, y))


def _applies(model, inputs) -> Constants | None:
    """The model's `Constants` where the routes apply to the model and inputs (nothing missing, no
    constraints, float64 CPU y, no gradient asked for), else None."""
    y = inputs.y
    if (
        inputs.observed is not None
        or inputs.prior is not None
        or y.dtype != torch.float64
        or y.device.type != "cpu"
        or y.dim() < 2
        or not _fits(model, y)
    ):
        return None
    found = gaussian_model(model)
    return found if found is not None and _no_gradient(model, y) else None


def plain(model, inputs) -> Plain | None:
    """The `Plain` view of a plain model's checked inputs, None where the routes do not apply."""
    found = _applies(model, inputs)
    if found is None:
        return None
    from latentvar.hmm import _small_numba

    yt = _small_numba.lanes(fast_emission.as_numpy(inputs.y, inputs.y.shape[:2]))
    lengths = inputs.lengths.numpy()
    lengths = lengths if lengths.flags.c_contiguous else lengths.copy()
    return Plain(yt, found.loc, found.scale, lengths, inputs.lengths, found)


def direct(model, y, lengths=None, observed=None, constraints=None) -> Plain | None:
    """The `Plain` view straight from the caller's arguments, before `latentvar.hmm.inputs.prepare`, in
    the one case that needs none of its work: a plain model, y a non-empty float64 CPU tensor (b, t, *event)
    of finite values, no ``lengths`` (every sequence t steps), nothing missing, no constraints, no gradient.
    The same `Plain` as ``plain(model, prepare(model, y))``, with a fraction of the fixed cost (on small
    problems, most of a call's time); None otherwise, and ``prepare`` then checks y and names what is wrong."""
    if (
        lengths is not None
        or observed is not None
        or constraints is not None
        or type(y) is not Tensor
        or y.dtype != torch.float64
        or y.device.type != "cpu"
        or y.requires_grad
    ):
        return None
    found = gaussian_model(model)
    event = model.emission.event_shape if found is not None else None
    if (
        found is None
        or y.dim() != 2 + len(event)
        or y.shape[2:] != event
        or y.numel() == 0
        or not _fits(model, y)
        or not _no_gradient(model, y)
    ):
        return None
    from latentvar.hmm import _small_numba

    yt, finite = _small_numba.lanes_checked(fast_emission.as_numpy(y, y.shape[:2]))
    if not finite:
        return None
    b, t = y.shape[:2]
    lengths = np.full(b, t, dtype=np.int64)
    return Plain(yt, found.loc, found.scale, lengths, torch.from_numpy(lengths), found)


def _weights(p: Plain) -> tuple[np.ndarray, np.ndarray]:
    """The scaled kernels' weights w (t, k, b) and tops (t, b)."""
    from latentvar.hmm import _small_numba

    c = p.constants
    w, tops = _small_numba.gaussian_weights(p.yt, p.loc, p.scale, c.log_init, c.col_max)
    return np.exp(w, out=w), tops


def log_prob(model, inputs=None, p: Plain | None = None) -> Tensor | None:
    """log P(y) (b,) of a plain model for checked ``inputs`` (or their `Plain` view ``p``), None where the
    general path must answer."""
    p = plain(model, inputs) if p is None else p
    if p is None:
        return None
    from latentvar.hmm import _small_numba

    w, tops = _weights(p)
    loglik, ok = _small_numba.forward(p.constants.trans_p, w, tops, p.lengths)
    return torch.from_numpy(loglik) if ok.all() else None


def marginals(p: Plain) -> Tensor | None:
    """P(z_t = k | y) (b, t, k), zero past each length; None where the log-space recursion must answer."""
    from latentvar.hmm import _small_numba

    w, tops = _weights(p)
    out = _small_numba.forward_backward(
        p.constants.trans_p, w, tops, p.lengths, p.yt, np.zeros(1), True, False
    )
    return torch.from_numpy(out[0]) if out[2].all() else None


def mode(p: Plain) -> Tensor:
    """The Viterbi path (b, t), -1 past each length."""
    from latentvar.hmm import _small_numba

    c = p.constants
    return torch.from_numpy(_small_numba.viterbi(c.log_init, c.log_trans, p.yt, p.loc, p.scale, p.lengths))


def expected_statistics(p: Plain, shift: np.ndarray) -> tuple | None:
    """Baum-Welch's E-step of a plain model with a Gaussian emission: (Σ_b log P(y_b), initial counts (k,),
    transition counts (k, k), Σ γ (k,), Σ γ (y − shift) (k, d), Σ γ (y − shift)² (k, d)) as NumPy, for
    the shift (d,); None where the log-space recursion must answer."""
    from latentvar.hmm import _small_numba

    w, tops = _weights(p)
    out = _small_numba.forward_backward(p.constants.trans_p, w, tops, p.lengths, p.yt, shift, False, True)
    _, loglik, ok, init_c, trans_c, n, sy, syy = out
    if not ok.all():
        return None
    return float(loglik.sum()), init_c, trans_c, n, sy, syy
