"""EM on data that does not fit in one pass or one process.

- Stepwise (online) EM (Cappé & Moulines 2009; Liang & Klein 2009, "Online EM for unsupervised models"):
  after each minibatch B of the N sequences, the running statistics become s ← (1 − η_k) s + η_k (N/|B|) ŝ_B
  with η_k = (k + 2)^(−α), then the M-step; ``step_decay`` α ∈ [0, 1] (α = 0: η = 1, each minibatch alone;
  Liang & Klein use 0.5–1). One iteration is one pass over the shuffled minibatches. s starts as the
  statistics of one E-step over all the data under the starting parameters (one extra pass, no M-step), so a
  value (a word) first met in a later minibatch still has a positive count and never probability zero.
- Distributed EM: every process of a ``torch.distributed`` group (e.g. started by torchrun) holds its own
  sequences; each iteration all-reduces (sums) the expected counts and sufficient statistics, so every
  process takes the same M-step as one process holding all the data would.

Gaussian statistics are accumulated about one shift for the whole run (the mean of every observed step,
all-reduced across processes), so statistics of different minibatches and processes add up exactly.

Shapes (named axes): b sequences, t steps, k states.
"""

from __future__ import annotations

import torch
from torch import Tensor

from latentvar.stats import COVARIANCE_TYPES, SufficientStatistics


def _distributed():
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("distributed: expected an initialised torch.distributed process group (torchrun)")
    return dist


def all_reduce(values: list[Tensor]) -> list[Tensor]:
    """Sum each tensor across the processes of the default group (one flat float64 all-reduce)."""
    dist = _distributed()
    device = values[0].device if values else None  # gloo: CPU tensors, NCCL: the rank's GPU
    flat = torch.cat([v.reshape(-1).to(device, torch.float64) for v in values]) if values else torch.zeros(0)
    dist.all_reduce(flat)
    out, i = [], 0
    for v in values:
        out.append(flat[i : i + v.numel()].reshape(v.shape).to(v.device, v.dtype))
        i += v.numel()
    return out


def common_shift(emission, y_observed: Tensor, distributed: bool) -> Tensor | None:
    """The mean of every observed step (n, *event) as (d,), summed over processes: the one shift of the
    Gaussian statistics. None for non-Gaussian families."""
    family = SufficientStatistics(emission, "emission").family
    if family not in COVARIANCE_TYPES and family != "gmm":
        return None
    x = y_observed.reshape(y_observed.shape[0], -1).to(torch.float64)
    total = [x.sum(0), x.new_tensor([float(x.shape[0])])]
    if distributed:
        total = all_reduce(total)
    dtype = emission.mean.dtype
    return (total[0] / total[1].clamp_min(1)).to(dtype)


def reduce_pass(counts, stats, n_obs: float) -> float:
    """All-reduce one pass's counts (in place) and statistics; the total observed steps."""
    fields = [counts.init.new_tensor([counts.loglik, n_obs], dtype=torch.float64), counts.init, counts.trans]
    if counts.final is not None:
        fields.append(counts.final)
    extra = stats.tensors() if stats is not None else []
    out = all_reduce(fields + extra)
    counts.loglik, n_obs = float(out[0][0]), float(out[0][1])
    counts.init, counts.trans = out[1], out[2]
    if counts.final is not None:
        counts.final = out[3]
    if stats is not None:
        stats.set_tensors(out[len(fields) :])
    return n_obs


def blend(running, new, eta: float, scale: float):
    """running ← (1 − η) running + η · scale · new, for `Counts` (then `SufficientStatistics`) pairs."""
    if running is None:
        return None
    mix = lambda a, b: (1 - eta) * a + eta * scale * b  # noqa: E731
    if isinstance(new, SufficientStatistics):
        running.set_tensors([mix(a, b) for a, b in zip(running.tensors(), new.tensors(), strict=True)])
        running.dist = new.dist
        if running.family == "gmm":
            running.inner.dist = new.inner.dist
        return running
    running.loglik = new.loglik
    running.init, running.trans = mix(running.init, new.init), mix(running.trans, new.trans)
    if running.final is not None:
        running.final = mix(running.final, new.final)
    return running
