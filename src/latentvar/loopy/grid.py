"""`GridMRF`: a K-state Potts model on an h × w grid (Ising for K = 2), the case the seed rules out:

    log f(z) = Σ_p unary[p, z_p] + Σ_{p~q} pairwise[z_p, z_q],      P(z) = f(z) / Z,

the second sum over the 4-neighbour edges of the grid (a torus with ``periodic=True``). Z sums over K^(h·w)
configurations, and the grid has cycles: no chain or tree order lets a dynamic programme sum it site by
site. What can still be had, and how:

- **exact log Z by the transfer matrix** (Kramers & Wannier 1941): a *row* of the grid is one state of a
  chain of K^w states, the within-row terms its emissions and the vertical terms its transitions, so
  `latentvar.inference.Chain` sums it exactly -- at a cost exponential in the short side, K^(2w) per row.
  Allowed up to `EXACT_ROW_STATES` row states (4096: an Ising grid up to 12 wide, any length; Potts K = 3
  up to 7), a torus up to `EXACT_ROW_STATES_PERIODIC` (256: Ising up to 8 wide, one chain per first row);
  beyond that `log_partition(exact=True)` refuses;
- **estimated log Z** by `latentvar.estimate.ais_log_partition` along ``annealing_path()``: from the
  independent model (the unary terms alone, β = 0) to the coupled one, f_β(z) = exp(unary + β pairwise);
- **samples by MCMC** (``sample``): checkerboard Gibbs sweeps (the grid is bipartite, so each colour class
  is updated at once). Approximate: the chain is only near P after enough sweeps, slowly so near the
  critical coupling; nothing here claims exactness;
- the exact infinite-lattice free energy of the Ising model (Onsager 1944), ``onsager_log_partition_per_site``,
  the reference for large grids where nothing else is exact.

Shapes: ``...`` any batch of configurations, h × w the grid, k states; configurations are int64 (..., h, w).
"""

from __future__ import annotations

import itertools
import math
from functools import cached_property

import torch
from torch import Tensor

from latentvar._checks import as_tensor, check_finite, check_positive, check_sample_shape
from latentvar.core import IntractableMarginalError

EXACT_ROW_STATES = 4096
EXACT_ROW_STATES_PERIODIC = 256
ESTIMATORS = (
    "latentvar.estimate.ais_log_partition",
    f"log_partition(exact=True) on grids of at most {EXACT_ROW_STATES} row states (K^min(h, w))",
)


class GridMRF:
    """A K-state Potts grid: ``unary`` (h, w, k) log-potentials, ``pairwise`` (k, k) symmetric, shared by
    every 4-neighbour edge; ``periodic`` wraps both axes (a torus; h and w even, at least 4)."""

    def __init__(self, unary, pairwise, periodic: bool = False):
        unary = check_finite("unary", as_tensor("unary", unary, torch.float64))
        pairwise = check_finite("pairwise", as_tensor("pairwise", pairwise, torch.float64))
        if unary.dim() != 3 or unary.shape[-1] < 2 or min(unary.shape[:2]) < 1:
            raise ValueError(
                f"unary: expected log-potentials (h, w, k) with k >= 2, got {tuple(unary.shape)}"
            )
        k = unary.shape[-1]
        if pairwise.shape != (k, k):
            raise ValueError(f"pairwise: expected ({k}, {k}) for k = {k} states, got {tuple(pairwise.shape)}")
        if not torch.allclose(pairwise, pairwise.T):
            raise ValueError("pairwise: expected a symmetric (k, k) matrix (an undirected edge), got another")
        h, w = unary.shape[:2]
        if periodic and (h % 2 or w % 2 or min(h, w) < 4):
            raise ValueError(f"periodic: a torus needs even sides of at least 4 (bipartite), got {h} × {w}")
        self.unary, self.pairwise, self.periodic = unary, pairwise, bool(periodic)

    @classmethod
    def ising(cls, h: int, w: int, coupling: float, field: float = 0.0, periodic: bool = False) -> GridMRF:
        """Spins s = ±1 (state 0 is -1, state 1 is +1): log f(s) = coupling Σ_{p~q} s_p s_q + field Σ_p s_p."""
        check_positive("h", h, integer=True)
        check_positive("w", w, integer=True)
        spins = torch.tensor([-1.0, 1.0], dtype=torch.float64)
        unary = (float(field) * spins).expand(int(h), int(w), 2)
        return cls(unary, float(coupling) * torch.outer(spins, spins), periodic)

    # -- the model ---------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.unary.shape[:2])

    @property
    def num_states(self) -> int:
        return self.unary.shape[-1]

    @property
    def num_edges(self) -> int:
        h, w = self.shape
        return 2 * h * w if self.periodic else h * (w - 1) + (h - 1) * w

    def check(self, z, name: str = "y") -> Tensor:
        z = as_tensor(name, z)
        if torch.is_complex(z):
            raise ValueError(f"{name}: expected integer states, got dtype {z.dtype}")
        if z.dim() < 2 or tuple(z.shape[-2:]) != self.shape:
            raise ValueError(
                f"{name}: expected configurations (..., {self.shape[0]}, {self.shape[1]}), got {tuple(z.shape)}"
            )
        if z.is_floating_point() and not bool((z == z.round()).all()):
            raise ValueError(f"{name}: expected integer states, got non-integer values")
        z = z.long()
        if z.numel() and (int(z.min()) < 0 or int(z.max()) >= self.num_states):
            raise ValueError(
                f"{name}: expected states in 0..{self.num_states - 1}, got {int(z.min())}..{int(z.max())}"
            )
        return z

    def log_unnormalized(self, z, beta: float = 1.0) -> Tensor:
        """log f_β(z) = Σ_p unary[p, z_p] + β Σ_{p~q} pairwise[z_p, z_q]: (...) float64."""
        return self._log_f(self.check(z, "z"), beta)

    def _log_f(self, z: Tensor, beta: float) -> Tensor:
        """`log_unnormalized` of configurations already checked (the AIS path's own, every step)."""
        unary = self.unary.expand(*z.shape, self.num_states).gather(-1, z[..., None])[..., 0].sum((-1, -2))
        return unary + beta * self._pair_sum(z)

    def _pair_sum(self, z: Tensor) -> Tensor:
        p = self.pairwise
        if self.periodic:
            down, right = torch.roll(z, -1, -2), torch.roll(z, -1, -1)
            return p[z, down].sum((-1, -2)) + p[z, right].sum((-1, -2))
        return p[z[..., :-1, :], z[..., 1:, :]].sum((-1, -2)) + p[z[..., :, :-1], z[..., :, 1:]].sum((-1, -2))

    def log_partition(self, exact: bool = True) -> Tensor:
        """log Z, float64: exact by the transfer matrix (see the module docstring for the limits; refused
        beyond them), or -- ``exact=False`` -- `IntractableMarginalError` naming the estimator."""
        if not exact:
            raise self._intractable("log Z")
        h, w = self.shape
        unary = self.unary if w <= h else self.unary.transpose(0, 1)  # rows along the long side
        rows, width = unary.shape[:2]
        states = self.num_states**width
        limit = EXACT_ROW_STATES_PERIODIC if self.periodic else EXACT_ROW_STATES
        if states > limit:
            raise ValueError(
                f"exact: a {h} × {w} grid has {self.num_states}^{width} = {states:,} row states, over the "
                f"transfer matrix's limit of {limit:,}{' on a torus' if self.periodic else ''}; estimate it "
                "with latentvar.estimate.ais_log_partition"
            )
        return _transfer_matrix(unary, self.pairwise, self.periodic)

    def log_prob(self, y, exact: bool = False) -> Tensor:
        """log P(y) = log f(y) - log Z of configurations y (..., h, w): only with ``exact=True`` on a grid
        the transfer matrix can sum; otherwise `IntractableMarginalError`."""
        if not exact:
            raise self._intractable("log P(y)")
        return self.log_unnormalized(self.check(y, "y")) - self.log_partition(exact=True)

    def _intractable(self, what: str) -> IntractableMarginalError:
        h, w = self.shape
        why = (
            f"its partition function sums over {self.num_states}^({h}·{w}) configurations on a grid with "
            "cycles, with no chain or tree order to sum it site by site"
        )
        return IntractableMarginalError(f"GridMRF {h}×{w}, K={self.num_states}", what, why, ESTIMATORS)

    # -- MCMC --------------------------------------------------------------------------------------
    def gibbs_sweep(self, z: Tensor, beta: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """One checkerboard Gibbs sweep of p_β (the sites with i + j even, then odd, each drawn from its
        conditional given its 4 neighbours): z (c, h, w) -> a new (c, h, w)."""
        unary, _, colour = self._sampling
        for parity in (0, 1):
            logits = unary + beta * self._neighbour_terms(z)  # (c, h, w, k)
            u = torch.rand(logits.shape, generator=generator).clamp_(1e-30, 1.0)
            drawn = (logits - torch.log(-torch.log(u))).argmax(-1)  # Gumbel-max: a draw of each conditional
            z = torch.where(colour == parity, drawn, z)
        return z

    @cached_property
    def _sampling(self) -> tuple[Tensor, Tensor, Tensor]:
        """What every sweep reuses: unary and pairwise in float32 (sampling in float32; the energies are
        still summed in float64) and each site's checkerboard colour (i + j) % 2."""
        h, w = self.shape
        i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        return self.unary.float(), self.pairwise.float(), (i + j) % 2

    def _neighbour_terms(self, z: Tensor) -> Tensor:
        """Σ_{q ~ p} pairwise[k, z_q] for every site p and state k: (c, h, w, k)."""
        rows = self._sampling[1][z]  # (c, h, w, k): pairwise[z_q, k] = pairwise[k, z_q]
        if self.periodic:
            return sum(torch.roll(rows, s, d) for s, d in ((1, 1), (-1, 1), (1, 2), (-1, 2)))
        out = torch.zeros_like(rows)
        out[:, 1:] += rows[:, :-1]
        out[:, :-1] += rows[:, 1:]
        out[:, :, 1:] += rows[:, :, :-1]
        out[:, :, :-1] += rows[:, :, 1:]
        return out

    def sample(self, sample_shape=torch.Size(), num_steps: int = 100, generator=None, init=None) -> Tensor:
        """Approximate samples (*sample_shape, h, w) after ``num_steps`` Gibbs sweeps from ``init`` (default:
        the independent model's exact draws). MCMC: near the critical coupling it mixes slowly."""
        if not isinstance(num_steps, int) or num_steps < 0:
            raise ValueError(f"num_steps: expected a non-negative integer of Gibbs sweeps, got {num_steps!r}")
        sample_shape = check_sample_shape("sample_shape", sample_shape, 2 * self.unary.numel())
        n = math.prod(sample_shape)
        if init is None:
            z = self.annealing_path().sample_base(n, generator)
        else:
            z = self.check(init, "init")
            try:
                # n configurations in any leading layout, or one that broadcasts to sample_shape
                full = z.numel() == n * math.prod(self.shape)
                z = (z if full else z.expand(*sample_shape, *self.shape)).reshape(n, *self.shape)
            except RuntimeError:
                raise ValueError(
                    f"init: expected {n} configurations ({tuple(sample_shape)}, {self.shape[0]}, {self.shape[1]}) "
                    f"or one to broadcast, got shape {tuple(z.shape)}"
                ) from None
        for _ in range(num_steps):
            z = self.gibbs_sweep(z, 1.0, generator)
        return z.reshape(*sample_shape, *self.shape)

    def annealing_path(self) -> _PottsPath:
        """The path f_β(z) = exp(unary + β pairwise) from the independent grid (β = 0) to this one, for
        `latentvar.estimate.ais_log_partition`."""
        return _PottsPath(self)

    def __repr__(self) -> str:
        h, w = self.shape
        return f"GridMRF({h}×{w}, k={self.num_states}, periodic={self.periodic})"


class _PottsPath:
    def __init__(self, model: GridMRF):
        self.model = model

    def log_partition_base(self) -> Tensor:
        return torch.logsumexp(self.model.unary, -1).sum()  # independent sites

    def sample_base(self, num_chains: int, generator=None) -> Tensor:
        probs = torch.softmax(self.model.unary, -1).reshape(-1, self.model.num_states)
        draws = torch.multinomial(probs, num_chains, replacement=True, generator=generator)  # (h·w, c)
        return draws.T.reshape(num_chains, *self.model.shape)

    def log_unnormalized(self, z: Tensor, beta: float) -> Tensor:
        return self.model._log_f(z, beta)  # its own draws: no need to check them at every step

    def transition(self, z: Tensor, beta: float, generator=None) -> Tensor:
        return self.model.gibbs_sweep(z, beta, generator)

    def log_increment(self, z: Tensor) -> Tensor:
        """d/dβ log f_β(z) = Σ_{p~q} pairwise[z_p, z_q]: the path is linear in β (c,)."""
        return self.model._pair_sum(z)

    @property
    def cluster_moves(self) -> bool:
        """Whether `cluster_transition` (Swendsen-Wang) applies: a ferromagnetic Potts pairwise term."""
        from latentvar.loopy.cluster import potts_coupling

        return potts_coupling(self.model.pairwise) is not None

    def cluster_transition(self, z: Tensor, beta: float, generator=None) -> Tensor:
        from latentvar.loopy.cluster import swendsen_wang

        return swendsen_wang(self.model, z, beta, generator)


def _transfer_matrix(unary: Tensor, pairwise: Tensor, periodic: bool) -> Tensor:
    """log Z of the grid with rows of ``unary`` (rows, width, k) as the steps of a chain over the k^width row
    configurations: emissions = each row's unary and horizontal terms, transitions = the vertical terms."""
    rows, width, k = unary.shape
    configs = torch.tensor(list(itertools.product(range(k), repeat=width)), dtype=torch.long)  # (S, width)
    cols = torch.arange(width)
    horizontal = pairwise[configs[:, :-1], configs[:, 1:]].sum(-1)  # (S,)
    if periodic:
        horizontal = horizontal + pairwise[configs[:, -1], configs[:, 0]]
    emissions = unary[:, cols, configs].sum(-1) + horizontal[None]  # (rows, S)
    s = configs.shape[0]
    vertical = torch.zeros(s, s, dtype=torch.float64)  # (S, S): row r above row r', column by column
    for j in range(width):
        vertical += pairwise[configs[:, j, None], configs[None, :, j]]
    from latentvar.inference.chain import Chain

    if not periodic:
        chain = Chain(torch.zeros(s, dtype=torch.float64), vertical, emissions[None], torch.tensor([rows]))
        return chain.log_partition()[0]
    # a torus: condition on the first row r, close the chain back to it: one chain per r
    init = torch.full((s, s), -math.inf, dtype=torch.float64).fill_diagonal_(0.0)
    chain = Chain(
        init, vertical, emissions[None].expand(s, rows, s), torch.full((s,), rows), final=vertical.T
    )
    return torch.logsumexp(chain.log_partition(), 0)


def onsager_log_partition_per_site(coupling: float) -> float:
    """lim_{N -> ∞} (log Z) / N of the square-lattice Ising model with no field (Onsager 1944):

        log 2 + (1 / 2π) ∫_0^π log[(a(θ) + sqrt(a(θ)² - b²)) / 2] dθ,   a = cosh²(2K) - b cos θ, b = sinh(2K),

    the inner integral of Onsager's double integral done in closed form (∫_0^π log(a - b cos φ) dφ =
    π log((a + sqrt(a² - b²)) / 2)); K = |coupling|. Critical at K = log(1 + sqrt 2) / 2 ≈ 0.4407."""
    from scipy.integrate import quad

    k = abs(float(coupling))
    b = math.sinh(2 * k)

    def integrand(theta: float) -> float:
        a = math.cosh(2 * k) ** 2 - b * math.cos(theta)
        return math.log((a + math.sqrt(max(a * a - b * b, 0.0))) / 2)

    value, _ = quad(integrand, 0.0, math.pi, limit=200, epsabs=1e-12, epsrel=1e-12)
    return math.log(2.0) + value / (2 * math.pi)
