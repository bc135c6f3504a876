"""torchaudio's forced-alignment tests, ported: pytorch/audio
test/torchaudio_unittest/functional/functional_impl.py, ``Functional.test_forced_align`` and
``Functional.test_forced_align_fail``. torchaudio aligns one sequence, (T, C) or (1, T, C); latentvar's
`CTC.forced_align` takes a batch, so each case is a batch of one (and a batch case is added where
torchaudio refuses batches). The expected paths and per-frame scores are torchaudio's.
"""

import math

import pytest
import torch

from latentvar.ctc import CTC

EMISSION = [
    [0.633766, 0.221185, 0.0917319, 0.0129757, 0.0142857, 0.0260553],
    [0.111121, 0.588392, 0.278779, 0.0055756, 0.00569609, 0.010436],
    [0.0357786, 0.633813, 0.321418, 0.00249248, 0.00272882, 0.0037688],
    [0.0663296, 0.643849, 0.280111, 0.00283995, 0.0035545, 0.00331533],
    [0.458235, 0.396634, 0.123377, 0.00648837, 0.00903441, 0.00623107],
]
BLANK = 5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "targets,ref_path,targets_dtype",
    [
        ([0, 1, 1, 0], [0, 1, 5, 1, 0], torch.int32),
        ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], torch.int32),
        ([3, 3, 3], [3, 5, 3, 5, 3], torch.int64),
        ([0, 1, 2], [0, 1, 1, 1, 2], torch.int64),
    ],
)
def test_forced_align(targets, ref_path, targets_dtype, dtype):
    """functional_impl.py Functional.test_forced_align: the path (blank = 5 included) and the per-frame
    scores log emission[t, path[t]] (assertEqual: torch's default tolerance for the dtype)."""
    emission = torch.tensor(EMISSION, dtype=dtype)
    log_probs = emission.log()[None]
    targets = torch.tensor(targets, dtype=targets_dtype)[None]
    path, score, spans = CTC(log_probs, torch.tensor([5]), blank=BLANK).forced_align(
        targets, torch.tensor([targets.shape[1]])
    )
    assert path[0].tolist() == ref_path
    frame_scores = log_probs[0].gather(-1, path[0, :, None]).squeeze(-1)
    ref_scores = torch.tensor([math.log(EMISSION[t][ref_path[t]]) for t in range(5)], dtype=dtype)
    torch.testing.assert_close(frame_scores, ref_scores)
    torch.testing.assert_close(score[0], ref_scores.sum())


def test_forced_align_batch_equals_one_by_one():
    """functional_impl.py Functional.test_forced_align_fail refuses 3-D log_probs and 2-D targets ("not yet
    supported"); latentvar aligns a batch, so the four cases above are aligned at once instead and must
    give torchaudio's paths."""
    cases = [
        ([0, 1, 1, 0], [0, 1, 5, 1, 0]),
        ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4]),
        ([3, 3, 3], [3, 5, 3, 5, 3]),
    ]
    cases.append(([0, 1, 2], [0, 1, 1, 1, 2]))
    log_probs = torch.tensor(EMISSION).log().expand(4, 5, 6)
    targets = torch.full((4, 5), -1)
    for i, (t, _) in enumerate(cases):
        targets[i, : len(t)] = torch.tensor(t)
    lengths = torch.tensor([len(t) for t, _ in cases])
    path, _, _ = CTC(log_probs, torch.full((4,), 5), blank=BLANK).forced_align(targets.clamp_min(0), lengths)
    assert path.tolist() == [p for _, p in cases]


def _fail_case(change):
    log_probs = torch.rand(5, 6).log_softmax(-1)[None]
    args = {
        "log_probs": log_probs,
        "targets": torch.tensor([[0, 1, 2, 3]]),
        "input_lengths": torch.tensor([5]),
        "target_lengths": torch.tensor([4]),
        "blank": BLANK,
    }
    args.update(change)
    model = CTC(args["log_probs"], args["input_lengths"], blank=args["blank"])
    return model.forced_align(args["targets"], args["target_lengths"])


@pytest.mark.parametrize(
    "change,name",
    [
        # "targets length is too long for CTC": 6 labels, 5 frames
        (
            {"targets": torch.tensor([[0, 1, 2, 3, 4, 4]]), "target_lengths": torch.tensor([6])},
            "target_lengths",
        ),
        # "targets Tensor shouldn't contain blank index"
        ({"targets": torch.tensor([[5, 3, 3]]), "target_lengths": torch.tensor([3])}, "targets"),
        # "log_probs must be float64, float32 or float16"
        ({"log_probs": torch.ones(1, 5, 6, dtype=torch.int32)}, "log_probs"),
        # "targets must be int32 or int64 type"
        ({"targets": torch.tensor([[0.0, 1.0, 2.0, 3.0]])}, "targets"),
        # "input_lengths must be 0-D" (here: one per sequence)
        ({"input_lengths": torch.tensor([3, 4, 2])}, "input_lengths"),
        # "target_lengths must be 0-D" (here: one per sequence)
        ({"target_lengths": torch.tensor([1, 2, 3])}, "target_lengths"),
        # "input length mismatch": 10000 > T
        ({"input_lengths": torch.tensor([10000])}, "input_lengths"),
        # "target length mismatch": 10000 > the targets
        ({"target_lengths": torch.tensor([10000])}, "target_lengths"),
        # "targets values must be less than the CTC dimension"
        ({"targets": torch.tensor([[7, 8, 9, 10]]), "blank": 0}, "targets"),
        # "blank must be within [0, num classes)"
        ({"blank": 10000}, "blank"),
    ],
)
def test_forced_align_fail(change, name):
    """functional_impl.py Functional.test_forced_align_fail: each refusal, as a ValueError naming the
    argument (torchaudio raises RuntimeError or ValueError with its own message)."""
    with pytest.raises(ValueError, match=f"^{name}:"):
        _fail_case(change)
