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


def linear_schedule(num_steps: int, dtype=torch.float64) -> Tensor:
    """β_t = t / T, t = 0..T: (T + 1,)."""
    return torch.linspace(0.0, 1.0, num_steps + 1, dtype=dtype)


def ais_log_partition(
    model,
    num_steps: int = 1000,
    num_chains: int = 64,
    schedule: str | Tensor = "linear",
    generator: torch.Generator | None = None,
    show_progress: bool = False,
) -> Estimate:
    """An `Estimate` of log Z of ``model`` (one value: ``estimate`` and ``stderr`` of shape (1,)) by AIS
    over ``num_chains`` independent chains of ``num_steps`` transitions, along ``schedule``: 'linear'
    (β_t = t/T), 'sigmoid' (`sigmoid_schedule`, more steps near both ends) or a tensor β_0 = 0 < ... <
    β_T = 1. ``extra``: ``ess`` (the effective number of chains), ``log_weights`` (c,), ``log_z_base``."""
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
    num_chains = check_num("num_chains", num_chains)
    betas = _schedule(schedule, check_num("num_steps", num_steps))
    x = path.sample_base(num_chains, generator)
    log_w = torch.zeros(num_chains, dtype=torch.float64, device=x.device)
    previous = path.log_unnormalized(x, float(betas[0])).double()
    for t in progress(range(1, len(betas)), desc="AIS", total=len(betas) - 1, disable=not show_progress):
        beta = float(betas[t])
        now = path.log_unnormalized(x, beta).double()
        log_w += now - previous
        x = path.transition(x, beta, generator)
        previous = path.log_unnormalized(x, beta).double()
    log_z0 = torch.as_tensor(path.log_partition_base(), dtype=torch.float64)
    est = summarise_lme("ais_log_partition", log_w[:, None], {"log_weights": log_w, "log_z_base": log_z0})
    est.estimate = est.estimate + log_z0
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
    raise ValueError(f"schedule: expected 'linear', 'sigmoid' or a tensor of betas, got {schedule!r}")
