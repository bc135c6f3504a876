"""Annealed importance sampling with Hamiltonian Monte Carlo transitions (Neal 2001), from the prior or an
encoder q(z|y) to the posterior, and bidirectional Monte Carlo (Grosse et al. 2015), which brackets
log P(y) on simulated data by a forward and a reverse AIS run.

Shapes: ``b`` images, ``s`` samples (or ``c`` AIS chains), ``...`` the latent shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributions as D
from torch import Tensor

from latentvar._checks import check_positive
from latentvar.estimate.weights import (
    BDMCResult,
    Estimate,
    check_batch,
    check_model,
    check_num,
    effective_sample_size,
    finite_or_raise,
    log_mean_exp,
    log_mean_exp_stderr,
    summarise_lme,
)
from latentvar.progress import progress

# relative jitter of the HMC step size
JITTER = 0.2


def sigmoid_schedule(num_steps: int, delta: float = 4.0, dtype=torch.float64) -> Tensor:
    """β_0 = 0 < ... < β_T = 1, spaced by a sigmoid so that more steps fall near both ends
    (Grosse, Ghahramani & Adams 2015, sec. 6). Returns (T + 1,)."""
    t = torch.linspace(-delta, delta, num_steps + 1, dtype=dtype)
    s = torch.sigmoid(t)
    return (s - s[0]) / (s[-1] - s[0])


def _log_density_and_grad(dist: D.Distribution, z: Tensor) -> tuple[Tensor, Tensor]:
    """log dist(z) and ∇_z log dist(z): closed form for a diagonal Gaussian (the N(0, I) priors and the
    mean-field encoders here), one backward pass through ``log_prob`` otherwise."""
    if hasattr(dist, "log_prob_and_grad"):  # e.g. the fitted Gaussian start (hmc.FittedGaussian)
        return dist.log_prob_and_grad(z)
    base = dist.base_dist if isinstance(dist, D.Independent) else dist
    if isinstance(base, D.Normal):
        return dist.log_prob(z), -(z - base.loc) / base.scale**2
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        lp = dist.log_prob(z)
        (grad,) = torch.autograd.grad(lp.sum(), z)
    return lp.detach(), grad


def _log_lik_and_grad(model, y: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """log P(y|z) (c, b) and its gradient in z: the model's closed form where it has one
    (``log_likelihood_and_grad``), else one backward pass through the decoder."""
    if hasattr(model, "log_likelihood_and_grad"):
        return model.log_likelihood_and_grad(y, z)
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        ll = model.log_likelihood(y, z)
        (grad,) = torch.autograd.grad(ll.sum(), z)
    return ll.detach(), grad


@dataclass
class _Path:
    """The geometric annealing path π_β(z) ∝ q0(z)^(1-β) P(z, y)^β from a normalised initial
    distribution q0 (β = 0) to the posterior (β = 1), written as log π_β = base(z) + β·incr(z) with
    base = log q0 and incr = log P(z, y) - log q0. From the prior (``initial`` None) that is
    base = log P(z), incr = log P(y|z); from an encoder q(z|y), base = log q(z|y) and
    incr = log P(z) + log P(y|z) - log q(z|y). AIS's log-weight increments are (β_t - β_{t-1})·incr."""

    model: object
    y: Tensor
    initial: D.Distribution | None = None

    def sample_initial(self, num_chains: int) -> Tensor:
        """z_0 (c, b, ...) drawn exactly from q0."""
        if self.initial is None:
            return self.model.prior.sample((num_chains, self.y.shape[0]))
        return self.initial.sample((num_chains,))

    def terms(self, z: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
        """base(z), incr(z) (each (c, b)) and ∇_z [base + β·incr]."""
        log_prior, grad_prior = _log_density_and_grad(self.model.prior, z)
        ll, grad_ll = _log_lik_and_grad(self.model, self.y, z)
        if self.initial is None:
            return log_prior, ll, grad_prior + beta * grad_ll
        log_q, grad_q = _log_density_and_grad(self.initial, z)
        grad = (1 - beta) * grad_q + beta * (grad_prior + grad_ll)
        return log_q, log_prior + ll - log_q, grad

    def incr(self, z: Tensor) -> Tensor:
        ll = self.model.log_likelihood(self.y, z)
        if self.initial is None:
            return ll
        return self.model.prior.log_prob(z) + ll - self.initial.log_prob(z)


def _hmc_step(path: _Path, z, beta, step_size, leapfrog_steps):
    """One HMC transition leaving π_β(z) ∝ exp(base(z) + β·incr(z)) invariant (Neal 2011, 'MCMC using
    Hamiltonian dynamics', sec. 5.2). z (c, b, ...), step_size (b,). Returns (z, incr(z), acceptance
    prob (c, b))."""
    # a random ±jitter of the step size per chain and transition avoids trajectories that return to
    # their start (ε·L near a period of the target), which would stop the chain mixing (Neal 2011, 5.4.2.2)
    jitter = 1.0 + JITTER * (2 * torch.rand(z.shape[:2], dtype=z.dtype) - 1)
    eps = (step_size.to(z.dtype) * jitter).reshape(*z.shape[:2], *([1] * (z.dim() - 2)))
    base, incr, grad = path.terms(z, beta)
    p0 = torch.randn_like(z)
    h0 = -(base + beta * incr) + 0.5 * p0.flatten(2).pow(2).sum(-1)
    q, p = z, p0 + 0.5 * eps * grad
    for i in range(leapfrog_steps):
        q = q + eps * p
        base_q, incr_q, grad = path.terms(q, beta)
        p = p + (eps if i < leapfrog_steps - 1 else 0.5 * eps) * grad
    h1 = -(base_q + beta * incr_q) + 0.5 * p.flatten(2).pow(2).sum(-1)
    log_accept = (h0 - h1).nan_to_num(nan=-math.inf)  # a diverged trajectory is rejected
    accept = torch.log(torch.rand_like(log_accept)) < log_accept
    mask = accept.reshape(*accept.shape, *([1] * (z.dim() - 2)))
    z_new = torch.where(mask, q, z)
    incr_new = torch.where(accept, incr_q, incr)
    return z_new, incr_new, log_accept.clamp(max=0).exp()


@torch.no_grad()
def _anneal(path: _Path, z, betas, step_size, leapfrog_steps, target_accept, show_progress, desc, adapt=True):
    """Run AIS along ``betas`` from z (c, b, ...): log w = Σ_t (β_t - β_{t-1}) incr(z_{t-1}) (Neal 2001,
    eq. 3; incr = log P(y|z) from the prior), then an HMC transition at β_t. Step sizes adapt per image
    towards ``target_accept`` (×1.02 above it, ×0.98 below; Wu et al. 2017)."""
    incr = path.incr(z)
    log_w = torch.zeros_like(incr)
    accept_sum = torch.zeros(path.y.shape[0], dtype=incr.dtype)
    for t in progress(range(1, len(betas)), desc=desc, disable=not show_progress):
        log_w = log_w + (betas[t] - betas[t - 1]) * incr
        z, incr, acc = _hmc_step(path, z, float(betas[t]), step_size, leapfrog_steps)
        rate = acc.mean(0)
        accept_sum += rate
        if adapt:
            step_size = torch.where(rate > target_accept, step_size * 1.02, step_size * 0.98).clamp(1e-4, 2.0)
    extra = {"acceptance": accept_sum / max(len(betas) - 1, 1), "step_size": step_size}
    return log_w, z, extra


def _ais_options(num_steps, num_chains, leapfrog_steps, step_size, target_accept, schedule):
    """Checked options; the schedule resolved: 'auto' -> 'adaptive' without num_steps, 'sigmoid' with."""
    if isinstance(schedule, str) and schedule == "auto":
        schedule = "adaptive" if num_steps is None else "sigmoid"
    if isinstance(schedule, Tensor):
        betas = schedule.to(torch.float64).flatten()
        ok = betas.numel() >= 2 and betas[0] == 0 and betas[-1] == 1 and bool((betas.diff() > 0).all())
        if not ok:
            raise ValueError("schedule: expected increasing betas from 0 to 1, got another tensor")
        num_steps = betas.numel() - 1
    elif not isinstance(schedule, str) or schedule not in ("adaptive", "sigmoid"):
        raise ValueError(
            f"schedule: expected 'auto', 'adaptive', 'sigmoid' or a tensor of betas, got {schedule!r}"
        )
    elif schedule == "sigmoid" and num_steps is None:
        raise ValueError("num_steps: the sigmoid schedule needs a number of steps, got None")
    if num_steps is not None:
        num_steps = check_num("num_steps", num_steps)
    if num_chains is not None:
        num_chains = check_num("num_chains", num_chains)
    leapfrog_steps = check_num("leapfrog_steps", leapfrog_steps)
    check_positive("step_size", step_size)
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept: expected a probability in (0, 1), got {target_accept!r}")
    return num_steps, num_chains, leapfrog_steps, schedule


def _fixed_betas(schedule, num_steps: int) -> Tensor:
    return (
        schedule.to(torch.float64).flatten() if isinstance(schedule, Tensor) else sigmoid_schedule(num_steps)
    )


def _max_cost(max_cost, num_steps, schedule) -> int | None:
    from latentvar.estimate.tempering import check_max_cost

    return check_max_cost(max_cost, num_steps, schedule)


def _initial_for(model, initial, y: Tensor) -> D.Distribution | None:
    """q0 = initial(y), checked: a Distribution with batch (b,) and the model's latent event shape."""
    if initial is None:
        return None
    if not callable(initial) or isinstance(initial, D.Distribution):
        raise ValueError(
            f"initial: expected a callable y -> Distribution over z (an encoder q(z|y)) or None, "
            f"got {type(initial).__name__}"
        )
    with torch.no_grad():
        q = initial(y)
    if not isinstance(q, D.Distribution):
        raise ValueError(f"initial: expected initial(y) to return a Distribution, got {type(q).__name__}")
    want_batch, want_event = (y.shape[0],), tuple(model.latent_shape)
    if tuple(q.batch_shape) != want_batch or tuple(q.event_shape) != want_event:
        raise ValueError(
            f"initial: expected initial(y) with batch shape {want_batch} and event shape {want_event}, "
            f"got batch {tuple(q.batch_shape)}, event {tuple(q.event_shape)}"
        )
    return q


def ais(
    model,
    y,
    num_steps: int | None = None,
    num_chains: int | None = None,
    *,
    initial: Callable[[Tensor], D.Distribution] | None = None,
    leapfrog_steps: int = 5,
    step_size: float = 0.5,
    target_accept: float = 0.65,
    show_progress: bool = False,
    schedule: str | Tensor = "auto",
    target_cess: float = 0.99,
    resample: bool = True,
    replicates: int = 8,
    start: str = "fitted",
    max_cost: int | None = None,
) -> Estimate:
    """An `Estimate` of log P(y) per image by annealed importance sampling (Neal 2001) with HMC moves.
    ``ais(model, y)`` -- no budget -- is the recommended call.

    The path is geometric, π_β ∝ q0(z)^(1-β) [P(z) P(y|z)]^β, β from 0 to 1, q0 the prior P(z) or, with
    ``initial``, an encoder: a callable y (b, ...) -> Distribution over z with batch (b,) and the latent
    event shape. Because q0 is normalised and sampled exactly the estimator is unbiased for P(y) however
    poor q0 is (a stochastic lower bound on log P(y)); with the exact posterior as q0 every log-weight is
    log P(y).

    ``schedule="auto"`` (the default) is "adaptive" without ``num_steps`` and "sigmoid" with it.
    ``schedule="adaptive"`` ( `latentvar.estimate.tempering`): a tuning
    run picks each next β so that the conditional ESS of the incremental weights is ``target_cess``
    (Zhou, Johansen & Aston 2016), adapts HMC's step size per temperature towards ``target_accept`` and a
    diagonal mass matrix from the chains' spread, and draws the leapfrog length from 1 .. 2·``leapfrog_steps``
    - 1; with ``start="fitted"`` a Gaussian fitted to its chains becomes the start of a second, short
    tuning run. Then ``num_chains`` fresh chains (default 128), in ``replicates`` independent groups,
    replay the frozen schedule -- with systematic resampling where the tuning run resampled when
    ``resample`` (an SMC sampler, Del Moral et al. 2006), plain AIS otherwise -- so the estimate stays
    unbiased for P(y), and the stderr comes from the replicates' spread (`latentvar.estimate.diagnostics`).
    ``num_steps`` with the adaptive schedule: the tuned schedule's shape resampled to that many
    temperatures (a fixed budget). ``max_cost`` instead (adaptive only): a budget of chain-transitions
    over all three runs -- the estimation run gets the tuned shape at as many temperatures as the budget
    left after tuning buys (at least one; the tuning runs are not capped, so ``extra["cost"]`` can
    exceed a budget smaller than they needed).

    ``schedule="sigmoid"`` (what ``num_steps`` alone gives, as before) or a tensor of betas: the
    fixed schedule of Wu et al. 2017, one HMC transition (``leapfrog_steps`` leapfrog steps) per
    temperature, step sizes adapted per image (×1.02 above ``target_accept``, ×0.98 below), stderr by the
    delta method over the ``num_chains`` independent chains.

    ``extra``: ``ess``, mean acceptance rate and final step size per image; for the adaptive schedule also
    ``num_temperatures``, ``replicate_log_z`` (R, b), ``num_resamples``, ``explore_log_z`` (the tuning
    run's own estimate, a cross-check) and ``cost`` (chain-transitions over all runs). ``diagnostic``:
    one readable line."""
    num_steps, num_chains, leapfrog_steps, schedule = _ais_options(
        num_steps, num_chains, leapfrog_steps, step_size, target_accept, schedule
    )
    max_cost = _max_cost(max_cost, num_steps, schedule)
    y = check_batch(model, y)
    q = _initial_for(model, initial, y)
    if schedule == "adaptive":
        from latentvar.estimate.tempering import adaptive_ais, check_options

        num_chains, replicates = check_options(target_cess, resample, replicates, num_chains, start)
        opts = dict(
            num_chains=num_chains, replicates=replicates, num_steps=num_steps, step_size=step_size,
            leapfrog_steps=leapfrog_steps, target_accept=target_accept, show_progress=show_progress,
            target_cess=target_cess, resample=resample, start=start, max_cost=max_cost,
        )  # fmt: skip
        return adaptive_ais(lambda q0: _Path(model, y, q0), model, y, q, opts)[0]
    num_chains = 128 if num_chains is None else num_chains
    path = _Path(model, y, q)
    with torch.no_grad():
        z0 = path.sample_initial(num_chains)
    eps = torch.full((y.shape[0],), float(step_size), dtype=z0.dtype)
    betas = _fixed_betas(schedule, num_steps)
    log_w, _, extra = _anneal(path, z0, betas, eps, leapfrog_steps, target_accept, show_progress, "AIS")
    return summarise_lme("ais", log_w, extra)


def bdmc(
    model,
    num_images: int,
    num_steps: int | None = None,
    num_chains: int | None = None,
    *,
    initial: Callable[[Tensor], D.Distribution] | None = None,
    leapfrog_steps: int = 5,
    step_size: float = 0.5,
    target_accept: float = 0.65,
    show_progress: bool = False,
    schedule: str | Tensor = "auto",
    target_cess: float = 0.99,
    resample: bool = True,
    replicates: int = 8,
    start: str = "fitted",
    max_cost: int | None = None,
) -> BDMCResult:
    """Bidirectional Monte Carlo (Grosse, Ghahramani & Adams 2015; Grosse et al. 2016; Wu et al. 2017):
    simulate (z*, y) ~ P(z) P(y|z) for ``num_images`` images, so z* is an exact posterior sample for y.
    Forward AIS (q0 -> posterior) gives a stochastic lower bound on log P(y); reverse AIS (posterior
    -> q0, every chain started at z*) estimates 1/P(y) unbiasedly, so -log mean_c w_c^rev is a
    stochastic upper bound. The gap bounds the error of AIS with this schedule on data like this.
    Options as in `ais`. With the adaptive schedule the forward estimate is `ais`'s (replicates,
    resampling, fitted start) and the reverse run replays its frozen schedule backwards from z* to the
    same start, without resampling and with the kernels tuned at each temperature; its stderr is the
    delta method over its chains. With a fixed schedule the reverse run starts from the forward run's
    final step sizes (tuned at β = 1). ``max_cost`` (adaptive only) budgets both directions together: the
    reverse run costs as much as the forward estimation run, ``lower.extra["cost"] +
    upper.extra["cost"]`` chain-transitions in all."""
    num_images = check_num("num_images", num_images)
    num_steps, num_chains, leapfrog_steps, schedule = _ais_options(
        num_steps, num_chains, leapfrog_steps, step_size, target_accept, schedule
    )
    max_cost = _max_cost(max_cost, num_steps, schedule)
    check_model(model)
    with torch.no_grad():
        z_true, y = model.sample((num_images,))
    z_true, y = z_true.detach(), y.detach()
    q = _initial_for(model, initial, y)
    if schedule == "adaptive":
        return _adaptive_bdmc(model, y, z_true, q, locals())
    num_chains = 128 if num_chains is None else num_chains
    path = _Path(model, y, q)
    with torch.no_grad():
        z0 = path.sample_initial(num_chains)
    eps = torch.full((num_images,), float(step_size), dtype=z0.dtype)
    betas = _fixed_betas(schedule, num_steps)
    log_w, _, extra = _anneal(path, z0, betas, eps, leapfrog_steps, target_accept, show_progress, "AIS")
    lower = summarise_lme("bdmc_lower", log_w, extra)
    z0 = z_true.unsqueeze(0).expand(num_chains, *z_true.shape).clone()
    eps = extra["step_size"].clone()
    log_w_rev, _, extra = _anneal(
        path, z0, betas.flip(0), eps, leapfrog_steps, target_accept, show_progress, "reverse AIS"
    )
    return BDMCResult(lower=lower, upper=_upper(log_w_rev, extra), y=y, z=z_true)


def _upper(log_w_rev: Tensor, extra: dict) -> Estimate:
    from latentvar.estimate.diagnostics import diagnose_weights

    log_w_rev = finite_or_raise("bdmc", log_w_rev)
    extra["ess"] = effective_sample_size(log_w_rev)
    upper = Estimate(
        "bdmc_upper", -log_mean_exp(log_w_rev, 0), log_mean_exp_stderr(log_w_rev), log_w_rev.shape[0], extra
    )
    upper.diagnostic = diagnose_weights(upper)
    return upper


def _adaptive_bdmc(model, y, z_true, q, opts: dict) -> BDMCResult:
    from latentvar.estimate import smc
    from latentvar.estimate.tempering import Reversed, adaptive_ais, check_options, reverse_plan

    num_chains, replicates = check_options(
        opts["target_cess"], opts["resample"], opts["replicates"], opts["num_chains"], opts["start"]
    )
    opts = dict(opts, num_chains=num_chains, replicates=replicates, passes=2)
    lower, plan, _, mover = adaptive_ais(lambda q0: _Path(model, y, q0), model, y, q, opts)
    lower.name = "bdmc_lower"
    z0 = z_true.unsqueeze(0).expand(num_chains, *z_true.shape).clone()
    with torch.no_grad():
        rev = smc.run(
            Reversed(mover), num_chains, 1, plan=reverse_plan(plan), x0=z0,
            show_progress=opts["show_progress"], desc="reverse AIS",
        )  # fmt: skip
    extra = {
        "acceptance": rev.acceptance,
        "num_temperatures": plan.num_steps,
        "cost": plan.num_steps * num_chains,
    }
    return BDMCResult(lower=lower, upper=_upper(rev.log_w, extra), y=y, z=z_true)
