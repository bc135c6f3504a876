"""Loopy graphical models: the case where the assumptions fail.

latentvar's models are those whose P(z) and P(y|z) are samplable and computable, so that log P(y) is an
exact sum (mixtures, HMMs, CTC) or at least an honest estimate from exact samples (image generators). A
loopy graphical model is neither: its partition function Z sums over exponentially many configurations
with no chain or tree order, and its samples come only from MCMC. The models here say so --
``log_prob`` raises `IntractableMarginalError` unless the model is small enough to sum exactly -- and give
what can be had: exact log Z on small or narrow models, AIS estimates of log Z with standard errors
(`latentvar.estimate.ais_log_partition`), Gibbs samplers documented as approximate (docs/loopy.md).

Rooms: grid.py (`GridMRF`, Potts / Ising grids; the transfer matrix; Onsager's free energy), rbm.py (`RBM`).
"""

from latentvar.loopy.grid import GridMRF, onsager_log_partition_per_site
from latentvar.loopy.rbm import RBM

__all__ = ["GridMRF", "RBM", "onsager_log_partition_per_site"]
