"""Pyro's DiscreteHMM tests, ported: pyro-ppl/pyro tests/distributions/test_hmm.py
(test_sequential_logmatmulexp, test_discrete_hmm_shape, test_discrete_hmm_homogeneous_trick,
test_discrete_hmm_categorical, test_discrete_hmm_diag_normal). The Gaussian-HMM / Gaussian-MRF / gamma
tests are about Pyro's linear-Gaussian state-space distributions, which latentvar's discrete HMM does not
model, and are not ported.

Pyro's time convention differs by one step: its ``init_logits`` is the state *before* the first
observation and ``trans_logits[t]`` moves into step t; latentvar's ``init_logits`` is the state at step 0
and ``trans_logits[t]`` moves from t-1 to t. A Pyro model is written for latentvar as init' = log(π A_0)
and the same transitions (row 0 unused). Shapes need no change: both broadcast init (..., K), transitions
(..., T|1, K, K) and the emission's batch (..., T|1, K). Pyro checks values against TraceEnum_ELBO; here
against enumeration of every state path, in Pyro's convention.
"""

import itertools

import pytest
import torch
import torch.distributions as D

from latentvar import HMM
from latentvar.inference import Chain, parallel_log_partition

DT = torch.float64


@pytest.mark.parametrize("num_steps", list(range(1, 20)))
@pytest.mark.parametrize("state_dim", [2, 3])
@pytest.mark.parametrize("batch_shape", [(), (5,), (2, 4)], ids=str)
def test_sequential_logmatmulexp(batch_shape, state_dim, num_steps):
    """test_hmm.py test_sequential_logmatmulexp: the log-depth product of (K, K) log-matrices against the
    sequential one (Pyro: against opt_einsum's log contraction; assert_close: float default). latentvar's
    log-depth scan reduces the same product; with init = 0 and emissions 0 its log Z is logsumexp of the
    full product's entries."""
    g = torch.Generator().manual_seed(num_steps)
    logits = torch.randn(batch_shape + (num_steps, state_dim, state_dim), generator=g, dtype=DT)
    b = int(torch.tensor(batch_shape).prod()) if batch_shape else 1
    mats = logits.reshape(b, num_steps, state_dim, state_dim)
    expected = mats[:, 0]
    for t in range(1, num_steps):  # the sequential log-matmul-exp
        expected = (expected[..., :, :, None] + mats[:, t, None, :, :]).logsumexp(-2)
    trans = torch.cat([torch.zeros(b, 1, state_dim, state_dim, dtype=DT), mats], 1)
    chain = Chain(torch.zeros(state_dim, dtype=DT), trans, torch.zeros(b, num_steps + 1, state_dim, dtype=DT),
                  torch.full((b,), num_steps + 1))  # fmt: skip
    torch.testing.assert_close(parallel_log_partition(chain), expected.logsumexp((-1, -2)))
    torch.testing.assert_close(chain.log_partition(), expected.logsumexp((-1, -2)))


SHAPE_CASES = [
    (True, (), (), (1,)),
    (True, (), (1,), (1,)),
    (True, (), (), (7,)),
    (True, (), (7,), (7,)),
    (True, (), (1,), (7,)),
    (True, (), (7,), (11, 7)),
    (True, (), (11, 7), (7,)),
    (True, (), (11, 7), (11, 7)),
    (True, (11,), (7,), (7,)),
    (True, (11,), (7,), (11, 7)),
    (True, (11,), (11, 7), (7,)),
    (True, (11,), (11, 7), (11, 7)),
    (True, (4, 1, 1), (3, 1, 7), (2, 7)),
    (False, (), (1,), ()),
    (False, (), (7,), ()),
    (False, (), (7,), (1,)),
    (False, (), (7,), (6,)),
    (False, (3,), (4, 7), (7,)),
    (False, (3,), (7,), (4, 7)),
    (False, (), (3, 7), (4, 7)),
]
TIME_CHECK = pytest.mark.xfail(
    strict=True,
    reason="feature: refuse time-varying transitions whose steps (7) differ from the data's (1 or 6); "
    "latentvar uses the first T rows",
)


def _shape_params():
    for ok, init, trans, obs in SHAPE_CASES:
        marks = []
        if (trans, obs) in (((7,), (1,)), ((7,), (6,))):
            marks = [TIME_CHECK]
        yield pytest.param(ok, init, trans, obs, marks=marks, id=f"{ok}-{init}-{trans}-{obs}")


EVENT_SHAPES = [(), (5,), (2, 3)]


@pytest.mark.parametrize("ok,init_shape,trans_shape,obs_shape", list(_shape_params()))
def test_discrete_hmm_shape(ok, init_shape, trans_shape, obs_shape):
    """test_hmm.py test_discrete_hmm_shape: log_prob's shape is broadcast(init_shape, trans_shape[:-1],
    obs_shape[:-1]) for Bernoulli emissions of every event shape ((), (5,), (2, 3)) and 2 or 3 states
    (Pyro's parametrization, looped inside to keep the suite fast); incompatible shapes raise ValueError.
    (Its check_expand and filter parts are the separate xfails below.) Where that shape is () -- one
    unbatched sequence -- latentvar returns () since issue 21 (it returned (1,) before)."""
    for event_shape, state_dim in itertools.product(EVENT_SHAPES, [2, 3]):
        init_logits = torch.randn(init_shape + (state_dim,), dtype=DT)
        trans_logits = torch.randn(trans_shape + (state_dim, state_dim), dtype=DT)
        obs_logits = torch.randn(obs_shape + (state_dim,) + event_shape, dtype=DT)
        obs_dist = D.Independent(D.Bernoulli(logits=obs_logits), len(event_shape))
        data = obs_dist.sample()[(slice(None),) * len(obs_shape) + (0,)]
        if not ok:
            with pytest.raises(ValueError):
                HMM(init_logits, trans_logits, obs_dist).log_prob(data)
            continue
        actual = HMM(init_logits, trans_logits, obs_dist).log_prob(data)
        assert actual.shape == torch.broadcast_shapes(init_shape, trans_shape[:-1], obs_shape[:-1])


HOMOGENEOUS_CASES = [
    ((), (), ()),
    ((), (1,), ()),
    ((), (), (1,)),
    ((), (1,), (7, 1)),
    ((), (7, 1), (1,)),
    ((), (7, 1), (7, 1)),
    ((7,), (1,), (1,)),
    ((7,), (1,), (7, 1)),
    ((7,), (7, 1), (1,)),
    ((7,), (7, 1), (7, 1)),
    ((4, 1, 1), (3, 1, 1), (2, 1)),
]


def _homogeneous_params():
    for init, trans, obs in HOMOGENEOUS_CASES:
        yield pytest.param(init, trans, obs, id=f"{init}-{trans}-{obs}")


@pytest.mark.parametrize("init_shape,trans_shape,obs_shape", list(_homogeneous_params()))
def test_discrete_hmm_homogeneous_trick(init_shape, trans_shape, obs_shape):
    """test_hmm.py test_discrete_hmm_homogeneous_trick: transitions and emissions with a time axis of 1 are
    homogeneous and score data of any number of steps (1, 2, 3); log_prob's shape is the broadcast batch
    shape, for every event shape and 2 or 3 states (looped inside). (Pyro's ``event_shape == (1,) + event``:
    latentvar's HMM.event_shape is one observation's shape, the event without the time axis.)"""
    batch_shape = torch.broadcast_shapes(init_shape, trans_shape[:-1], obs_shape[:-1])
    for event_shape, state_dim, num_steps in itertools.product(EVENT_SHAPES, [2, 3], [1, 2, 3]):
        init_logits = torch.randn(init_shape + (state_dim,), dtype=DT)
        trans_logits = torch.randn(trans_shape + (state_dim, state_dim), dtype=DT)
        obs_logits = torch.randn(obs_shape + (state_dim,) + event_shape, dtype=DT)
        obs_dist = D.Independent(D.Bernoulli(logits=obs_logits), len(event_shape))
        d = HMM(init_logits, trans_logits, obs_dist)
        assert d.event_shape == event_shape
        data = obs_dist.expand(batch_shape + (num_steps, state_dim)).sample()
        data = data[(slice(None),) * (len(batch_shape) + 1) + (0,)]
        assert data.shape == batch_shape + (num_steps,) + event_shape
        assert d.log_prob(data).shape == batch_shape


def _pyro_as_latentvar(init_logits, trans_logits, obs_dist) -> HMM:
    """Pyro's DiscreteHMM (state before step 0) as a latentvar HMM (state at step 0)."""
    log_a = trans_logits.log_softmax(-1)
    first = (init_logits.log_softmax(-1)[:, None] + log_a[0]).logsumexp(0)
    return HMM(first, trans_logits, obs_dist)


def _enumerate(init_logits, trans_logits, frame_log_prob):
    """log P(data) in Pyro's model by summing over every path (x_init, x_0, ..., x_{T-1}):
    frame_log_prob (T, K) = log P(obs_t | x_t = k)."""
    t_steps, k = frame_log_prob.shape
    paths = torch.tensor(list(itertools.product(range(k), repeat=t_steps + 1)))
    score = init_logits.log_softmax(-1)[paths[:, 0]]
    log_a = trans_logits.log_softmax(-1)
    for t in range(t_steps):
        score = score + log_a[t, paths[:, t], paths[:, t + 1]] + frame_log_prob[t, paths[:, t + 1]]
    return score.logsumexp(0)


@pytest.mark.parametrize("num_steps", list(range(1, 10)))
def test_discrete_hmm_categorical(num_steps):
    """test_hmm.py test_discrete_hmm_categorical: time-varying transitions (T, 3, 3) and categorical
    emissions (T, 3, 4); log P(data) against Pyro's model enumerated (Pyro: TraceEnum_ELBO)."""
    g = torch.Generator().manual_seed(num_steps)
    init_logits = torch.randn(3, generator=g, dtype=DT)
    trans_logits = torch.randn(num_steps, 3, 3, generator=g, dtype=DT)
    obs_logits = torch.randn(num_steps, 3, 4, generator=g, dtype=DT)
    data = torch.randint(0, 4, (num_steps,), generator=g)
    d = _pyro_as_latentvar(init_logits, trans_logits, D.Categorical(logits=obs_logits))
    actual = d.log_prob(data[None])
    assert actual.shape == (1,)
    frames = obs_logits.log_softmax(-1)[torch.arange(num_steps), :, data]
    torch.testing.assert_close(actual[0], _enumerate(init_logits, trans_logits, frames))


@pytest.mark.parametrize("num_steps", list(range(1, 10)))
def test_discrete_hmm_diag_normal(num_steps):
    """test_hmm.py test_discrete_hmm_diag_normal: time-varying transitions and diagonal-normal emissions
    (T, 3, 2) as Normal(...).to_event(1); log P(data) against the enumeration."""
    g = torch.Generator().manual_seed(num_steps)
    init_logits = torch.randn(3, generator=g, dtype=DT)
    trans_logits = torch.randn(num_steps, 3, 3, generator=g, dtype=DT)
    loc = torch.randn(num_steps, 3, 2, generator=g, dtype=DT)
    scale = torch.randn(num_steps, 3, 2, generator=g, dtype=DT).exp()
    obs_dist = D.Independent(D.Normal(loc, scale), 1)
    data = obs_dist.sample()[:, 0]
    d = _pyro_as_latentvar(init_logits, trans_logits, obs_dist)
    actual = d.log_prob(data[None])
    frames = obs_dist.log_prob(data[:, None, :])
    torch.testing.assert_close(actual[0], _enumerate(init_logits, trans_logits, frames))


@pytest.mark.xfail(strict=True, reason="feature: HMM.expand (torch.distributions' expand)")
def test_discrete_hmm_expand():
    """test_hmm.py check_expand (called by test_discrete_hmm_shape / _categorical / _diag_normal): a model
    expanded to batch (2,) + batch_shape scores the old data with the new batch shape."""
    d = HMM(
        torch.randn(3, dtype=DT),
        torch.randn(3, 3, dtype=DT),
        D.Categorical(logits=torch.randn(3, 4, dtype=DT)),
    )
    assert d.expand((2,)).log_prob(torch.randint(0, 4, (5,))).shape == (2,)


def test_discrete_hmm_filter():
    """test_hmm.py test_discrete_hmm_shape's filter part: ``d.filter(data)`` is a Categorical over the last
    state with the model's batch shape. latentvar's ``HMM.filter`` returns every step's filtering
    distribution P(z_t | y_1..t); the last step's is Pyro's answer, and (nothing after it) equals the
    smoothed marginal of the last step, checked here too."""
    d = HMM(
        torch.randn(11, 3, dtype=DT),
        torch.randn(3, 3, dtype=DT),
        D.Categorical(logits=torch.randn(3, 4, dtype=DT)),
    )
    data = torch.randint(0, 4, (11, 7))
    final = D.Categorical(probs=d.filter(data).probs[..., -1, :])
    assert isinstance(final, D.Categorical) and final.batch_shape == (11,)
    torch.testing.assert_close(final.probs, d.posterior(data).marginals[:, -1])
