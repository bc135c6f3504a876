"""GridMRF (Potts / Ising grids) against references nobody here wrote: brute-force enumeration of every
configuration, the 1-D Ising closed form, the high-temperature series of the square lattice, and -- for
AIS -- exact log Z (seeded chains, several sizes and couplings)."""

from __future__ import annotations

import math

import pytest
import torch

from latentvar import IntractableMarginalError
from latentvar.estimate.partition import ais_log_partition
from latentvar.loopy import GridMRF, onsager_log_partition_per_site


def all_configs(h: int, w: int, k: int) -> torch.Tensor:
    """Every configuration (k^(h·w), h, w): the base-k digits of 0 .. k^(h·w) - 1."""
    n = h * w
    return (torch.arange(k**n)[:, None] // k ** torch.arange(n - 1, -1, -1) % k).reshape(-1, h, w)


def edges(h: int, w: int, periodic: bool):
    for i in range(h):
        for j in range(w):
            if periodic or i + 1 < h:
                yield (i, j), ((i + 1) % h, j)
            if periodic or j + 1 < w:
                yield (i, j), (i, (j + 1) % w)


def brute_log_z(m: GridMRF) -> float:
    """log Σ_z f(z) over every configuration, f summed site by site and edge by edge from the edge list
    above (independent of GridMRF's own shifted sums)."""
    h, w = m.shape
    z = all_configs(h, w, m.num_states)
    score = torch.zeros(z.shape[0], dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            score += m.unary[i, j, z[:, i, j]]
    for (a, b), (c, d) in edges(h, w, m.periodic):
        score += m.pairwise[z[:, a, b], z[:, c, d]]
    return float(torch.logsumexp(score, 0))


def random_grid(h, w, k, periodic=False, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, k, generator=g, dtype=torch.float64) * scale
    return GridMRF(torch.randn(h, w, k, generator=g, dtype=torch.float64), a + a.T, periodic)


@pytest.mark.parametrize(
    "h, w, k, periodic",
    [(3, 4, 2, False), (2, 5, 3, False), (4, 3, 3, False), (1, 7, 2, False), (4, 4, 2, True)],
)
def test_transfer_matrix_log_z_is_brute_force(h, w, k, periodic):
    m = random_grid(h, w, k, periodic, seed=h * 10 + w)
    assert float(m.log_partition()) == pytest.approx(brute_log_z(m), abs=1e-9)
    z = all_configs(h, w, k)
    logp = m.log_prob(z, exact=True)
    assert float(torch.logsumexp(logp, 0)) == pytest.approx(0.0, abs=1e-9)


def test_log_unnormalized_counts_every_edge_once():
    m = random_grid(3, 4, 3, seed=1)
    z = torch.randint(0, 3, (5, 3, 4), generator=torch.Generator().manual_seed(0))
    for periodic in (False,):
        for one in z:
            want = sum(float(m.unary[i, j, one[i, j]]) for i in range(3) for j in range(4))
            want += sum(float(m.pairwise[one[a, b], one[c, d]]) for (a, b), (c, d) in edges(3, 4, periodic))
            assert float(m.log_unnormalized(one)) == pytest.approx(want, abs=1e-9)
    assert m.num_edges == len(list(edges(3, 4, False))) == 17


@pytest.mark.parametrize("coupling", [0.1, 0.7, -0.4])
def test_ising_chain_closed_form(coupling):
    """A 1 × n Ising chain with free ends: Z = 2 (2 cosh K)^(n - 1); a 12-wide strip runs as 12 rows."""
    n = 12
    want = math.log(2) + (n - 1) * math.log(2 * math.cosh(coupling))
    assert float(GridMRF.ising(1, n, coupling).log_partition()) == pytest.approx(want, abs=1e-9)
    assert float(GridMRF.ising(n, 1, coupling).log_partition()) == pytest.approx(want, abs=1e-9)


def test_no_coupling_is_independent_sites():
    m = GridMRF.ising(10, 12, 0.0, field=0.3)
    assert float(m.log_partition()) == pytest.approx(120 * math.log(2 * math.cosh(0.3)), abs=1e-8)


def test_onsager_against_the_high_temperature_series_and_a_torus():
    """log Z / N = log 2 + 2 log cosh K + tanh⁴K + 2 tanh⁶K + O(tanh⁸K) (the square lattice's smallest
    loops); at K = 0.2 the exact log Z / N of a torus (the transfer matrix) approaches it: 8 × 8 within
    1e-5, closer than 4 × 4."""
    k = 0.05
    t = math.tanh(k)
    series = math.log(2) + 2 * math.log(math.cosh(k)) + t**4 + 2 * t**6
    assert onsager_log_partition_per_site(k) == pytest.approx(series, abs=1e-9)
    assert onsager_log_partition_per_site(0.0) == pytest.approx(math.log(2), abs=1e-12)
    onsager = onsager_log_partition_per_site(0.2)
    torus8 = float(GridMRF.ising(8, 8, 0.2, periodic=True).log_partition()) / 64
    torus4 = float(GridMRF.ising(4, 4, 0.2, periodic=True).log_partition()) / 16
    assert torus8 == pytest.approx(onsager, abs=1e-5) and abs(torus8 - onsager) < abs(torus4 - onsager)
    assert onsager_log_partition_per_site(2.0) == pytest.approx(4.0, abs=1e-6)  # 2K per site: all aligned


@pytest.mark.parametrize(
    "model",
    [
        GridMRF.ising(4, 4, 0.2),
        GridMRF.ising(4, 4, 0.44),  # near the critical coupling 0.4407
        GridMRF.ising(4, 4, 0.8),
        GridMRF.ising(8, 8, 0.3, field=0.1),
        random_grid(3, 4, 3, seed=5),  # Potts, 3 states, random potentials
    ],
    ids=["4x4-K0.2", "4x4-K0.44", "4x4-K0.8", "8x8-K0.3-field", "potts3-3x4"],
)
def test_ais_is_within_its_error_of_exact(model):
    exact = float(model.log_partition())
    est = ais_log_partition(model, num_steps=400, num_chains=128, generator=torch.Generator().manual_seed(1))
    estimate, stderr = float(est.estimate[0]), float(est.stderr[0])
    assert stderr > 0 and abs(estimate - exact) < 4 * stderr + 1e-3, (estimate, stderr, exact)
    assert 1 <= float(est.extra["ess"][0]) <= 128


def test_gibbs_samples_follow_the_exact_distribution():
    m = random_grid(2, 3, 2, seed=3, scale=0.7)
    configs = all_configs(2, 3, 2)
    exact = m.log_prob(configs, exact=True).exp()
    draws = m.sample((20000,), num_steps=10, generator=torch.Generator().manual_seed(0))
    index = (draws.reshape(-1, 6) * (2 ** torch.arange(5, -1, -1))).sum(-1)
    empirical = torch.bincount(index, minlength=64).double() / 20000
    assert 0.5 * float((empirical - exact).abs().sum()) < 0.02  # total variation
    # a sampler that ignored the coupling would be far off
    independent = GridMRF(m.unary, torch.zeros(2, 2)).log_prob(configs, exact=True).exp()
    assert 0.5 * float((independent - exact).abs().sum()) > 0.05


def test_intractable_is_said_with_the_estimator():
    m = GridMRF.ising(64, 64, 0.4)
    with pytest.raises(IntractableMarginalError, match=r"ais_log_partition") as err:
        m.log_prob(torch.zeros(64, 64, dtype=torch.long))
    assert "2^(64·64) configurations on a grid with cycles" in str(err.value)
    with pytest.raises(IntractableMarginalError, match=r"^GridMRF 64×64, K=2: log Z is intractable"):
        m.log_partition(exact=False)
    with pytest.raises(ValueError, match=r"^exact: a 64 × 64 grid has 2\^64 = .* row states, over"):
        m.log_partition(exact=True)
    with pytest.raises(
        ValueError, match=r"^exact: a 10 × 10 grid has 2\^10 = 1,024 row states, over .* torus"
    ):
        GridMRF.ising(10, 10, 0.4, periodic=True).log_partition()
    assert math.isfinite(float(GridMRF.ising(30, 12, 0.4).log_partition()))  # narrow: exact at any length


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((torch.zeros(3, 3), torch.zeros(2, 2)), {}, r"^unary: expected log-potentials \(h, w, k\)"),
        ((torch.zeros(3, 3, 2), torch.zeros(3, 3)), {}, r"^pairwise: expected \(2, 2\) for k = 2 states"),
        (
            (torch.zeros(3, 3, 2), torch.tensor([[0.0, 1.0], [0.0, 0.0]])),
            {},
            r"^pairwise: expected a symmetric",
        ),
        ((torch.zeros(3, 3, 2), torch.tensor([[0.0, float("nan")], [0.0, 0.0]])), {}, r"^pairwise: "),
        ((torch.full((3, 3, 2), float("inf")), torch.zeros(2, 2)), {}, r"^unary: "),
        (
            (torch.zeros(3, 4, 2), torch.zeros(2, 2)),
            {"periodic": True},
            r"^periodic: a torus needs even sides",
        ),
    ],
)
def test_bad_models_name_the_argument(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        GridMRF(*args, **kwargs)


def test_bad_configurations_name_the_argument():
    m = GridMRF.ising(3, 3, 0.5)
    with pytest.raises(ValueError, match=r"^y: expected configurations \(\.\.\., 3, 3\), got \(3, 4\)"):
        m.log_prob(torch.zeros(3, 4, dtype=torch.long), exact=True)
    with pytest.raises(ValueError, match=r"^y: expected states in 0\.\.1, got 0\.\.2"):
        m.log_prob(torch.tensor([[0, 1, 2]] * 3), exact=True)
    with pytest.raises(ValueError, match=r"^y: expected integer states"):
        m.log_prob(torch.full((3, 3), 0.5), exact=True)
    with pytest.raises(ValueError, match=r"^num_steps: expected a non-negative integer"):
        m.sample((2,), num_steps=-1)
