"""Argument checks of the CTC model and loss: a bad input raises a ValueError naming the argument."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from latentvar._checks import as_tensor, check_finite, check_integer, check_lengths, check_ndim
from latentvar.ctc.decode import Labels


def check_log_probs(log_probs, input_lengths, time_first: bool = False) -> tuple[Tensor, Tensor]:
    """(b, t, c) log-probabilities and (b,) lengths. Frames past each input length are padding, ignored as
    torch and TensorFlow ignore them: NaN or +-inf there is accepted and replaced by 0 (the returned tensor
    is then a copy, differentiable with respect to the frames in use). A 0-d length is accepted for a batch
    of one, as torch accepts it."""
    log_probs = as_tensor("log_probs", log_probs)
    axes = "t, b, c" if time_first else "b, t, c"
    check_ndim("log_probs", log_probs, 3, axes)
    if not torch.is_floating_point(log_probs):
        raise ValueError(f"log_probs: expected a floating-point tensor, got dtype {log_probs.dtype}")
    if time_first:
        log_probs = log_probs.transpose(0, 1)
    b, t_max, c = log_probs.shape
    if c < 1:
        raise ValueError(
            f"log_probs: expected at least one class (the blank), got shape {tuple(log_probs.shape)}"
        )
    input_lengths = check_lengths("input_lengths", one_per_sequence(input_lengths, b), b, t_max)
    input_lengths = input_lengths.to(log_probs.device, torch.long)
    valid = (torch.arange(t_max, device=log_probs.device) < input_lengths[:, None])[..., None]
    detached = log_probs.detach()
    finite = torch.isfinite(detached)
    if not bool(finite.all()):
        check_finite("log_probs", torch.where(valid, detached, 0.0), allow_neg_inf=True)
        if not bool((finite | valid).all()):  # non-finite padding: ignored, so never a NaN downstream
            log_probs = torch.where(valid, log_probs, torch.zeros((), dtype=log_probs.dtype))
    _warn_unless_normalised(log_probs.detach(), input_lengths)
    return log_probs, input_lengths


def one_per_sequence(lengths, batch: int):
    """A 0-d length for a batch of one as shape (1,) (torch.nn.functional.ctc_loss accepts it)."""
    if batch == 1 and isinstance(lengths, Tensor) and lengths.dim() == 0:
        return lengths.reshape(1)
    return lengths


def _warn_unless_normalised(log_probs: Tensor, input_lengths: Tensor) -> None:
    valid = torch.arange(log_probs.shape[1], device=log_probs.device) < input_lengths[:, None]
    total = log_probs.logsumexp(-1)[valid]
    tol = 1e-3 if log_probs.dtype != torch.float16 else 1e-2
    if total.numel() and float((total.abs()).max()) > tol:
        warnings.warn(
            f"log_probs: expected log-probabilities normalised over the classes (logsumexp over the last "
            f"axis = 0, e.g. from log_softmax), got logsumexp up to {float(total.abs().max()):.3g} away "
            "from 0; log P(y|x) is then not a probability",
            stacklevel=3,
        )


def check_blank(blank, num_classes: int) -> int:
    """The blank's class index in [0, C): a negative index counts from the end, as in Python and
    TensorFlow's ``blank_index`` (-1 is the last class; torch's ctc_loss accepts only [0, C))."""
    if isinstance(blank, bool) or not isinstance(blank, int) or not -num_classes <= blank < num_classes:
        raise ValueError(
            f"blank: expected an integer class index in [0, {num_classes - 1}] (or -{num_classes}..-1 from "
            f"the end), got {blank!r}"
        )
    return blank % num_classes


def check_targets(
    targets,
    target_lengths,
    batch: int,
    t_max: int,
    num_classes: int,
    blank: int,
    device,
    longer_than_input: bool = False,
):
    """Padded (b, l) targets and lengths (b,), from padded (b, l) or concatenated 1-D targets (as torch).
    ``target_lengths`` may be None for padded targets (lengths = entries >= 0) or `Labels`; a 0-d length
    is accepted for a batch of one. ``longer_than_input``: accept targets longer than the t frames (they
    cannot fit: log P(y|x) = -inf, as torch's ctc_loss returns inf for them) instead of refusing them."""
    if isinstance(targets, Labels) and target_lengths is None:
        targets, target_lengths = targets
    targets = check_integer("targets", as_tensor("targets", targets)).to(device, torch.long)
    if target_lengths is None:
        if targets.dim() != 2:
            raise ValueError(
                "target_lengths: required with 1-D concatenated targets, "
                f"got targets of shape {tuple(targets.shape)}"
            )
        target_lengths = (targets >= 0).sum(-1)
    target_lengths = as_tensor("target_lengths", one_per_sequence(target_lengths, batch))
    target_lengths = check_integer("target_lengths", target_lengths).to(device, torch.long)
    if target_lengths.shape != (batch,):
        raise ValueError(
            f"target_lengths: expected shape ({batch},), one length per sequence of log_probs, "
            f"got {tuple(target_lengths.shape)}"
        )
    if batch and int(target_lengths.min()) < 0:
        raise ValueError(f"target_lengths: expected non-negative lengths, got {int(target_lengths.min())}")
    if batch and not longer_than_input and int(target_lengths.max()) > t_max:
        raise ValueError(
            f"target_lengths: expected lengths <= {t_max} (the frames of log_probs), "
            f"got {int(target_lengths.max())}"
        )
    if targets.dim() == 1:
        total = int(target_lengths.sum())
        if targets.numel() != total:
            raise ValueError(
                f"targets: expected 1-D concatenated targets of sum(target_lengths) = {total} labels, "
                f"got {targets.numel()}"
            )
        targets = _pad_concatenated(targets, target_lengths)
    elif targets.dim() == 2:
        if targets.shape[0] != batch:
            raise ValueError(
                f"targets: expected {batch} rows (the batch of log_probs), got shape {tuple(targets.shape)}"
            )
        if batch and int(target_lengths.max()) > targets.shape[1]:
            raise ValueError(
                f"target_lengths: expected lengths <= {targets.shape[1]} (the padded width of targets), "
                f"got {int(target_lengths.max())}"
            )
    else:
        raise ValueError(
            f"targets: expected (b, l) padded or 1-D concatenated labels, got shape {tuple(targets.shape)}"
        )
    width = int(target_lengths.max()) if batch else 0
    targets = targets[:, :width]
    within = torch.arange(width, device=device) < target_lengths[:, None]
    used = targets[within]
    if used.numel() and (int(used.min()) < 0 or int(used.max()) >= num_classes):
        raise ValueError(
            f"targets: expected labels in [0, {num_classes - 1}] (the classes of log_probs), "
            f"got values in [{int(used.min())}, {int(used.max())}]"
        )
    if bool((used == blank).any()):
        raise ValueError(
            f"targets: expected no blank (class {blank}) within the target lengths, "
            f"got {int((used == blank).sum())}"
        )
    return torch.where(within, targets, blank), target_lengths


def _pad_concatenated(flat: Tensor, lengths: Tensor) -> Tensor:
    width = int(lengths.max()) if lengths.numel() else 0
    starts = torch.cumsum(lengths, 0) - lengths
    index = starts[:, None] + torch.arange(width, device=flat.device)
    within = torch.arange(width, device=flat.device) < lengths[:, None]
    if flat.numel() == 0:
        return torch.zeros(lengths.shape[0], width, dtype=torch.long, device=flat.device)
    return torch.where(within, flat[index.clamp(max=flat.numel() - 1)], 0)
