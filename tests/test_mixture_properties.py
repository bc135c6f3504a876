"""Property tests: shapes and broadcasting, normalisation, for random mixtures."""

import torch
import torch.distributions as D
from hypothesis import given, settings
from hypothesis import strategies as st

from latentvar import Mixture

shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2)


@settings(max_examples=40, deadline=None)
@given(
    batch=shapes,
    sample=shapes,
    k=st.integers(1, 4),
    d=st.integers(1, 3),
    family=st.sampled_from(["mvn", "diag", "cat"]),
)
def test_shapes_broadcast_and_marginals_normalise(batch, sample, k, d, family):
    g = torch.Generator().manual_seed(len(batch) * 100 + k * 10 + d)
    # logits broadcast against the components' batch: give the logits no batch dims
    logits = torch.randn(k, generator=g, dtype=torch.float64)
    if family == "mvn":
        comp = D.MultivariateNormal(
            torch.randn(*batch, k, d, generator=g, dtype=torch.float64), torch.eye(d, dtype=torch.float64)
        )
    elif family == "diag":
        comp = D.Independent(D.Normal(torch.randn(*batch, k, d, generator=g, dtype=torch.float64), 1.0), 1)
    else:
        comp = D.Categorical(logits=torch.randn(*batch, k, d + 1, generator=g, dtype=torch.float64))
    m = Mixture(logits, comp)
    assert tuple(m.batch_shape) == tuple(batch)
    z, y = m.sample(torch.Size(sample))
    assert tuple(z.shape) == (*sample, *batch)
    assert tuple(y.shape) == (*sample, *batch, *comp.event_shape)
    lp = m.log_prob(y)
    assert lp.shape == z.shape and torch.isfinite(lp).all()
    post = m.posterior(y)
    torch.testing.assert_close(post.marginals.sum(-1), torch.ones_like(lp))
    # the joint of the sampled z never exceeds the marginal
    assert (m.log_joint(z, y) <= lp + 1e-9).all()


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 5), v=st.integers(2, 6))
def test_discrete_marginal_sums_to_one_over_all_y(k, v):
    g = torch.Generator().manual_seed(k * 7 + v)
    m = Mixture(torch.randn(k, generator=g), D.Categorical(logits=torch.randn(k, v, generator=g)))
    total = m.log_prob(torch.arange(v)).exp().sum()
    torch.testing.assert_close(total, torch.tensor(1.0), rtol=1e-5, atol=1e-6)
