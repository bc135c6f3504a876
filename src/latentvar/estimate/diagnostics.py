"""Honest uncertainty: turning a run's log-weights into an `Estimate` whose stderr can be believed, and one
readable line (``Estimate.diagnostic``) that says when it cannot.

Two stderrs, by what the weights allow:

- **replicates** (the SMC estimators' default): R independent runs, each an unbiased estimate Ẑ_r of Z;
  the estimate is log mean_r Ẑ_r and its stderr the delta method over the R values Ẑ_r, sd(Ẑ_r) /
  (sqrt(R) mean Ẑ_r). Resampling makes the chains *within* a run dependent, so the delta method over
  chains would understate the error; the runs stay independent, so this one does not. A run's Ẑ_r is
  an average over many chains and temperatures and is far less heavy-tailed than one chain's weight:
  where the weights of a single run are degenerate (ESS ~ 1, the delta method's blind spot), the
  replicates still disagree with one another and the stderr says so;
- **the delta method over chains** (one run, no resampling; `log_mean_exp_stderr`), as before.

The diagnostic fires on: degenerate weights (ESS below ``DEGENERATE`` of the chains), replicates that
disagree by more than ``SPREAD`` nats, HMC acceptance outside ``ACCEPT_RANGE``, an adaptive schedule that
hit its cap, and a cross-check that disagrees (see `ais`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from latentvar.estimate.weights import Estimate, effective_sample_size, log_mean_exp, log_mean_exp_stderr

DEGENERATE = 0.1  # ESS below this fraction of the chains: a few chains carry the estimate
CAPPED = (
    "the adaptive schedule reached its cap of temperatures before β = 1 (the last step jumped): lower "
    "target_cess or give num_steps"
)
SPREAD = 0.5  # nats: replicate runs further apart than this are not converged
ACCEPT_RANGE = (0.2, 0.97)


def _worst(values: Tensor, low: bool = True) -> tuple[float, int]:
    i = int(values.argmin() if low else values.argmax())
    return float(values[i]), i


def _image(i: int, b: int) -> str:
    return f" (image {i})" if b > 1 else ""


def diagnose_weights(est: Estimate, num_steps_hint: bool = True) -> str:
    """The line for a single-run estimate: degenerate weights, or "ok"."""
    ess, n = est.extra.get("ess"), est.num_samples
    if ess is None or n < 2:
        return "ok: one sample, no stderr" if n < 2 else "ok"
    low, i = _worst(ess)
    b = ess.numel()
    if low < max(DEGENERATE * n, 1.5):
        what = (
            "raise num_steps (or num_chains)" if num_steps_hint and "ais" in est.name else "raise num_samples"
        )
        return (
            f"the weights are degenerate: ESS {low:.1f} of {n}{_image(i, b)}, so a few samples carry the "
            f"estimate, it is likely too low and its stderr too small; {what}"
        )
    return f"ok: ESS {low:.1f} of {n} at worst"


def combine(name: str, run, extra: dict | None = None, notes: list[str] | None = None) -> Estimate:
    """The `Estimate` of an SMC `smc.Run`: log mean of its replicates' Ẑ_r, the stderr from their spread
    (the delta method over chains when there is one replicate and no resampling; NaN when neither)."""
    log_z, log_w = run.log_z, run.log_w  # (R, b), (n, b)
    reps, n = log_z.shape[0], log_w.shape[0]
    resampled = bool((run.num_resamples > 0).any())
    if reps >= 2:
        stderr = log_mean_exp_stderr(log_z)
    elif not resampled:
        stderr = log_mean_exp_stderr(log_w)
    else:
        stderr = torch.full(log_z.shape[1:], float("nan"), dtype=log_z.dtype)
    ess = effective_sample_size(log_w)
    extra = dict(extra or {}) | {
        "ess": ess,
        "replicate_log_z": log_z,
        "num_temperatures": run.plan.num_steps,
        "num_resamples": run.num_resamples,
        "stderr_method": "replicates" if reps >= 2 else ("delta" if not resampled else "none"),
    }
    if run.acceptance is not None:
        extra["acceptance"] = run.acceptance
    est = Estimate(name, log_mean_exp(log_z, 0), stderr, n, extra)
    est.diagnostic = diagnose_run(est, run, notes or [])
    return est


def diagnose_run(est: Estimate, run, notes: list[str]) -> str:
    problems = list(notes)
    log_z, n = run.log_z, est.num_samples
    b = log_z.shape[1]
    resampled = bool((run.num_resamples > 0).any())
    if run.capped:
        problems.append(CAPPED)
    if log_z.shape[0] >= 2:
        spread = log_z.std(0)
        worst, i = _worst(spread, low=False)
        if worst > SPREAD:
            problems.append(
                f"the {log_z.shape[0]} independent runs disagree (sd {worst:.2f} nats{_image(i, b)}): not "
                "converged, the estimate is likely too low; raise num_steps (or target_cess) or num_chains"
            )
    elif resampled:
        problems.append("no stderr: one run with resampling has no independent copies; use replicates >= 2")
    if not resampled:
        low, i = _worst(est.extra["ess"])
        if low < max(DEGENERATE * n, 1.5):
            problems.append(
                f"the weights are degenerate: ESS {low:.1f} of {n} chains{_image(i, b)}; raise num_steps "
                "(or target_cess) or turn resampling on"
            )
    acc = est.extra.get("acceptance")
    if acc is not None:
        lo, i = _worst(acc)
        hi, j = _worst(acc, low=False)
        if lo < ACCEPT_RANGE[0] or hi > ACCEPT_RANGE[1]:
            bad, k = (lo, i) if lo < ACCEPT_RANGE[0] else (hi, j)
            problems.append(
                f"HMC acceptance {bad:.2f}{_image(k, b)}: the step size did not settle; give step_size "
                "nearer the posterior's scale or raise num_steps"
            )
    if problems:
        return "; ".join(problems)
    se = est.stderr
    se_txt = f"±{float(se.max()):.3g}" if bool(torch.isfinite(se).all()) else "no stderr"
    return (
        f"ok: {log_z.shape[0]} independent runs agree ({se_txt} nats at worst), "
        f"{run.plan.num_steps} temperatures, ESS {float(est.extra['ess'].min()):.1f} of {n} at worst"
    )


def disagreement_note(check: Tensor, est: Estimate, what: str, threshold: float = 1.0) -> str | None:
    """A note when an independent cross-check ``check`` (b,), itself a stochastic lower bound, lies above
    the estimate by more than ``threshold`` nats and 5 stderrs (below it is expected: the check is the
    cruder of the two)."""
    gap = check - est.estimate
    se = est.stderr.nan_to_num(nan=0.0)
    bad = (gap > threshold) & (gap > 5 * se)
    if not bool(bad.any()):
        return None
    worst, i = _worst(torch.where(bad, gap, torch.zeros_like(gap)), low=False)
    return f"{what} differs from the estimate by {worst:.2f} nats{_image(i, gap.numel())}"
