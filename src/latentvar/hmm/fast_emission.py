"""Per-state Gaussian log-likelihoods with fewer tensor operations than `torch.distributions`.

``Normal.log_prob`` builds log N(y | μ, σ²) = −(y − μ)²/(2σ²) − log σ − ½ log 2π from six full-size
operations, after validating the sample; an HMM's y was already checked (`latentvar.hmm.inputs`), and on
small problems (a few thousand steps, a few states) each operation's fixed cost dominates. Here the
per-state constants a = −1/(2σ²) and c = −log σ − ½ log 2π are formed on the (k, ...) parameters and the
table is (y − μ)² · a + c: three full-size operations (one fused multiply-add), plus the sum over the event
axes of an `Independent` -- the same quantity, equal to ``log_prob`` up to rounding (a few ulp).

Float64 CPU tensors that need no gradient take one compiled loop instead (`latentvar.hmm._gaussian_numba`),
the same formula; ``COMPILED = False`` turns it off, and with it the direct routes of `latentvar.hmm.small`
and `latentvar.hmm.small_fit` (the tests compare both).

Shapes (named axes): b sequences, t steps, k states, d event.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributions as D
from torch import Tensor

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
COMPILED = True  # False: the tensor form, and none of `latentvar.hmm.small`'s direct routes


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
    if compilable(loc, scale, y):
        from latentvar.hmm._gaussian_numba import gaussian_table as compiled

        k = loc.shape[0]
        out = compiled(as_numpy(y, y.shape[:2]), as_numpy(loc, (k,)), as_numpy(scale, (k,)))
        return torch.from_numpy(out)
    a = -0.5 / scale.square()
    c = -scale.log() - _HALF_LOG_2PI
    lp = torch.addcmul(c, (y.unsqueeze(y.dim() - events) - loc).square(), a)
    return lp.sum(tuple(range(-events, 0))) if events else lp


def compilable(loc: Tensor, scale: Tensor, y: Tensor) -> bool:
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
    direct compiled route of `latentvar.hmm.small` (no Chain or tensor operations in between, the same
    numbers). None where it does not apply or a sequence needs the general path (a step whose weights
    underflowed)."""
    from latentvar.hmm import small

    return small.log_prob(model, inputs)


def as_numpy(x: Tensor, lead: tuple) -> np.ndarray:
    """x (*lead, ...) as a C-contiguous (*lead, d) NumPy view (a copy only if x is strided)."""
    x = x.detach()
    x = x if x.is_contiguous() else x.contiguous()
    return x.numpy().reshape(*lead, math.prod(x.shape[len(lead) :])) if lead else x.numpy()
