"""Evaluating a line reader on the held-out test lines (`latentvar ctc eval`): character error rate (edit
distance / reference digits) and sequence accuracy, greedy or prefix-beam decoding.

Shapes (named axes): b batch, h height (8), w width (columns), t frames (w / 2), c classes (blank + 10).
"""

from __future__ import annotations

from pathlib import Path

import torch

from latentvar.apps.digits.data import SPLIT_SEED, TEST_FRACTION, as_classes, test_lines
from latentvar.apps.digits.model import BLANK, Config, LineReader, load
from latentvar.ctc import CTC
from latentvar.progress import progress


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions of one unit each)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


@torch.no_grad()
def evaluate(run: Path, beam_width: int = 1, n_lines: int = 500) -> dict:
    """Character error rate (edit distance / reference digits) and sequence accuracy on the test lines."""
    model, meta, _ = load(Path(run))
    cfg = Config(**meta["config"])
    model.eval()
    pixels, widths, digits, lengths, _ = test_lines(cfg, n_lines)
    model_ctc = CTC(model(pixels), LineReader.frames(widths), blank=BLANK)
    decoded = model_ctc.decode(beam_width=beam_width)
    errors, exact = 0, 0
    for i in progress(range(n_lines), desc="ctc eval"):
        hyp = (decoded.labels[i, : int(decoded.lengths[i])] - 1).tolist()
        ref = digits[i, : int(lengths[i])].tolist()
        e = edit_distance(hyp, ref)
        errors += e
        exact += e == 0
    test_nll = -model_ctc.log_prob(as_classes(digits), lengths)
    return {
        "cer": errors / int(lengths.sum()),
        "sequence_accuracy": exact / n_lines,
        "num_lines": n_lines,
        "num_digits": int(lengths.sum()),
        "beam_width": beam_width,
        "mean_test_nll_per_line": float(test_nll.mean()),
        "step": meta["step"],
        "split": f"scans {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%}, fixed permutation (seed {SPLIT_SEED})",
    }
