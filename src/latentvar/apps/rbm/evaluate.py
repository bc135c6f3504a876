"""Held-out log-likelihood of an RBM, mean_n log p(v_n) = mean_n log f(v_n) - log Z: the first term is exact
(the hidden units sum out), so the only estimate is log Z -- by AIS (Salakhutdinov & Murray 2008) from the
independent-pixels base model with the training data's log-odds as its biases, and exactly by enumerating
2^n_h hidden states where n_h <= 20.

AIS estimates log Z with a downward bias in expectation (Jensen), so the log-likelihood it gives is biased
*upward*: an optimistic number, whose reported stderr (delta method over chains) is the estimator's noise
only. Where the exact value exists it is shown beside the estimate, so the bias can be read off.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from latentvar.estimate.partition import ais_log_partition
from latentvar.loopy.rbm import MAX_ENUMERATED, RBM


def ais_log_z(
    rbm: RBM, base_bias: Tensor, chains: int, steps: int, generator: torch.Generator, schedule: str = "linear"
) -> dict:
    """AIS estimate of log Z from the base model with visible biases ``base_bias``: ``log_z``, ``stderr``,
    ``ess`` (the effective number of chains), ``chains``, ``steps``, ``seconds``."""
    t0 = time.perf_counter()
    path_rbm = _WithBase(rbm, base_bias)
    est = ais_log_partition(path_rbm, steps, chains, schedule, generator)
    return {
        "log_z": est.estimate.item(),
        "stderr": est.stderr.item(),
        "ess": float(est.extra["ess"].flatten()[0]),
        "chains": chains,
        "steps": steps,
        "schedule": schedule,
        "seconds": time.perf_counter() - t0,
    }


def exact_log_z(rbm: RBM) -> float | None:
    """Exact log Z by enumerating the smaller side, or None beyond 2^`MAX_ENUMERATED` states."""
    if min(rbm.num_hidden, rbm.num_visible) > MAX_ENUMERATED:
        return None
    return rbm.log_partition(exact=True).item()


def mean_log_f(rbm: RBM, x: Tensor) -> tuple[float, float]:
    """mean_n log f(v_n) and its standard error over the images sd / sqrt(n) (the test set's spread, not
    an estimator's noise)."""
    log_f = rbm.log_unnormalized(x).double()
    spread = log_f.std().item() / len(x) ** 0.5 if len(x) > 1 else float("nan")
    return log_f.mean().item(), spread


def log_likelihood(rbm: RBM, x: Tensor, base_bias: Tensor, chains: int, steps: int, generator) -> dict:
    """The mean log-likelihood of ``x`` by AIS (``ais``, ``ais_stderr``), exactly where Z can be enumerated
    (``exact``, else None), with the AIS run's details (``log_z``) and the images' spread (``spread``)."""
    log_f, spread = mean_log_f(rbm, x)
    z = ais_log_z(rbm, base_bias, chains, steps, generator)
    exact = exact_log_z(rbm)
    return {
        "ais": log_f - z["log_z"],
        "ais_stderr": z["stderr"],
        "exact": None if exact is None else log_f - exact,
        "exact_log_z": exact,
        "log_z": z,
        "spread": spread,
        "images": len(x),
    }


def independent_pixels_log_likelihood(x: Tensor, log_odds: Tensor) -> float:
    """The exact mean log-likelihood of ``x`` under independent pixels with log-odds ``log_odds`` (the
    training data's): the AIS base model, and the baseline an RBM has to beat."""
    return (x @ log_odds - torch.nn.functional.softplus(log_odds).sum()).mean().item()


class _WithBase:
    """``rbm`` whose annealing path starts from the base biases ``base_bias`` (ais_log_partition calls
    ``model.annealing_path()`` with no arguments)."""

    def __init__(self, rbm: RBM, base_bias: Tensor):
        self.rbm, self.base_bias = rbm, base_bias

    def annealing_path(self):
        return self.rbm.annealing_path(self.base_bias)
