"""Forced alignment in bounded memory (checkpointed Viterbi) and the STAR wildcard: the bounded path equals
the plain Viterbi alignment exactly; the star alignment equals brute-force enumeration of every frame-label
sequence under its definition (`latentvar.ctc.align`)."""

import itertools

import pytest
import torch

from latentvar.ctc import CTC, STAR, Labels
from latentvar.ctc import align as align_module


def ragged_case(seed, b=6, t=40, c=6, max_len=9, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    log_probs = (torch.randn(b, t, c, generator=g, dtype=dtype) * 2).log_softmax(-1)
    input_lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
    input_lengths[0] = t
    targets = torch.randint(1, c, (b, max_len), generator=g)
    target_lengths = torch.randint(0, max_len + 1, (b,), generator=g)
    targets[1, :4] = 2  # repeats
    target_lengths[1] = 4
    target_lengths[2] = 0  # empty
    input_lengths[3], target_lengths[3] = 3, 5  # cannot fit
    input_lengths[4] = 0  # no frames
    return log_probs, input_lengths, targets, target_lengths


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("segment", [1, 2, 3, 7, None, 100])
@pytest.mark.parametrize("seed", [0, 1])
def test_bounded_memory_alignment_equals_plain_viterbi_exactly(seed, segment, dtype):
    log_probs, il, targets, tl = ragged_case(seed, dtype=dtype)
    model = CTC(log_probs, il)
    plain = model.forced_align(targets, tl, memory="full")
    bounded = model.forced_align(targets, tl, memory="bounded", segment=segment)
    assert torch.equal(bounded.path, plain.path)
    assert torch.equal(bounded.spans, plain.spans)
    torch.testing.assert_close(bounded.score, plain.score, atol=0, rtol=0)
    assert (plain.path[3] == -1).all() and torch.isinf(plain.score[3])  # the one that cannot fit


def test_bounded_memory_alignment_with_ties_equals_plain():
    """Exactly tied paths (uniform log-probabilities): the same tie-breaking as the plain backtrace."""
    log_probs = torch.full((2, 12, 4), -torch.log(torch.tensor(4.0)))
    targets = torch.tensor([[1, 2, 2], [3, 1, 0]])
    tl = torch.tensor([3, 2])
    model = CTC(log_probs, torch.tensor([12, 9]))
    plain = model.forced_align(targets, tl, memory="full")
    for segment in (1, 4, 5):
        assert torch.equal(
            model.forced_align(targets, tl, memory="bounded", segment=segment).path, plain.path
        )


def test_auto_switches_to_bounded_above_the_table_size(monkeypatch):
    log_probs, il, targets, tl = ragged_case(3)
    model = CTC(log_probs, il)
    plain = model.forced_align(targets, tl)
    calls = []
    original = align_module.checkpointed_alignment

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr("latentvar.ctc.model.FULL_TABLE_BYTES", 0)
    monkeypatch.setattr("latentvar.ctc.model.checkpointed_alignment", spy)
    assert torch.equal(model.forced_align(targets, tl).path, plain.path)
    assert calls


def brute_force_star(log_probs, length, y, star_column):
    """The best frame-label sequence z over c + 1 symbols (the star = class c, scored ``star_column[t]``)
    with collapse(z) = y (the star as its own symbol, blank 0), by enumeration."""
    c = log_probs.shape[-1]
    best, best_z = float("-inf"), None
    for z in itertools.product(range(c + 1), repeat=length):
        out, prev = [], None
        for k in z:
            if k != 0 and k != prev:
                out.append(k)
            prev = k
        if tuple(out) != y:
            continue
        score = sum(float(star_column[t]) if k == c else float(log_probs[t, k]) for t, k in enumerate(z))
        if score > best:
            best, best_z = score, z
    return best, best_z


@pytest.mark.parametrize("memory", ["full", "bounded"])
@pytest.mark.parametrize("star_score", [None, 0.0, -3.0])
@pytest.mark.parametrize(
    "y",
    [(STAR, 1, 2), (1, STAR, 2), (1, 2, STAR), (STAR, 1, STAR), (STAR,), (2, STAR, STAR)],
    ids=str,
)
def test_star_alignment_against_enumeration(y, star_score, memory):
    g = torch.Generator().manual_seed(len(y))
    t, c = 5, 3
    log_probs = (torch.randn(1, t, c, generator=g, dtype=torch.float64) * 2).log_softmax(-1)
    model = CTC(log_probs, torch.tensor([t]))
    got = model.forced_align(
        torch.tensor([y]), torch.tensor([len(y)]), star_score=star_score, memory=memory, segment=2
    )
    column = (
        log_probs[0].amax(-1) if star_score is None else torch.full((t,), star_score, dtype=torch.float64)
    )
    symbols = tuple(c if k == STAR else k for k in y)
    best, z = brute_force_star(log_probs[0], t, symbols, column)
    assert float(got.score[0]) == pytest.approx(best, abs=1e-12)
    path = tuple(c if k == STAR else k for k in got.path[0].tolist())
    score = sum(float(column[i]) if k == c else float(log_probs[0, i, k]) for i, k in enumerate(path))
    assert score == pytest.approx(best, abs=1e-12)  # the path scores what it claims
    if star_score is not None:  # None ties the star with the frame's best class: any tied path is right
        assert path == z
    spans = got.spans[0]
    for j, k in enumerate(y):  # each token's span covers its frames; a star's frames are STAR
        start, end = spans[j].tolist()
        assert 0 <= start < end <= t
        if k == STAR:
            assert (got.path[0, start:end][got.path[0, start:end] != 0] == STAR).all()


def test_star_with_padding_labels_and_batch():
    """Stars in a padded batch, in `Labels`, beside a row without stars; the star-free row equals the plain
    alignment."""
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(2, 10, 4, generator=g, dtype=torch.float64).log_softmax(-1)
    model = CTC(log_probs, torch.tensor([10, 8]))
    targets = torch.tensor([[STAR, 1, 2, STAR], [3, 1, -1, -1]])
    got = model.forced_align(Labels(targets, torch.tensor([4, 2])))
    plain = model.forced_align(targets[1:2, :2].expand(2, 2), torch.tensor([2, 2]))
    assert torch.equal(got.path[1], plain.path[1])
    assert (got.path[0] == STAR).any() and got.spans.shape == (2, 4, 2)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"memory": "small"}, "memory"),
        ({"segment": 0}, "segment"),
        ({"segment": 2.5}, "segment"),
        ({"star_score": float("nan")}, "star_score"),
        ({"star_score": "0"}, "star_score"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    model = CTC(torch.zeros(1, 4, 3).log_softmax(-1), torch.tensor([4]))
    with pytest.raises(ValueError, match=f"^{name}:"):
        model.forced_align(torch.tensor([[1, 2]]), torch.tensor([2]), **kwargs)
