"""The adaptive estimators (`latentvar.estimate.smc`, `tempering`, `hmc`, `diagnostics`; Swendsen-Wang in
`latentvar.loopy.cluster`) against answers nobody here computed by AIS: the LinearGaussian's closed form,
brute-force enumeration of tiny grids, the exact log Z of a small RBM."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from latentvar import estimate
from latentvar.estimate import smc
from latentvar.estimate.partition import ais_log_partition
from latentvar.generator import LinearGaussian
from latentvar.loopy import RBM, GridMRF
from latentvar.loopy.cluster import potts_coupling, swendsen_wang

F64 = torch.float64


def _model(d_y=12, d_z=3, sigma=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d_y, d_z, generator=g, dtype=F64) * 0.5
    return LinearGaussian(W, torch.randn(d_y, generator=g, dtype=F64), sigma)


def test_default_call_is_accurate_and_says_ok():
    torch.manual_seed(0)
    model = _model(d_y=24, d_z=4, sigma=0.2)
    _, y = model.sample((3,))
    est = estimate.ais(model, y, num_chains=64)
    err = est.estimate - model.log_prob(y)
    assert float(err.abs().max()) < 0.15, err
    assert bool((err.abs() < 4 * est.stderr + 0.02).all()), (err, est.stderr)
    assert est.ok and est.diagnostic.startswith("ok"), est.diagnostic
    assert est.extra["replicate_log_z"].shape == (8, 3) and est.extra["stderr_method"] == "replicates"
    assert est.ess.shape == (3,) and est.num_samples == 64
    assert 0.4 < float(est.extra["acceptance"].mean()) < 0.9


def test_exact_posterior_start_gives_every_replicate_log_p():
    """With q0 = P(z|y) every increment is (β' - β) log P(y) and the weights never spread."""
    model = _model()
    _, y = model.sample((2,))
    est = estimate.ais(model, y, num_chains=16, initial=model.posterior, start="initial", replicates=4)
    torch.testing.assert_close(est.estimate, model.log_prob(y), rtol=0, atol=1e-9)
    torch.testing.assert_close(
        est.extra["replicate_log_z"], model.log_prob(y).expand(4, 2), rtol=0, atol=1e-9
    )
    assert est.extra["num_temperatures"] >= 1


def test_frozen_replicates_are_unbiased_for_p_of_y():
    """E[Ẑ_r] = P(y) for every replicate, even on a 3-temperature schedule with resampling where log Ẑ
    is clearly low: the mean of Ẑ_r / P(y) over 400 independent 8-chain replicates is 1 within 3
    stderrs. (Dropping the normaliser accumulated at a resampling step breaks it.)"""
    torch.manual_seed(3)
    model = _model(d_y=8, d_z=2, sigma=0.1, seed=2)
    _, y = model.sample((1,))
    est = estimate.ais(
        model, y, 3, 3200, schedule="adaptive", replicates=400, start="initial", target_cess=0.5
    )
    assert int(est.extra["num_resamples"][0]) >= 1
    ratio = torch.exp(est.extra["replicate_log_z"][:, 0] - model.log_prob(y)[0])
    mean, se = float(ratio.mean()), float(ratio.std() / math.sqrt(ratio.numel()))
    assert abs(mean - 1) < 3 * se + 1e-3, (mean, se)
    assert float(torch.log(ratio).mean()) < -0.01  # each replicate's log is biased low (Jensen)


def test_fixed_budget_and_old_schedule_still_work():
    model = _model()
    _, y = model.sample((2,))
    est = estimate.ais(model, y, 25, 32, schedule="adaptive", replicates=4)
    assert est.extra["num_temperatures"] == 25
    old = estimate.ais(model, y, 25, 32)  # num_steps given: the sigmoid schedule, as before
    assert "num_temperatures" not in old.extra and old.diagnostic
    assert estimate.ais(model, y, num_chains=8, schedule=torch.tensor([0.0, 0.5, 1.0])).num_samples == 8


def test_diagnostic_fires_on_degenerate_weights():
    model = _model(d_y=64, d_z=8, sigma=0.05)
    _, y = model.sample((2,))
    old = estimate.ais(model, y, 2, 32)
    assert "degenerate" in old.diagnostic and "raise num_steps" in old.diagnostic and not old.ok
    new = estimate.ais(model, y, 2, 64, schedule="adaptive", start="initial", resample=False)
    assert not new.ok and ("disagree" in new.diagnostic or "degenerate" in new.diagnostic), new.diagnostic
    iw = estimate.iwae(model, y, model.prior.expand((2,)), 50)
    assert "degenerate" in iw.diagnostic and "raise num_samples" in iw.diagnostic


def test_adaptive_bdmc_brackets_the_truth():
    torch.manual_seed(1)
    model = _model(d_y=16, d_z=3, sigma=0.2)
    res = estimate.bdmc(model, 3, num_chains=32, replicates=4)
    exact = model.log_prob(res.y)
    assert bool((res.lower.estimate <= exact + 4 * res.lower.stderr + 0.05).all())
    assert bool((res.upper.estimate >= exact - 4 * res.upper.stderr - 0.05).all())
    assert float(res.gap.abs().max()) < 0.3, res.gap


def test_max_cost_caps_all_runs_and_bdmc_counts_both_directions():
    """max_cost: the tuning runs' chain-transitions plus the estimation run's (bdmc: forward and reverse)
    come to the budget, within one temperature's worth of chains; a budget the tuning already spent
    leaves one temperature."""
    torch.manual_seed(2)
    model = _model(d_y=16, d_z=3, sigma=0.2)
    _, y = model.sample((2,))
    est = estimate.ais(model, y, num_chains=32, replicates=4, max_cost=20_000)
    assert 20_000 - 32 < est.extra["cost"] <= 20_000, est.extra["cost"]
    res = estimate.bdmc(model, 2, num_chains=32, replicates=4, max_cost=20_000)
    total = res.lower.extra["cost"] + res.upper.extra["cost"]
    assert 20_000 - 64 < total <= 20_000, total
    assert res.upper.extra["cost"] == 32 * res.upper.extra["num_temperatures"]
    assert res.upper.extra["num_temperatures"] == res.lower.extra["num_temperatures"]
    assert float(res.gap.abs().max()) < 0.5, res.gap
    tiny = estimate.ais(model, y, num_chains=32, replicates=4, max_cost=1)
    assert tiny.extra["num_temperatures"] == 1


def _brute_log_z(model: GridMRF) -> float:
    h, w = model.shape
    configs = torch.tensor(list(itertools.product(range(model.num_states), repeat=h * w))).reshape(-1, h, w)
    return float(torch.logsumexp(model.log_unnormalized(configs), 0))


@pytest.mark.parametrize(
    "model",
    [
        GridMRF.ising(3, 4, 0.6),
        GridMRF.ising(3, 3, 0.9, field=0.2),
        GridMRF(
            torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(4), dtype=F64), torch.eye(3) * 0.8
        ),
        GridMRF(
            torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(5), dtype=F64),
            torch.tensor([[0.3, -0.5], [-0.5, 0.9]], dtype=F64),  # not Potts: Gibbs only
        ),
    ],
    ids=["ising-3x4", "ising-field", "potts3", "non-potts"],
)
def test_adaptive_log_partition_against_brute_force(model):
    exact = _brute_log_z(model)
    est = ais_log_partition(model, generator=torch.Generator().manual_seed(0))
    got, se = float(est.estimate[0]), float(est.stderr[0])
    assert 0 < se < 0.1 and abs(got - exact) < 4 * se + 0.01, (got, exact, se)
    assert est.diagnostic.startswith("ok"), est.diagnostic
    want = "swendsen-wang + gibbs" if potts_coupling(model.pairwise) else "gibbs"
    assert est.extra["moves"] == want and est.extra["log_weights"].shape == (128,)


def test_swendsen_wang_samples_the_exact_distribution():
    """Draws after a few SW updates (no Gibbs sweep) on a 2 × 3 Potts grid with a random field, against
    the enumerated law; an update that ignored the field, or bonded with the wrong probability, is off."""
    g = torch.Generator().manual_seed(0)
    model = GridMRF(torch.randn(2, 3, 2, generator=g, dtype=F64) * 0.7, torch.eye(2, dtype=F64) * 1.2)
    configs = torch.tensor(list(itertools.product(range(2), repeat=6))).reshape(-1, 2, 3)
    exact = torch.softmax(model.log_unnormalized(configs), 0)
    z = model.annealing_path().sample_base(20000, g)
    for _ in range(8):
        z = swendsen_wang(model, z, 1.0, g)
    index = (z.reshape(-1, 6) * (2 ** torch.arange(5, -1, -1))).sum(-1)
    empirical = torch.bincount(index, minlength=64).double() / z.shape[0]
    assert 0.5 * float((empirical - exact).abs().sum()) < 0.02
    half = torch.softmax(model.log_unnormalized(configs, beta=0.5), 0)
    assert 0.5 * float((half - exact).abs().sum()) > 0.05  # the test can tell couplings apart


def test_rbm_path_without_a_linear_increment():
    g = torch.Generator().manual_seed(1)
    rbm = RBM(torch.randn(8, 5, generator=g, dtype=F64), torch.randn(8, generator=g, dtype=F64) * 0.5,
              torch.randn(5, generator=g, dtype=F64) * 0.5)  # fmt: skip
    exact = float(rbm.log_partition())
    est = ais_log_partition(rbm, num_chains=64, generator=torch.Generator().manual_seed(2))
    got, se = float(est.estimate[0]), float(est.stderr[0])
    assert abs(got - exact) < 4 * se + 0.01, (got, exact, se)


def test_plan_resizing_and_the_cess():
    log_w = torch.zeros(5, 2, dtype=F64)
    assert torch.allclose(
        smc.conditional_ess(log_w, torch.full((5, 2), 3.0, dtype=F64)), torch.ones(2, dtype=F64)
    )
    inc = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(0)) * 10
    beta = smc.next_beta(
        lambda new: new[None] * inc, torch.zeros(50, 2, dtype=F64), torch.zeros(2, dtype=F64), 0.9
    )
    cess = smc.conditional_ess(torch.zeros(50, 2, dtype=F64), beta[None] * inc)
    torch.testing.assert_close(cess, torch.full((2,), 0.9, dtype=F64), rtol=0, atol=1e-6)
    betas = torch.tensor([[0.0, 0.0], [0.1, 0.5], [0.4, 1.0], [1.0, 1.0]], dtype=F64)
    plan = smc.Plan(betas, [None] * 3, torch.tensor([[False, False], [True, False], [False, False]]))
    big = plan.resized(9)
    assert big.num_steps == 9 and bool((big.betas.diff(dim=0) >= 0).all())
    assert bool((big.betas[0] == 0).all() and (big.betas[-1] == 1).all()) and int(big.resample.sum()) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target_cess": 0.0}, r"^target_cess: "),
        ({"target_cess": 1.0}, r"^target_cess: expected a fraction in \(0, 1\)"),
        ({"resample": "yes"}, r"^resample: expected True or False"),
        ({"replicates": 0}, r"^replicates: expected a positive integer"),
        ({"num_chains": 4, "replicates": 8}, r"^num_chains: expected at least one chain per replicate"),
        ({"start": "encoder"}, r"^start: expected 'fitted' or 'initial'"),
        ({"schedule": "cosine"}, r"^schedule: expected 'auto', 'adaptive', 'sigmoid'"),
        ({"schedule": None}, r"^schedule: expected 'auto', 'adaptive', 'sigmoid'"),
        ({"schedule": "sigmoid"}, r"^num_steps: the sigmoid schedule needs"),
        ({"max_cost": 0}, r"^max_cost: expected a positive integer"),
        ({"max_cost": 1000, "num_steps": 10}, r"^max_cost: a budget for the adaptive schedule"),
        ({"max_cost": 1000, "schedule": torch.tensor([0.0, 1.0])}, r"^max_cost: a budget for the adaptive"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    model = _model()
    _, y = model.sample((1,))
    with pytest.raises(ValueError, match=message):
        estimate.ais(model, y, **kwargs)


def test_bad_loopy_arguments_name_themselves():
    potts = GridMRF(torch.zeros(3, 3, 2), torch.tensor([[0.3, -0.5], [-0.5, 0.9]]))
    with pytest.raises(ValueError, match=r"^moves: 'swendsen-wang' needs a ferromagnetic"):
        ais_log_partition(potts, moves="swendsen-wang")
    with pytest.raises(ValueError, match=r"^moves: expected 'auto', 'gibbs' or 'swendsen-wang'"):
        ais_log_partition(potts, moves="metropolis")
    with pytest.raises(ValueError, match=r"^target_cess: "):
        ais_log_partition(potts, target_cess=2.0)
    with pytest.raises(ValueError, match=r"^replicates: "):
        ais_log_partition(potts, replicates=-1)
    with pytest.raises(ValueError, match=r"^model: Swendsen-Wang needs"):
        swendsen_wang(potts, torch.zeros(1, 3, 3, dtype=torch.long), 1.0)


def test_summary_reads_in_one_line():
    model = _model()
    _, y = model.sample((2,))
    line = estimate.ais(model, y, 5, 8).summary()
    assert line.startswith("ais: ") and "± " in line and "ESS " in line and "\n" not in line


def test_a_capped_schedule_is_said():
    from latentvar.estimate.ais import _Path
    from latentvar.estimate.diagnostics import combine
    from latentvar.estimate.hmc import HMCMover

    model = _model(d_y=32, d_z=4, sigma=0.05)
    _, y = model.sample((1,))
    mover = HMCMover(_Path(model, y), 0.5, 3, 0.65)
    run = smc.run(mover, 32, 4, max_steps=3, initial_params=mover.initial_params(F64))
    assert run.capped and run.plan.num_steps == 3 and float(run.plan.betas[-1, 0]) == 1.0
    assert "cap of temperatures" in combine("ais", run).diagnostic
