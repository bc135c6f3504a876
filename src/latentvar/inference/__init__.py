"""The one exact-inference engine of latentvar: a semiring-generic linear chain over factored potentials.

- `semiring`: `LogSemiring` (log Z, marginals by its gradient, samples), `MaxSemiring` (Viterbi),
  `KMaxSemiring` (the K best paths, `kbest`).
- `chain`: `Chain(init, transitions, emissions, lengths, final)`, its scaled forward recursion, marginals as
  ∂ log Z/∂ potentials, entropy, and the one backtrace `backtrack(alphas, choose)` serving Viterbi
  (`Argmax`) and posterior sampling (`GumbelDraw`).
- `backtrack`: the one backtrace, `backtrack(alphas, lengths, step, choose)`.
- `scan`: the log-depth parallel scan of the same chain (log Z, marginals, best path).
- `lattice`: the CTC lattice as a banded step of the same chain.
- `_compiled` (numba) and `_scripted` (TorchScript): registered fast paths (`_registry`), each tested
  against the generic recursion.

The HMM (`latentvar.hmm`) and CTC (`latentvar.ctc`) are thin models over this package.
"""

from latentvar.inference import _compiled, _scripted  # noqa: F401  (registers the fast paths)
from latentvar.inference._registry import registered
from latentvar.inference.backtrack import Argmax, GumbelDraw, backtrack
from latentvar.inference.chain import Chain, Dense
from latentvar.inference.kbest import kbest
from latentvar.inference.lattice import Banded, Gathered, ctc_chain, extended_labels, final_mask
from latentvar.inference.scan import parallel_log_partition, parallel_marginals, parallel_viterbi
from latentvar.inference.semiring import KMaxSemiring, LogSemiring, MaxSemiring

__all__ = [
    "Argmax",
    "Banded",
    "Chain",
    "Dense",
    "Gathered",
    "GumbelDraw",
    "KMaxSemiring",
    "LogSemiring",
    "MaxSemiring",
    "backtrack",
    "ctc_chain",
    "extended_labels",
    "final_mask",
    "kbest",
    "parallel_log_partition",
    "parallel_marginals",
    "parallel_viterbi",
    "registered",
]
