"""The bad-input campaign (issue 15, item 3): hypothesis generators of bad arguments for every public entry
point of the Python API, and the rule every call must obey.

The rule (`attempt`): a bad argument ends in a ``ValueError`` whose message starts with the argument's name
(``"<name>: "``) or, where the case allows it, in a valid result -- one without a NaN anywhere. Anything
else is a failure: another exception (torch's RuntimeError, a TypeError, PIL's or numba's errors), a
ValueError that does not name the argument, a silent NaN.

One `Case` is one entry point x one kind of bad input: a strategy drawing the bad value and the call that
passes it. tests/test_bad_input_campaign.py runs every case with a few examples; bench/bad_input_campaign.py
runs the same cases with more and prints the table of docs/reliability.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributions as D
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch import nn

import latentvar
from latentvar import ConditionalMixture, Mixture
from latentvar import estimate as E

# the kinds of bad input, in the table's order
SHAPE = "wrong shape"
DTYPE = "wrong dtype / type"
EMPTY = "empty / zero-length"
NONFINITE = "NaN / ±inf"
SUPPORT = "outside the support"
MISMATCH = "mismatched sizes"
NEGATIVE = "negative / zero counts"
ABSURD = "absurd sizes"
KINDS = (SHAPE, DTYPE, EMPTY, NONFINITE, SUPPORT, MISMATCH, NEGATIVE, ABSURD)


@dataclasses.dataclass(frozen=True)
class Case:
    entry: str  # "Mixture.log_prob"
    kind: str  # one of KINDS
    names: tuple[str, ...]  # the argument names a refusal may start with
    values: st.SearchStrategy  # draws the bad argument
    call: Callable[[Any], Any]  # passes it to the entry point
    may_succeed: bool  # False: only a refusal is right (a NaN input must never give a result)
    documented: tuple[type, ...] = ()  # other exceptions the entry point documents (a missing file)

    @property
    def id(self) -> str:
        return f"{self.entry}[{self.kind}]"


CASES: list[Case] = []


def case(
    entry: str, kind: str, names: str, values: st.SearchStrategy, may_succeed: bool = True, documented=()
):
    """Register the decorated call as a case; ``names`` is space-separated."""

    def register(call):
        CASES.append(Case(entry, kind, tuple(names.split()), values, call, may_succeed, documented))
        return call

    return register


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: str  # "refused", "valid", "failure"
    detail: str  # the argument named, or what went wrong


def attempt(c: Case, value) -> Outcome:
    """Call ``c`` with ``value`` and judge what happened by the campaign's rule."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = c.call(value)
    except ValueError as err:
        msg = str(err)
        named = [n for n in c.names if msg.startswith(f"{n}: ")]
        if named:
            return Outcome("refused", named[0])
        return Outcome("failure", f"ValueError not naming {'/'.join(c.names)}: {msg[:160]}")
    except c.documented as err:
        return Outcome("documented", type(err).__name__)
    except Exception as err:  # noqa: BLE001 -- anything else is what the campaign looks for
        return Outcome("failure", f"{type(err).__name__}: {str(err)[:160]}")
    if not c.may_succeed:
        return Outcome("failure", f"accepted: returned {type(result).__name__}")
    if _has_nan(result):
        return Outcome("failure", "silent NaN in the result")
    return Outcome("valid", type(result).__name__)


def run_case(c: Case, max_examples: int) -> list[tuple[Any, Outcome]]:
    """Draw up to ``max_examples`` bad values for ``c`` (fewer when its strategy has fewer) and judge each:
    [(value, outcome)]. Derandomized, so a run is reproducible."""
    outcomes: list[tuple[Any, Outcome]] = []

    @settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(c.values)
    def run(value):
        outcomes.append((value, attempt(c, value)))

    run()
    return outcomes


def _has_nan(x, depth: int = 0) -> bool:
    if depth > 4:
        return False
    if isinstance(x, torch.Tensor):
        return bool(torch.isnan(x.detach()).any()) if x.is_floating_point() else False
    if isinstance(x, np.ndarray):
        return bool(np.isnan(x).any()) if np.issubdtype(x.dtype, np.floating) else False
    if isinstance(x, float):
        return math.isnan(x)
    if isinstance(x, E.Estimate):  # stderr is NaN by definition for one sample (documented)
        return _has_nan(x.estimate, depth + 1)
    if isinstance(x, latentvar.FitResult):
        return _has_nan(list(x.history), depth + 1) or _has_nan(x.model, depth + 1)
    if isinstance(x, Mixture):
        return _has_nan(x.logits, depth + 1)
    if isinstance(x, latentvar.MixturePosterior):
        return _has_nan(x.logits, depth + 1)
    if isinstance(x, dict):
        return any(_has_nan(v, depth + 1) for v in x.values())
    if isinstance(x, (tuple, list)):
        return any(_has_nan(v, depth + 1) for v in x)
    if hasattr(x, "marginals"):  # a posterior
        return _has_nan(x.marginals, depth + 1)
    return False


# -- generators of bad values ------------------------------------------------------------------------------
NAN, INF = float("nan"), float("inf")
nonfinite_value = st.sampled_from([NAN, INF, -INF])
# not a tensor at all, or a tensor of a kind no entry point computes with
not_a_tensor = st.sampled_from(["abc", None, object(), [[1, "a"]], {"y": 1}, b"\x00"])
complex_or_bool = st.sampled_from(
    [torch.zeros(2, 2, dtype=torch.complex64), torch.ones(3, dtype=torch.bool), torch.zeros(2, 3).bool()]
)
negative_int = st.integers(-(10**6), -1)
non_positive_int = st.integers(-(10**6), 0)
not_an_int = st.sampled_from([0.5, 2.5, float("nan"), float("inf"), "3", None, True, [2]])
absurd_int = st.integers(2**41, 2**62)


def pattern(shape) -> torch.Tensor:
    """A float tensor of ``shape`` with values 0, 1, 0, 1, ... -- inside every support used here."""
    n = math.prod(shape)
    return (torch.arange(n) % 2).reshape(tuple(shape)).float()


def shapes(max_dims: int = 4, max_side: int = 4, exclude=()) -> st.SearchStrategy:
    return (
        st.lists(st.integers(0, max_side), max_size=max_dims)
        .map(tuple)
        .filter(lambda s: s not in set(map(tuple, exclude)))
    )


def tensors_of_shape(max_dims=4, max_side=4, exclude=()) -> st.SearchStrategy:
    return shapes(max_dims, max_side, exclude).map(pattern)


def with_nonfinite(base: torch.Tensor) -> st.SearchStrategy:
    """``base`` with one to three entries replaced by NaN, +inf or -inf."""
    positions = st.lists(st.tuples(st.integers(0, base.numel() - 1), nonfinite_value), min_size=1, max_size=3)

    def put(changes):
        x = base.clone().reshape(-1)
        for i, v in changes:
            x[i] = v
        return x.reshape(base.shape)

    return positions.map(put)


def sample_shapes_negative() -> st.SearchStrategy:
    return st.lists(st.integers(-5, 3), min_size=1, max_size=3).filter(lambda s: min(s) < 0).map(tuple)


def sample_shapes_absurd() -> st.SearchStrategy:
    return st.one_of(
        absurd_int.map(lambda n: (n,)),
        st.tuples(st.integers(2**21, 2**31), st.integers(2**21, 2**31)),
        st.just((10**30,)),
    )


def sample_shapes_wrong_type() -> st.SearchStrategy:
    return st.sampled_from([(2.5,), ("a",), (None,), "3", 2.5, (float("nan"),), ((2,),)])


# -- the models under test (small and fresh for every call) ---------------------------------------------------
def gmm() -> Mixture:
    return Mixture(torch.zeros(2), D.Normal(torch.tensor([-1.0, 1.0]), torch.ones(2)))


def cat_mixture() -> Mixture:
    return Mixture(torch.zeros(2), D.Categorical(logits=torch.zeros(2, 3)))


def mvn_mixture() -> Mixture:
    return Mixture(torch.zeros(2), D.MultivariateNormal(torch.zeros(2, 3), torch.eye(3)))


def cat_hmm():
    return latentvar.HMM(torch.zeros(2), torch.zeros(2, 2), D.Categorical(logits=torch.zeros(2, 3)))


def normal_hmm():
    return latentvar.HMM(
        torch.zeros(2), torch.zeros(2, 2), D.Normal(torch.tensor([-1.0, 1.0]), torch.ones(2))
    )


def ctc():
    return latentvar.CTC(torch.log_softmax(torch.zeros(2, 5, 4), -1), torch.tensor([5, 4]))


class TinyLM(nn.Module):
    """Next-token logits from the current token only (causal by construction): (b, t) -> (b, t, 4)."""

    def __init__(self, vocab: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, vocab)

    def forward(self, prefix):
        return self.embed(prefix)


def lm():
    return latentvar.Autoregressive(TinyLM())


def linear_gaussian():
    return latentvar.LinearGaussian(0.5 * torch.ones(3, 2), torch.zeros(3), 0.5)


def tiny_decoder() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(2, 4), nn.Unflatten(1, (1, 2, 2)))


def generator():
    torch.manual_seed(0)
    return latentvar.Generator(tiny_decoder(), (2, 1, 1), "bernoulli")


def grid():
    return latentvar.GridMRF.ising(3, 3, 0.3)


def rbm():
    return latentvar.RBM(0.1 * torch.ones(4, 3), torch.zeros(4), torch.zeros(3))


@functools.lru_cache(maxsize=1)
def colorizer():
    from latentvar.colorize import Colorizer

    return Colorizer.load("twemoji")


def encoder(y):
    """q(z|y) for `linear_gaussian`: a standard normal over the 2 latents per image."""
    z = torch.zeros(y.shape[0], 2)
    return D.Independent(D.Normal(z, torch.ones_like(z)), 1)


Y3 = pattern((4, 3))  # four valid observations for linear_gaussian


# -- Mixture ----------------------------------------------------------------------------------------------
@case("Mixture()", DTYPE, "logits", st.one_of(not_a_tensor, complex_or_bool, st.just(torch.zeros(2).long())))
def _(logits):
    return Mixture(logits, D.Normal(torch.zeros(2), 1.0))


@case("Mixture()", DTYPE, "components", not_a_tensor | st.just(torch.zeros(2)))
def _(components):
    return Mixture(torch.zeros(2), components)


@case("Mixture()", SHAPE, "logits components", tensors_of_shape(exclude=[(2,)]))
def _(logits):
    return Mixture(logits, D.Normal(torch.zeros(2), 1.0))


@case("Mixture()", EMPTY, "logits components", st.sampled_from([(0,), (3, 0), (0, 2)]).map(pattern))
def _(logits):
    return Mixture(logits, D.Normal(torch.zeros(2), 1.0))


@case("Mixture()", NONFINITE, "logits", with_nonfinite(torch.zeros(2)) | with_nonfinite(torch.zeros(3, 2)))
def _(logits):
    return Mixture(logits, D.Normal(torch.zeros(2), 1.0))


@case("Mixture()", MISMATCH, "logits components", st.integers(1, 6).filter(lambda k: k != 2))
def _(k):
    return Mixture(torch.zeros(k), D.Normal(torch.zeros(2), 1.0))


for _entry, _method in (("Mixture.log_prob", "log_prob"), ("Mixture.posterior", "posterior")):

    @case(_entry, SHAPE, "y", tensors_of_shape().filter(lambda y: y.shape[-1:] != (3,)))
    def _(y, m=_method):
        return getattr(mvn_mixture(), m)(y)

    @case(_entry, DTYPE, "y", not_a_tensor | complex_or_bool)
    def _(y, m=_method):
        return getattr(gmm(), m)(y)

    @case(_entry, EMPTY, "y", st.sampled_from([(0,), (0, 3), (2, 0, 3)]).map(pattern))
    def _(y, m=_method):
        return getattr(mvn_mixture(), m)(y)

    @case(_entry, NONFINITE, "y", with_nonfinite(torch.zeros(5)), may_succeed=False)
    def _(y, m=_method):
        return getattr(gmm(), m)(y)

    @case(
        _entry,
        SUPPORT,
        "y",
        st.lists(st.one_of(st.integers(-50, -1), st.integers(3, 50)), min_size=1, max_size=4).map(
            torch.tensor
        )
        | st.just(torch.tensor([0.5, 1.0])),
        may_succeed=False,
    )
    def _(y, m=_method):
        return getattr(cat_mixture(), m)(y)

    @case(_entry, MISMATCH, "y", st.integers(3, 6).map(lambda n: pattern((n, 3))))
    def _(y, m=_method):
        batched = Mixture(torch.zeros(2, 2), D.Normal(torch.zeros(2, 2), 1.0))  # batch (2,)
        return getattr(batched, m)(y)


@case("Mixture.sample", NEGATIVE, "sample_shape", sample_shapes_negative())
def _(shape):
    return gmm().sample(shape)


@case("Mixture.sample", DTYPE, "sample_shape", sample_shapes_wrong_type())
def _(shape):
    return gmm().sample(shape)


@case("Mixture.sample", ABSURD, "sample_shape", sample_shapes_absurd())
def _(shape):
    return gmm().sample(shape)


@case("Mixture.fit", EMPTY, "y", st.sampled_from([(0,), (0, 1)]).map(pattern))
def _(y):
    return gmm().fit(y.reshape(-1), max_iter=5)


@case("Mixture.fit", EMPTY, "y", st.just(pattern((0,))))
def _(y):
    return gmm().fit(y, method="gradient", max_iter=5)


@case("Mixture.fit", NONFINITE, "y", with_nonfinite(pattern((6,))), may_succeed=False)
def _(y):
    return gmm().fit(y, max_iter=5)


@case("Mixture.fit", SHAPE, "y", tensors_of_shape(exclude=[(n,) for n in range(1, 5)]))
def _(y):
    return gmm().fit(y, max_iter=5)


@case("Mixture.fit", DTYPE, "y", not_a_tensor | complex_or_bool)
def _(y):
    return gmm().fit(y, max_iter=5)


@case(
    "Mixture.fit",
    NEGATIVE,
    "max_iter batch_size",
    st.one_of(
        non_positive_int.map(lambda n: {"max_iter": n}),
        not_an_int.map(lambda n: {"max_iter": n}),
        non_positive_int.map(lambda n: {"method": "gradient", "batch_size": n}),
    ),
)
def _(kw):
    return gmm().fit(pattern((6,)), **kw)


@case(
    "Mixture.fit",
    NONFINITE,
    "tol reg_covar pseudocount lr",
    st.tuples(
        st.sampled_from(["tol", "reg_covar", "pseudocount", "lr"]), nonfinite_value | st.just(-1.0)
    ).filter(lambda a: a[0] != "tol" or a[1] != a[1]),
    may_succeed=False,
)
def _(arg):
    name, value = arg
    method = "gradient" if name == "lr" else "em"
    model = cat_mixture() if name == "pseudocount" else gmm()
    y = torch.tensor([0, 1, 2, 1]) if name == "pseudocount" else pattern((6,))
    return model.fit(y, method=method, max_iter=3, **{name: value})


# -- ConditionalMixture -----------------------------------------------------------------------------------
class GaussNet(nn.Module):
    """x (b, 1) -> logits (b, 2) and Normal components (b, 2)."""

    def forward(self, x):
        return torch.cat([x, -x], -1), D.Normal(torch.cat([x, x + 1], -1), 1.0, validate_args=False)


@case(
    "ConditionalMixture()",
    DTYPE,
    "network",
    not_a_tensor.filter(lambda v: not callable(v)) | st.just(torch.zeros(2)),
)
def _(network):
    return ConditionalMixture(network).log_prob(torch.zeros(2), torch.zeros(2, 1))


@case(
    "ConditionalMixture.log_prob", NONFINITE, "x logits components", with_nonfinite(torch.zeros(3, 1)), False
)
def _(x):
    return ConditionalMixture(GaussNet()).log_prob(torch.zeros(3), x)


@case("ConditionalMixture.log_prob", NONFINITE, "y", with_nonfinite(torch.zeros(3)), may_succeed=False)
def _(y):
    return ConditionalMixture(GaussNet()).log_prob(y, torch.zeros(3, 1))


@case(
    "ConditionalMixture.posterior",
    SHAPE,
    "y",
    tensors_of_shape().filter(lambda y: y.shape not in [(), (3,), (1,)]),
)
def _(y):
    return ConditionalMixture(GaussNet()).posterior(y, torch.zeros(3, 1))


@case("ConditionalMixture.sample", NEGATIVE, "sample_shape", sample_shapes_negative())
def _(shape):
    return ConditionalMixture(GaussNet()).sample(torch.zeros(3, 1), shape)


@case(
    "ConditionalMixture.log_prob",
    DTYPE,
    "network",
    st.sampled_from([torch.zeros(3, 2), (torch.zeros(3, 2),), "logits", None]),
)
def _(out):
    class Bad(nn.Module):
        def forward(self, x):
            return out

    return ConditionalMixture(Bad()).log_prob(torch.zeros(3), torch.zeros(3, 1))


# -- HMM and ConditionalHMM ----------------------------------------------------------------------------------
@case(
    "HMM()",
    DTYPE,
    "init_logits trans_logits",
    not_a_tensor | complex_or_bool | st.just(torch.zeros(2).long()),
)
def _(init):
    return latentvar.HMM(init, torch.zeros(2, 2), D.Categorical(logits=torch.zeros(2, 3)))


@case("HMM()", DTYPE, "emission", not_a_tensor | st.just(torch.zeros(2)))
def _(emission):
    return latentvar.HMM(torch.zeros(2), torch.zeros(2, 2), emission)


@case("HMM()", SHAPE, "init_logits trans_logits emission", tensors_of_shape(exclude=[(2, 2)]))
def _(trans):
    return latentvar.HMM(torch.zeros(2), trans, D.Categorical(logits=torch.zeros(2, 3)))


@case("HMM()", EMPTY, "init_logits trans_logits", st.sampled_from([(0,), (2, 0)]).map(pattern))
def _(init):
    return latentvar.HMM(init, torch.zeros(0, 0), D.Categorical(logits=torch.zeros(2, 3)))


@case(
    "HMM()",
    NONFINITE,
    "init_logits trans_logits",
    st.tuples(st.booleans(), with_nonfinite(torch.zeros(2)), with_nonfinite(torch.zeros(2, 2))),
)
def _(arg):
    which, init, trans = arg
    # -inf alone is allowed ("impossible"), so a result is right when no row is all -inf
    return (
        latentvar.HMM(init, torch.zeros(2, 2), D.Categorical(logits=torch.zeros(2, 3)))
        if which
        else (latentvar.HMM(torch.zeros(2), trans, D.Categorical(logits=torch.zeros(2, 3))))
    )


@case("HMM()", MISMATCH, "emission trans_logits", st.integers(1, 5).filter(lambda k: k != 2))
def _(k):
    return latentvar.HMM(torch.zeros(2), torch.zeros(2, 2), D.Categorical(logits=torch.zeros(k, 3)))


for _entry, _method in (("HMM.log_prob", "log_prob"), ("HMM.posterior", "posterior"), ("HMM.fit", "fit")):
    _kw = {"max_iter": 2} if _method == "fit" else {}

    @case(_entry, SHAPE, "y", tensors_of_shape().filter(lambda y: y.dim() not in (1, 2)))
    def _(y, m=_method, kw=_kw):
        return getattr(cat_hmm(), m)(y.long(), **kw)

    @case(_entry, DTYPE, "y", not_a_tensor | complex_or_bool | st.just(torch.full((2, 3), 0.5)))
    def _(y, m=_method, kw=_kw):
        return getattr(cat_hmm(), m)(y, **kw)

    @case(_entry, EMPTY, "y lengths", st.sampled_from([(0, 3), (2, 0), (0, 0), (0,)]))
    def _(shape, m=_method, kw=_kw):
        return getattr(cat_hmm(), m)(torch.zeros(shape, dtype=torch.long), **kw)

    @case(_entry, NONFINITE, "y", with_nonfinite(torch.zeros(2, 4)), may_succeed=False)
    def _(y, m=_method, kw=_kw):
        return getattr(normal_hmm(), m)(y, **kw)

    @case(
        _entry,
        SUPPORT,
        "y",
        st.lists(st.one_of(st.integers(-50, -1), st.integers(3, 50)), min_size=1, max_size=4).map(
            lambda v: torch.tensor([v])
        ),
        may_succeed=False,
    )
    def _(y, m=_method, kw=_kw):
        return getattr(cat_hmm(), m)(y, **kw)

    @case(
        _entry,
        MISMATCH,
        "lengths",
        st.one_of(
            st.lists(st.integers(-3, 9), min_size=2, max_size=2).filter(lambda v: min(v) < 0 or max(v) > 4),
            st.lists(st.integers(0, 4), max_size=5).filter(lambda v: len(v) != 2),
        ).map(torch.tensor)
        | st.just(torch.tensor([1.5, 2.0])),
        may_succeed=False,
    )
    def _(lengths, m=_method, kw=_kw):
        return getattr(cat_hmm(), m)(torch.zeros(2, 4, dtype=torch.long), lengths, **kw)


@case(
    "HMM.sample",
    NEGATIVE,
    "sample_shape length",
    sample_shapes_negative().map(lambda s: (s, 3)) | negative_int.map(lambda n: ((2,), n)),
)
def _(arg):
    return cat_hmm().sample(arg[0], arg[1])


@case(
    "HMM.sample",
    DTYPE,
    "sample_shape length",
    sample_shapes_wrong_type().map(lambda s: (s, 3)) | not_an_int.map(lambda n: ((2,), n)),
)
def _(arg):
    return cat_hmm().sample(arg[0], arg[1])


@case(
    "HMM.sample",
    ABSURD,
    "sample_shape length",
    sample_shapes_absurd().map(lambda s: (s, 3)) | absurd_int.map(lambda n: ((2,), n)),
)
def _(arg):
    return cat_hmm().sample(arg[0], arg[1])


@case(
    "HMM.fit",
    NEGATIVE,
    "max_iter batch_size",
    st.tuples(st.sampled_from(["max_iter", "batch_size"]), non_positive_int | not_an_int),
)
def _(arg):
    return cat_hmm().fit(torch.zeros(2, 4, dtype=torch.long), **{arg[0]: arg[1]})


@case(
    "HMM.fit",
    NONFINITE,
    "tol lr pseudocount reg_covar",
    st.tuples(
        st.sampled_from(["tol", "lr", "pseudocount", "reg_covar"]), nonfinite_value | st.just(-1.0)
    ).filter(lambda a: a[0] != "tol" or a[1] != a[1]),
    may_succeed=False,
)
def _(arg):
    name, value = arg
    model = normal_hmm() if name == "reg_covar" else cat_hmm()
    y = pattern((2, 4)) if name == "reg_covar" else torch.zeros(2, 4, dtype=torch.long)
    method = "gradient" if name == "lr" else "em"
    return model.fit(y, method=method, max_iter=2, **{name: value})


class HMMNet(nn.Module):
    def forward(self, x):  # x (b, 2) -> init (b, 2); shared transitions and emissions
        return x, torch.zeros(2, 2), D.Categorical(logits=torch.zeros(2, 3))


@case(
    "ConditionalHMM.log_prob", NONFINITE, "x init_logits", with_nonfinite(torch.zeros(3, 2)), may_succeed=True
)
def _(x):
    return latentvar.ConditionalHMM(HMMNet()).log_prob(torch.zeros(3, 4, dtype=torch.long), x)


@case(
    "ConditionalHMM()",
    DTYPE,
    "network",
    not_a_tensor.filter(lambda v: not callable(v)) | st.just(torch.zeros(2)),
)
def _(network):
    return latentvar.ConditionalHMM(network).log_prob(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 2))


@case("ConditionalHMM.sample", NEGATIVE, "sample_shape length", negative_int)
def _(length):
    return latentvar.ConditionalHMM(HMMNet()).sample(torch.zeros(3, 2), (2,), length)


# -- CTC and ctc_loss --------------------------------------------------------------------------------------
LP = torch.log_softmax(torch.zeros(2, 5, 4), -1)  # (b, t, c)


@case("CTC()", SHAPE, "log_probs input_lengths", tensors_of_shape().filter(lambda x: x.dim() != 3))
def _(lp):
    return latentvar.CTC(lp, torch.tensor([1, 1]))


@case(
    "CTC()",
    DTYPE,
    "log_probs input_lengths",
    not_a_tensor | complex_or_bool | st.just(torch.zeros(2, 5, 4).long()),
)
def _(lp):
    return latentvar.CTC(lp, torch.tensor([5, 4]))


@case("CTC()", EMPTY, "log_probs input_lengths", st.sampled_from([(0, 5, 4), (2, 0, 4), (2, 5, 0)]))
def _(shape):
    return latentvar.CTC(torch.zeros(shape), torch.zeros(shape[0], dtype=torch.long))


@case("CTC()", NONFINITE, "log_probs", with_nonfinite(LP))
def _(lp):
    return latentvar.CTC(lp, torch.tensor([5, 4])).log_prob(torch.tensor([[1, 2], [3, -1]]))


@case(
    "CTC()",
    MISMATCH,
    "input_lengths blank",
    st.one_of(
        st.lists(st.integers(-3, 9), min_size=2, max_size=2)
        .filter(lambda v: min(v) < 0 or max(v) > 5)
        .map(lambda v: (torch.tensor(v), 0)),
        st.lists(st.integers(0, 5), max_size=4)
        .filter(lambda v: len(v) != 2)
        .map(lambda v: (torch.tensor(v), 0)),
        st.one_of(st.integers(-9, -1), st.integers(4, 9), not_an_int).map(
            lambda b: (torch.tensor([5, 4]), b)
        ),
    ),
)
def _(arg):
    return latentvar.CTC(LP, *arg)


for _entry, _method in (("CTC.log_prob", "log_prob"), ("CTC.posterior", "posterior")):

    @case(
        _entry,
        SUPPORT,
        "targets",
        st.lists(st.one_of(st.integers(-50, -2), st.integers(4, 50), st.just(0)), min_size=1, max_size=3)
        .filter(lambda v: any(x != -1 for x in v))
        .map(lambda v: torch.tensor([v, v])),
        may_succeed=False,
    )
    def _(targets, m=_method):  # every entry within the lengths: -1 is no padding here
        return getattr(ctc(), m)(targets, torch.full((2,), targets.shape[1]))

    @case(
        _entry,
        DTYPE,
        "targets target_lengths",
        not_a_tensor | complex_or_bool | st.just(torch.full((2, 2), 1.5)),
    )
    def _(targets, m=_method):
        return getattr(ctc(), m)(targets)

    @case(
        _entry,
        MISMATCH,
        "targets target_lengths",
        st.one_of(
            st.lists(st.integers(-3, 9), min_size=2, max_size=2).filter(lambda v: min(v) < 0 or max(v) > 2),
            st.lists(st.integers(0, 2), max_size=4).filter(lambda v: len(v) != 2),
        ).map(torch.tensor),
        may_succeed=False,
    )
    def _(lengths, m=_method):
        return getattr(ctc(), m)(torch.tensor([[1, 2], [3, 1]]), lengths)

    @case(_entry, EMPTY, "targets target_lengths", st.sampled_from([(2, 0), (0, 2), (0,)]))
    def _(shape, m=_method):
        return getattr(ctc(), m)(torch.zeros(shape, dtype=torch.long))

    @case(
        _entry,
        SHAPE,
        "targets target_lengths",
        shapes(exclude=[(2, 1), (2, 2), (2, 3)]).map(lambda s: torch.ones(s, dtype=torch.long)),
    )
    def _(targets, m=_method):
        return getattr(ctc(), m)(targets)


@case("CTC.sample", NEGATIVE, "sample_shape", sample_shapes_negative())
def _(shape):
    return ctc().sample(shape)


@case("CTC.sample", DTYPE, "sample_shape", sample_shapes_wrong_type())
def _(shape):
    return ctc().sample(shape)


@case("CTC.sample", ABSURD, "sample_shape", sample_shapes_absurd())
def _(shape):
    return ctc().sample(shape)


@case(
    "ctc_loss",
    SHAPE,
    "log_probs targets input_lengths target_lengths",
    tensors_of_shape().filter(lambda x: x.dim() not in (2, 3)),
)
def _(lp):
    return latentvar.ctc_loss(lp, torch.tensor([[1]]), torch.tensor([1]), torch.tensor([1]))


@case("ctc_loss", NONFINITE, "log_probs", with_nonfinite(LP.transpose(0, 1).contiguous()))
def _(lp):
    return latentvar.ctc_loss(lp, torch.tensor([[1, 2], [3, 1]]), torch.tensor([5, 4]), torch.tensor([2, 2]))


@case(
    "ctc_loss",
    MISMATCH,
    "targets input_lengths target_lengths",
    st.tuples(
        st.lists(st.integers(-2, 7), min_size=0, max_size=3),
        st.lists(st.integers(-2, 7), min_size=0, max_size=3),
    ).filter(
        lambda a: (
            not (
                len(a[0]) == 2
                and len(a[1]) == 2
                and 0 <= min(a[0] + a[1])
                and max(a[0]) <= 5
                and max(a[1]) <= 2
            )
        )
    ),
)
def _(arg):
    il, tl = arg
    return latentvar.ctc_loss(
        LP.transpose(0, 1),
        torch.tensor([[1, 2], [3, 1]]),
        torch.tensor(il, dtype=torch.long),
        torch.tensor(tl, dtype=torch.long),
    )


@case(
    "ctc_loss",
    DTYPE,
    "reduction blank",
    st.sampled_from(["avg", None, 3, "MEAN"]).map(lambda r: {"reduction": r})
    | not_an_int.map(lambda b: {"blank": b}),
)
def _(kw):
    return latentvar.ctc_loss(
        LP.transpose(0, 1), torch.tensor([[1, 2], [3, 1]]), torch.tensor([5, 4]), torch.tensor([2, 2]), **kw
    )


# -- Autoregressive -----------------------------------------------------------------------------------------
@case("Autoregressive()", DTYPE, "network eos", not_a_tensor | st.just(torch.zeros(2)) | st.just(lambda x: x))
def _(network):
    return latentvar.Autoregressive(network).log_prob(torch.tensor([[1, 2]]))


@case("Autoregressive()", SUPPORT, "eos", st.one_of(st.integers(-50, -1), st.integers(4, 50), not_an_int))
def _(eos):
    return latentvar.Autoregressive(TinyLM(), eos=eos).log_prob(torch.tensor([[1, 2]]))


@case(
    "Autoregressive.log_prob",
    SUPPORT,
    "y",
    st.lists(st.one_of(st.integers(-50, -1), st.integers(4, 50)), min_size=1, max_size=3).map(
        lambda v: torch.tensor([v])
    ),
    may_succeed=False,
)
def _(y):
    return lm().log_prob(y)


@case(
    "Autoregressive.log_prob", DTYPE, "y", not_a_tensor | complex_or_bool | st.just(torch.full((1, 2), 1.5))
)
def _(y):
    return lm().log_prob(y)


@case(
    "Autoregressive.log_prob",
    SHAPE,
    "y",
    shapes().filter(lambda s: len(s) not in (1, 2)).map(lambda s: torch.zeros(s, dtype=torch.long)),
)
def _(y):
    return lm().log_prob(y)


@case("Autoregressive.log_prob", EMPTY, "y lengths", st.sampled_from([(0,), (0, 3), (2, 0)]))
def _(shape):
    return lm().log_prob(torch.zeros(shape, dtype=torch.long))


@case(
    "Autoregressive.log_prob",
    MISMATCH,
    "lengths",
    st.lists(st.integers(-5, 9), max_size=3)
    .filter(lambda v: len(v) != 2 or min(v) < 0 or max(v) > 3)
    .map(torch.tensor),
    may_succeed=False,
)
def _(lengths):
    return lm().log_prob(torch.ones(2, 3, dtype=torch.long), lengths)


@case(
    "Autoregressive.sample",
    NEGATIVE,
    "sample_shape max_length temperature",
    st.one_of(
        sample_shapes_negative().map(lambda s: {"sample_shape": s}),
        negative_int.map(lambda n: {"max_length": n}),
        st.sampled_from([0.0, -1.0, NAN, -INF]).map(lambda t: {"temperature": t}),
    ),
)
def _(kw):
    return lm().sample(**({"max_length": 3} | kw))


@case(
    "Autoregressive.sample",
    DTYPE,
    "sample_shape max_length temperature",
    st.one_of(
        sample_shapes_wrong_type().map(lambda s: {"sample_shape": s}),
        not_an_int.map(lambda n: {"max_length": n}),
        st.sampled_from(["1", None, INF]).map(lambda t: {"temperature": t}),
    ),
)
def _(kw):
    return lm().sample(**({"max_length": 3} | kw))


@case("Autoregressive.sample", ABSURD, "sample_shape", sample_shapes_absurd())
def _(shape):
    return lm().sample(shape, max_length=3)


# -- LinearGaussian and Generator --------------------------------------------------------------------------
@case("LinearGaussian()", SHAPE, "W b", tensors_of_shape().filter(lambda w: w.dim() != 2 or w.shape[0] != 3))
def _(W):
    return latentvar.LinearGaussian(W, torch.zeros(3), 0.5)


@case("LinearGaussian()", EMPTY, "W b", st.sampled_from([(0, 2), (3, 0), (0, 0)]))
def _(shape):
    return latentvar.LinearGaussian(torch.zeros(shape), torch.zeros(shape[0]), 0.5)


@case("LinearGaussian()", DTYPE, "W b noise_std", not_a_tensor | complex_or_bool)
def _(W):
    return latentvar.LinearGaussian(W, torch.zeros(3), 0.5)


@case(
    "LinearGaussian()",
    NONFINITE,
    "W b noise_std",
    st.one_of(
        with_nonfinite(torch.ones(3, 2)).map(lambda w: (w, torch.zeros(3), 0.5)),
        with_nonfinite(torch.zeros(3)).map(lambda b: (torch.ones(3, 2), b, 0.5)),
        st.sampled_from([NAN, INF, -INF, 0.0, -1.0]).map(lambda s: (torch.ones(3, 2), torch.zeros(3), s)),
    ),
    may_succeed=False,
)
def _(arg):
    return latentvar.LinearGaussian(*arg)


for _entry, _method in (("LinearGaussian.log_prob", "log_prob"), ("LinearGaussian.posterior", "posterior")):

    @case(_entry, SHAPE, "y", tensors_of_shape().filter(lambda y: y.shape[-1:] != (3,)))
    def _(y, m=_method):
        return getattr(linear_gaussian(), m)(y)

    @case(_entry, DTYPE, "y", not_a_tensor | complex_or_bool)
    def _(y, m=_method):
        return getattr(linear_gaussian(), m)(y)

    @case(_entry, NONFINITE, "y", with_nonfinite(Y3), may_succeed=False)
    def _(y, m=_method):
        return getattr(linear_gaussian(), m)(y)

    @case(_entry, EMPTY, "y", st.sampled_from([(0, 3), (2, 0, 3)]).map(pattern))
    def _(y, m=_method):
        return getattr(linear_gaussian(), m)(y)


@case("LinearGaussian.sample", NEGATIVE, "sample_shape", sample_shapes_negative())
def _(shape):
    return linear_gaussian().sample(shape)


@case("LinearGaussian.sample", ABSURD, "sample_shape", sample_shapes_absurd())
def _(shape):
    return linear_gaussian().sample(shape)


@case(
    "Generator()",
    DTYPE,
    "decoder latent_shape likelihood",
    st.one_of(
        not_a_tensor.map(lambda d: (d, (2, 1, 1), "gaussian")),
        st.sampled_from([5, "abc", (2, "a", 1), None, (2.5, 1, 1)]).map(
            lambda s: (tiny_decoder(), s, "gaussian")
        ),
        st.sampled_from(["poisson", None, 3, nn.Linear(1, 1)]).map(
            lambda lk: (tiny_decoder(), (2, 1, 1), lk)
        ),
    ),
)
def _(arg):
    return latentvar.Generator(*arg).sample((2,))


@case(
    "Generator()",
    SHAPE,
    "latent_shape decoder",
    st.lists(st.integers(-2, 3), max_size=5).map(tuple).filter(lambda s: s != (2, 1, 1)),
)
def _(shape):
    return latentvar.Generator(tiny_decoder(), shape, "gaussian").sample((2,))


@case(
    "Generator.log_joint",
    SUPPORT,
    "y",
    st.sampled_from([2.0, -0.5, 1.5]).map(lambda v: torch.full((2, 1, 2, 2), v)),
    may_succeed=False,
)
def _(y):
    return generator().log_joint(torch.zeros(2, 2, 1, 1), y)


@case(
    "Generator.log_joint",
    NONFINITE,
    "y z",
    with_nonfinite(torch.zeros(2, 1, 2, 2)) | with_nonfinite(torch.zeros(2, 2, 1, 1)).map(lambda z: ("z", z)),
    may_succeed=False,
)
def _(arg):
    if isinstance(arg, tuple):
        return generator().log_joint(arg[1], torch.zeros(2, 1, 2, 2))
    return generator().log_joint(torch.zeros(2, 2, 1, 1), arg)


@case(
    "Generator.log_joint",
    SHAPE,
    "y z",
    tensors_of_shape(max_dims=5, max_side=3).filter(lambda y: y.shape[-3:] != (1, 2, 2)),
)
def _(y):
    return generator().log_joint(torch.zeros(2, 1, 1), y)


@case("Generator.sample", NEGATIVE, "sample_shape", sample_shapes_negative())
def _(shape):
    return generator().sample(shape)


@case("Generator.sample", ABSURD, "sample_shape", sample_shapes_absurd())
def _(shape):
    return generator().sample(shape)


# -- GridMRF and RBM -----------------------------------------------------------------------------------------
@case(
    "GridMRF()",
    SHAPE,
    "unary pairwise",
    tensors_of_shape().filter(lambda u: u.dim() != 3 or u.shape[-1] != 2 or min(u.shape) == 0),
)
def _(unary):
    return latentvar.GridMRF(unary, torch.zeros(2, 2))


@case("GridMRF()", DTYPE, "unary pairwise", not_a_tensor | complex_or_bool)
def _(unary):
    return latentvar.GridMRF(unary, torch.zeros(2, 2))


@case(
    "GridMRF()",
    NONFINITE,
    "unary pairwise",
    with_nonfinite(torch.zeros(3, 3, 2)) | with_nonfinite(torch.zeros(2, 2)).map(lambda p: ("p", p)),
    may_succeed=False,
)
def _(arg):
    if isinstance(arg, tuple):
        return latentvar.GridMRF(torch.zeros(3, 3, 2), arg[1])
    return latentvar.GridMRF(arg, torch.zeros(2, 2))


@case(
    "GridMRF()",
    MISMATCH,
    "pairwise periodic",
    st.one_of(
        shapes(exclude=[(2, 2)]).map(lambda s: ("pairwise", s)),
        st.sampled_from([(3, 4), (4, 5), (2, 2)]).map(lambda s: ("periodic", s)),
    ),
)
def _(arg):
    if arg[0] == "pairwise":
        return latentvar.GridMRF(torch.zeros(3, 3, 2), torch.zeros(arg[1]))
    return latentvar.GridMRF(torch.zeros(*arg[1], 2), torch.zeros(2, 2), periodic=True)


@case(
    "GridMRF.ising",
    NEGATIVE,
    "h w unary",
    st.tuples(st.integers(-5, 0), st.integers(-5, 3)) | st.tuples(st.integers(-5, 3), st.integers(-5, 0)),
)
def _(hw):
    return latentvar.GridMRF.ising(*hw, 0.3)


@case(
    "GridMRF.ising",
    NONFINITE,
    "coupling field pairwise unary",
    st.tuples(nonfinite_value, st.booleans()),
    may_succeed=False,
)
def _(arg):
    value, which = arg
    return latentvar.GridMRF.ising(3, 3, value, 0.0) if which else latentvar.GridMRF.ising(3, 3, 0.3, value)


@case(
    "GridMRF.log_prob",
    SUPPORT,
    "y",
    st.lists(st.one_of(st.integers(-9, -1), st.integers(2, 9)), min_size=1, max_size=3).map(
        lambda v: torch.tensor(v + [0] * (9 - len(v))).reshape(3, 3)
    )
    | st.just(torch.full((3, 3), 0.5)),
    may_succeed=False,
)
def _(y):
    return grid().log_prob(y, exact=True)


@case("GridMRF.log_prob", NONFINITE, "y", with_nonfinite(torch.zeros(3, 3)), may_succeed=False)
def _(y):
    return grid().log_prob(y, exact=True)


@case(
    "GridMRF.log_prob",
    SHAPE,
    "y",
    shapes().filter(lambda s: s[-2:] != (3, 3)).map(lambda s: torch.zeros(s, dtype=torch.long)),
)
def _(y):
    return grid().log_prob(y, exact=True)


@case("GridMRF.log_prob", DTYPE, "y", not_a_tensor | complex_or_bool)
def _(y):
    return grid().log_prob(y, exact=True)


@case(
    "GridMRF.sample",
    NEGATIVE,
    "sample_shape num_steps",
    sample_shapes_negative().map(lambda s: (s, 2)) | negative_int.map(lambda n: ((2,), n)),
)
def _(arg):
    return grid().sample(arg[0], num_steps=arg[1])


@case("GridMRF.sample", ABSURD, "sample_shape", sample_shapes_absurd())
def _(shape):
    return grid().sample(shape, num_steps=1)


@case(
    "GridMRF.sample",
    MISMATCH,
    "init",
    shapes().map(lambda s: torch.zeros(s, dtype=torch.long)).filter(lambda z: z.shape not in [(2, 3, 3)]),
)
def _(init):
    return grid().sample((2,), num_steps=1, init=init)


@case("RBM()", SHAPE, "W visible_bias hidden_bias", tensors_of_shape().filter(lambda w: w.shape != (4, 3)))
def _(W):
    return latentvar.RBM(W, torch.zeros(4), torch.zeros(3))


@case("RBM()", DTYPE, "W visible_bias hidden_bias", not_a_tensor | complex_or_bool)
def _(W):
    return latentvar.RBM(W, torch.zeros(4), torch.zeros(3))


@case(
    "RBM()",
    NONFINITE,
    "W visible_bias hidden_bias",
    with_nonfinite(torch.zeros(4, 3)) | with_nonfinite(torch.zeros(4)).map(lambda b: ("b", b)),
    may_succeed=False,
)
def _(arg):
    if isinstance(arg, tuple):
        return latentvar.RBM(torch.zeros(4, 3), arg[1], torch.zeros(3))
    return latentvar.RBM(arg, torch.zeros(4), torch.zeros(3))


@case("RBM()", EMPTY, "W visible_bias hidden_bias", st.sampled_from([(0, 3), (4, 0), (0, 0)]))
def _(shape):
    return latentvar.RBM(torch.zeros(shape), torch.zeros(shape[0]), torch.zeros(shape[1]))


@case(
    "RBM.log_prob",
    SUPPORT,
    "v",
    st.lists(st.sampled_from([-1.0, 2.0, 0.5, 7.0]), min_size=1, max_size=4).map(
        lambda v: torch.tensor(v + [0.0] * (4 - len(v)))
    ),
    may_succeed=False,
)
def _(v):
    return rbm().log_prob(v, exact=True)


@case("RBM.log_prob", NONFINITE, "v", with_nonfinite(torch.zeros(2, 4)), may_succeed=False)
def _(v):
    return rbm().log_prob(v, exact=True)


@case("RBM.log_prob", SHAPE, "v", tensors_of_shape().filter(lambda v: v.shape[-1:] != (4,)))
def _(v):
    return rbm().log_prob(v, exact=True)


@case("RBM.log_prob", DTYPE, "v", not_a_tensor | complex_or_bool)
def _(v):
    return rbm().log_prob(v, exact=True)


@case(
    "RBM.sample",
    NEGATIVE,
    "sample_shape num_steps",
    sample_shapes_negative().map(lambda s: (s, 2)) | non_positive_int.map(lambda n: ((2,), n)),
)
def _(arg):
    return rbm().sample(arg[0], num_steps=arg[1])


@case("RBM.sample", ABSURD, "sample_shape", sample_shapes_absurd())
def _(shape):
    return rbm().sample(shape, num_steps=1)


@case("RBM.sample", MISMATCH, "init", tensors_of_shape().filter(lambda v: v.shape[-1:] != (4,)))
def _(init):
    return rbm().sample((2,), num_steps=1, init=init)


# -- the estimators ------------------------------------------------------------------------------------------
def _estimate(name: str, y, num: int = 3, **kw):
    model = kw.pop("model", None) or linear_gaussian()
    if name == "naive_mc":
        return E.naive_mc(model, y, num)
    if name == "importance":
        return E.importance(model, y, kw.get("proposal", encoder), num)
    if name == "elbo":
        return E.elbo(model, y, kw.get("encoder", encoder), num)
    if name == "iwae":
        return E.iwae(model, y, kw.get("encoder", encoder), num)
    return E.ais(model, y, num_steps=3, num_chains=num, leapfrog_steps=1, **kw)


SAMPLING = ("naive_mc", "importance", "elbo", "iwae", "ais")
for _name in SAMPLING:
    _entry = f"estimate.{_name}"
    _num = "num_chains" if _name == "ais" else "num_samples"

    @case(_entry, SHAPE, "y", tensors_of_shape().filter(lambda y: y.dim() != 2 or y.shape[-1] != 3))
    def _(y, n=_name):
        return _estimate(n, y)

    @case(
        _entry,
        DTYPE,
        "y model",
        st.one_of(not_a_tensor, complex_or_bool, not_a_tensor.map(lambda m: ("model", m))),
    )
    def _(y, n=_name):
        if isinstance(y, tuple):
            return _estimate(n, Y3, model=y[1] or "none")
        return _estimate(n, y)

    @case(_entry, EMPTY, "y", st.just(pattern((0, 3))))
    def _(y, n=_name):
        return _estimate(n, y)

    @case(_entry, NONFINITE, "y", with_nonfinite(Y3), may_succeed=False)
    def _(y, n=_name):
        return _estimate(n, y)

    @case(_entry, NEGATIVE, _num, non_positive_int | not_an_int)
    def _(num, n=_name):
        return _estimate(n, Y3, num)

    if _name == "ais":

        @case(_entry, ABSURD, "num_chains", absurd_int)
        def _(num, n=_name):
            return _estimate(n, Y3, num)

        @case(
            _entry,
            NONFINITE,
            "step_size target_accept num_steps leapfrog_steps",
            st.one_of(
                st.sampled_from([NAN, INF, -1.0, 0.0]).map(lambda s: {"step_size": s}),
                st.sampled_from([NAN, 0.0, 1.0, 1.5, -0.2]).map(lambda s: {"target_accept": s}),
            ),
            may_succeed=False,
        )
        def _(kw):
            return E.ais(linear_gaussian(), Y3, num_steps=3, num_chains=2, **kw)

    elif _name != "naive_mc":  # naive_mc draws from the model's own prior: no proposal to break

        @case(_entry, SUPPORT, "proposal encoder model", st.sampled_from(["nan", "batch", "event", "none"]))
        def _(kind, n=_name):
            def bad(y):
                if kind == "none":
                    return torch.zeros(y.shape[0], 2)
                b = 5 if kind == "batch" else y.shape[0]
                d = 3 if kind == "event" else 2
                loc = torch.full((b, d), NAN if kind == "nan" else 0.0)
                return D.Independent(D.Normal(loc, torch.ones_like(loc), validate_args=False), 1)

            return _estimate(n, Y3, **{"proposal": bad, "encoder": bad})


@case(
    "estimate.bdmc",
    NEGATIVE,
    "num_images num_steps num_chains leapfrog_steps",
    st.tuples(
        st.sampled_from(["num_images", "num_steps", "num_chains", "leapfrog_steps"]),
        non_positive_int | not_an_int,
    ),
)
def _(arg):
    kw = {"num_images": 2, "num_steps": 3, "num_chains": 2, "leapfrog_steps": 1} | {arg[0]: arg[1]}
    return E.bdmc(linear_gaussian(), **kw)


@case(
    "estimate.bdmc",
    DTYPE,
    "model initial",
    not_a_tensor | st.just(torch.zeros(2)) | st.just(("initial", lambda y: torch.zeros(2))),
)
def _(model):
    if isinstance(model, tuple):
        return E.bdmc(linear_gaussian(), 2, 3, 2, initial=model[1])
    return E.bdmc(model, 2, 3, 2)


@case(
    "estimate.bdmc",
    ABSURD,
    "num_images num_chains",
    absurd_int.map(lambda n: ("num_images", n)) | absurd_int.map(lambda n: ("num_chains", n)),
)
def _(arg):
    kw = {"num_images": 2, "num_steps": 3, "num_chains": 2, "leapfrog_steps": 1} | {arg[0]: arg[1]}
    return E.bdmc(linear_gaussian(), **kw)


@case(
    "estimate.ais_log_partition",
    NEGATIVE,
    "num_steps num_chains",
    st.tuples(st.sampled_from(["num_steps", "num_chains"]), non_positive_int | not_an_int),
)
def _(arg):
    return E.ais_log_partition(grid(), **({"num_steps": 3, "num_chains": 2} | {arg[0]: arg[1]}))


@case(
    "estimate.ais_log_partition",
    SUPPORT,
    "schedule",
    st.one_of(
        st.sampled_from(["cosine", None, 3]),
        st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=5)
        .map(lambda v: torch.tensor(v, dtype=torch.float64))
        .filter(lambda b: not (b.numel() >= 2 and b[0] == 0 and b[-1] == 1 and bool((b.diff() > 0).all()))),
    ),
    may_succeed=False,
)
def _(schedule):
    return E.ais_log_partition(rbm(), num_steps=3, num_chains=2, schedule=schedule)


@case("estimate.ais_log_partition", DTYPE, "model", not_a_tensor | st.just(linear_gaussian()))
def _(model):
    return E.ais_log_partition(model, num_steps=3, num_chains=2)


@case("estimate.ais_log_partition", ABSURD, "num_chains", absurd_int)
def _(n):
    return E.ais_log_partition(rbm(), num_steps=3, num_chains=n)


# -- Colorizer -------------------------------------------------------------------------------------------
def _bad_images():
    return st.one_of(
        shapes(max_dims=5, max_side=5)
        .filter(
            lambda s: not (len(s) in (2, 3) and min(s, default=0) > 0 and (len(s) == 2 or s[-1] in (3, 4)))
        )
        .map(lambda s: np.zeros(s, np.uint8)),
    )


IMAGE_KINDS = {
    SHAPE: (_bad_images(), True),
    DTYPE: (
        st.sampled_from(
            [
                np.zeros((4, 4, 3), np.int32),
                np.zeros((4, 4, 3), bool),
                np.zeros((4, 4, 3), np.complex64),
                np.full((4, 4, 3), "a"),
                None,
                3.5,
                "no/such/file.png",
                object(),
            ]
        ),
        True,
    ),
    EMPTY: (
        st.sampled_from([(0, 0, 3), (0, 5, 3), (5, 0, 3), (0, 0), (0, 4, 4)]).map(
            lambda s: np.zeros(s, np.uint8)
        ),
        True,
    ),
    NONFINITE: (
        st.tuples(st.sampled_from([NAN, INF, -INF]), st.booleans()).map(
            lambda a: (
                np.full((4, 4, 3), a[0], np.float32)
                if a[1]
                else np.where(np.eye(4, dtype=bool)[..., None], a[0], 0.5)
                .astype(np.float32)
                .repeat(3, -1)[..., :3]
            )
        ),
        False,
    ),
    SUPPORT: (
        st.sampled_from([-3.0, 1.5, 255.0, -1e30, 1e30]).map(lambda v: np.full((4, 4, 3), v, np.float64)),
        True,
    ),
}
IMAGE_CALLS = {
    "Colorizer.colorize": lambda img: colorizer().colorize(img),
    "Colorizer.segment": lambda img: colorizer().segment(img),
    "Colorizer.sample": lambda img: colorizer().sample(img, n=1),
    "Colorizer.palettes": lambda img: colorizer().palettes(img, n=2),
    "Colorizer.recolour": lambda img: colorizer().recolour(img, 0, (10.0, 10.0)),
    "Colorizer.log_prob": lambda img: colorizer().log_prob(img),
}
for _entry, _call in IMAGE_CALLS.items():
    for _kind, (_values, _ok) in IMAGE_KINDS.items():
        # a path to no file raises FileNotFoundError (documented in latentvar.colorize.images)
        names = "img" if _entry != "Colorizer.log_prob" else "img color_img"
        case(_entry, _kind, names, _values, _ok, documented=(FileNotFoundError,))(_call)


GREY4 = np.full((4, 4, 3), 128, np.uint8)


@case(
    "Colorizer.colorize",
    NEGATIVE,
    "temperature decode rebalance",
    st.sampled_from([0.0, -1.0, NAN, INF, "0.4", None]).map(lambda t: {"temperature": t})
    | st.sampled_from(["median", 1]).map(lambda d: {"decode": d})
    | st.sampled_from([-0.5, NAN, INF, -INF, "0.4", True]).map(lambda r: {"rebalance": r}),
    may_succeed=False,
)
def _(kw):
    if kw.get("temperature", 1) is None:
        kw = {"temperature": "none"}
    return colorizer().colorize(GREY4, **kw)


@case("Colorizer.sample", NEGATIVE, "n", non_positive_int | not_an_int, may_succeed=False)
def _(n):
    return colorizer().sample(GREY4, n=n)


@case(
    "Colorizer.palettes",
    NEGATIVE,
    "n",
    non_positive_int | not_an_int | st.integers(262, 10**9),
    may_succeed=False,
)
def _(n):
    return colorizer().palettes(GREY4, n=n)


@case(
    "Colorizer.recolour",
    MISMATCH,
    "segment ab width segments base",
    st.one_of(
        st.one_of(st.integers(-9, -1), st.integers(8, 10**6), not_an_int).map(lambda s: {"segment": s}),
        st.sampled_from([(NAN, 0.0), (INF, 0.0), (1.0,), (1.0, 2.0, 3.0), "ab", (500.0, 500.0)]).map(
            lambda a: {"ab": a}
        ),
        st.sampled_from([0.0, -1.0, NAN, INF]).map(lambda w: {"width": w}),
        shapes(max_side=5).filter(lambda s: s != (4, 4)).map(lambda s: {"segments": np.zeros(s, np.uint8)}),
        st.sampled_from([np.zeros((4, 4, 3)), np.zeros((3, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)]).map(
            lambda b: {"base": b}
        ),
    ),
    may_succeed=False,
)
def _(kw):
    kw = {"segment": 0, "ab": (10.0, 10.0)} | kw
    return colorizer().recolour(GREY4, **kw)


ENTRIES = sorted({c.entry for c in CASES})
