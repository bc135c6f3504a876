"""The K best state paths of a `Dense` chain: its forward recursion in `KMaxSemiring` with back-pointers
(state, rank) per step and list entry, then a walk back from each of the K best ends (Huang & Chiang 2005,
algorithm 0 on a linear chain; K = 1 is Viterbi).

Shapes (named axes): b sequences, t steps, k states, K paths.
"""

from __future__ import annotations

import torch
from torch import Tensor

from latentvar.inference.backtrack import PAD
from latentvar.inference.chain import Chain, Dense
from latentvar.inference.semiring import KMaxSemiring


def kbest(chain: Chain, K: int) -> tuple[Tensor, Tensor]:
    """(paths (K, b, t) long, -1 past each length; scores (K, b), best first, -inf where a sequence has fewer
    than K paths). Ties go to the lower (state, rank) index. Memory O(b·t·k·K) back-pointers."""
    if not isinstance(chain.step, Dense):
        raise ValueError("chain: k-best paths need a Dense (HMM) chain")
    ring = KMaxSemiring(K)
    e = chain.emission_tensor.detach()
    b, T, k = e.shape
    lengths = chain.lengths
    if T == 0:
        none = e.new_full((K, b), -torch.inf)
        none[0] = 0.0
        return torch.full((K, b, 0), PAD, dtype=torch.long, device=e.device), none
    score = e.new_full((b, k, K), -torch.inf)
    score[:, :, 0] = (chain.init.detach() + e[:, 0]).expand(b, k)
    pointers = []  # per step t >= 1: (b, k, K) flat index i·K + r of the previous (state, rank)
    for t in range(1, T):
        a = chain.step.at(t).detach()
        a = a if a.dim() == 3 else a.unsqueeze(0)
        cand = score.unsqueeze(2) + a.unsqueeze(-1)  # (b, from i, to j, K)
        new, ptr = ring.sum(cand.transpose(1, 2), dim=-2)  # per to-state j: the K best over (i, rank)
        new = ring.mul(new, e[:, t].unsqueeze(-1))
        active = (t < lengths)[:, None, None]
        score = torch.where(active, new, score)
        keep = torch.arange(k * K, device=e.device).view(1, k, K)  # past the length: point to itself
        pointers.append(torch.where(active, ptr, keep))
    end = score if chain.final is None else score + chain.final.detach().expand(b, k).unsqueeze(-1)
    best, where = ring.sum(end, dim=-2)  # (b, K), flat index j·K + r
    paths = torch.full((K, b, T), PAD, dtype=torch.long, device=e.device)
    state, rank = (where // K).T, (where % K).T  # (K, b)
    for t in range(T - 1, -1, -1):
        active = t < lengths
        paths[:, :, t] = torch.where(active, state, PAD)
        if t:
            flat = pointers[t - 1].reshape(b, k * K)
            prev = flat.gather(1, (state * K + rank).T).T  # (K, b)
            state = torch.where(active, prev // K, state)
            rank = torch.where(active, prev % K, rank)
    paths = torch.where(torch.isfinite(best.T)[..., None], paths, PAD)
    none = torch.full_like(best.T, -torch.inf)
    none[0] = 0.0  # an empty sequence has one path, the empty one, of score 0
    return paths, torch.where(lengths == 0, none, best.T)
