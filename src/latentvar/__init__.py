"""latentvar: interpretable latent-variable models, P(y) = Σ_z P(z) P(y|z).

Exact inference (log P(y), the posterior P(z|y): marginals, mode, samples) wherever the sum over z can
be done, and honest estimators where it cannot.

Model families are imported on first use, so `import latentvar` stays light.

Rooms (README, "Layout"): core.py (the API), inference/ (the one exact-inference engine), stats.py
(per-family EM statistics and gradient parametrisations), the model families (mixture.py, hmm/, ctc/,
autoregressive.py, generator.py), estimate/ (estimators where log P(y) is intractable), the applications
(colorize/, the flagship, and apps/), data/ (shipped data and loaders), cli/ (the `latentvar` command).
"""

from importlib import import_module

from latentvar.core import FitResult, IntractableMarginalError, LatentVariableModel, Posterior
from latentvar.inference.semiring import LogSemiring, MaxSemiring
from latentvar.mixture import ConditionalMixture, Mixture, MixturePosterior, gaussian_mixture_init

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "HMM": "latentvar.hmm",
    "ConditionalHMM": "latentvar.hmm",
    "inference": "latentvar.inference",
    "Autoregressive": "latentvar.autoregressive",
    "CTC": "latentvar.ctc",
    "ctc_loss": "latentvar.ctc",
    "Generator": "latentvar.generator",
    "LinearGaussian": "latentvar.generator",
    "estimate": "latentvar.estimate",
    "GridMRF": "latentvar.loopy",
    "RBM": "latentvar.loopy",
    "colorize": "latentvar.colorize",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = import_module(_LAZY[name])
        value = module if module.__name__ == f"latentvar.{name}" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'latentvar' has no attribute {name!r}")


__all__ = [
    "ConditionalMixture",
    "FitResult",
    "IntractableMarginalError",
    "LatentVariableModel",
    "LogSemiring",
    "MaxSemiring",
    "Mixture",
    "MixturePosterior",
    "Posterior",
    "gaussian_mixture_init",
    *_LAZY,
]
