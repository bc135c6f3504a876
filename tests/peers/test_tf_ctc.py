"""TensorFlow's CTC tests, ported: tensorflow/tensorflow
tensorflow/python/kernel_tests/nn_ops/ctc_loss_op_test.py and ctc_decoder_ops_test.py.

Each test names the TensorFlow test it ports. TensorFlow's ops take *logits* (a log-softmax is applied
inside), time-major, with the blank the last class by default; here the log-softmax is applied before
`latentvar.ctc_loss` / `latentvar.CTC` and ``blank = c - 1``, so the gradients compared are with respect to
the same logits. The expected numbers and tolerances are TensorFlow's.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import latentvar
from latentvar.ctc import CTC, collapse

# Alex Graves' reference case (ctc_loss_op_test.py, CTCLossTest.testBasic): two sequences, 6 classes.
PROBS_0 = [
    [0.633766, 0.221185, 0.0917319, 0.0129757, 0.0142857, 0.0260553],
    [0.111121, 0.588392, 0.278779, 0.0055756, 0.00569609, 0.010436],
    [0.0357786, 0.633813, 0.321418, 0.00249248, 0.00272882, 0.0037688],
    [0.0663296, 0.643849, 0.280111, 0.00283995, 0.0035545, 0.00331533],
    [0.458235, 0.396634, 0.123377, 0.00648837, 0.00903441, 0.00623107],
]
GRAD_0 = [
    [-0.366234, 0.221185, 0.0917319, 0.0129757, 0.0142857, 0.0260553],
    [0.111121, -0.411608, 0.278779, 0.0055756, 0.00569609, 0.010436],
    [0.0357786, 0.633813, -0.678582, 0.00249248, 0.00272882, 0.0037688],
    [0.0663296, -0.356151, 0.280111, 0.00283995, 0.0035545, 0.00331533],
    [-0.541765, 0.396634, 0.123377, 0.00648837, 0.00903441, 0.00623107],
]
PROBS_1 = [
    [0.30176, 0.28562, 0.0831517, 0.0862751, 0.0816851, 0.161508],
    [0.24082, 0.397533, 0.0557226, 0.0546814, 0.0557528, 0.19549],
    [0.230246, 0.450868, 0.0389607, 0.038309, 0.0391602, 0.202456],
    [0.280884, 0.429522, 0.0326593, 0.0339046, 0.0326856, 0.190345],
    [0.423286, 0.315517, 0.0338439, 0.0393744, 0.0339315, 0.154046],
]
GRAD_1 = [
    [-0.69824, 0.28562, 0.0831517, 0.0862751, 0.0816851, 0.161508],
    [0.24082, -0.602467, 0.0557226, 0.0546814, 0.0557528, 0.19549],
    [0.230246, 0.450868, 0.0389607, 0.038309, 0.0391602, -0.797544],
    [0.280884, -0.570478, 0.0326593, 0.0339046, 0.0326856, 0.190345],
    [-0.576714, 0.315517, 0.0338439, 0.0393744, 0.0339315, 0.154046],
]


@pytest.mark.parametrize("backend", ["auto", "latentvar", "native", "compiled"])
def test_basic_graves_losses_and_gradients(backend):
    """ctc_loss_op_test.py CTCLossTest.testBasic: losses 3.34211 and 5.42262 and the gradients with respect
    to the logits, atol 1e-6; 7 frames of which the last 2 are NaN padding (ignored, zero gradient)."""
    inputs = np.log(np.stack([PROBS_0, PROBS_1], axis=1).astype(np.float32))  # (5, 2, 6) time-major
    inputs = np.concatenate([inputs, np.full((2, 2, 6), np.nan, np.float32)])  # frames 5, 6: NaN
    logits = torch.tensor(inputs, requires_grad=True)
    # TensorFlow's softmax over the used frames only (the NaN frames never reach it)
    log_probs = torch.cat([logits[:5].log_softmax(-1), logits[5:]])
    targets = torch.tensor([0, 1, 2, 1, 0, 0, 1, 1, 0])  # concatenated, as TF's sparse labels
    loss = latentvar.ctc_loss(
        log_probs,
        targets,
        torch.tensor([5, 5]),
        torch.tensor([5, 4]),
        blank=5,
        reduction="none",
        backend=backend,
    )
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    np.testing.assert_allclose(loss.detach().numpy(), [3.34211, 5.42262], atol=1e-6, rtol=1e-6)
    want = np.concatenate([np.stack([GRAD_0, GRAD_1], axis=1), np.zeros((2, 2, 6))]).astype(np.float32)
    np.testing.assert_allclose(grad.numpy(), want, atol=1e-6, rtol=1e-6)


def test_time_major_equals_batch_major():
    """ctc_loss_op_test.py CTCLossTest.test_time_major: time-major and batch-major inputs give equal losses
    (here: `ctc_loss` time-first and `CTC` batch-first)."""
    inputs = torch.randn(2, 2, 3).log_softmax(-1)  # (t, b, c)
    targets = torch.tensor([[0, 1], [1, 0]])
    loss = latentvar.ctc_loss(inputs, targets, [2, 2], [2, 2], blank=2, reduction="none")
    batch_major = -CTC(inputs.transpose(0, 1), torch.tensor([2, 2]), blank=2).log_prob(
        targets, torch.tensor([2, 2])
    )
    assert torch.equal(loss, batch_major)


def test_empty_batch():
    """ctc_loss_op_test.py CTCLossTest.testEmptyBatch: TensorFlow refuses batch_size 0 with an error.
    latentvar follows torch instead: an empty batch gives an empty (or zero-sum) loss, never a NaN."""
    empty = torch.tensor([], dtype=torch.long)
    lp = torch.zeros(1, 0, 2).log_softmax(-1)
    got = latentvar.ctc_loss(lp, torch.zeros(0, 0, dtype=torch.long), empty, empty, reduction="none")
    assert got.shape == (0,)


def test_single_class_blank_only_label():
    """ctc_loss_op_test.py CTCLossTest.testSingleClassBlankOnlyLabel: one class (the blank), an empty
    target: a finite loss of shape (1,) and a finite gradient (TF's regression test for a heap write)."""
    logits = torch.tensor([[[-1.0]]], requires_grad=True)
    loss = latentvar.ctc_loss(
        logits.log_softmax(-1), torch.zeros(1, 0, dtype=torch.long), [1], [0], reduction="none"
    )
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    assert loss.shape == (1,) and torch.isfinite(loss).all()
    assert grad.shape == (1, 1, 1) and torch.isfinite(grad).all()


def _random_dense_case(seed, num_frames=12, batch=8, num_labels=6, max_label_length=5, ragged=False):
    """The random cases of CTCLossTestV2 (TF draws with its own seed: here torch's): labels in
    [1, num_labels), lengths in [2, max_label_length), zero padding."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(1, num_labels, (batch, max_label_length), generator=g)
    label_length = torch.randint(2, max_label_length, (batch,), generator=g)
    labels = labels * (torch.arange(max_label_length) < label_length[:, None])
    frames = num_frames + (batch if ragged else 0)
    logits = torch.rand(frames, batch, num_labels, generator=g)
    logit_length = torch.arange(batch) + num_frames if ragged else torch.full((batch,), num_frames)
    return labels, logits, label_length, logit_length


def _loss_and_grad(logits, labels, label_length, logit_length, blank):
    x = logits.clone().requires_grad_()
    loss = latentvar.ctc_loss(
        x.log_softmax(-1), labels, logit_length, label_length, blank=blank, reduction="none"
    )
    return loss.detach(), torch.autograd.grad(loss.sum(), x)[0]


def test_ctc_loss_v2_dense_equals_sparse():
    """ctc_loss_op_test.py CTCLossTestV2.testCtcLossV2: dense (padded) labels and sparse (concatenated)
    labels give the same loss and gradient, rtol = atol = 2e-6."""
    labels, logits, label_length, logit_length = _random_dense_case(5)
    dense = _loss_and_grad(logits, labels, label_length, logit_length, 0)
    flat = labels[torch.arange(labels.shape[1]) < label_length[:, None]]
    sparse = _loss_and_grad(logits, flat, label_length, logit_length, 0)
    for a, b in zip(dense, sparse, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("ragged", [True, False])
def test_blank_first_equals_blank_last(ragged):
    """ctc_loss_op_test.py CTCLossTestV2.testCtcLossDenseIsSameAsCtcLoss (ragged logit lengths 10..17) and
    testCtcLossDenseUniqueFastPathIsSameAsCtcLoss: blank 0 equals blank c-1 with the labels shifted down by
    one and the blank logits moved last; rtol = atol = 4e-6 (2e-6 for the second)."""
    labels, logits, label_length, logit_length = _random_dense_case(
        5, num_frames=10 if ragged else 12, ragged=ragged
    )
    first = _loss_and_grad(logits, labels, label_length, logit_length, 0)
    shifted = torch.cat([logits[..., 1:], logits[..., :1]], dim=-1)
    last_loss, last_grad = _loss_and_grad(shifted, (labels - 1).clamp_min(0), label_length, logit_length, 5)
    last_grad = torch.cat([last_grad[..., -1:], last_grad[..., :-1]], dim=-1)  # back to blank-first order
    tol = 4e-6 if ragged else 2e-6
    np.testing.assert_allclose(first[0].numpy(), last_loss.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(first[1].numpy(), last_grad.numpy(), rtol=tol, atol=tol)


def test_blank_in_the_middle():
    """ctc_loss_op_test.py CTCLossTestV2.testCtcLossDenseWithBlankIndexIsSameAsCtcLoss (and its
    UniqueFastPath twin): labels in [0, 5) with the blank last, against the blank moved to index 2 and the
    labels >= 2 shifted up by one; rtol = atol = 2e-6."""
    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 5, (8, 5), generator=g)
    label_length = torch.randint(2, 5, (8,), generator=g)
    logits = torch.rand(12, 8, 6, generator=g)
    logit_length = torch.full((8,), 12)
    ref_loss, ref_grad = _loss_and_grad(logits, labels, label_length, logit_length, 5)
    shifted_logits = torch.cat([logits[..., :2], logits[..., -1:], logits[..., 2:-1]], dim=-1)
    shifted_labels = torch.where(labels < 2, labels, labels + 1)
    loss, grad = _loss_and_grad(shifted_logits, shifted_labels, label_length, logit_length, 2)
    grad = torch.cat([grad[..., :2], grad[..., 3:], grad[..., 2:3]], dim=-1)
    np.testing.assert_allclose(loss.numpy(), ref_loss.numpy(), rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=2e-6, atol=2e-6)


def test_negative_blank_index():
    """ctc_loss_op_test.py CTCLossTestV2.testCtcLossDenseWithNegativeBlankIndexIsSameAsCtcLoss: blank_index
    = -1 means the last class. torch.nn.functional.ctc_loss does not accept it either."""
    labels, logits, label_length, logit_length = _random_dense_case(5)
    labels = (labels - 1).clamp_min(0)
    a = _loss_and_grad(logits, labels, label_length, logit_length, -1)
    b = _loss_and_grad(logits, labels, label_length, logit_length, 5)
    np.testing.assert_allclose(a[0].numpy(), b[0].numpy(), rtol=2e-6, atol=2e-6)


def test_list_logits_equal_tensor_logits():
    """ctc_loss_op_test.py CTCLossTestV3.testCtcLossWithListLogits: logits given as nested lists."""
    labels, logits, label_length, logit_length = _random_dense_case(3)
    lp = logits.double().log_softmax(-1)
    from_list = latentvar.ctc_loss(lp.tolist(), labels, logit_length, label_length, reduction="none")
    from_tensor = latentvar.ctc_loss(lp, labels, logit_length, label_length, reduction="none")
    np.testing.assert_allclose(from_list.numpy(), from_tensor.numpy(), rtol=1e-6, atol=1e-6)


def test_float16_close_to_float32():
    """ctc_loss_op_test.py CTCLossTestV3.testCtcLossFp16: a float16 loss equals the float32 loss cast to
    float16 (assertAllClose's float16 tolerance, 1e-3)."""
    labels, logits, label_length, logit_length = _random_dense_case(7)
    lp = logits.log_softmax(-1)
    half = latentvar.ctc_loss(lp.half(), labels, logit_length, label_length, reduction="none")
    full = latentvar.ctc_loss(lp, labels, logit_length, label_length, reduction="none")
    assert half.dtype == torch.float16
    np.testing.assert_allclose(half.float().numpy(), full.half().float().numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dense", [True, False])
def test_deterministic_forward_and_backward(dense):
    """ctc_loss_op_test.py CTCLossDeterministicTest.testForwardAndBackward: two runs give bit-equal losses and
    gradients (10 classes, 32 sequences, labels up to 50, 100 frames, a random upstream gradient)."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 50, (32,), generator=g)
    labels = torch.randint(1, 10, (32, 50), generator=g) * (torch.arange(50) < lengths[:, None])
    if not dense:
        labels = labels[torch.arange(50) < lengths[:, None]]
    logits = 2 * torch.rand(100, 32, 10, generator=g) - 1
    upstream = 2 * torch.rand(32, generator=g) - 1
    runs = []
    for _ in range(2):
        x = logits.clone().requires_grad_()
        loss = latentvar.ctc_loss(
            x.log_softmax(-1), labels, torch.full((32,), 100), lengths, reduction="none"
        )
        runs.append((loss.detach(), torch.autograd.grad((loss * upstream).sum(), x)[0]))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize(
    "logits,blank,name",
    [
        (torch.tensor([[1.0, 2.0]]), 0, "log_probs"),  # testStaticLogitsRankTooSmallRejected
        (torch.zeros(1, 1, 0), 0, "log_probs"),  # testStaticZeroClassesRejected
        (torch.zeros(1, 1, 3).log_softmax(-1), -4, "blank"),  # testStaticBlankIndexOutOfRangeRejected
    ],
)
def test_validation(logits, blank, name):
    """ctc_loss_op_test.py CTCLossValidationTest: rank < 3 (here: < 2, as torch takes (t, c) unbatched), zero
    classes and an out-of-range blank are refused by name."""
    if logits.dim() == 2:
        logits = logits[0]  # rank 1: below even the unbatched (t, c) form
    with pytest.raises(ValueError, match=f"^{name}:"):
        latentvar.ctc_loss(logits, torch.tensor([[0]]), [1], [1], blank=blank)


@pytest.mark.parametrize(
    "labels,seq_length,collapsed,new_lengths",
    [
        # testCollapseRepeated
        (
            [[1, 3, 3, 3, 0], [1, 4, 4, 4, 0], [4, 2, 2, 9, 4]],
            [4, 5, 5],
            [[1, 3, 0, 0], [1, 4, 0, 0], [4, 2, 9, 4]],
            [2, 3, 4],
        ),
        # testCollapseRepeatedExtraPadding
        (
            [[1, 3, 3, 3, 0, 0, 0], [1, 4, 4, 4, 0, 1, 2], [4, 2, 2, 9, 4, 0, 0]],
            [4, 5, 5],
            [[1, 3, 0, 0], [1, 4, 0, 0], [4, 2, 9, 4]],
            [2, 3, 4],
        ),
        # testCollapseRepeatedFrontRepeats
        ([[1, 1, 1, 2, 2], [1, 1, 1, 2, 2], [1, 1, 1, 2, 2]], [5, 4, 3], [[1, 2], [1, 2], [1, 0]], [2, 2, 1]),
        # testCollapseRepeatedAllLabelsTheSame
        ([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]], [4, 5, 1], [[1], [1], [1]], [1, 1, 1]),
    ],
)
def test_collapse_repeated(labels, seq_length, collapsed, new_lengths):
    """ctc_loss_op_test.py CTCLossTestV2.testCollapseRepeated*: merge repeats within each length. latentvar's
    `collapse` also drops the blank; a class that never occurs (99) is passed as the blank, entries past each
    length are -1, and its padding is -1 where TensorFlow's is 0 (testCollapseRepeatedPreservesDtypes: the
    dtype stays int64)."""
    z = torch.tensor(labels)
    z = torch.where(torch.arange(z.shape[1]) < torch.tensor(seq_length)[:, None], z, -1)
    got = collapse(z, blank=99)
    want = torch.tensor(collapsed)
    want = torch.where(torch.arange(want.shape[1]) < torch.tensor(new_lengths)[:, None], want, -1)
    assert got.lengths.tolist() == new_lengths
    assert torch.equal(got.targets, want)
    assert got.targets.dtype == torch.int64


# --- ctc_decoder_ops_test.py -------------------------------------------------------------------------


def _greedy_inputs():
    probs_0 = np.asarray(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.4, 0.6],
            [0.0, 0.0, 0.4, 0.6],
            [0.0, 0.9, 0.1, 0.0],
            [0, 0, 0, 0],
            [0, 0, 0, 0],
        ],
        dtype=np.float32,
    )
    probs_1 = np.asarray(
        [
            [0.1, 0.9, 0.0, 0.0],
            [0.0, 0.9, 0.1, 0.0],
            [0.0, 0.0, 0.1, 0.9],
            [0.0, 0.9, 0.1, 0.1],
            [0.9, 0.1, 0.0, 0.0],
            [0, 0, 0, 0],
        ],
        dtype=np.float32,
    )
    with np.errstate(divide="ignore"):
        return torch.tensor(np.log(np.stack([probs_0, probs_1]))), torch.tensor(
            [4, 5]
        )  # (b, t, c), log 0 = -inf


@pytest.mark.parametrize("blank_index", [3, 2])
def test_greedy_decoder(blank_index):
    """ctc_decoder_ops_test.py CTCGreedyDecoderTest.testCTCGreedyDecoder: decodes [0, 1] and [1, 1, 0] with
    negative log-probabilities -log(1 * .6 * .6 * .9) and -log(.9^5), atol 1e-6; then with the blank moved
    to index 2 (TF's blank_index=2; its blank_index=-2 is the same class). Frames past the lengths hold
    log 0 = -inf, the case of issue 21's NaN score. Row 1, frame 3 sums to 1.1 (not normalised: a warning)."""
    log_probs, lengths = _greedy_inputs()
    if blank_index == 2:
        log_probs = torch.cat([log_probs[..., :2], log_probs[..., -1:], log_probs[..., 2:-1]], dim=-1)
    with pytest.warns(UserWarning, match="^log_probs: expected log-probabilities normalised"):
        decoded = CTC(log_probs, lengths, blank=blank_index).decode()
    assert decoded.lengths.tolist() == [2, 3]
    assert decoded.labels.tolist() == [[0, 1, -1], [1, 1, 0]]
    want = [np.sum(-np.log([1.0, 0.6, 0.6, 0.9])), np.sum(-np.log([0.9, 0.9, 0.9, 0.9, 0.9]))]
    np.testing.assert_allclose(-decoded.scores.numpy(), np.array(want, np.float32), atol=1e-6)


def _beam_inputs():
    probs = np.asarray(
        [
            [0.30999, 0.309938, 0.0679938, 0.0673362, 0.0708352, 0.173908],
            [0.215136, 0.439699, 0.0370931, 0.0393967, 0.0381581, 0.230517],
            [0.199959, 0.489485, 0.0233221, 0.0251417, 0.0233289, 0.238763],
            [0.279611, 0.452966, 0.0204795, 0.0209126, 0.0194803, 0.20655],
            [0.51286, 0.288951, 0.0243026, 0.0220788, 0.0219297, 0.129878],
            [0.155251, 0.164444, 0.173517, 0.176138, 0.169979, 0.160671],  # time 5: past the length
        ],
        dtype=np.float32,
    )
    logits = torch.zeros(1, 8, 6)  # padded to 8 frames with zeros, as TF's test
    logits[0, :5] = torch.tensor(probs[:5] + 2.0)  # "Add arbitrary offset - this is fine": logits
    return logits.log_softmax(-1), torch.tensor([5])


def test_beam_search_two_best_paths():
    """ctc_decoder_ops_test.py CTCGreedyDecoderTest.testCTCDecoderBeamSearch: beam width 2, top_paths 2:
    [1, 0] with log-probability -5.811451 and [1] with -6.63339, atol 1e-6 (blank = the last class)."""
    log_probs, lengths = _beam_inputs()
    decoded = CTC(log_probs, lengths, blank=5).decode(beam_width=2, nbest=2)
    assert decoded.labels.shape[:2] == (1, 2)
    assert decoded.lengths.tolist() == [[2, 1]]
    assert decoded.labels[0, 0, :2].tolist() == [1, 0] and decoded.labels[0, 1, :1].tolist() == [1]
    np.testing.assert_allclose(decoded.scores.numpy(), [[-5.811451, -6.63339]], atol=1e-6)


def test_beam_search_refuses_more_paths_than_the_beam_width():
    """ctc_decoder_ops_test.py testCTCDecoderBeamSearch: top_paths 3 > beam width 2 is an error
    ("requested more paths than the beam width")."""
    log_probs, lengths = _beam_inputs()
    with pytest.raises(ValueError, match="^nbest:"):
        CTC(log_probs, lengths, blank=5).decode(beam_width=2, nbest=3)


def test_basic_against_torch_too():
    """Not a TensorFlow test: the testBasic numbers are also torch's (a check that the port's reading of
    TF's label convention is right)."""
    lp = torch.tensor(np.log(np.stack([PROBS_0, PROBS_1], axis=1)), dtype=torch.float64)
    targets = torch.tensor([[0, 1, 2, 1, 0], [0, 1, 1, 0, 0]])
    ref = F.ctc_loss(lp, targets, torch.tensor([5, 5]), torch.tensor([5, 4]), blank=5, reduction="none")
    np.testing.assert_allclose(ref.numpy(), [3.34211, 5.42262], atol=1e-5)
