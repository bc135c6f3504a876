"""latentvar.estimate.ais_log_partition, the estimator itself: its contract, its schedules, its errors.
(Its accuracy on real loopy models is checked in test_loopy_grid.py and test_loopy_rbm.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from latentvar.estimate.partition import ais_log_partition, linear_schedule
from latentvar.loopy import GridMRF


def test_without_coupling_every_weight_is_one_and_the_estimate_exact():
    """With zero pairwise terms f_β = f_0 for every β: each log-weight is 0, log Z = log Z_0 exactly."""
    m = GridMRF(torch.randn(5, 6, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(3, 3))
    est = ais_log_partition(m, num_steps=10, num_chains=8, generator=torch.Generator().manual_seed(0))
    assert float(est.estimate[0]) == pytest.approx(float(m.log_partition()), abs=1e-10)
    assert float(est.stderr[0]) == 0.0 and float(est.extra["ess"][0]) == pytest.approx(8.0)
    assert est.name == "ais_log_partition" and est.num_samples == 8 and est.extra["log_weights"].shape == (8,)


@pytest.mark.parametrize("schedule", ["linear", "sigmoid", torch.tensor([0.0, 0.1, 0.3, 0.6, 1.0])])
def test_schedules_agree_with_exact(schedule):
    m = GridMRF.ising(4, 4, 0.3)
    steps = 300
    if torch.is_tensor(schedule):
        schedule = torch.cat([torch.linspace(0, 0.5, 100), torch.linspace(0.5, 1, 201)[1:]])
    est = ais_log_partition(m, steps, 128, schedule=schedule, generator=torch.Generator().manual_seed(2))
    assert abs(float(est.estimate[0]) - float(m.log_partition())) < 4 * float(est.stderr[0]) + 1e-3


def test_seeded_runs_repeat():
    m = GridMRF.ising(6, 6, 0.4)
    a, b = (ais_log_partition(m, 50, 16, generator=torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(a.extra["log_weights"], b.extra["log_weights"])


def test_linear_schedule():
    assert torch.equal(linear_schedule(4), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_steps": 0}, r"^num_steps: expected a positive integer"),
        ({"num_chains": 1.5}, r"^num_chains: expected a positive integer"),
        (
            {"schedule": "cosine"},
            r"^schedule: expected 'auto', 'adaptive', 'linear', 'sigmoid' or a tensor of betas, got 'cosine'",
        ),
        (
            {"schedule": torch.tensor([0.0, 0.7, 0.5, 1.0])},
            r"^schedule: expected increasing betas from 0 to 1",
        ),
        ({"schedule": torch.tensor([0.1, 1.0])}, r"^schedule: expected increasing betas from 0 to 1"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ais_log_partition(GridMRF.ising(3, 3, 0.2), **kwargs)


def test_a_model_without_a_path_is_refused():
    with pytest.raises(ValueError, match=r"^model: expected a model with \.annealing_path\(\)"):
        ais_log_partition(torch.distributions.Normal(0.0, 1.0))

    class HalfPath:
        def annealing_path(self):
            return type("P", (), {"sample_base": lambda self, n, g: None})()

    with pytest.raises(ValueError, match=r"^model: its annealing path lacks log_partition_base, "):
        ais_log_partition(HalfPath())
    assert math.isfinite(float(ais_log_partition(GridMRF.ising(2, 2, 0.1), 5, 2).estimate[0]))
