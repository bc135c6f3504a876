"""Hidden Markov models over `latentvar.inference`: `HMM` (a model, or a batch of them with shared or
time-varying transitions), its posterior `HMMPosterior`, `ConditionalHMM(net)` for P(y|x), fitting
(Baum-Welch and gradient), and the family's emissions and initialisers for sequences of words.

Rooms: model.py (the model, sampling), inputs.py (checks and broadcasting of y), posterior.py (P(z|y)),
conditional.py (ConditionalHMM), fit.py (EM and gradient fitting), emissions.py (neural emissions over
words from their spelling: `CharEmission`, `FeatureEmission`), word_clusters.py (type-level context
clusters and `warm_start`, which starts an HMM from them). emissions.py and word_clusters.py are imported
on use (`from latentvar.hmm.emissions import FeatureEmission`), so `import latentvar.hmm` stays light.
"""

from latentvar.hmm.conditional import ConditionalHMM
from latentvar.hmm.fit import _em_family  # old name: latentvar.stats.em_family(emission, "emission")
from latentvar.hmm.model import HMM, METHODS, _log_partition  # old name: Chain(...).log_partition()
from latentvar.hmm.posterior import HMMPosterior

__all__ = ["HMM", "METHODS", "ConditionalHMM", "HMMPosterior", "_em_family", "_log_partition"]
