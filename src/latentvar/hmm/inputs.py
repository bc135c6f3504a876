"""The inputs of an HMM: observations y and their lengths, checked, broadcast against the models' batch and
flattened to (b, t, *event) for the engine; which steps are observed (missing observations emit nothing) and
per-step state constraints (partial labels, masks or log priors). A bad input raises a ValueError that names
the argument.

Shapes (named axes): b sequences (flattened batch), t steps, k states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributions as D
from torch import Tensor
from torch.distributions import constraints as support_kinds

from latentvar._checks import (
    as_tensor,
    check_finite,
    check_integer,
    check_lengths,
    check_range,
    check_support,
)


def is_categorical(dist) -> bool:
    return isinstance(dist, D.Categorical) and not isinstance(dist, D.OneHotCategorical)


@dataclass
class Inputs:
    """Checked inputs over the flat batch. ``shape``: the batch shape b flattens, () for one unbatched
    (t, *event) sequence. ``observed`` (b, t) bool, False where a step emits nothing (None: all observed);
    ``prior`` (b, t, k) log-potentials added to the emission log-likelihoods (None: no constraints)."""

    y: Tensor
    lengths: Tensor
    shape: torch.Size
    observed: Tensor | None = None
    prior: Tensor | None = None

    def adjust(self, e: Tensor, t0: int = 0) -> Tensor:
        """Emission log-likelihoods (b, c, k) of steps t0.. with missing steps at 0 and the prior added."""
        t1 = t0 + e.shape[1]
        if self.observed is not None:
            e = torch.where(self.observed[:, t0:t1, None], e, torch.zeros_like(e))
        if self.prior is not None:
            e = e + self.prior[:, t0:t1].to(e.dtype)
        return e


def check_inputs(model, y, lengths) -> tuple[Tensor, Tensor, torch.Size]:
    """y as a flat (b, t, *event) tensor (a single (t, *event) sequence of one model gets b = 1 and the
    batch shape ()), lengths (b,), and the batch shape b came from (broadcast of y's leading axes and the
    models')."""
    inputs = prepare(model, y, lengths)
    return inputs.y, inputs.lengths, inputs.shape


def prepare(model, y, lengths, observed=None, constraints=None) -> Inputs:
    """Check and flatten y, lengths, ``observed`` ((..., t) bool, or "nan": a step holding NaN emits
    nothing) and ``constraints`` ((..., t) long state labels, -1 unlabelled; (..., t, k) bool allowed
    states; or (..., t, k) float log priors, -inf forbidding a state)."""
    y = as_tensor("y", y)
    ev = len(model.event_shape)
    event = ", ".join(map(str, model.event_shape))
    single = not model.batch_shape and y.dim() == 1 + ev
    if single:
        y = y.unsqueeze(0)
    if (
        y.dim() < 1 + ev
        or (not model.batch_shape and y.dim() != 2 + ev)
        or y.shape[y.dim() - ev :] != (model.event_shape)
    ):
        raise ValueError(
            f"y: expected shape (B, T{', ' if ev else ''}{event}) -- B sequences of T steps -- "
            f"got {tuple(y.shape)}"
        )
    T = y.shape[-1 - ev]
    if model.num_steps is not None and T > model.num_steps:
        raise ValueError(
            f"y: expected at most {model.num_steps} steps (the time axis of trans_logits), got {T}"
        )
    if model.batch_shape:
        try:
            shape = torch.broadcast_shapes(y.shape[: y.dim() - 1 - ev], model.batch_shape)
        except RuntimeError:
            raise ValueError(
                f"y: expected leading axes broadcasting with the models' batch_shape "
                f"{tuple(model.batch_shape)}, got shape {tuple(y.shape)}"
            ) from None
        step_shape = y.shape[y.dim() - 1 - ev :]
        y = y.expand(*shape, *step_shape).reshape(math.prod(shape), *step_shape)
    else:  # one model: y is (b, t, *event) already
        shape = y.shape[:1]
    b = y.shape[0]
    given, lengths = lengths, _lengths(lengths, shape, single, b, T, y.device)
    if single:
        shape = torch.Size()
    mask = _observed(observed, y, ev, shape, b, T)
    prior = _constraints(constraints, shape, b, T, model.num_states, y.device)
    # no padding, nothing missing: y as it is
    full = mask is None and (given is None or bool((lengths == T).all()))
    valid = None
    if not full:
        valid = torch.arange(T, device=y.device) < lengths.unsqueeze(-1)  # (b, t)
        valid = valid if mask is None else valid & mask
        full = bool(valid.all())
    seen = y if full else y[valid]
    if torch.is_floating_point(y):
        check_finite("y", seen)
    if isinstance(model.emission, D.Distribution):
        if is_categorical(model.emission):
            check_integer("y", y)
            check_range("y", seen, 0, model.emission.logits.shape[-1])
        elif model.emission.batch_shape == (model.num_states,) and not _real(model.emission.support):
            check_support("y", model.emission, seen.reshape(-1, *y.shape[2:]).unsqueeze(1))
        y = y if full else fill_padding(y, valid)
    return Inputs(y, lengths, shape, mask, prior)


def _real(support) -> bool:
    """Every finite value lies in it (checked above): no support check needed."""
    if isinstance(support, support_kinds.independent):
        support = support.base_constraint
    return support is support_kinds.real


def _lengths(lengths, shape, single, b, T, device) -> Tensor:
    if lengths is None:
        return torch.full((b,), T, dtype=torch.long, device=device)
    if single:  # one sequence: a number, or one length in a (1,) tensor
        lengths = check_integer("lengths", as_tensor("lengths", lengths))
        lengths = lengths.reshape(-1) if lengths.numel() == 1 else lengths
        return check_lengths("lengths", lengths, 1, T).long().to(device)
    if len(shape) == 1:
        return check_lengths("lengths", lengths, b, T).long().to(device)
    lengths = check_integer("lengths", as_tensor("lengths", lengths))
    try:
        lengths = lengths.expand(shape)
    except RuntimeError:
        raise ValueError(
            f"lengths: expected a shape broadcasting to {tuple(shape)}, got {tuple(lengths.shape)}"
        ) from None
    return check_lengths("lengths", lengths.reshape(-1), b, T).long().to(device)


def _flat(name: str, x: Tensor, shape: torch.Size, b: int, tail: tuple) -> Tensor:
    """x broadcast to (*shape, *tail) and flattened to (b, *tail)."""
    try:
        return x.expand(*shape, *tail).reshape(b, *tail)
    except RuntimeError:
        want = ", ".join(map(str, (*shape, *tail)))
        raise ValueError(f"{name}: expected a shape broadcasting to ({want}), got {tuple(x.shape)}") from None


def _observed(observed, y: Tensor, ev: int, shape, b: int, T: int) -> Tensor | None:
    if observed is None:
        return None
    if isinstance(observed, str):
        if observed != "nan":
            raise ValueError(f"observed: expected a bool tensor (..., t) or 'nan', got {observed!r}")
        if not torch.is_floating_point(y):
            return None  # integer observations hold no NaN
        return ~torch.isnan(y).reshape(b, T, -1).any(-1)
    observed = as_tensor("observed", observed).to(y.device)
    if observed.dtype != torch.bool:
        raise ValueError(
            f"observed: expected a bool tensor (True where y_t is observed), got {observed.dtype}"
        )
    return _flat("observed", observed, shape, b, (T,))


def _constraints(constraints, shape, b: int, T: int, k: int, device) -> Tensor | None:
    """(b, t, k) log-potentials: 0 where a state is allowed, -inf where it is not, or the given log prior."""
    if constraints is None:
        return None
    c = as_tensor("constraints", constraints).to(device)
    if c.dtype == torch.bool:
        c = _flat("constraints", c, shape, b, (T, k))
        return torch.zeros(c.shape, dtype=torch.float64, device=device).masked_fill(~c, -torch.inf)
    if torch.is_floating_point(c):
        check_finite("constraints", c, allow_neg_inf=True)
        return _flat("constraints", c, shape, b, (T, k))
    c = _flat("constraints", check_integer("constraints", c), shape, b, (T,))
    check_range("constraints", c[c != -1], 0, k)
    onehot = torch.nn.functional.one_hot(c.clamp_min(0), k).bool() | (c == -1).unsqueeze(-1)
    return torch.zeros(b, T, k, dtype=torch.float64, device=device).masked_fill(~onehot, -torch.inf)


def fill_padding(y: Tensor, valid: Tensor) -> Tensor:
    """Padding may hold anything (-1, NaN): replace it by a valid observation so emissions stay finite."""
    if bool(valid.all()) or not bool(valid.any()):
        return y if bool(valid.any()) else torch.zeros_like(y)
    filler = y[valid][0]
    mask = valid.view(*valid.shape, *([1] * (y.dim() - 2)))
    return torch.where(mask, y, filler)
