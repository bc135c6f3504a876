"""`ais` and `bdmc` with an adaptive schedule: the three runs behind ``ais(model, y)``.

1. **explore** -- a tuning run (`smc.run` without a plan) from q0 (the prior, or ``initial``): the
   schedule found by conditional-ESS bisection, HMC step sizes and mass matrices adapted per temperature.
   With ``start="fitted"`` its final chains fit a Gaussian q̂(z|y) (`hmc.FittedGaussian`), and
2. **tune** -- a second tuning run anneals from q̂ to the posterior (a much shorter path: q̂ is already
   near it); with ``start="initial"`` run 1 is the tuning run.
3. **estimate** -- fresh chains, in ``replicates`` independent groups, replay the tuning run's frozen
   `smc.Plan` from exact draws of q̂ (or q0). Nothing in this run depends on its own particles, so each
   group's Ẑ_r is unbiased for P(y) (q̂ is a normalised density fixed before the run, like an encoder);
   the estimate is log mean_r Ẑ_r, and the stderr comes from the spread of the Ẑ_r.

The explore run's own estimate (adaptive, so only consistent, not unbiased) is an independent cross-check
of the estimate, on a different path: when they differ by more than a nat and 5 stderrs the diagnostic
says so.
"""

from __future__ import annotations

import torch

from latentvar._checks import check_positive
from latentvar.estimate import smc
from latentvar.estimate.diagnostics import CAPPED, combine, disagreement_note
from latentvar.estimate.hmc import FittedGaussian, HMCMover
from latentvar.estimate.weights import check_num

STARTS = ("fitted", "initial")
DEFAULT_CHAINS = 128
DEFAULT_REPLICATES = 8
REFINE = 4


def check_options(target_cess, resample, replicates, num_chains, start=None) -> tuple[int, int]:
    """The shared SMC options, checked; returns (num_chains, replicates) with num_chains a multiple."""
    check_positive("target_cess", target_cess)
    if not 0 < target_cess < 1:
        raise ValueError(f"target_cess: expected a fraction in (0, 1), got {target_cess!r}")
    if not isinstance(resample, bool):
        raise ValueError(f"resample: expected True or False, got {resample!r}")
    replicates = check_num("replicates", replicates)
    num_chains = DEFAULT_CHAINS if num_chains is None else check_num("num_chains", num_chains)
    if num_chains < replicates:
        raise ValueError(
            f"num_chains: expected at least one chain per replicate ({replicates}), got {num_chains}"
        )
    if start is not None and start not in STARTS:
        raise ValueError(f"start: expected 'fitted' or 'initial', got {start!r}")
    return num_chains - num_chains % replicates, replicates


def tune_chains(num_chains: int) -> int:
    return max(32, num_chains // 2)


def plan_for(mover, num_chains, num_steps, target_cess, resample, show_progress, desc, generator=None):
    """A tuning run and its plan (resized to ``num_steps`` when given)."""
    params = mover.initial_params(torch.float64) if hasattr(mover, "initial_params") else None
    # without autograd: the HMC moves switch it on for their own gradients in z; the bisection's
    # log-densities must not build graphs through a decoder's parameters
    with torch.no_grad():
        pilot = smc.run(
            mover,
            tune_chains(num_chains),
            1,
            target_cess=target_cess,
            resample_below=0.5 if resample else None,
            initial_params=params,
            generator=generator,
            show_progress=show_progress,
            desc=desc,
        )
    plan = pilot.plan if num_steps is None else pilot.plan.resized(num_steps)
    return pilot, plan


def refined(plan: smc.Plan, tuning_cost: int, num_chains: int) -> smc.Plan:
    """The estimation run's schedule when no ``num_steps`` is given: the tuned one at ``REFINE`` times as
    many temperatures, or more where the tuning runs took more chain-transitions (at least as much work
    goes into the estimate as into tuning). The tuned spacing keeps each step's CESS at the target; each
    refinement of it divides the variance of log Ẑ by about the refinement factor (the variance of an
    annealed estimator with good moves falls as 1 / (chains × temperatures); Neal 2001, sec. 4)."""
    return plan.resized(max(REFINE * plan.num_steps, -(-tuning_cost // num_chains)))


def budgeted(plan: smc.Plan, max_cost: int, tuning_cost: int, num_chains: int, passes: int) -> smc.Plan:
    """The estimation run's schedule under a total budget of ``max_cost`` chain-transitions: the tuned
    shape at as many temperatures as the budget left after tuning buys for ``passes`` runs of
    ``num_chains`` chains (bdmc's reverse run costs as much as its forward one), at least one."""
    return plan.resized(max(1, (max_cost - tuning_cost) // (num_chains * passes)))


def check_max_cost(max_cost, num_steps, schedule) -> int | None:
    """``max_cost`` checked: a positive integer, only with the adaptive schedule and without num_steps."""
    if max_cost is None:
        return None
    max_cost = check_num("max_cost", max_cost)
    adaptive = isinstance(schedule, str) and schedule == "adaptive"
    if num_steps is not None or not adaptive:
        raise ValueError(
            "max_cost: a budget for the adaptive schedule without num_steps; got it with "
            + (f"num_steps={num_steps}" if num_steps is not None else "a fixed schedule")
        )
    return max_cost


def adaptive_ais(path_of, model, y, initial_q, opts: dict):
    """The three runs; ``path_of(q0)`` builds the annealing path from a start q0 (None: the prior).
    Returns (Estimate, plan, the estimation start q0, the mover) -- bdmc replays the plan in reverse."""
    num_chains, reps, num_steps = opts["num_chains"], opts["replicates"], opts["num_steps"]
    hmc = dict(
        step_size=opts["step_size"],
        leapfrog_steps=opts["leapfrog_steps"],
        target_accept=opts["target_accept"],
    )
    show, cess, resample = opts["show_progress"], opts["target_cess"], opts["resample"]
    explore_mover = HMCMover(path_of(initial_q), **hmc)
    explore, plan = plan_for(explore_mover, num_chains, num_steps, cess, resample, show, "AIS tune")
    q0, notes, mover = initial_q, [], explore_mover
    cost = explore.plan.num_steps * tune_chains(num_chains)
    if opts["start"] == "fitted":
        with torch.no_grad():
            q0 = FittedGaussian(explore.x, explore.log_w, model.latent_shape)
        mover = HMCMover(path_of(q0), **hmc)
        tuned, plan = plan_for(mover, num_chains, num_steps, cess, resample, show, "AIS tune (fitted start)")
        cost += tuned.plan.num_steps * tune_chains(num_chains)
    if num_steps is None and opts.get("max_cost") is not None:
        plan = budgeted(plan, opts["max_cost"], cost, num_chains, opts.get("passes", 1))
    elif num_steps is None:
        plan = refined(plan, cost, num_chains)
    with torch.no_grad():
        main = smc.run(mover, num_chains, reps, plan=plan, show_progress=show, desc="AIS")
    cost += plan.num_steps * num_chains
    extra = {
        "step_size": plan.params[-1]["eps"],
        "explore_log_z": explore.log_z[0],
        "explore_temperatures": explore.plan.num_steps,
        "cost": cost,
        "start": opts["start"],
    }
    if explore.capped or (opts["start"] == "fitted" and tuned.capped):
        notes.append(CAPPED)
    est = combine("ais", main, extra, notes)
    if opts["start"] == "fitted":
        note = disagreement_note(explore.log_z[0], est, "the tuning run from the prior (or initial)")
        if note:
            notes.append(
                note + ": the posterior may have parts the fitted start misses; compare start='initial', "
                "raise num_chains"
            )
            est = combine("ais", main, extra, notes)
    return est, plan, q0, mover


def reverse_plan(plan: smc.Plan) -> smc.Plan:
    """The plan walked from β = 1 down to 0 (in the reversed mover's coordinate 1 - β), each move with
    the parameters tuned nearest its temperature, no resampling (reverse AIS starts every chain at the
    same exact posterior draw, and stays plain AIS)."""
    t_max = plan.num_steps
    betas = 1.0 - plan.betas.flip(0)
    params = [plan.params[max(t_max - t - 2, 0)] for t in range(t_max)]
    return smc.Plan(betas, params, torch.zeros_like(plan.resample))


class Reversed:
    """A mover whose β runs backwards: its β' = 1 - β of the wrapped one."""

    def __init__(self, mover):
        self.mover, self.batch = mover, mover.batch

    def log_ratio(self, x, beta):
        ratio = self.mover.log_ratio(x, 1.0 - beta)
        return lambda new: ratio(1.0 - new)

    def move(self, x, beta, params, log_w, adapt):
        return self.mover.move(x, 1.0 - beta, params, log_w, False)

    def select(self, x, idx):
        return self.mover.select(x, idx)
