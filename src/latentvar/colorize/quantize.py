"""The ab plane quantised on a grid of 10, keeping the bins sRGB can reach (Zhang, Isola & Efros 2016, §3.1).

`ABBins` holds the Q in-gamut bin centres (q, 2). The in-gamut set is computed, not copied: a dense
sampling of the sRGB cube (``steps``^3 colours, every L) is converted to Lab and every grid cell that one
of them falls in is kept. With ``steps=64`` (262,144 colours) this gives 261 bins
(Zhang et al. report 313 with their own gamut test; the count depends on that test, not on the grid).

Encodings: ``encode`` (hard: the nearest in-gamut centre, a class index per pixel -- what the NLL is
measured on), ``soft_encode`` (Zhang et al.'s 5 nearest neighbours with a Gaussian kernel, σ = 5).
Decodings: ``annealed_mean`` (Zhang et al. eq. 5, T = 0.38) and ``mode``; `rebalance_weights` turns a
bin prior (`bin_prior`) into the weights of a rebalanced decoding (`colorizer.Colorizer.colorize`).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from latentvar.colorize.lab import linear_rgb_to_lab, srgb_to_linear

GRID = 10.0


@lru_cache(maxsize=4)
def in_gamut_bins(grid: float = GRID, steps: int = 64) -> Tensor:
    """(q, 2) float32 centres (multiples of ``grid``) of the ab cells reached by sRGB, sorted by (a, b)."""
    v = srgb_to_linear(torch.linspace(0.0, 1.0, steps, dtype=torch.float64))  # the cube's axes, linear light
    linear = torch.stack(torch.meshgrid(v, v, v, indexing="ij"), dim=-1).reshape(-1, 3)
    ab = linear_rgb_to_lab(linear)[:, 1:]
    cells = torch.round(ab / grid).to(torch.int64)
    offset = 1 + int(cells.abs().max())
    keys = torch.unique((cells[:, 0] + offset) * (2 * offset + 1) + cells[:, 1] + offset)  # sorted by (a, b)
    a, b = keys // (2 * offset + 1) - offset, keys % (2 * offset + 1) - offset
    return (torch.stack([a, b], dim=1).to(torch.float32) * grid).contiguous()


class ABBins:
    """Q in-gamut ab bins; maps ab values to bin indices and bin distributions back to ab."""

    def __init__(self, centres: Tensor | None = None):
        self.centres = in_gamut_bins() if centres is None else centres.to(torch.float32)
        if self.centres.dim() != 2 or self.centres.shape[1] != 2:
            raise ValueError(f"centres: expected shape (q, 2), got {tuple(self.centres.shape)}")

    @property
    def num_bins(self) -> int:
        return self.centres.shape[0]

    def _sq_dist(self, ab: Tensor) -> Tensor:
        """(..., 2) -> (..., q) squared distances to every centre."""
        c = self.centres.to(ab)
        return (ab.unsqueeze(-2) - c).pow(2).sum(-1)

    def _cell_lookup(self) -> tuple[Tensor, int]:
        """(table, offset): table[a_cell + offset, b_cell + offset] = bin index of that grid cell, or -1."""
        cells = torch.round(self.centres / GRID).to(torch.int64)
        offset = int(cells.abs().max()) + 2
        table = torch.full((2 * offset + 1, 2 * offset + 1), -1, dtype=torch.int64)
        table[cells[:, 0] + offset, cells[:, 1] + offset] = torch.arange(self.num_bins)
        return table, offset

    def encode(self, ab: Tensor) -> Tensor:
        """Hard encoding: ab (..., 2) -> int64 (...) index of the nearest in-gamut centre.

        The nearest grid point is the rounded one; when that cell is in gamut it is the answer, otherwise
        (rare: ab beyond the sampled gamut) the nearest of all Q centres is searched."""
        table, offset = self._cell_lookup()
        device, flat = ab.device, ab.reshape(-1, 2).cpu()  # the lookup table lives on the CPU
        cell = (torch.round(flat / GRID).to(torch.int64) + offset).clamp(0, 2 * offset)
        out = table[cell[:, 0], cell[:, 1]]
        missing = (out < 0).nonzero()[:, 0]
        if missing.numel():
            out[missing] = self._sq_dist(flat[missing]).argmin(-1)
        return out.reshape(ab.shape[:-1]).to(device)

    def in_gamut(self, ab: Tensor) -> Tensor:
        """bool (...): whether each ab (..., 2) falls in one of the Q in-gamut grid cells."""
        table, offset = self._cell_lookup()
        flat = ab.reshape(-1, 2).cpu().to(torch.float32)
        cell = torch.round(flat / GRID).to(torch.int64) + offset
        inside = ((cell >= 0) & (cell <= 2 * offset)).all(-1) & torch.isfinite(flat).all(-1)
        cell = cell.clamp(0, 2 * offset)
        return (inside & (table[cell[:, 0], cell[:, 1]] >= 0)).reshape(ab.shape[:-1])

    def soft_encode(self, ab: Tensor, neighbours: int = 5, sigma: float = 5.0) -> Tensor:
        """Zhang et al.'s soft encoding: (..., 2) -> (..., q), Gaussian weights on the 5 nearest centres."""
        d2 = self._sq_dist(ab)
        near, idx = d2.topk(neighbours, dim=-1, largest=False)
        w = torch.softmax(-near / (2 * sigma**2), dim=-1)
        return torch.zeros_like(d2).scatter_(-1, idx, w)

    def decode(self, index: Tensor) -> Tensor:
        """Bin indices (...) -> their centres (..., 2)."""
        return self.centres.to(index.device)[index]

    def annealed_mean(self, log_probs: Tensor, temperature: float = 0.38) -> Tensor:
        """(..., q) log-probabilities -> (..., 2): the mean of p^(1/T) renormalised (Zhang et al. eq. 5).

        T = 1 is the mean, T -> 0 the mode; 0.38 is their vivid-yet-coherent compromise."""
        if not temperature > 0:
            raise ValueError(f"temperature: expected a positive value, got {temperature!r}")
        w = torch.softmax(log_probs / temperature, dim=-1)
        return w @ self.centres.to(w)

    def mode(self, log_probs: Tensor) -> Tensor:
        """(..., q) -> (..., 2): the centre of the most probable bin."""
        return self.decode(log_probs.argmax(-1))


def bin_prior(y: Tensor, num_bins: int, uniform: float = 0.5) -> Tensor:
    """The smoothed marginal of quantised colours ``y`` (int64 bin ids, any shape): (1 - u) p̂ + u / Q, p̂
    the share of each bin, mixed with the uniform law as Zhang et al. (2016, §3.2) smooth theirs (u = 1/2),
    so every bin's prior is at least u / Q and under `rebalance_weights` a bin never seen weighs at most
    (Q / u)^λ times one holding every pixel. (q,) float64 summing to 1."""
    flat = y.reshape(-1).cpu()
    if flat.numel() == 0 or int(flat.min()) < 0 or int(flat.max()) >= num_bins:
        raise ValueError(
            f"y: expected bin ids in [0, {num_bins}) and at least one pixel, got shape {tuple(y.shape)}"
        )
    counts = torch.bincount(flat, minlength=num_bins).double()
    return (1.0 - uniform) * counts / counts.sum() + uniform / num_bins


def rebalance_weights(prior: Tensor, rebalance: float) -> Tensor:
    """(q,) weights prior^-λ, scaled so the largest is 1: a decoding of p(q | x) · prior(q)^-λ
    (renormalised) favours the bins that are rare overall -- the saturated colours a model hedges away
    from -- by λ (0: the model's own law; 1: p(q | x) / p(q), a pointwise-mutual-information decoding).
    Zhang et al. rebalance the training loss by the same smoothed prior (λ = 1); here it is a decoding
    only, so the model and its NLL stay the exact maximum-likelihood ones."""
    log_w = -rebalance * prior.double().log()
    return (log_w - log_w.max()).exp().float()
