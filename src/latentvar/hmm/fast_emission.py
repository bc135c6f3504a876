"""Per-state Gaussian log-likelihoods with fewer tensor operations than `torch.distributions`.

``Normal.log_prob`` builds log N(y | μ, σ²) = −(y − μ)²/(2σ²) − log σ − ½ log 2π from six full-size
operations, after validating the sample; an HMM's y was already checked (`latentvar.hmm.inputs`), and on
small problems (a few thousand steps, a few states) each operation's fixed cost dominates. Here the
per-state constants a = −1/(2σ²) and c = −log σ − ½ log 2π are formed on the (k, ...) parameters and the
table is (y − μ)² · a + c: three full-size operations (one fused multiply-add), plus the sum over the event
axes of an `Independent` -- the same quantity, equal to ``log_prob`` up to rounding (a few ulp).

Float64 CPU tensors that need no gradient take one compiled loop instead (`latentvar.hmm._gaussian_numba`),
the same formula; ``COMPILED = False`` turns it off (the tests compare both).

Shapes (named axes): b sequences, t steps, k states, d event.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch
import torch.distributions as D
from torch import Tensor

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
COMPILED = True
# model -> (its start and transition logits, their version counters and data pointers, the scaled
# transitions, their column maxima, log π): the per-model constants of `gaussian_log_prob`, recomputed when
# a parameter is replaced, changed in place (its version counter moves) or given new storage (.data =)
_CONSTANTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def gaussian_parts(em) -> tuple[D.Normal, int] | None:
    """(the Normal, its number of event axes) for a plain ``Normal`` or ``Independent(Normal)`` (exact
    classes: a subclass may define its own log_prob), else None."""
    if type(em) is D.Normal:
        return em, 0
    if type(em) is D.Independent and type(em.base_dist) is D.Normal:
        return em.base_dist, em.reinterpreted_batch_ndims
    return None


def gaussian_table(normal: D.Normal, events: int, y: Tensor) -> Tensor:
    """log P(y_t | z_t = k) (b, t, k) for y (b, t, *event), the Normal's batch shape (k, *event)."""
    loc, scale = normal.loc, normal.scale
    if _compilable(loc, scale, y):
        from latentvar.hmm._gaussian_numba import gaussian_table as compiled

        k = loc.shape[0]
        out = compiled(_np(y, y.shape[:2]), _np(loc, (k,)), _np(scale, (k,)))
        return torch.from_numpy(out)
    a = -0.5 / scale.square()
    c = -scale.log() - _HALF_LOG_2PI
    lp = torch.addcmul(c, (y.unsqueeze(y.dim() - events) - loc).square(), a)
    return lp.sum(tuple(range(-events, 0))) if events else lp


def _compilable(loc: Tensor, scale: Tensor, y: Tensor) -> bool:
    """float64 CPU tensors, none of them needing a gradient, y of shape (b, t, *event)."""
    tensors = (loc, scale, y)
    return (
        COMPILED
        and all(x.dtype == torch.float64 and x.device.type == "cpu" for x in tensors)
        and not (torch.is_grad_enabled() and any(x.requires_grad for x in tensors))
        and y.dim() >= 2
    )


def gaussian_log_prob(model, inputs) -> Tensor | None:
    """log P(y) (b,) of a plain one-model HMM (shared (k, k) transitions, no end states) with a float64
    Gaussian emission, for checked inputs without missing steps or constraints, needing no gradient: the
    compiled kernels of `latentvar.inference._compiled.forward` called directly, no Chain or tensor
    operations in between (the same numbers). Single-threaded: with several torch threads only for small
    inputs. None where it
    does not apply or a sequence needs the general path (a step whose weights underflowed)."""
    em, y = model.emission, inputs.y
    if not (
        COMPILED
        and inputs.observed is None
        and inputs.prior is None
        and model.final_logits is None
        and not model.batch_shape
        and model.trans_logits.dim() == 2
        and isinstance(em, D.Distribution)
        and em.batch_shape == (model.num_states,)
        and (torch.get_num_threads() == 1 or y.numel() * model.num_states <= 2**16)
    ):
        return None
    gaussian = gaussian_parts(em)
    if gaussian is None:
        return None
    loc, scale = gaussian[0].loc, gaussian[0].scale
    params = (model.init_logits, model.trans_logits)
    if not _compilable(loc, scale, y) or not all(
        x.dtype == torch.float64 and x.device.type == "cpu" for x in params
    ):
        return None
    if torch.is_grad_enabled() and any(x.requires_grad for x in params):
        return None
    from latentvar.hmm._gaussian_numba import gaussian_table as compiled
    from latentvar.inference._compiled import kernels, scaled_transitions

    k, b = model.num_states, y.shape[0]
    key = [(x._version, x.data_ptr()) for x in (model.init_logits, model.trans_logits)]
    cached = _CONSTANTS.get(model)
    if (
        cached is None
        or cached[0][0] is not model.init_logits
        or cached[0][1] is not model.trans_logits
        or cached[1] != key
    ):
        trans_p, col_max = scaled_transitions(model.log_trans)
        params = (model.init_logits, model.trans_logits)
        cached = params, key, trans_p, col_max.numpy(), _np(model.log_init, ()).reshape(1, k)
        _CONSTANTS[model] = cached
    _, _, trans_p, col_max, log_init = cached
    e = compiled(_np(y, y.shape[:2]), _np(loc, (k,)), _np(scale, (k,)))
    probs, tops = kernels.step_weights(e, log_init, col_max, True)
    alpha, loglik, ok = np.zeros((b, k)), np.zeros(b), np.ones(b, dtype=bool)
    kernels.forward_chunk(trans_p, probs, tops, inputs.lengths.numpy(), 0, alpha, loglik, ok)
    return torch.from_numpy(loglik) if ok.all() else None


def _np(x: Tensor, lead: tuple) -> np.ndarray:
    """x (*lead, ...) as a C-contiguous (*lead, d) NumPy view (a copy only if x is strided)."""
    x = x.detach()
    x = x if x.is_contiguous() else x.contiguous()
    return x.numpy().reshape(*lead, math.prod(x.shape[len(lead) :])) if lead else x.numpy()
