"""log P(y|x): the lattice chain of `latentvar.inference.lattice`, the compiled CPU kernels of
`latentvar.ctc._kernels`, or torch's native kernels with the exact gradient; and `ctc_loss`, with
torch.nn.functional.ctc_loss's signature."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from latentvar._checks import as_tensor
from latentvar.ctc.checks import check_blank, check_log_probs, check_targets
from latentvar.inference import ctc_chain
from latentvar.inference._compiled import in_groups
from latentvar.inference.lattice import log_partition_of_ctc


class _NativeCTCLogLikelihood(torch.autograd.Function):
    """log P(y|x) by torch's native CTC kernels (``aten::_ctc_loss`` and its backward), with the exact
    gradient with respect to ``log_probs``. The native backward returns exp(log_probs) - γ, the gradient
    that is right only after a log_softmax (whose backward removes the exp term); subtracting
    exp(log_probs) leaves -γ, the true gradient of the loss, for any ``log_probs``."""

    @staticmethod
    def forward(ctx, log_probs, targets, input_lengths, target_lengths, blank):
        time_first = log_probs.transpose(0, 1)
        nll, log_alpha = torch.ops.aten._ctc_loss.Tensor(
            time_first, targets, input_lengths, target_lengths, blank, False
        )
        ctx.save_for_backward(log_probs, targets, input_lengths, target_lengths, nll, log_alpha)
        ctx.blank = blank
        return -nll

    @staticmethod
    def backward(ctx, grad_logz):
        log_probs, targets, input_lengths, target_lengths, nll, log_alpha = ctx.saved_tensors
        time_first = log_probs.transpose(0, 1)
        grad_nll = -grad_logz
        # zero_infinity: targets that cannot fit get a zero gradient, as in `occupation`
        native = torch.ops.aten._ctc_loss_backward.Tensor(
            grad_nll, time_first, targets, input_lengths, target_lengths, nll, log_alpha, ctx.blank, True
        ).transpose(0, 1)
        frames = torch.arange(log_probs.shape[1], device=log_probs.device) < input_lengths[:, None]
        used = frames & torch.isfinite(nll)[:, None]
        correction = log_probs.exp() * (grad_nll[:, None] * used)[..., None]
        return native - correction, None, None, None, None


def compiled_log_likelihood(log_probs, targets, input_lengths, target_lengths, blank: int, want_grad: bool):
    """log P(y|x) (b,) and, when ``want_grad``, ∂ log P(y|x) / ∂ log_probs (b, t, c) (the class
    occupations γ), both in ``log_probs``' dtype, by the numba kernels on CPU: the scaled recursion, and
    the log-space one for the sequences it flags. float32 and float64 are read in place, other dtypes as
    float64 copies."""
    from latentvar.ctc import _kernels  # numba loads (from its cache) on first use only

    lp = log_probs.detach()
    if lp.dtype not in (torch.float32, torch.float64):
        lp = lp.double()
    arr = lp.numpy()
    b, t_max, c = arr.shape
    tg = targets.contiguous().numpy()
    il, tl = input_lengths.contiguous().numpy(), target_lengths.contiguous().numpy()
    logz, ok = np.zeros(b), np.ones(b, dtype=np.bool_)
    grad = np.zeros((b, t_max, c) if want_grad else (b, 0, 0))
    in_groups(
        b,
        lambda lo, hi: _kernels.scaled(
            arr[lo:hi], tg[lo:hi], il[lo:hi], tl[lo:hi], blank, want_grad, logz[lo:hi], grad[lo:hi], ok[lo:hi]
        ),
    )
    if not ok.all():
        _kernels.log_space(arr, tg, il, tl, blank, want_grad, logz, grad, np.flatnonzero(~ok))
    out = torch.from_numpy(logz).to(log_probs.dtype)
    return out, (torch.from_numpy(grad).to(log_probs.dtype) if want_grad else None)


class _CompiledCTCLogLikelihood(torch.autograd.Function):
    """log P(y|x) by `compiled_log_likelihood`, with the exact gradient γ with respect to ``log_probs``
    computed in the forward pass (one forward-backward), zero for targets that cannot fit."""

    @staticmethod
    def forward(ctx, log_probs, targets, input_lengths, target_lengths, blank):
        logz, occupation = compiled_log_likelihood(
            log_probs, targets, input_lengths, target_lengths, blank, want_grad=True
        )
        ctx.save_for_backward(occupation)
        return logz

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logz):
        (occupation,) = ctx.saved_tensors
        return occupation * grad_logz[:, None, None], None, None, None, None


BACKENDS = ("auto", "latentvar", "native", "compiled")


def log_likelihood(
    log_probs, targets, input_lengths, target_lengths, blank: int, backend: str = "auto"
) -> Tensor:
    """log P(y|x) (b,) for checked inputs: log_probs (b, t, c), padded targets (b, l).

    ``backend``: 'latentvar' — this module's recursion (TorchScript forward, hand-written forward-backward
    gradient); 'native' — torch's CTC kernels with the exact gradient; 'compiled' — the numba kernels of
    `latentvar.ctc._kernels` (CPU only; one sequence per loop iteration, no cost per frame beyond the
    arithmetic; without a gradient O(s) memory per sequence); 'auto' — 'compiled' for CPU tensors (faster
    than torch's kernels at every size of bench/ctc_bench.py, see BENCHMARKS.md; float16 and bfloat16,
    which torch's CPU kernel refuses, through a float64 copy); elsewhere native when a gradient will be
    asked for, else this module's forward, which keeps O(b·s) memory. All are tested equal to each other
    and to torch.nn.functional.ctc_loss."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    wants_grad = torch.is_grad_enabled() and log_probs.requires_grad
    if backend == "compiled" and log_probs.device.type != "cpu":
        raise ValueError(f"backend: 'compiled' runs on CPU tensors, got log_probs on {log_probs.device}")
    if backend == "compiled" or (backend == "auto" and log_probs.device.type == "cpu"):
        if wants_grad:
            return _CompiledCTCLogLikelihood.apply(log_probs, targets, input_lengths, target_lengths, blank)
        return compiled_log_likelihood(
            log_probs, targets, input_lengths, target_lengths, blank, want_grad=False
        )[0]
    if backend == "native" or (backend == "auto" and wants_grad):
        return _NativeCTCLogLikelihood.apply(log_probs, targets, input_lengths, target_lengths, blank)
    chain = ctc_chain(log_probs, targets, target_lengths, input_lengths, blank)
    return log_partition_of_ctc(chain, chain.log_partition())


def ctc_loss(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths,
    target_lengths,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    backend: str = "auto",
) -> Tensor:
    """-log P(y|x) with torch.nn.functional.ctc_loss's signature: ``log_probs`` (t, b, c) time first (or
    (t, c) unbatched), targets padded (b, l) or concatenated 1-D. ``reduction``: 'none' (b,), 'sum', or
    'mean' (each loss divided by its target length, then averaged over the batch); ``zero_infinity``
    replaces the infinite losses of targets that cannot fit (and their gradients) by zero. As torch: a
    target longer than the frames gives inf (0 with ``zero_infinity``), a 0-d length is accepted for a
    batch of one, and frames past ``input_lengths`` are ignored whatever they hold (NaN and inf
    included). ``backend``: see `log_likelihood`."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}")
    log_probs = as_tensor("log_probs", log_probs)
    unbatched = log_probs.dim() == 2
    if unbatched:
        log_probs = log_probs[:, None]
        targets = as_tensor("targets", targets)[None]
        input_lengths = as_tensor("input_lengths", input_lengths).reshape(1)
        target_lengths = as_tensor("target_lengths", target_lengths).reshape(1)
    lp, input_lengths = check_log_probs(log_probs, input_lengths, time_first=True)
    blank = check_blank(blank, lp.shape[-1])
    b, t_max, c = lp.shape
    targets, target_lengths = check_targets(
        targets, target_lengths, b, t_max, c, blank, lp.device, longer_than_input=True
    )
    loss = -log_likelihood(lp, targets, input_lengths, target_lengths, blank, backend)
    if zero_infinity:
        loss = torch.where(torch.isinf(loss), torch.zeros((), dtype=loss.dtype, device=loss.device), loss)
    if unbatched:
        loss = loss[0]
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return (loss / target_lengths.clamp_min(1).to(loss.dtype).reshape(loss.shape)).mean()
    return loss
