"""Bad input gets a ValueError naming the argument -- never a silent NaN."""

import pytest
import torch
import torch.distributions as D

from latentvar import IntractableMarginalError, LatentVariableModel, Mixture


def gmm():
    return Mixture(torch.zeros(2), D.Normal(torch.tensor([0.0, 1.0]), torch.ones(2)))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Mixture(torch.tensor([0.0, float("nan")]), D.Normal(torch.zeros(2), 1.0)), "^logits: .*NaN"),
        (
            lambda: Mixture(torch.tensor([0.0, float("inf")]), D.Normal(torch.zeros(2), 1.0)),
            "^logits: expected finite",
        ),
        (
            lambda: Mixture(torch.full((2,), float("-inf")), D.Normal(torch.zeros(2), 1.0)),
            "^logits: every component",
        ),
        (
            lambda: Mixture(torch.zeros(3), D.Normal(torch.zeros(2), 1.0)),
            "^components: expected batch_shape ending in K=3",
        ),
        (
            lambda: Mixture(torch.zeros(2), "normal"),
            "^components: expected a torch.distributions.Distribution",
        ),
        (lambda: Mixture(torch.tensor(1.0), D.Normal(torch.zeros(2), 1.0)), "^logits: expected shape"),
        (
            lambda: Mixture(torch.zeros(4, 2), D.Normal(torch.zeros(3, 2), 1.0)),
            "^logits and components: batch shapes .* do not broadcast",
        ),
        (lambda: gmm().log_prob(torch.tensor([0.0, float("nan")])), "^y: expected finite"),
        (
            lambda: Mixture(torch.zeros(2), D.Categorical(logits=torch.zeros(2, 3))).log_prob(
                torch.tensor([3])
            ),
            "^y: values outside",
        ),
        (
            lambda: Mixture(torch.zeros(2), D.MultivariateNormal(torch.zeros(2, 3), torch.eye(3))).log_prob(
                torch.zeros(4, 2)
            ),
            r"^y: expected trailing shape \(3,\)",
        ),
        (lambda: gmm().log_joint(torch.tensor([2]), torch.tensor([0.0])), r"^z: expected values in \[0, 1\]"),
        (lambda: gmm().log_joint(torch.tensor([0.5]), torch.tensor([0.0])), "^z: expected an integer tensor"),
        (lambda: gmm().fit(torch.zeros(5), method="newton"), "^method: expected 'em' or 'gradient'"),
        (lambda: gmm().fit(torch.zeros(5), max_iter=0), "^max_iter: expected a positive integer"),
        (
            lambda: Mixture(torch.zeros(3, 2), D.Normal(torch.zeros(3, 2), 1.0)).fit(torch.zeros(5, 3)),
            "^fit: expected a single mixture",
        ),
        (
            lambda: Mixture(torch.zeros(2), D.Gamma(torch.ones(2), 1.0)).fit(torch.ones(5)),
            "^components: EM supports",
        ),
    ],
)
def test_value_errors_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_intractable_marginal_error_names_the_estimators():
    class OnlyJoint(LatentVariableModel):
        def sample(self, sample_shape=torch.Size()):
            return torch.zeros(sample_shape), torch.zeros(sample_shape)

        def log_joint(self, z, y):
            return torch.zeros(())

    with pytest.raises(
        IntractableMarginalError, match="^OnlyJoint: log P\\(y\\) is intractable.*elbo.*iwae.*ais"
    ):
        OnlyJoint().log_prob(torch.zeros(3))
    with pytest.raises(IntractableMarginalError, match="^OnlyJoint: .*posterior"):
        OnlyJoint().posterior(torch.zeros(3))
