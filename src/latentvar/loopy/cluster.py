"""Swendsen-Wang cluster moves for Potts / Ising grids (Swendsen & Wang 1987; Edwards & Sokal 1988).

A `GridMRF` whose pairwise term has the Potts form pairwise[a, b] = const + J·[a = b] with J > 0 (every
ferromagnetic Ising grid: J = 2·coupling) can be sampled by clusters: bond each pair of *equal* neighbours
with probability 1 - exp(-β J), find the connected clusters of bonds, and give each cluster a new state
drawn from exp(Σ_{p in cluster} unary[p, k]) -- an exact Gibbs step of the Edwards-Sokal joint law of
spins and bonds, so p_β(z) ∝ exp(unary + β pairwise) stays invariant (the unary field enters through the
cluster's new state; Swendsen & Wang 1987; Edwards & Sokal 1988, sec. 2). Whole magnetised domains flip
at once, so it mixes across the critical coupling and between the two ordered states, where single-site
Gibbs sweeps stall (critical slowing down). Clusters are found with scipy's connected components.

Shapes: ``c`` chains, h × w the grid, k states.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch import Tensor


def potts_coupling(pairwise: Tensor) -> float | None:
    """J if pairwise = const + J·I with J > 0 (a ferromagnetic Potts term), else None."""
    k = pairwise.shape[0]
    off = pairwise[~torch.eye(k, dtype=torch.bool)]
    diag = torch.diagonal(pairwise)
    if not (torch.allclose(off, off[0]) and torch.allclose(diag, diag[0])):
        return None
    j = float(diag[0] - off[0])
    return j if j > 0 else None


def swendsen_wang(model, z: Tensor, beta: float, generator: torch.Generator | None = None) -> Tensor:
    """One Swendsen-Wang update of p_β for every chain: z (c, h, w) -> a new (c, h, w)."""
    coupling = potts_coupling(model.pairwise)
    if coupling is None:
        raise ValueError(
            "model: Swendsen-Wang needs a ferromagnetic Potts pairwise term (const + J·I, J > 0)"
        )
    c, h, w = z.shape
    n = c * h * w
    p_bond = -math.expm1(-beta * coupling)
    node = torch.arange(n).reshape(c, h, w)
    pairs = []
    for dim in (1, 2):
        if model.periodic:
            a, b, za, zb = node, torch.roll(node, -1, dim), z, torch.roll(z, -1, dim)
        else:
            size = z.shape[dim]
            a, b = node.narrow(dim, 0, size - 1), node.narrow(dim, 1, size - 1)
            za, zb = z.narrow(dim, 0, size - 1), z.narrow(dim, 1, size - 1)
        u = torch.rand(za.shape, generator=generator, dtype=torch.float64)
        bond = (za == zb) & (u < p_bond)
        pairs.append((a[bond], b[bond]))
    rows = torch.cat([p[0] for p in pairs]).numpy()
    cols = torch.cat([p[1] for p in pairs]).numpy()
    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    labels = torch.from_numpy(labels.astype(np.int64))
    k = model.num_states
    unary = model.unary.reshape(1, h * w, k).expand(c, h * w, k).reshape(n, k)
    scores = torch.zeros(count, k, dtype=torch.float64).index_add_(0, labels, unary)
    u = torch.rand(count, k, generator=generator, dtype=torch.float64).clamp_(1e-300, 1.0)
    new = (scores - torch.log(-torch.log(u))).argmax(-1)  # Gumbel-max: each cluster's new state
    return new[labels].reshape(c, h, w)
