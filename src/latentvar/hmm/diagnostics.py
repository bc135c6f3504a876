"""What a degenerate HMM fit reports instead of aborting: named warnings (a `DegenerateFitWarning` each, so
``warnings.simplefilter("error", DegenerateFitWarning)`` turns them all into errors) and `HMMFitResult`,
a `FitResult` that also lists the iterations where EM's objective went down."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

from latentvar.core import FitResult
from latentvar.stats import DegenerateFitWarning, EmptyStateWarning

__all__ = [
    "DegenerateFitWarning",
    "EmptyStateWarning",
    "HMMFitResult",
    "NonMonotoneEMWarning",
    "ZeroTransitionsWarning",
]


class ZeroTransitionsWarning(DegenerateFitWarning):
    """EM: a state had no expected outgoing transitions (it only ever explained the last step of a
    sequence, or none); its row of the transition matrix was kept (as hmmlearn does)."""


class NonMonotoneEMWarning(DegenerateFitWarning):
    """EM: the objective (log-likelihood, plus the log prior of the pseudo-counts) went down from one
    iteration to the next, beyond round-off; listed in `HMMFitResult.decreases`."""


@dataclass
class HMMFitResult(FitResult):
    """`FitResult` (model, history, converged) and ``decreases``: (iteration, drop) for each iteration whose
    objective per observed step was lower than the one before by more than round-off (EM only; never for
    exact Baum-Welch, which cannot decrease it -- an entry means numerical trouble or a fit control that
    breaks EM's guarantee)."""

    decreases: list[tuple[int, float]] = field(default_factory=list)


class Monotonicity:
    """Watches EM's objective per observed step: history (mean log-likelihood) plus the prior term."""

    def __init__(self):
        self.previous: float | None = None
        self.decreases: list[tuple[int, float]] = []

    def check(self, iteration: int, mean_ll: float, history: list[float], prior: float) -> None:
        objective = mean_ll + prior
        if self.previous is not None and math.isfinite(objective):
            drop = self.previous - objective
            if drop > 1e-9 * max(1.0, abs(objective)):
                self.decreases.append((iteration, drop))
                warnings.warn(
                    f"EM: the objective went down by {drop:.3g} per step at iteration {iteration} "
                    f"({self.previous:.10g} -> {objective:.10g})",
                    NonMonotoneEMWarning,
                    stacklevel=4,
                )
        self.previous = objective
