"""The inputs of an HMM: observations y and their lengths, checked, broadcast against the models' batch and
flattened to (b, t, *event) for the engine. A bad input raises a ValueError that names the argument."""

from __future__ import annotations

import math

import torch
import torch.distributions as D
from torch import Tensor

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


def check_inputs(model, y, lengths) -> tuple[Tensor, Tensor, torch.Size]:
    """y as a flat (b, t, *event) tensor (a single (t, *event) sequence of one model gets b = 1),
    lengths (b,), and the batch shape b came from (broadcast of y's leading axes and the models')."""
    y = as_tensor("y", y)
    ev = len(model.event_shape)
    event = ", ".join(map(str, model.event_shape))
    if not model.batch_shape and y.dim() == 1 + ev:
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
    try:
        shape = torch.broadcast_shapes(y.shape[: y.dim() - 1 - ev], model.batch_shape)
    except RuntimeError:
        raise ValueError(
            f"y: expected leading axes broadcasting with the models' batch_shape "
            f"{tuple(model.batch_shape)}, got shape {tuple(y.shape)}"
        ) from None
    step_shape = y.shape[y.dim() - 1 - ev :]
    y = y.expand(*shape, *step_shape).reshape(math.prod(shape), *step_shape)
    b = y.shape[0]
    if lengths is None:
        lengths = torch.full((b,), T, dtype=torch.long, device=y.device)
    elif len(shape) == 1:
        lengths = check_lengths("lengths", lengths, b, T).long().to(y.device)
    else:
        lengths = check_integer("lengths", as_tensor("lengths", lengths))
        try:
            lengths = lengths.expand(shape)
        except RuntimeError:
            raise ValueError(
                f"lengths: expected a shape broadcasting to {tuple(shape)}, got {tuple(lengths.shape)}"
            ) from None
        lengths = check_lengths("lengths", lengths.reshape(-1), b, T).long().to(y.device)
    full = bool((lengths == T).all())  # no padding: check y as it is, without a mask
    valid = None if full else torch.arange(T, device=y.device) < lengths.unsqueeze(-1)  # (b, t)
    observed = y if full else y[valid]
    if torch.is_floating_point(y):
        check_finite("y", observed)
    if isinstance(model.emission, D.Distribution):
        if is_categorical(model.emission):
            check_integer("y", y)
            check_range("y", observed, 0, model.emission.logits.shape[-1])
        elif model.emission.batch_shape == (model.num_states,):
            check_support("y", model.emission, observed.reshape(-1, *y.shape[2:]).unsqueeze(1))
        y = y if full else fill_padding(y, valid)
    return y, lengths, shape


def fill_padding(y: Tensor, valid: Tensor) -> Tensor:
    """Padding may hold anything (-1, NaN): replace it by a valid observation so emissions stay finite."""
    if bool(valid.all()) or not bool(valid.any()):
        return y if bool(valid.any()) else torch.zeros_like(y)
    filler = y[valid][0]
    mask = valid.view(*valid.shape, *([1] * (y.dim() - 2)))
    return torch.where(mask, y, filler)
