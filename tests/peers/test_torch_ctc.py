"""PyTorch's own ctc_loss tests, ported: pytorch/pytorch test/test_nn.py (``TestNN.test_CTCLoss_*``,
``TestNNDeviceType.test_CTCLoss_*``) and the CTC inputs of torch's test harness as installed
(torch/testing/_internal/common_modules.py ``module_inputs_torch_nn_CTCLoss`` and
common_methods_invocations.py ``sample_inputs_ctc_loss``).

torch's CTC tests pin no hard-coded numbers: they compare implementations (CPU, CUDA, cuDNN, the Python
reference ``ctcloss_reference`` of common_nn.py) with each other. Here `latentvar.ctc_loss` takes the place of the second implementation and is
compared with torch's CPU kernel (and the Python reference) at torch's tolerances. The CUDA / cuDNN-only
tests (test_ctc_loss_cudnn, test_ctc_loss_cudnn_tensor) have no CPU counterpart and are not ported.
"""

import pytest
import torch
import torch.nn.functional as F

import latentvar

BACKENDS = ["auto", "latentvar", "native", "compiled"]


def _both(log_probs, targets, input_lengths, target_lengths, backend, grad_out=None, **kw):
    """Loss and gradient from torch and from latentvar, the gradient taken w.r.t. the logits before the
    log_softmax that torch's tests apply: torch's kernel returns exp(log_probs) - γ w.r.t. log_probs, right
    only after a log_softmax, where latentvar returns the exact -γ (docs/ctc.md); through the log_softmax
    both are the same gradient."""
    out = []
    for fn, extra in ((F.ctc_loss, {}), (latentvar.ctc_loss, {"backend": backend})):
        x = log_probs.detach().clone().requires_grad_()
        loss = fn(x.log_softmax(-1), targets, input_lengths, target_lengths, **kw, **extra)
        g = torch.ones_like(loss) if grad_out is None else grad_out
        out.append((loss.detach(), torch.autograd.grad(loss, x, g)[0]))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_CTCLoss_zero_infinity(backend):
    """test_nn.py TestNNDeviceType.test_CTCLoss_zero_infinity: target lengths [60, 25, 20] for 50 frames
    (the first cannot fit), 15 classes, sum reduction, zero_infinity: loss equal to torch's (atol 1e-4,
    the test's CPU-vs-CUDA tolerance), gradients equal and free of NaN. Before issue 21 latentvar refused a
    target longer than T."""
    g = torch.Generator().manual_seed(0)
    target_lengths = [60, 25, 20]
    targets = torch.randint(1, 15, (sum(target_lengths),), dtype=torch.int, generator=g)
    log_probs = torch.randn(50, 3, 15, generator=g).log_softmax(2)
    (ref, gref), (got, ggot) = _both(
        log_probs, targets, [50, 50, 50], target_lengths, backend, reduction="sum", zero_infinity=True
    )
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(ggot, gref, atol=1e-4, rtol=0)
    assert (ggot == ggot).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_CTCLoss_empty_target(backend):
    """test_nn.py TestNNDeviceType.test_CTCLoss_empty_target: all targets empty -> the loss is -Σ_t
    log P(blank) and >= 0; then target lengths [0, 9, 0]: the empty ones still are (float64, exact
    assertEqual)."""
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(50, 3, 15, dtype=torch.double, generator=g).log_softmax(2)
    targets = torch.randint(1, 15, (0,), dtype=torch.long, generator=g)
    loss = latentvar.ctc_loss(log_probs, targets, [50, 50, 50], [0, 0, 0], reduction="none", backend=backend)
    assert (loss >= 0).all()
    torch.testing.assert_close(-log_probs.sum(0)[:, 0], loss)
    targets = torch.randint(1, 15, (9,), dtype=torch.long, generator=g)
    loss = latentvar.ctc_loss(log_probs, targets, [50, 50, 50], [0, 9, 0], reduction="none", backend=backend)
    assert (loss >= 0).all()
    torch.testing.assert_close(-log_probs.sum(0)[[0, 2], 0], loss[[0, 2]])


def test_CTCLoss_lengthchecks():
    """test_nn.py TestNN.test_CTCLoss_lengthchecks_cpu: target lengths [30, 25, 20] with padded targets of
    width 29 are refused (torch: RuntimeError; latentvar: ValueError naming the argument)."""
    targets = torch.randint(1, 15, (3, 29), dtype=torch.long)
    log_probs = torch.randn(50, 3, 15, dtype=torch.float).log_softmax(2)
    with pytest.raises(RuntimeError):
        F.ctc_loss(log_probs, targets, [50, 50, 50], [30, 25, 20])
    with pytest.raises(ValueError, match="^target_lengths:"):
        latentvar.ctc_loss(log_probs, targets, [50, 50, 50], [30, 25, 20])


@pytest.mark.parametrize("which", ["input_lengths", "target_lengths"])
def test_CTCLoss_typechecks(which):
    """test_nn.py TestNN.test_CTCLoss_typechecks_cpu: float input or target lengths are refused."""
    lengths = {"input_lengths": torch.tensor([50, 50, 50]), "target_lengths": torch.tensor([30, 25, 20])}
    targets = torch.randint(1, 15, (75,), dtype=torch.int)
    log_probs = torch.randn(50, 3, 15, dtype=torch.float).log_softmax(2)
    lengths[which] = lengths[which].float()
    with pytest.raises(ValueError, match=f"^{which}:"):
        latentvar.ctc_loss(log_probs, targets, lengths["input_lengths"], lengths["target_lengths"])


@pytest.mark.parametrize("backend", ["latentvar", "native", "compiled"])
def test_CTCLoss_long_targets(backend):
    """test_nn.py TestNNDeviceType.test_CTCLoss_long_targets: 4000 frames, 4 sequences of 1200 labels, 3
    classes, float64, sum reduction, zero_infinity, a random upstream gradient: loss and gradient equal to
    torch's CPU kernel (the test's CPU-vs-CUDA tolerance, atol 1e-4, rtol 0). Trimmed to 1000 frames and
    300 labels (1/16 of the work: the full size takes 9 s per backend on this machine; the suite stays
    fast)."""
    g = torch.Generator().manual_seed(0)
    frames, labels = 1000, 300
    log_probs = torch.randn(frames, 4, 3, dtype=torch.double, generator=g).log_softmax(2)
    targets = torch.randint(1, 3, (4, labels), generator=g)
    grad_out = torch.randn((), dtype=torch.double, generator=g)
    (ref, gref), (got, ggot) = _both(
        log_probs, targets, 4 * [frames], 4 * [labels], backend, grad_out, reduction="sum", zero_infinity=True
    )
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(ggot, gref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_CTCLoss_critical_target_len(backend):
    """test_nn.py TestNNDeviceType.test_CTCLoss_critical_target_len: target length 256 (cuDNN's critical
    length), 500 frames, 10 classes: loss and gradient equal to torch's (atol 1e-5, rtol 0... torch compares
    cuDNN with the native kernel at assertEqual's float32 default; float32 here)."""
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(1, 10, (256,), dtype=torch.int, generator=g)
    log_probs = torch.randn(500, 1, 10, generator=g).log_softmax(2)
    (ref, gref), (got, ggot) = _both(log_probs, targets, torch.tensor([500]), torch.tensor([256]), backend)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(ggot, gref)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("lengths_as", ["list", "tensor", "zero_dim"])
def test_CTCLoss_no_batch_dim(reduction, lengths_as):
    """test_nn.py TestNN.test_CTCLoss_no_batch_dim: an unbatched (t, c) input with 1-D targets equals the
    batch of one (40 frames, 3 classes, 12 labels), every reduction. 0-d lengths for a batch of one are the
    drop-in case of issue 21."""
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(40, 3, generator=g).log_softmax(1)
    targets = torch.randint(1, 3, (12,), generator=g)
    il, tl = {"list": ([40], [12]), "tensor": (torch.tensor([40]), torch.tensor([12]))}.get(
        lengths_as, (torch.tensor(40), torch.tensor(12))
    )
    single = latentvar.ctc_loss(log_probs, targets, il, tl, reduction=reduction)
    batched = latentvar.ctc_loss(log_probs[:, None], targets[None], il, tl, reduction=reduction)
    torch.testing.assert_close(single, batched.squeeze(0) if reduction == "none" else batched)
    torch.testing.assert_close(
        single, F.ctc_loss(log_probs, targets, torch.tensor([40]), torch.tensor([12]), reduction=reduction)
    )


_MODULE_CASES = [("", {}), ("reduction_sum", {"reduction": "sum"}), ("reduction_mean", {"reduction": "mean"})]
_MODULE_CASES += [("reduction_none", {"reduction": "none"}), ("blank", {"blank": 14})]


@pytest.mark.parametrize("target_dtype", [torch.int, torch.long])
@pytest.mark.parametrize(
    "form", ["lengths_intlists", "lengths_tensors", "1d_target_lengths_intlists", "1d_target_lengths_tensors"]
)
@pytest.mark.parametrize("desc,kwargs", _MODULE_CASES, ids=[c[0] or "default" for c in _MODULE_CASES])
def test_module_inputs_CTCLoss(desc, kwargs, form, target_dtype):
    """torch/testing/_internal/common_modules.py module_inputs_torch_nn_CTCLoss: (50, 3, 15) inputs, target
    lengths (30, 25, 20), padded (3, 30) or 1-D targets, lengths as int lists or tensors, each reduction and
    blank 14. ModuleInfo's reference is torch's pure-Python ``ctcloss_reference``, which cannot be imported
    without torch's test dependencies (expecttest); torch's CPU kernel, which ModuleInfo checks against it,
    stands in (float64, assert_close defaults)."""
    g = torch.Generator().manual_seed(0)
    blank = kwargs.get("blank", 0)
    low, high = (0, 14) if blank == 14 else (1, 15)
    log_probs = torch.randn(50, 3, 15, dtype=torch.double, generator=g).log_softmax(2)
    shape = (30 + 25 + 20,) if form.startswith("1d") else (3, 30)
    targets = torch.randint(low, high, shape, dtype=target_dtype, generator=g)
    il, tl = (50, 50, 50), (30, 25, 20)
    if form.endswith("tensors"):
        il, tl = torch.tensor(il), torch.tensor(tl)
    ref = F.ctc_loss(log_probs, targets, il, tl, **kwargs)
    got = latentvar.ctc_loss(
        log_probs,
        targets,
        list(il) if isinstance(il, tuple) else il,
        list(tl) if isinstance(tl, tuple) else tl,
        **kwargs,
    )
    torch.testing.assert_close(got, ref.to(got.dtype))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [True, False])
@pytest.mark.parametrize("lengths_type", [list, torch.Tensor])
def test_sample_inputs_ctc_loss(reduction, zero_infinity, lengths_type):
    """torch/testing/_internal/common_methods_invocations.py sample_inputs_ctc_loss (the OpInfo of
    nn.functional.ctc_loss): 50 frames, 16 sequences, 20 classes, padded targets of width 30 with lengths
    in [10, 30), each reduction x zero_infinity x lengths as list or tensor: value and gradient equal to
    torch's (float64, assert_close defaults)."""
    g = torch.Generator().manual_seed(1)
    log_probs = torch.randn(50, 16, 20, dtype=torch.double, generator=g).log_softmax(2)
    targets = torch.randint(1, 20, (16, 30), generator=g)
    il = torch.full((16,), 50)
    tl = torch.randint(10, 30, (16,), generator=g)
    if lengths_type is list and reduction in ("none", "sum"):
        il, tl = il.tolist(), tl.tolist()
    (ref, gref), (got, ggot) = _both(
        log_probs, targets, il, tl, "auto", reduction=reduction, zero_infinity=zero_infinity
    )
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(ggot, gref)


@pytest.mark.parametrize("backend", ["latentvar", "native", "compiled"])
def test_gradcheck(backend):
    """The OpInfo of nn.functional.ctc_loss runs gradcheck (gradcheck_wrapper_ctc_loss) on the samples above;
    at 16 x 50 x 20 inputs finite differences take minutes, so a (12, 3, 5) case with a repeat, an empty
    target and ragged lengths is checked instead, through a log_softmax as torch's wrapper does."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, 5, dtype=torch.double, generator=g, requires_grad=True)
    targets = torch.tensor([[1, 1, 2], [3, 0, 0], [2, 4, 0]])

    def loss(x):
        return latentvar.ctc_loss(
            x.log_softmax(2), targets, [12, 9, 7], [3, 0, 2], reduction="none", backend=backend
        )

    assert torch.autograd.gradcheck(loss, (x,))
