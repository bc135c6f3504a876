"""log Z of a loopy model (a Potts grid, an RBM) by annealed importance sampling (Neal 2001), from a
tractable base model along a path of intermediate distributions (Salakhutdinov & Murray 2008 for RBMs).

A model offers the path through ``model.annealing_path()``, an object with

- ``log_partition_base()``: exact log Z_0 of the base model (β = 0: independent units), a float64 scalar;
- ``sample_base(num_chains, generator)``: exact draws x ~ p_0, (c, ...);
- ``log_unnormalized(x, beta)``: log f_β(x) (c,) float64, with f_0 the base and f_1 the model;
- ``transition(x, beta, generator)``: one MCMC step (a Gibbs sweep) that leaves p_β ∝ f_β invariant.

AIS with β_0 = 0 < β_1 < ... < β_T = 1: x_0 ~ p_0, and for t = 1..T

    log w += log f_{β_t}(x_{t-1}) - log f_{β_{t-1}}(x_{t-1}),    x_t ~ T_{β_t}(x_{t-1}, ·),

so E[w] = Z_1 / Z_0 exactly (for any T), and log Z ≈ log Z_0 + log mean_c w_c. By Jensen the estimate of
log Z is biased low (a stochastic lower bound); its stderr is the delta method over the c chains (see
`latentvar.estimate` on when that understates the error: ``extra["ess"]``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from latentvar.estimate.ais import sigmoid_schedule
from latentvar.estimate.weights import Estimate, check_num, summarise_lme
from latentvar.progress import progress

PATH_METHODS = ("log_partition_base", "sample_base", "log_unnormalized", "transition")
MOVES = ("auto", "gibbs", "swendsen-wang")


def linear_schedule(num_steps: int, dtype=torch.float64) -> Tensor:
    """β_t = t / T, t = 0..T: (T + 1,)."""
    return torch.linspace(0.0, 1.0, num_steps + 1, dtype=dtype)


def ais_log_partition(
    model,
    num_steps: int | None = None,
    num_chains: int | None = None,
    schedule: str | Tensor = "auto",
    generator: torch.Generator | None = None,
    show_progress: bool = False,
    *,
    target_cess: float = 0.99,
    resample: bool = True,
    replicates: int = 8,
    moves: str = "auto",
) -> Estimate:
    """An `Estimate` of log Z of ``model`` (one value: ``estimate`` and ``stderr`` of shape (1,)).
    ``ais_log_partition(model)`` -- no budget -- is the recommended call.

    ``schedule``: "auto" (the default) is "adaptive" without ``num_steps`` and "linear" with it (as
    before). "adaptive": the SMC sampler of `latentvar.estimate.smc` -- a tuning run picks each next β by
    conditional-ESS bisection at ``target_cess`` and resamples (systematic) when a replicate's ESS falls
    below half its chains (``resample``); then ``num_chains`` fresh chains (default 128) in
    ``replicates`` independent groups replay its frozen schedule and resampling times, so each group's
    Ẑ_r is unbiased for Z and the stderr comes from their spread (`latentvar.estimate.diagnostics`).
    With ``num_steps`` the tuned schedule's shape is resampled to that many temperatures. "linear"
    (β_t = t/T), "sigmoid" (`sigmoid_schedule`) or a tensor β_0 = 0 < ... < β_T = 1: plain AIS over
    ``num_chains`` independent chains (default 64) of ``num_steps`` transitions (default 1000), stderr by
    the delta method over chains.

    ``moves``: the transition at each temperature. "auto": a Swendsen-Wang cluster update followed by a
    Gibbs sweep where the path offers ``cluster_transition`` (a ferromagnetic Potts / Ising `GridMRF`),
    the path's own Gibbs ``transition`` otherwise; "gibbs"; "swendsen-wang" (refused where it does not
    apply). ``extra``: ``ess``, ``log_weights`` (c,), ``log_z_base``; with the adaptive schedule also
    ``num_temperatures``, ``replicate_log_z`` (R, 1), ``num_resamples``, ``cost`` (chain-transitions)."""
    path_of = getattr(model, "annealing_path", None)
    if not callable(path_of):
        raise ValueError(
            f"model: expected a model with .annealing_path() (latentvar.GridMRF, latentvar.RBM), "
            f"got {type(model).__name__}"
        )
    path = path_of()
    missing = [m for m in PATH_METHODS if not callable(getattr(path, m, None))]
    if missing:
        raise ValueError(f"model: its annealing path lacks {', '.join(missing)}")
    if isinstance(schedule, str) and schedule == "auto":
        schedule = "adaptive" if num_steps is None else "linear"
    if isinstance(schedule, str) and schedule == "adaptive":
        return _adaptive(path, num_steps, num_chains, generator, show_progress, target_cess, resample,
                         replicates, moves)  # fmt: skip
    num_chains = check_num("num_chains", 64 if num_chains is None else num_chains)
    betas = _schedule(schedule, check_num("num_steps", 1000 if num_steps is None else num_steps))
    cluster = _cluster_moves(path, moves)
    x = path.sample_base(num_chains, generator)
    log_w = torch.zeros(num_chains, dtype=torch.float64, device=x.device)
    previous = path.log_unnormalized(x, float(betas[0])).double()
    for t in progress(range(1, len(betas)), desc="AIS", total=len(betas) - 1, disable=not show_progress):
        beta = float(betas[t])
        now = path.log_unnormalized(x, beta).double()
        log_w += now - previous
        if cluster:
            x = path.cluster_transition(x, beta, generator)
        x = path.transition(x, beta, generator)
        previous = path.log_unnormalized(x, beta).double()
    log_z0 = torch.as_tensor(path.log_partition_base(), dtype=torch.float64)
    est = summarise_lme("ais_log_partition", log_w[:, None], {"log_weights": log_w, "log_z_base": log_z0})
    est.estimate = est.estimate + log_z0
    return est


def _cluster_moves(path, moves: str) -> bool:
    if moves not in MOVES:
        raise ValueError(f"moves: expected 'auto', 'gibbs' or 'swendsen-wang', got {moves!r}")
    available = bool(getattr(path, "cluster_moves", False))
    if moves == "swendsen-wang" and not available:
        raise ValueError(
            "moves: 'swendsen-wang' needs a ferromagnetic Potts / Ising grid (pairwise = const + J·I, J > 0)"
        )
    return moves == "swendsen-wang" or (moves == "auto" and available)


class _PathMover:
    """The loopy mover of the SMC engine: one problem (b = 1), the path's own moves."""

    batch = 1

    def __init__(self, path, generator, cluster: bool):
        self.path, self.generator, self.cluster = path, generator, cluster

    def initial(self, n: int) -> Tensor:
        return self.path.sample_base(n, self.generator)

    def log_ratio(self, x: Tensor, beta: Tensor):
        if callable(getattr(self.path, "log_increment", None)):  # linear in β: one evaluation
            inc = self.path.log_increment(x).double()[:, None]
            return lambda new: (new - beta) * inc
        f0 = self.path.log_unnormalized(x, float(beta)).double()
        return lambda new: (self.path.log_unnormalized(x, float(new)).double() - f0)[:, None]

    def move(self, x: Tensor, beta: Tensor, params, log_w, adapt: bool):
        b = float(beta)
        if self.cluster:
            x = self.path.cluster_transition(x, b, self.generator)
        return self.path.transition(x, b, self.generator), None, None, None

    def select(self, x: Tensor, idx: Tensor) -> Tensor:
        return x[idx[:, 0]]


def _adaptive(
    path, num_steps, num_chains, generator, show_progress, target_cess, resample, replicates, moves
):
    from latentvar.estimate import smc
    from latentvar.estimate.diagnostics import CAPPED, combine
    from latentvar.estimate.tempering import check_options, plan_for, refined, tune_chains

    if num_steps is not None:
        num_steps = check_num("num_steps", num_steps)
    num_chains, replicates = check_options(target_cess, resample, replicates, num_chains)
    mover = _PathMover(path, generator, _cluster_moves(path, moves))
    pilot, plan = plan_for(
        mover, num_chains, num_steps, target_cess, resample, show_progress, "AIS tune", generator
    )
    if num_steps is None:
        plan = refined(plan, pilot.plan.num_steps * tune_chains(num_chains), num_chains)
    main = smc.run(mover, num_chains, replicates, plan=plan, generator=generator, show_progress=show_progress)
    log_z0 = torch.as_tensor(path.log_partition_base(), dtype=torch.float64)
    extra = {
        "log_weights": main.log_w[:, 0],
        "log_z_base": log_z0,
        "cost": pilot.plan.num_steps * tune_chains(num_chains) + plan.num_steps * num_chains,
        "moves": "swendsen-wang + gibbs" if mover.cluster else "gibbs",
        "tune_log_z": pilot.log_z[0] + log_z0,
    }
    est = combine("ais_log_partition", main, extra, [CAPPED] if pilot.capped else [])
    est.estimate = est.estimate + log_z0
    est.extra["replicate_log_z"] = est.extra["replicate_log_z"] + log_z0
    return est


def _schedule(schedule, num_steps: int) -> Tensor:
    if isinstance(schedule, Tensor):
        betas = schedule.to(torch.float64).flatten()
        ok = betas.numel() >= 2 and betas[0] == 0 and betas[-1] == 1 and bool((betas.diff() > 0).all())
        if not ok:
            raise ValueError("schedule: expected increasing betas from 0 to 1, got another tensor")
        return betas
    if schedule == "linear":
        return linear_schedule(num_steps)
    if schedule == "sigmoid":
        return sigmoid_schedule(num_steps)
    raise ValueError(
        f"schedule: expected 'auto', 'adaptive', 'linear', 'sigmoid' or a tensor of betas, got {schedule!r}"
    )
