"""Hidden Markov models over `latentvar.inference`: `HMM` (a model, or a batch of them with shared or
time-varying transitions), its posterior `HMMPosterior`, `ConditionalHMM(net)` for P(y|x), and fitting
(Baum-Welch and gradient). Rooms: model.py (the model, sampling), inputs.py (checks and broadcasting of
y), posterior.py (P(z|y)), conditional.py (ConditionalHMM), fit.py (EM and gradient fitting)."""

from latentvar.hmm.conditional import ConditionalHMM
from latentvar.hmm.fit import _em_family
from latentvar.hmm.model import HMM, METHODS, _log_partition
from latentvar.hmm.posterior import HMMPosterior

__all__ = ["HMM", "METHODS", "ConditionalHMM", "HMMPosterior", "_em_family", "_log_partition"]
