"""The direct compiled routes of issue 21's small problems (`latentvar.hmm.small`, `latentvar.hmm.small_fit`,
kernels in `latentvar.hmm._small_numba` and `_small_mstep_numba`): log_prob, posterior marginals and mode,
and Baum-Welch's E- and M-step of a plain float64 Gaussian HMM. Each must be taken where it applies, give the
numbers of the general path (``fast_emission.COMPILED = False`` turns every shortcut off), of the generic
log-space recursion (``Chain(fast=False)``, no compiled kernel) and of hmmlearn, and step aside -- the
general path answering, warnings included -- wherever a feature it does not cover is used."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.distributions as D

from latentvar import HMM
from latentvar.hmm import fast_emission, small, small_fit
from latentvar.hmm.inputs import prepare
from latentvar.inference import Chain, _compiled

F64 = torch.float64
TOL = {"rtol": 1e-12, "atol": 1e-12}


def _model(k: int, seed: int, d: int | None = 1, dtype=F64) -> HMM:
    g = torch.Generator().manual_seed(seed)
    shape = (k,) if d is None else (k, d)
    loc = torch.randn(shape, generator=g, dtype=F64) * 2
    scale = torch.rand(shape, generator=g, dtype=F64) + 0.4
    em = D.Normal(loc, scale) if d is None else D.Independent(D.Normal(loc, scale), 1)
    init, trans = torch.randn(k, generator=g, dtype=F64), torch.randn(k, k, generator=g, dtype=F64)
    if dtype != F64:
        em = (
            D.Independent(D.Normal(loc.to(dtype), scale.to(dtype)), 1)
            if d
            else D.Normal(loc.to(dtype), scale.to(dtype))
        )
    return HMM(init.to(dtype), trans.to(dtype), em)


def _data(b: int, t: int, d: int | None, seed: int, ragged: bool):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(b, t, *(() if d is None else (d,)), generator=g, dtype=F64) * 1.5
    lengths = None
    if ragged:
        lengths = torch.randint(0, t + 1, (b,), generator=g)
        lengths[0], lengths[-1] = t, 0  # a full one and an empty one
    return y, lengths


def _answers(model, y, lengths, **fit) -> dict:
    with torch.no_grad():
        post = model.posterior(y, lengths)
        out = {"log_prob": model.log_prob(y, lengths), "marginals": post.marginals, "mode": post.mode}
    result = model.fit(y, lengths, reg_covar=0.0, **({"max_iter": 2} | fit))
    fitted = result.model
    base = fitted.emission.base_dist if isinstance(fitted.emission, D.Independent) else fitted.emission
    out |= {"fit_log_init": fitted.log_init, "fit_log_trans": fitted.log_trans}
    return out | {"fit_loc": base.loc, "fit_scale": base.scale, "history": torch.tensor(result.history)}


def _general(monkeypatch, model, y, lengths, **fit) -> dict:
    with monkeypatch.context() as m:
        m.setattr(fast_emission, "COMPILED", False)
        m.setattr(_compiled, "_step_weights", _compiled._step_weights_torch)
        return _answers(model, y, lengths, **fit)


def _assert_same(got: dict, want: dict, rtol=1e-12, atol=1e-12):
    for name, value in want.items():
        assert got[name].dtype == value.dtype, name
        assert got[name].shape == value.shape, name
        if name == "mode":
            assert torch.equal(got[name], value), name
        else:
            torch.testing.assert_close(got[name], value, rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("d", [None, 1, 3])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("k", [1, 2, 3, 10])
def test_direct_routes_are_taken_and_equal_the_general_path(monkeypatch, k, ragged, d):
    model = _model(k, seed=k, d=d)
    y, lengths = _data(13, 29, d, seed=10 * k + ragged, ragged=ragged)
    inputs = prepare(model, y, lengths)
    with torch.no_grad():
        assert small.log_prob(model, inputs) is not None
        assert model.posterior(y, lengths)._direct is not None
    stats = _stats(model, inputs)
    counts = small_fit.expected_counts(model, inputs, stats)
    assert counts is not None
    fast, general = _answers(model, y, lengths), _general(monkeypatch, model, y, lengths)
    _assert_same(fast, general)


def _stats(model, inputs):
    from latentvar.hmm.fit import _at_observed_steps
    from latentvar.hmm.online import common_shift
    from latentvar.stats import SufficientStatistics

    shift = common_shift(model.emission, _at_observed_steps(inputs)[0], False)
    return SufficientStatistics(model.emission, "emission", None, shift)


@pytest.mark.parametrize("k", [2, 5])
def test_lane_kernels_equal_the_generic_log_space_recursion(k):
    """log P(y), γ, the expected counts and the Gaussian statistics of the lane kernels against the log-space
    recursion (autograd for the counts) and plain sums of γ-weighted observations."""
    model = _model(k, seed=3, d=2)
    y, lengths = _data(9, 40, 2, seed=4, ragged=True)
    inputs = prepare(model, y, lengths)
    p = small.plain(model, inputs)
    e = model.emission.log_prob(y.unsqueeze(2))
    init, trans = model.log_init.detach(), model.log_trans.detach()
    leaves = [x.clone().requires_grad_(True) for x in (init, trans, e)]
    total = Chain(*leaves, lengths, fast=False).log_partition()
    g_init, g_trans, gamma = torch.autograd.grad(total.sum(), leaves)
    stats = _stats(model, inputs)
    got = small_fit.expected_counts(model, inputs, stats)
    torch.testing.assert_close(torch.tensor(got[0], dtype=F64), total.sum().detach(), **TOL)
    torch.testing.assert_close(got[1], g_init, **TOL)
    torch.testing.assert_close(got[2], g_trans, **TOL)
    torch.testing.assert_close(small.marginals(p), gamma, **TOL)
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(y, lengths), total.detach(), **TOL)
    yc = y - stats.shift
    torch.testing.assert_close(stats.n, gamma.sum((0, 1)), **TOL)
    torch.testing.assert_close(stats.sy, torch.einsum("btk,btd->kd", gamma, yc), **TOL)
    torch.testing.assert_close(stats.syy, torch.einsum("btk,btd->kd", gamma, yc * yc), **TOL)
    assert torch.equal(small.mode(p), Chain(init, trans, e, lengths, fast=False).viterbi)


def test_against_hmmlearn():
    """log P(y), posteriors, the Viterbi path and one EM step against hmmlearn (scaling implementation,
    plain maximum likelihood), on variable-length sequences."""
    hmm = pytest.importorskip("hmmlearn.hmm")
    k = 3
    model = _model(k, seed=11, d=1)
    y, lengths = _data(6, 50, 1, seed=12, ragged=True)
    lengths[-1] = 7  # hmmlearn refuses empty sequences
    flat = torch.cat([y[i, : lengths[i]] for i in range(6)]).numpy()
    ref = hmm.GaussianHMM(
        k, covariance_type="diag", n_iter=1, tol=-np.inf, implementation="scaling", init_params="",
        covars_prior=0.0, min_covar=0.0,
    )  # fmt: skip
    base = model.emission.base_dist
    ref.startprob_, ref.transmat_ = model.log_init.exp().numpy(), model.log_trans.exp().numpy()
    ref.means_, ref.covars_ = base.loc.numpy(), base.scale.numpy() ** 2
    with torch.no_grad():
        post = model.posterior(y, lengths)
        assert post._direct is not None
        np.testing.assert_allclose(
            model.log_prob(y, lengths).sum().item(), ref.score(flat, lengths.numpy()), rtol=1e-12
        )
        valid = torch.arange(50) < lengths[:, None]
        np.testing.assert_allclose(
            post.marginals[valid].numpy(), ref.predict_proba(flat, lengths.numpy()), atol=1e-12
        )
        assert (post.mode[valid].numpy() == ref.decode(flat, lengths.numpy())[1]).all()
    fitted = model.fit(y, lengths, max_iter=1, reg_covar=0.0).model
    ref.fit(flat, lengths.numpy())
    np.testing.assert_allclose(fitted.log_init.exp().numpy(), ref.startprob_, atol=1e-12)
    np.testing.assert_allclose(fitted.log_trans.exp().numpy(), ref.transmat_, atol=1e-12)
    np.testing.assert_allclose(fitted.emission.base_dist.loc.numpy(), ref.means_, atol=1e-12)
    np.testing.assert_allclose(
        fitted.emission.base_dist.scale.numpy() ** 2, ref.covars_.reshape(k, 1), atol=1e-12
    )


def _spy(monkeypatch):
    """Counts of the direct routes' successful answers."""
    taken = {"log_prob": 0, "posterior": 0, "e_step": 0, "m_step": 0}

    def wrap(owner, name, key):
        original = getattr(owner, name)

        def spy(*args, **kwargs):
            out = original(*args, **kwargs)
            taken[key] += out is not None
            return out

        monkeypatch.setattr(owner, name, spy)

    wrap(small, "log_prob", "log_prob")
    wrap(small, "plain", "posterior")
    wrap(small, "expected_statistics", "e_step")
    wrap(small_fit, "_m_step", "m_step")
    return taken


FALLBACKS = {
    "constraints": ({"constraints": "labels"}, {}),
    "observed": ({"observed": "mask"}, {}),
    "sample_weight": ({}, {"sample_weight": "w"}),
    "params": ({}, {"params": "se"}),
    "init_prior": ({}, {"init_prior": 2.0}),
    "trans_prior": ({}, {"trans_prior": 1.5}),
    "pseudocount": ({}, {"pseudocount": 0.5}),
    "spherical": ({}, {"covariance_type": "spherical"}),
}


@pytest.mark.parametrize("feature", sorted(FALLBACKS))
def test_unsupported_features_fall_back_to_the_general_path(monkeypatch, feature):
    """Each feature the routes do not cover: the route declines (or is never asked) and the answers equal
    the general path's."""
    k, b, t = 3, 7, 20
    model = _model(k, seed=21, d=2)
    y, lengths = _data(b, t, 2, seed=22, ragged=True)
    g = torch.Generator().manual_seed(23)
    values = {
        "labels": torch.where(
            torch.rand(b, t, generator=g) < 0.2, torch.randint(0, k, (b, t), generator=g), -1
        ),
        "mask": torch.rand(b, t, generator=g) > 0.2,
        "w": torch.rand(b, generator=g, dtype=F64) + 0.5,
    }
    query, fit = ({n: values.get(v, v) for n, v in part.items()} for part in FALLBACKS[feature])
    taken = _spy(monkeypatch)

    def answers():
        with torch.no_grad():
            out = {"log_prob": model.log_prob(y, lengths, **query)}
            post = model.posterior(y, lengths, **query)
            out |= {"marginals": post.marginals, "mode": post.mode}
        fitted = model.fit(y, lengths, max_iter=2, reg_covar=1e-3, **query, **fit).model
        base = fitted.emission.base_dist
        return out | {
            "trans": fitted.log_trans,
            "init": fitted.log_init,
            "loc": base.loc,
            "scale": base.scale,
        }

    fast = answers()
    if query:
        assert taken["log_prob"] == taken["posterior"] == taken["e_step"] == 0
    if feature in ("init_prior", "trans_prior", "pseudocount", "spherical"):
        assert taken["m_step"] == 0 and taken["e_step"] == 2
    if feature == "sample_weight":
        assert taken["e_step"] == 0
    _assert_same(fast, _general_answers(monkeypatch, answers))


def _general_answers(monkeypatch, answers):
    with monkeypatch.context() as m:
        m.setattr(fast_emission, "COMPILED", False)
        m.setattr(_compiled, "_step_weights", _compiled._step_weights_torch)
        return answers()


@pytest.mark.parametrize(
    "variant", ["float32", "grad", "end_states", "batched", "categorical", "threads", "parallel", "large"]
)
def test_other_models_and_modes_fall_back(monkeypatch, variant):
    k = 3
    model = _model(k, seed=31, d=1, dtype=torch.float32 if variant == "float32" else F64)
    y, lengths = _data(5, 12, 1, seed=32, ragged=True)
    y = y.float() if variant == "float32" else y
    kwargs = {}
    if variant == "grad":
        model.init_logits.requires_grad_(True)
    elif variant == "end_states":
        model = HMM(model.init_logits, model.trans_logits, model.emission, torch.zeros(k, dtype=F64))
    elif variant == "batched":
        model = HMM(model.init_logits.expand(2, k), model.trans_logits, model.emission)
        y = y[:2]
        lengths = lengths[:2]
    elif variant == "categorical":
        model = HMM(model.init_logits, model.trans_logits, D.Categorical(logits=torch.randn(k, 4, dtype=F64)))
        y = torch.randint(0, 4, (5, 12))
    elif variant == "threads":
        monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
        y = torch.randn(40, 700, 1, dtype=F64)
        lengths = None
    elif variant == "parallel":
        kwargs = {"method": "parallel"}
    elif variant == "large":  # over the cells the routes may hold in memory, on one thread too
        monkeypatch.setattr(small, "MAX_CELLS", y.numel() * k - 1)
    taken = _spy(monkeypatch)
    out = model.log_prob(y, lengths, **kwargs)
    with torch.no_grad():
        post = model.posterior(y, lengths, **kwargs)
    assert taken["log_prob"] == 0
    assert (post._direct is None) == (variant != "grad")  # no gradient is asked of a posterior
    if variant in ("float32", "grad", "categorical", "threads", "large"):
        model.fit(y, lengths, max_iter=1)
        assert taken["e_step"] == 0
        assert taken["m_step"] == (variant in ("grad", "threads", "large"))  # the M-step needs neither
    if variant == "grad":  # the gradient still flows
        out.sum().backward()
        assert model.init_logits.grad is not None


@pytest.mark.parametrize("case", ["empty_state", "no_transitions"])
def test_degenerate_fits_warn_and_equal_the_general_path(monkeypatch, case):
    """A state that explains no step, or one met only at the last step of sequences: the direct M-step
    declines and the general one keeps the old parameters with the same named warnings."""
    em = D.Independent(D.Normal(torch.tensor([[0.0], [50.0]], dtype=F64), torch.ones(2, 1, dtype=F64)), 1)
    trans = torch.tensor([[0.9, 0.1], [0.5, 0.5]], dtype=F64).log()
    model = HMM(torch.tensor([0.5, 0.5], dtype=F64).log(), trans, em)
    y = torch.randn(4, 10, 1, dtype=F64, generator=torch.Generator().manual_seed(1))
    if case == "no_transitions":  # state 1 only at the last steps
        y[:, -1] = 50.0
    taken = _spy(monkeypatch)

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fitted = model.fit(y, max_iter=1, reg_covar=0.0).model
        return fitted, sorted({type(w.message).__name__ for w in caught})

    (fast, fast_warned), (general, general_warned) = run(), _general_answers(monkeypatch, run)
    assert taken["e_step"] == 1 and taken["m_step"] == 0
    assert fast_warned == general_warned and fast_warned
    for name in ("log_init", "log_trans"):
        torch.testing.assert_close(getattr(fast, name), getattr(general, name), **TOL)
    torch.testing.assert_close(fast.emission.base_dist.loc, general.emission.base_dist.loc, **TOL)
    torch.testing.assert_close(fast.emission.base_dist.scale, general.emission.base_dist.scale, **TOL)


def test_underflow_declines_every_route():
    """Far-apart states and a switch the transitions make nearly impossible: the scaled weights underflow,
    every route declines, and the log-space recursion answers (finite)."""
    em = D.Normal(torch.tensor([-10.0, 10.0], dtype=F64), torch.tensor([0.1, 0.1], dtype=F64))
    model = HMM(torch.zeros(2, dtype=F64), torch.tensor([[0.0, -800.0], [-800.0, 0.0]], dtype=F64), em)
    y = torch.tensor([[-10.0, -10.0, 10.0, 10.0], [-10.0, -10.0, -10.0, -10.0]], dtype=F64)
    inputs = prepare(model, y, None)
    p = small.plain(model, inputs)
    assert small.log_prob(model, inputs) is None and small.marginals(p) is None
    assert small_fit.expected_counts(model, inputs, _stats(model, inputs)) is None
    with torch.no_grad():
        post = model.posterior(y)
        e = em.log_prob(y.unsqueeze(-1))
        chain = Chain(model.log_init, model.log_trans, e, torch.tensor([4, 4]), fast=False)
        torch.testing.assert_close(model.log_prob(y), chain.log_partition(), rtol=1e-12, atol=0)
        torch.testing.assert_close(post.marginals, chain.marginals, rtol=1e-12, atol=1e-12)
        assert torch.equal(post.mode, chain.viterbi)
    assert np.isfinite(model.fit(y, max_iter=1).history).all()


def test_posterior_is_a_snapshot_and_its_other_questions_use_the_chain(monkeypatch):
    """posterior() copies what its routes read: writing into y or the parameters afterwards changes
    nothing (as the general path's emission table, computed at once); the chain built on demand for the
    other questions equals the general path's."""
    model = _model(3, seed=41, d=1)
    y, lengths = _data(6, 15, 1, seed=42, ragged=True)
    with torch.no_grad():
        general = _general_answers(monkeypatch, lambda: model.posterior(y, lengths))
        want = {n: getattr(general, n) for n in ("marginals", "mode", "log_partition", "entropy", "forward")}
        post = model.posterior(y.clone(), lengths)
        y_in = y.clone()
        post2 = model.posterior(y_in, lengths)
        y_in.add_(3.0)
        model.emission.base_dist.loc.add_(1.0)
        model.trans_logits.mul_(2.0)
        for p in (post, post2):
            assert p._direct is not None and "chain" not in p.__dict__
            _assert_same({n: getattr(p, n) for n in want}, want)
            torch.testing.assert_close(p.log_prob(want["mode"]), general.log_prob(want["mode"]), **TOL)
            assert p.kbest(2)[0].shape == (2, 6, 15)


def test_cached_constants_follow_emission_changes():
    """The per-model constants include the emission: a new emission, or its loc written in place, is seen."""
    model = _model(2, seed=51, d=1)
    y, _ = _data(3, 9, 1, seed=52, ragged=False)

    def reference():
        e = model.emission.log_prob(y.unsqueeze(2))
        return Chain(model.log_init, model.log_trans, e, torch.full((3,), 9), fast=False).log_partition()

    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(y), reference(), **TOL)
        model.emission.base_dist.loc.add_(0.5)
        torch.testing.assert_close(model.log_prob(y), reference(), **TOL)
        model.emission = D.Independent(
            D.Normal(torch.tensor([[1.0], [-1.0]], dtype=F64), torch.ones(2, 1, dtype=F64)), 1
        )
        torch.testing.assert_close(model.log_prob(y), reference(), **TOL)
        assert torch.equal(
            model.posterior(y).mode,
            Chain(
                model.log_init,
                model.log_trans,
                model.emission.log_prob(y.unsqueeze(2)),
                torch.full((3,), 9),
                fast=False,
            ).viterbi,
        )


def test_fitted_emission_is_an_ordinary_validated_distribution():
    """The direct M-step builds its Normal without re-validating arguments that hold by construction, then
    gives it the default validation back: bad samples are still refused."""
    model = _model(2, seed=61, d=1)
    y, _ = _data(4, 20, 1, seed=62, ragged=False)
    fitted = model.fit(y, max_iter=1).model
    em = fitted.emission
    assert "_validate_args" not in vars(em) and "_validate_args" not in vars(em.base_dist)
    assert em._validate_args == D.Distribution._validate_args
    with pytest.raises(ValueError):
        em.log_prob(torch.tensor([[float("nan")]], dtype=F64).expand(1, 2, 1))
    # the fitted model is an ordinary HMM: the same answers as one built through the checked constructor
    rebuilt = HMM(fitted.init_logits, fitted.trans_logits, fitted.emission)
    assert rebuilt.batch_shape == fitted.batch_shape and rebuilt.num_states == fitted.num_states
    torch.testing.assert_close(rebuilt.log_prob(y), fitted.log_prob(y), rtol=0, atol=0)


def test_a_subclass_takes_the_general_path():
    """A subclass of HMM may redefine its emission log-likelihoods: the routes must not bypass them."""

    class Shifted(HMM):
        def emission_log_prob(self, y, shape=None):
            return super().emission_log_prob(y, shape) + torch.arange(self.num_states, dtype=F64)

    model = _model(2, seed=71, d=1)
    shifted = Shifted(model.init_logits, model.trans_logits, model.emission)
    y, lengths = _data(4, 10, 1, seed=72, ragged=True)
    with torch.no_grad():
        post = shifted.posterior(y, lengths)
        e = shifted.emission_log_prob(y)
        chain = Chain(model.log_init, model.log_trans, e, lengths, fast=False)
        assert post._direct is None
        torch.testing.assert_close(shifted.log_prob(y, lengths), chain.log_partition(), **TOL)
        torch.testing.assert_close(post.marginals, chain.marginals, **TOL)
    assert small.gaussian_model(shifted) is None and small.gaussian_model(model) is not None


@pytest.mark.parametrize("d", [None, 2])
def test_the_early_entry_skips_prepare_and_equals_the_prepared_view(monkeypatch, d):
    """Whole sequences of a plain model (no lengths, nothing missing): `small.direct` builds the `Plain`
    view before `prepare` -- the same arrays as ``plain(model, prepare(model, y))`` -- and log_prob,
    posterior and fit answer without calling prepare, with the general path's numbers."""
    from latentvar.hmm import fit as fit_module
    from latentvar.hmm import model as model_module

    model = _model(3, seed=81, d=d)
    y, _ = _data(6, 17, d, seed=82, ragged=False)
    early, prepared = small.direct(model, y), small.plain(model, prepare(model, y, None))
    for name in ("yt", "loc", "scale", "lengths"):
        np.testing.assert_array_equal(getattr(early, name), getattr(prepared, name))
    torch.testing.assert_close(early.lengths_t, prepared.lengths_t, rtol=0, atol=0)
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(model_module, "prepare", spy)
    monkeypatch.setattr(fit_module, "prepare", spy)
    fast = _answers(model, y, None)
    assert not calls
    _assert_same(fast, _general(monkeypatch, model, y, None))
    assert calls  # the general path prepares


@pytest.mark.parametrize(
    "case", ["nan", "inf", "integers", "event_shape", "unbatched", "empty", "numpy", "lengths", "grad_y"]
)
def test_the_early_entry_declines_and_prepare_checks(case):
    """Anything but a float64 tensor of whole, finite (b, t, *event) sequences needing no gradient: the
    early entry declines, and ``prepare`` answers -- its named errors for bad y, the general path's
    numbers for the rest."""
    model = _model(2, seed=91, d=1)
    y, _ = _data(4, 9, 1, seed=92, ragged=False)
    bad = {"nan": float("nan"), "inf": float("inf")}
    if case in bad:
        y[1, 3, 0] = bad[case]
    args = {
        "integers": (y.round().long(),),
        "event_shape": (y.expand(4, 9, 2),),
        "unbatched": (y[0],),
        "empty": (y[:0],),
        "numpy": (y.numpy(),),
        "lengths": (y, torch.full((4,), 9)),
        "grad_y": (y.clone().requires_grad_(True),),
    }.get(case, (y,))
    assert small.direct(model, *args) is None
    if case in ("nan", "inf", "event_shape"):
        for ask in (model.log_prob, model.posterior, lambda *a: model.fit(*a, max_iter=1)):
            with pytest.raises(ValueError, match="^y: "):
                ask(*args)
        return
    out = model.log_prob(*args)
    want = {"unbatched": y[0], "integers": y.round()}.get(case, y.numpy())
    want = model.log_prob(want)
    torch.testing.assert_close(out.detach(), want[:0] if case == "empty" else want, **TOL)
    if case == "grad_y":
        out.sum().backward()
        assert args[0].grad is not None and torch.isfinite(args[0].grad).all()
