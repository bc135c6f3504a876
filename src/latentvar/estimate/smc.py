"""The annealing engine shared by `ais`, `bdmc` and `ais_log_partition`: a tempered SMC sampler (Del Moral,
Doucet & Jasra 2006) whose schedule is chosen as it runs, then replayed frozen.

A *mover* carries the model-specific parts (HMC on latents, Gibbs / Swendsen-Wang on a grid):

- ``batch``: b, the number of independent problems annealed side by side (images; 1 for log Z);
- ``initial(n)``: exact draws of q0, n chains (chain axis first);
- ``log_ratio(x, beta)``: a function β' -> log f_β'(x) - log f_β(x), (n, b), for the bisection;
- ``move(x, beta, params, log_w, adapt)``: one MCMC transition leaving p_β invariant; returns
  (x, params it used, params for the next temperature, acceptance (b,) or None);
- ``select(x, idx)``: the chains idx (n, b) of x (resampling).

**Adaptive tempering** (Jasra et al. 2011; Zhou, Johansen & Aston 2016): the next β is the one at which the
*conditional* ESS of the incremental weights u_i = f_β'(x_i) / f_β(x_i) under the current normalised
weights W_i,

    CESS(β') = (Σ_i W_i u_i)² / Σ_i W_i u_i²  in (0, 1],

equals ``target_cess``, found by bisection (CESS falls as β' moves away from β). Unlike the ESS of the
accumulated weights it measures only what this step costs, so it also works after resampling.

**Resampling** (systematic, Carpenter, Clifford & Fearnhead 1999) when the ESS of a replicate's weights
falls below ``resample_below`` × its chains: log Ẑ += log mean w, every weight reset to 1. Ẑ stays an
unbiased estimate of Z / Z_0 (Del Moral 2004, thm 7.4.2) as long as the schedule, kernels and resampling
times do not depend on the particles of the same run -- which is why the adaptive run is only a *tuning*
run: its schedule, per-temperature kernel parameters and resampling times (a `Plan`) are frozen and
replayed by fresh, independent chains (`run` with ``plan``). After resampling the chains of one run are
no longer independent, so the delta method over chains no longer gives a stderr; the estimation run is
made of independent *replicates* instead, and the stderr comes from their spread (see `combine`).

Shapes: ``n`` chains (``R`` replicates of ``n / R`` each), ``b`` problems (images), ``T`` temperatures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from latentvar.progress import progress

BISECTION_STEPS = 36  # the interval shrinks to 2^-36 ≈ 1.5e-11 of β


@dataclass
class Plan:
    """A frozen schedule: ``betas`` (T + 1, b) from 0 to 1 per problem, ``params`` the T kernel parameters
    used at betas[1..T], ``resample`` (T, b) whether to resample before the move at step t."""

    betas: Tensor
    params: list
    resample: Tensor

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0] - 1

    def resized(self, num_steps: int) -> Plan:
        """The same schedule *shape* at ``num_steps`` temperatures: each problem's betas interpolated at
        equally spaced points of its own tuning-run index (an equal-CESS spacing keeps its spacing), the
        kernel parameters of the nearest tuning step, a resample wherever the tuning run resampled."""
        betas, b = self.betas, self.betas.shape[1]
        out = torch.empty(num_steps + 1, b, dtype=betas.dtype)
        source = torch.empty(num_steps, b, dtype=torch.long)
        resample = torch.zeros(num_steps, b, dtype=torch.bool)
        for j in range(b):
            k = int((betas[:, j] < 1).sum())  # steps this problem really took (then padding at β = 1)
            k = max(k, 1)
            pos = torch.linspace(0, k, num_steps + 1, dtype=betas.dtype)
            lo = pos.floor().long().clamp(max=k - 1)
            frac = pos - lo
            out[:, j] = betas[lo, j] * (1 - frac) + betas[lo + 1, j] * frac
            source[:, j] = pos[1:].ceil().long().clamp(1, self.num_steps) - 1
            marks = torch.nonzero(self.resample[:k, j]).flatten().double()
            if marks.numel():
                step = torch.searchsorted(pos[1:].contiguous(), marks + 1).clamp(max=num_steps - 1)
                resample[step, j] = True
        out[0], out[-1] = 0.0, 1.0
        params = [_pick(self.params, source[t]) for t in range(num_steps)]
        return Plan(out, params, resample)


def _pick(params: list, steps: Tensor):
    """Per-problem kernel parameters of tuning steps ``steps`` (b,): each a dict of (b, ...) tensors."""
    first = params[int(steps[0])]
    if first is None:
        return None
    b = torch.arange(steps.numel())
    return {k: torch.stack([params[int(s)][k] for s in steps.tolist()])[b, b] for k in first}


@dataclass
class Run:
    """One SMC run: ``log_z`` (R, b) per replicate, final ``log_w`` (n, b) (with each replicate's
    accumulated normaliser added, so that pooled they weight every chain), the final chains ``x``, the
    ``plan`` it followed (or found), and per-problem diagnostics."""

    log_z: Tensor
    log_w: Tensor
    x: object
    plan: Plan
    acceptance: Tensor | None
    num_resamples: Tensor
    capped: bool = False
    stats: dict = field(default_factory=dict)


def conditional_ess(log_w: Tensor, log_u: Tensor) -> Tensor:
    """CESS (Zhou et al. 2016, eq. 3.16) of increments log_u (n, b) under weights log_w (n, b), in (0, 1]."""
    log_wn = log_w - torch.logsumexp(log_w, 0)
    return torch.exp(2 * torch.logsumexp(log_wn + log_u, 0) - torch.logsumexp(log_wn + 2 * log_u, 0))


def next_beta(ratio, log_w: Tensor, beta: Tensor, target: float) -> Tensor:
    """The β' in (β, 1] (b,) at which `conditional_ess` = ``target``, by bisection; 1 where even β' = 1
    keeps it above the target."""
    one = torch.ones_like(beta)
    ok_at_one = conditional_ess(log_w, ratio(one).nan_to_num(nan=-math.inf)) >= target
    lo, hi = beta.clone(), one.clone()
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        good = conditional_ess(log_w, ratio(mid).nan_to_num(nan=-math.inf)) >= target
        lo, hi = torch.where(good, mid, lo), torch.where(good, hi, mid)
    # lo keeps CESS >= target; a step of at least 1e-12 keeps the schedule moving
    return torch.where(ok_at_one, one, torch.maximum(lo, beta + 1e-12).clamp(max=1.0))


def _group_lme(log_w: Tensor, replicates: int) -> Tensor:
    """log mean exp of each replicate's chains: (n, b) -> (R, b)."""
    g = log_w.reshape(replicates, -1, log_w.shape[-1])
    return torch.logsumexp(g, 1) - math.log(g.shape[1])


def _group_ess_fraction(log_w: Tensor, replicates: int) -> Tensor:
    g = log_w.reshape(replicates, -1, log_w.shape[-1])
    ess = torch.exp(2 * torch.logsumexp(g, 1) - torch.logsumexp(2 * g, 1))
    return ess / g.shape[1]  # (R, b)


def systematic_indices(log_w: Tensor, replicates: int, generator=None) -> Tensor:
    """Systematic resampling within each replicate: chain indices (n, b) into the pooled chain axis."""
    n, b = log_w.shape
    m = n // replicates
    g = log_w.reshape(replicates, m, b).permute(0, 2, 1)  # (R, b, m)
    w = torch.softmax(g, -1)
    cdf = w.cumsum(-1)
    cdf[..., -1] = 1.0
    u = torch.rand(replicates, b, 1, generator=generator, dtype=w.dtype)
    pos = (u + torch.arange(m, dtype=w.dtype)) / m
    idx = torch.searchsorted(cdf.contiguous(), pos.contiguous()).clamp(max=m - 1)  # (R, b, m)
    idx = idx + (torch.arange(replicates) * m)[:, None, None]
    return idx.permute(0, 2, 1).reshape(n, b)


def run(
    mover,
    num_chains: int,
    replicates: int = 1,
    *,
    plan: Plan | None = None,
    target_cess: float = 0.99,
    resample_below: float | None = 0.5,
    max_steps: int = 20000,
    initial_params=None,
    generator=None,
    show_progress: bool = False,
    desc: str = "SMC",
    x0=None,
) -> Run:
    """Anneal ``num_chains`` chains (``replicates`` independent groups) from β = 0 to 1: adaptively (no
    ``plan``: the tuning run, which records its `Plan`) or along a frozen ``plan``. ``resample_below``
    None: never resample (plain AIS). ``x0``: start from these chains instead of ``mover.initial``."""
    b = mover.batch
    x = mover.initial(num_chains) if x0 is None else x0
    log_w = torch.zeros(num_chains, b, dtype=torch.float64)
    log_z = torch.zeros(replicates, b, dtype=torch.float64)
    beta = torch.zeros(b, dtype=torch.float64)
    params, betas, used, marks = initial_params, [beta], [], []
    acc_sum, acc_n = torch.zeros(b, dtype=torch.float64), 0
    num_resamples = torch.zeros(b, dtype=torch.long)
    capped = False
    total = plan.num_steps if plan is not None else None
    bar = progress(total=total, desc=desc, disable=not show_progress)
    t = 0
    while True:
        if plan is not None:
            if t == plan.num_steps:
                break
            new = plan.betas[t + 1]
        else:
            if bool((beta >= 1).all()):
                break
            ratio = mover.log_ratio(x, beta)
            if t + 1 >= max_steps:
                new, capped = torch.ones_like(beta), True
            else:
                new = next_beta(ratio, log_w, beta, target_cess)
        log_w = log_w + (mover.log_ratio(x, beta)(new) if plan is not None else ratio(new))
        if bool(torch.isnan(log_w).any()):
            raise FloatingPointError(f"{desc}: NaN log-weights (the model returned an invalid density)")
        if plan is not None:
            do = plan.resample[t].expand(replicates, b)
        elif resample_below is not None:
            do = _group_ess_fraction(log_w, replicates) < resample_below
        else:
            do = torch.zeros(replicates, b, dtype=torch.bool)
        if bool(do.any()):
            log_z = log_z + torch.where(do, _group_lme(log_w, replicates), 0.0)
            chains = do.repeat_interleave(num_chains // replicates, 0)  # (n, b)
            keep = torch.arange(num_chains)[:, None].expand(num_chains, b)
            idx = torch.where(chains, systematic_indices(log_w, replicates, generator), keep)
            x = mover.select(x, idx)
            log_w = torch.where(chains, 0.0, log_w)
            num_resamples += do.any(0)
        marks.append(do.any(0))
        step_params = plan.params[t] if plan is not None else params
        x, step_params, params, acc = mover.move(x, new, step_params, log_w, plan is None)
        used.append(step_params)
        if acc is not None:
            acc_sum, acc_n = acc_sum + acc, acc_n + 1
        beta = new
        betas.append(beta)
        t += 1
        bar.update(1)
    bar.close()
    log_z_final = log_z + _group_lme(log_w, replicates)
    pooled = log_w + log_z.repeat_interleave(num_chains // replicates, 0)
    found = plan if plan is not None else Plan(torch.stack(betas), used, torch.stack(marks))
    acceptance = acc_sum / acc_n if acc_n else None
    return Run(log_z_final, pooled, x, found, acceptance, num_resamples, capped)
