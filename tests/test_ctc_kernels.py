"""The compiled CTC kernels (backend 'compiled', what 'auto' runs on CPU) against references nobody here
wrote: torch.nn.functional.ctc_loss for the loss, brute-force enumeration of every alignment and
torch.autograd through the generic semiring recursion for the gradient with respect to log_probs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latentvar.ctc import CTC, _kernels, ctc_loss
from latentvar.inference import ctc_chain
from test_ctc import TINY, brute_force, random_case, tiny_batch


def autograd_reference(lp, targets, il, tl, blank=0):
    """log P(y|x) (b,) and its gradient w.r.t. ``lp`` (b, t, c) by autograd through the generic log-space
    recursion (no compiled or hand-written backward), zero on rows that cannot fit."""
    x = lp.detach().clone().requires_grad_()
    logz = ctc_chain(x, targets, tl, il, blank, fast=False).log_partition()
    feasible = torch.isfinite(logz)
    (grad,) = torch.autograd.grad(logz[feasible].sum(), x)
    return logz.detach(), grad


def compiled_value_and_grad(lp, targets, il, tl, blank=0, weights=None):
    x = lp.detach().clone().requires_grad_()
    value = CTC(x, il, blank=blank).log_prob(targets, tl, backend="compiled")
    w = torch.ones_like(value) if weights is None else weights
    (grad,) = torch.autograd.grad((torch.where(torch.isfinite(value), value, 0) * w).sum(), x)
    return value.detach(), grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed,blank", [(0, 0), (1, 3), (2, 4)])
def test_value_and_gradient_match_torch_and_autograd(seed, blank, dtype):
    logits, targets, il, tl = random_case(seed, blank=blank)
    il[5] = 1  # a one-frame input (target of one label or none)
    tl[5] = min(int(tl[5]), 1)
    lp = logits.log_softmax(-1)
    ref = -F.ctc_loss(lp.transpose(0, 1), targets, il, tl, blank=blank, reduction="none")
    value, grad = compiled_value_and_grad(lp.to(dtype), targets, il, tl, blank)
    assert value.dtype == dtype and grad.dtype == dtype
    assert torch.isneginf(value[3]) and torch.isfinite(value[[0, 1, 2, 4, 5]]).all()
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(value.double(), ref, atol=tol * 10, rtol=tol)
    want_value, want_grad = autograd_reference(lp, targets, il, tl, blank)
    torch.testing.assert_close(value.double(), want_value, atol=tol * 10, rtol=tol)
    torch.testing.assert_close(grad.double(), want_grad, atol=tol, rtol=0)
    assert (grad[3] == 0).all()  # cannot fit: zero gradient, as the other backends
    frames = torch.arange(lp.shape[1]) < il[:, None]
    assert (grad[~frames] == 0).all()


def test_gradient_is_exact_for_unnormalised_log_probs():
    """∂ log P / ∂ log_probs, not torch's shortcut exp(log_probs) - γ that holds only after a log_softmax."""
    logits, targets, il, tl = random_case(7)
    lp = logits.log_softmax(-1) + 0.3 * torch.randn_like(logits)
    with pytest.warns(UserWarning, match=r"^log_probs: "):
        value, grad = compiled_value_and_grad(lp, targets, il, tl)
    want_value, want_grad = autograd_reference(lp, targets, il, tl)
    torch.testing.assert_close(value, want_value)
    torch.testing.assert_close(grad, want_grad, atol=1e-10, rtol=0)


@pytest.mark.parametrize("blank", [0, 2])
def test_gradient_is_the_brute_force_occupation(blank):
    log_probs, targets, il, tl = tiny_batch(blank)
    value, grad = compiled_value_and_grad(log_probs, targets, il, tl, blank)
    for i, (_, n) in enumerate(TINY):
        y = tuple(targets[i, : int(tl[i])].tolist())
        logz, _, marginals = brute_force(log_probs[i], y, n, blank)
        assert float(value[i]) == pytest.approx(logz, abs=1e-12)
        torch.testing.assert_close(grad[i], marginals, atol=1e-12, rtol=0)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("concatenated", [False, True])
def test_ctc_loss_reductions_and_zero_infinity_match_torch(reduction, zero_infinity, concatenated):
    logits, targets, il, tl = random_case(11)
    if concatenated:
        targets = torch.cat([targets[i, : int(n)] for i, n in enumerate(tl)])
    grad_out = torch.rand(len(il), dtype=torch.float64) if reduction == "none" else torch.tensor(0.7)
    got = {}
    for name, fn, kw in ((("torch", F.ctc_loss, {})), ("compiled", ctc_loss, {"backend": "compiled"})):
        x = logits.clone().requires_grad_()
        loss = fn(
            x.log_softmax(-1).transpose(0, 1), targets, il, tl, reduction=reduction,
            zero_infinity=zero_infinity, **kw,
        )  # fmt: skip
        (grad,) = torch.autograd.grad((loss * grad_out).sum(), x)
        got[name] = loss.detach(), grad
    (ref, ref_grad), (mine, mine_grad) = got["torch"], got["compiled"]
    torch.testing.assert_close(mine, ref, atol=1e-9, rtol=1e-9)
    if zero_infinity:  # torch's gradient is NaN on an infinite row without zero_infinity; ours is 0
        torch.testing.assert_close(mine_grad, ref_grad, atol=1e-9, rtol=0)
        assert (mine_grad[3] == 0).all()
    else:
        feasible = torch.arange(len(il)) != 3
        torch.testing.assert_close(mine_grad[feasible], ref_grad[feasible], atol=1e-9, rtol=0)


@pytest.mark.parametrize("value", [float("nan"), float("-inf"), float("inf")])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_padding_frames_are_ignored(value, dtype):
    logits, targets, il, tl = random_case(4)
    lp = logits.log_softmax(-1).to(dtype)
    frames = torch.arange(lp.shape[1]) < il[:, None]
    padded = torch.where(frames[..., None], lp, value)
    x = padded.transpose(0, 1).clone().requires_grad_()
    loss = ctc_loss(x, targets, il, tl, reduction="none", backend="compiled")
    ref = F.ctc_loss(lp.transpose(0, 1), targets, il, tl, reduction="none")
    torch.testing.assert_close(loss, ref, atol=1e-4, rtol=1e-5)
    (grad,) = torch.autograd.grad(torch.where(torch.isfinite(loss), loss, 0).sum(), x)
    assert torch.isfinite(grad).all() and (grad.transpose(0, 1)[~frames] == 0).all()


def test_log_space_fallback_when_the_scaled_recursion_underflows():
    """A frame whose only reachable classes have probability e^-800 (below float64's range): the scaled
    kernel flags the sequence and the log-space kernel answers, equal to the generic recursion."""
    logits, targets, il, tl = random_case(2)
    lp = logits.log_softmax(-1)
    lp[0, 2] = -800.0
    lp[0, 2, 4] = 0.0  # class 4 (not blank, not in target 0) holds the frame's mass
    targets[0, :3] = 1
    ok = np.ones(len(il), dtype=np.bool_)
    args = (lp.numpy(), targets.numpy(), il.numpy(), tl.numpy(), 0, True)
    _kernels.scaled(*args, np.zeros(len(il)), np.zeros(lp.shape), ok)
    assert not ok[0] and not ok[3] and ok[[1, 2, 4, 5]].all()  # 3 cannot fit at all
    value, grad = compiled_value_and_grad(lp, targets, il, tl)
    want_value, want_grad = autograd_reference(lp, targets, il, tl)
    assert -900 < float(value[0]) < -800
    torch.testing.assert_close(value, want_value)
    torch.testing.assert_close(grad, want_grad, atol=1e-10, rtol=0)


@pytest.mark.parametrize("want_grad", [True, False])
def test_scaled_and_log_space_kernels_agree_on_long_inputs(want_grad):
    g = torch.Generator().manual_seed(5)
    b, t, c, n = 3, 600, 12, 150
    lp = (torch.randn(b, t, c, generator=g, dtype=torch.float64) * 3).log_softmax(-1)
    targets = torch.randint(1, c, (b, n), generator=g)
    il, tl = torch.tensor([600, 500, 320]), torch.tensor([150, 90, 150])
    args = (lp.numpy(), targets.numpy(), il.numpy(), tl.numpy(), 0, want_grad)
    shape = lp.shape if want_grad else (b, 0, 0)
    logz, grad, ok = np.zeros(b), np.zeros(shape), np.ones(b, dtype=np.bool_)
    _kernels.scaled(*args, logz, grad, ok)
    assert ok.all()
    logz2, grad2 = np.zeros(b), np.zeros(shape)
    _kernels.log_space(*args, logz2, grad2, np.arange(b))
    np.testing.assert_allclose(logz, logz2, rtol=1e-12)
    np.testing.assert_allclose(grad, grad2, atol=1e-10)
    if want_grad:  # every frame in use holds one unit of occupation
        np.testing.assert_allclose(grad.sum(-1)[0], np.ones(t), atol=1e-10)


def test_gradcheck_tiny_float64():
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(3, 6, 4, generator=g, dtype=torch.float64).log_softmax(-1)
    targets = torch.tensor([[1, 1, 2], [3, 0, 0], [2, 3, 0]])

    def loss(x):
        return ctc_loss(x, targets, [6, 4, 5], [3, 1, 2], reduction="none", backend="compiled")

    assert torch.autograd.gradcheck(loss, (lp.transpose(0, 1).clone().requires_grad_(),))


def test_auto_runs_the_compiled_kernels_on_cpu_and_threads_agree():
    logits, targets, il, tl = random_case(9)
    lp = logits.log_softmax(-1).float().transpose(0, 1)  # time first: read in place, not contiguous
    one = ctc_loss(lp, targets, il, tl, reduction="none", backend="compiled")
    assert torch.equal(ctc_loss(lp, targets, il, tl, reduction="none"), one)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # groups of sequences on Python threads
        assert torch.equal(ctc_loss(lp, targets, il, tl, reduction="none", backend="compiled"), one)
    finally:
        torch.set_num_threads(before)


@pytest.mark.filterwarnings("ignore:log_probs.*normalised:UserWarning")  # rounding leaves the simplex
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_auto_takes_half_precision_on_cpu(dtype):
    """torch's CPU kernel refuses float16 and bfloat16; 'auto' computes them in float64."""
    logits, targets, il, tl = random_case(3)
    lp = logits.log_softmax(-1).transpose(0, 1)
    low = lp.to(dtype).requires_grad_()
    loss = ctc_loss(low, targets, il, tl, reduction="none", zero_infinity=True)
    (grad,) = torch.autograd.grad(loss.sum(), low)
    assert loss.dtype == dtype and grad.dtype == dtype
    x = low.detach().double().requires_grad_()  # the same rounded inputs in float64
    ref = ctc_loss(x, targets, il, tl, reduction="none", zero_infinity=True, backend="latentvar")
    (ref_grad,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(loss.double(), ref, atol=0.1, rtol=1e-2)
    torch.testing.assert_close(grad.double(), ref_grad, atol=1e-2, rtol=0)
