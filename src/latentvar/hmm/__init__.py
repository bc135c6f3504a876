"""Hidden Markov models over `latentvar.inference`: `HMM` (a model, or a batch of them with shared or
time-varying transitions), its posterior `HMMPosterior`, `ConditionalHMM(net)` for P(y|x), fitting
(Baum-Welch and gradient), and the family's emissions and initialisers for sequences of words.

Rooms: model.py (the model), parameters.py (checks of its parameters), sampling.py (drawing states and
observations, variable lengths through end states), inputs.py (checks and broadcasting of y, missing
observations, state constraints), posterior.py (P(z|y)), small.py and small_fit.py (direct compiled routes
for small problems of a plain float64 Gaussian HMM: log_prob, marginals, mode, Baum-Welch), conditional.py (ConditionalHMM), fit.py (EM and
gradient fitting), mstep.py (the M-step of π, A and the ends with params / Dirichlet priors), online.py
(stepwise and distributed EM), kmeans.py (data-driven starts), diagnostics.py (the named warnings and result
of degenerate fits), criteria.py (AIC / BIC, stationary distribution, `filter`), filtering.py (forward /
backward tables, online filtering), semimarkov.py (`HSMM`, explicit durations: log P, marginals, mode,
exact sampling), semimarkov_fit.py (its EM), emissions.py (neural emissions over words from their spelling: `CharEmission`, `FeatureEmission`), word_clusters.py (type-level context
clusters and `warm_start`, which starts an HMM from them). emissions.py and word_clusters.py are imported
on use (`from latentvar.hmm.emissions import FeatureEmission`), so `import latentvar.hmm` stays light.
"""

from latentvar.hmm.conditional import ConditionalHMM
from latentvar.hmm.diagnostics import (
    DegenerateFitWarning,
    EmptyStateWarning,
    HMMFitResult,
    NonMonotoneEMWarning,
    ZeroTransitionsWarning,
)
from latentvar.hmm.fit import _em_family  # old name: latentvar.stats.em_family(emission, "emission")
from latentvar.hmm.model import HMM, METHODS, _log_partition  # old name: Chain(...).log_partition()
from latentvar.hmm.posterior import HMMPosterior
from latentvar.hmm.semimarkov import HSMM

__all__ = [
    "HMM",
    "METHODS",
    "ConditionalHMM",
    "DegenerateFitWarning",
    "EmptyStateWarning",
    "HMMFitResult",
    "HMMPosterior",
    "HSMM",
    "NonMonotoneEMWarning",
    "ZeroTransitionsWarning",
    "_em_family",
    "_log_partition",
]
