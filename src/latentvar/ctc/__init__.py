"""Connectionist temporal classification as a latent-variable model (Graves et al., ICML 2006).

Given per-frame class log-probabilities log P(z_t = c | x), the latent z is the frame-level label
sequence (blanks included) and the observation y is z collapsed: repeats merged, then blanks removed.

    P(y | x) = Σ_{z : collapse(z) = y} Π_t P(z_t | x)

The sum runs over paths through the *extended* label sequence l' = (blank, y_1, blank, y_2, ..., blank)
of length S = 2L + 1 (Graves et al. 2006, eq. 6-10). That lattice is a linear chain over the S positions
with a banded step (`latentvar.inference.lattice`), so every question is one query of the shared engine:
`LogSemiring` gives log P(y|x) and the forward variables that backward sampling walks through;
`MaxSemiring` gives the forced alignment through the same backtrace the HMM uses; the marginals are the
gradient of log P(y|x) (TorchScript forward-backward kernels as the registered fast path).

Rooms: model.py (`CTC`, `CTCPosterior`), loss.py (log P(y|x) and the torch-compatible `ctc_loss`),
_kernels.py (the compiled forward-backward that `ctc_loss` runs by default on CPU), decode.py (collapse,
greedy, prefix beam search and its n-best), align.py (bounded-memory forced alignment and the `STAR`
wildcard token), checks.py (argument checks).

Shapes (named axes): b batch, t frames, c classes (blank included), l target labels, s extended
positions (s = 2l + 1), n samples.
"""

from __future__ import annotations

from latentvar.ctc.align import STAR, checkpointed_alignment
from latentvar.ctc.decode import Decoded, Labels, collapse, prefix_beam_search
from latentvar.ctc.loss import BACKENDS, ctc_loss, log_likelihood
from latentvar.ctc.model import CTC, PAD, Alignment, CTCPosterior
from latentvar.inference.lattice import extended_labels, final_mask

__all__ = [
    "BACKENDS",
    "CTC",
    "PAD",
    "STAR",
    "Alignment",
    "CTCPosterior",
    "Decoded",
    "Labels",
    "checkpointed_alignment",
    "collapse",
    "ctc_loss",
    "extended_labels",
    "final_mask",
    "log_likelihood",
    "prefix_beam_search",
]
