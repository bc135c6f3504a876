"""Estimators of log P(y) = log E_{z~P(z)} P(y|z) where the integral over z has no closed form.

Every estimator works in log space on log-weights log w_i = log P(z_i, y) - log q(z_i) (logsumexp, never
exp of a large number) and returns an `Estimate`: a per-image ``estimate`` (b,) and ``stderr`` (b,).

==============  ================================================  =========================================
estimator       value per image                                   bias
==============  ================================================  =========================================
naive_mc        log mean_i P(y|z_i), z_i ~ P(z)                    lower bound (Jensen); huge bias
importance      log mean_i P(z_i,y)/q(z_i), z_i ~ q                lower bound; exact if q = P(z|y)
elbo            mean_i log P(z_i,y)/q(z_i|y)                       lower bound (Kingma & Welling 2014)
iwae            log mean_i P(z_i,y)/q(z_i|y)                       lower bound, tighter with k (Burda 2016)
ais             log mean_c w_c over HMC chains, prior (or an       lower bound in expectation (Neal 2001)
                encoder q(z|y)) -> posterior; by default an
                adaptive SMC sampler that tunes itself
bdmc            AIS forward (lower) and reverse from an exact      brackets log P(y) on simulated data
                posterior sample (upper)                           (Grosse et al. 2015; Wu et al. 2017)
ais_log_        log Z of a loopy model (GridMRF, RBM): AIS / SMC   lower bound in expectation (Neal 2001;
partition       from its independent base model (Gibbs, or         Salakhutdinov & Murray 2008)
                Swendsen-Wang on Potts grids)
==============  ================================================  =========================================

Adaptive annealing (the default of ``ais(model, y)``, ``bdmc`` and ``ais_log_partition(model)``, no budget
needed): a tuning run chooses the schedule by conditional-ESS bisection and tunes the moves, then fresh
chains in independent replicate groups replay it frozen, so the estimate stays unbiased for P(y) / Z and
its stderr comes from the replicates' spread (smc.py, tempering.py, hmc.py, diagnostics.py). Every
`Estimate` carries ``diagnostic``, one readable line ("ok: ..." or what is wrong and what to raise).

Standard errors. For the log-mean-exp estimators (naive_mc, importance, iwae, ais) the stderr is the
*delta method*: se(log mean w) ~= sd(w) / (sqrt(n) mean(w)), computed from self-normalised weights
(so it never overflows). It is a large-sample approximation and understates the error when the weights
are heavy-tailed (a few chains dominate): check ``extra["ess"]`` (near 1 means one sample carries all
the weight) and, on simulated data, the BDMC gap. For the ELBO, the
stderr is the ordinary sd / sqrt(n) of the per-sample terms. With one sample the stderr is undefined
and reported as NaN (documented, never silent elsewhere).

The model needs ``prior`` (a torch Distribution whose event shape is the latent shape),
``log_likelihood(y, z)`` and ``log_joint(z, y)`` (both broadcasting over leading axes), ``latent_shape``,
``event_shape`` and ``check_images(y)`` -- `latentvar.LinearGaussian` and `latentvar.Generator` have them.
An encoder / proposal is a callable ``y (b, ...) -> Distribution`` with batch (b,) and the latent event
shape, or (for ``importance``) such a Distribution itself.

Shapes: ``b`` images, ``s`` samples (or ``c`` AIS chains), ``...`` the latent shape.

Rooms: weights.py (the results, log-space helpers, argument checks), sampling.py (naive_mc, importance,
elbo, iwae), ais.py (sigmoid_schedule, ais, bdmc), partition.py (ais_log_partition: the partition
function of a model that offers an ``annealing_path()``; see its docstring for that protocol), smc.py
(the tempered SMC engine: CESS bisection, resampling, frozen plans, replicates), tempering.py (the
adaptive ais / bdmc runs), hmc.py (self-tuning HMC, the fitted Gaussian start), diagnostics.py (replicate
stderrs and the diagnostic line).
"""

from latentvar.estimate.ais import ais, bdmc, sigmoid_schedule
from latentvar.estimate.partition import ais_log_partition
from latentvar.estimate.sampling import elbo, importance, iwae, naive_mc
from latentvar.estimate.weights import BDMCResult, Estimate, effective_sample_size, log_mean_exp

__all__ = [
    "Estimate",
    "BDMCResult",
    "naive_mc",
    "importance",
    "elbo",
    "iwae",
    "ais",
    "bdmc",
    "ais_log_partition",
    "sigmoid_schedule",
    "log_mean_exp",
    "effective_sample_size",
]
