"""Baum-Welch for small problems (issue 21): the E-step of a plain model with a Gaussian emission as one
compiled pass that also sums the emission's sufficient statistics (`latentvar.hmm.small`), and the M-step
of such a model in NumPy on the (k,), (k, k) and (k, d) statistics instead of some fifty small tensor
operations (`latentvar.hmm.mstep.m_step`, `latentvar.stats.SufficientStatistics.from_summaries`).

Both are the same formulas as the general path, chosen automatically, and decline (return None, so the
general path answers) for anything they do not cover: per-sequence weights, missing observations,
constraints, priors, pseudo-counts, tied or spherical covariances, end states, a sequence whose scaled
weights underflowed -- and every degenerate case (a state with no expected transitions or observations, a
collapsed variance), where the general M-step keeps the old parameters with its named warnings.

Shapes (named axes): k states, d event values.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributions as D
from torch import Tensor

from latentvar.hmm import small


def expected_counts(model, batch, stats) -> tuple[float, Tensor, Tensor, None] | None:
    """The E-step of one minibatch of a plain model (`latentvar.hmm.small.plain`) without sample weights:
    (Σ_b log P(y_b), initial counts (k,), transition counts (k, k), None), the Gaussian statistics added to
    ``stats`` (a diagonal `latentvar.stats.SufficientStatistics` with its shift, or None); None where the
    general E-step must answer (the minibatch's expected counts are then untouched)."""
    if stats is not None and (stats.family != "diag" or stats.shift is None):
        return None
    p = small.plain(model, batch)
    if p is None:
        return None
    d = p.yt.shape[1]
    shift = np.zeros(d) if stats is None else stats.shift.detach().numpy().reshape(d)
    out = small.expected_statistics(p, shift)
    if out is None:
        return None
    total, init_c, trans_c, n, sy, syy = out
    if stats is not None:
        for name, value in (("n", n), ("sy", sy), ("syy", syy)):
            old = getattr(stats, name)
            value = torch.from_numpy(value)
            setattr(stats, name, value if old is None else old + value)
    return total, torch.from_numpy(init_c), torch.from_numpy(trans_c), None


def m_step(model, counts, stats, params: str, o):
    """The re-estimated HMM of `latentvar.hmm.mstep.m_step` for a plain model (`latentvar.hmm.small`) with
    a diagonal Gaussian emission, no priors and no pseudo-counts, as one compiled call
    (`latentvar.hmm._small_mstep_numba`); None where that general M-step must answer (a degenerate state,
    or anything else it does not cover)."""
    e = "e" in params
    if (
        counts.init.dtype != torch.float64
        or counts.init.device.type != "cpu"
        or (e and (stats is None or stats.family != "diag" or stats.covariance != "diag"))
    ):
        return None
    arrays = (stats.n, stats.sy, stats.syy, stats.shift) if e else ()
    if any(x.dtype != torch.float64 for x in arrays):
        return None
    independent = stats.independent if e else False
    numbers = [x.numpy() for x in (counts.init, counts.trans, *arrays)]
    return _m_step(model, *numbers, params, o, independent)


def _m_step(
    model, init_c, trans_c, n=None, sy=None, syy=None, shift=None, params="ste", o=None, independent=False
):
    """`m_step` on NumPy counts and statistics (those of the emission None unless 'e' is in ``params``)."""
    c = small.gaussian_model(model)
    if c is None or o.init_prior is not None or o.trans_prior is not None or o.pseudocount != 0:
        return None
    from latentvar.hmm._small_mstep_numba import m_step as compiled

    e = "e" in params
    k, d = model.num_states, c.loc.shape[1]
    if not e:
        n, sy, syy, shift = np.zeros(k), np.zeros((k, d)), np.zeros((k, d)), np.zeros(d)
    log_init, log_trans, mean, scale, ok = compiled(
        init_c, trans_c, c.log_init, c.log_trans, n.reshape(k), sy.reshape(k, d), syy.reshape(k, d),
        shift.reshape(d), float(o.reg_covar), "s" in params, "t" in params, e,
    )  # fmt: skip
    if not ok:
        return None
    emission = _gaussian(mean, scale, independent) if e else model.emission
    from latentvar.hmm.model import HMM

    return HMM._checked(torch.from_numpy(log_init), torch.from_numpy(log_trans), emission)


def fit_em(model, p, inputs, o):
    """`latentvar.hmm.fit.fit_em` for a plain model and inputs without sample weights (not distributed),
    given as their `latentvar.hmm.small.Plain` view ``p``, with ``inputs()`` the checked `Inputs` (prepared
    only if an iteration needs the general E-step): each iteration one compiled E-step
    (`latentvar.hmm.small.expected_statistics`) and one compiled M-step, no minibatches, `Counts` or
    `SufficientStatistics` in between; an iteration the direct routes decline (underflow, a degenerate
    state) runs the general E- or M-step. None where the options are not covered (the general loop
    answers)."""
    from latentvar.hmm import fit as general
    from latentvar.hmm.mstep import check_params
    from latentvar.hmm.mstep import m_step as general_m_step

    if o.init_prior is not None or o.trans_prior is not None or o.pseudocount != 0:
        return None
    params = check_params(o.params, model)
    if "e" in params and o.covariance_type not in (None, "diag"):
        return None
    from latentvar.hmm._small_numba import observed_mean

    independent = type(model.emission) is D.Independent
    b, snapshot = p.yt.shape[2], p
    shift, n_obs = observed_mean(p.yt, p.lengths)  # the Gaussian statistics' shift: the observed mean
    n_obs = float(n_obs)
    monitor = general.Monotonicity()
    history: list[float] = []
    converged = False
    bar = general.progress_bar(range(o.max_iter), "Baum-Welch", o.show_progress)
    for _ in bar:
        c = small.gaussian_model(model)  # after an M-step: the new model's constants, y as it was
        p = (
            None
            if c is None
            else small.Plain(snapshot.yt, c.loc, c.scale, snapshot.lengths, snapshot.lengths_t, c)
        )
        out = small.expected_statistics(p, shift) if p is not None else None
        if out is None:  # the general E-step (it names a sequence of probability zero)
            counts, stats = general._accumulate(
                model, inputs(), None, params, o, general._batches(b, o.batch_size), torch.from_numpy(shift)
            )
            loglik = counts.loglik
        else:
            loglik, init_c, trans_c, n, sy, syy = out
        mean_ll = loglik / (n_obs if n_obs > 0 else 1.0)
        monitor.check(len(history) + 1, mean_ll, history, 0.0)
        if history and mean_ll - history[-1] < o.tol:
            history.append(mean_ll)
            converged = True
            break
        history.append(mean_ll)
        bar.set_postfix(loglik=f"{mean_ll:.5f}")
        if out is not None:
            new = _m_step(model, init_c, trans_c, n, sy, syy, shift, params, o, independent)
            if new is None:  # degenerate: the general M-step keeps old parameters, with its warnings
                counts, stats = _as_general(model, (loglik, init_c, trans_c), (n, sy, syy, shift), params, o)
        else:
            new = m_step(model, counts, stats, params, o)
        model = new if new is not None else general_m_step(model, counts, stats, params, o)
        if o.callback is not None and o.callback(model, len(history), mean_ll):
            break
    return general.HMMFitResult(model, history, converged, monitor.decreases)


def _as_general(model, counted, statistics, params: str, o):
    """The `Counts` and `SufficientStatistics` (None without 'e' in ``params``) of the general M-step from
    the compiled E-step's arrays."""
    from latentvar.hmm.mstep import Counts
    from latentvar.stats import SufficientStatistics

    loglik, init_c, trans_c = counted
    counts = Counts(loglik, torch.from_numpy(init_c), torch.from_numpy(trans_c), None)
    if "e" not in params:
        return counts, None
    n, sy, syy, shift = (torch.from_numpy(x) for x in statistics)
    stats = SufficientStatistics(model.emission, "emission", o.covariance_type, shift)
    stats.n, stats.sy, stats.syy = n, sy, syy
    return counts, stats


def _gaussian(mean: np.ndarray, scale: np.ndarray, independent: bool) -> D.Distribution:
    """``Normal`` (k,) or ``Independent(Normal (k, d), 1)``, as `SufficientStatistics.from_summaries`
    builds them. Their arguments hold by construction (finite means, positive scales): built unvalidated,
    then given the default validation setting back, as the general M-step's would have."""
    loc, scale = torch.from_numpy(mean), torch.from_numpy(scale)
    if not independent:
        loc, scale = loc[:, 0], scale[:, 0]
    normal = D.Normal(loc, scale, validate_args=False)
    del normal._validate_args
    if not independent:
        return normal
    out = D.Independent(normal, 1, validate_args=False)
    del out._validate_args
    return out
