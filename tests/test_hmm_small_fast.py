"""The per-call shortcuts of issue 21's small-problem regime (bench/hmm_small.py): the compiled Gaussian
emission table (`latentvar.hmm._gaussian_numba`), the compiled per-step weights
(`latentvar.inference._numba_weights`) and the kernels' normaliser products (one log per product, not per
step). Each is compared with the general path it replaces -- the tensor forms, forced by the
``fast_emission.COMPILED`` flag and `_step_weights_torch` -- and with the generic log-space recursion
(``Chain(fast=False)``, no compiled kernel), on random models; bad input must still be refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributions as D

from latentvar import HMM
from latentvar.hmm import fast_emission
from latentvar.inference import Chain, _compiled

F64 = torch.float64


def _model(k: int, dtype, seed: int, d: int | None = 1) -> HMM:
    g = torch.Generator().manual_seed(seed)
    shape = (k,) if d is None else (k, d)
    loc = torch.randn(shape, generator=g, dtype=F64).to(dtype)
    scale = (torch.rand(shape, generator=g, dtype=F64) + 0.3).to(dtype)
    em = D.Normal(loc, scale) if d is None else D.Independent(D.Normal(loc, scale), 1)
    init = torch.randn(k, generator=g, dtype=F64).to(dtype)
    return HMM(init, torch.randn(k, k, generator=g, dtype=F64).to(dtype), em)


def _answers(model: HMM, y, lengths) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        post = model.posterior(y, lengths)
        out = {"log_prob": model.log_prob(y, lengths), "marginals": post.marginals, "mode": post.mode}
    fitted = model.fit(y, lengths, max_iter=1, reg_covar=0.0).model
    out |= {"fit_" + name: getattr(fitted, name) for name in ("log_init", "log_trans")}
    base = fitted.emission.base_dist if isinstance(fitted.emission, D.Independent) else fitted.emission
    return out | {"fit_loc": base.loc, "fit_scale": base.scale}


def _general(monkeypatch, model, y, lengths) -> dict[str, torch.Tensor]:
    """The same answers through the tensor forms the shortcuts replace."""
    with monkeypatch.context() as m:
        m.setattr(fast_emission, "COMPILED", False)
        m.setattr(_compiled, "_step_weights", _compiled._step_weights_torch)
        return _answers(model, y, lengths)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("k", [1, 2, 3, 10])
def test_shortcuts_equal_the_general_path(monkeypatch, k, ragged, dtype):
    g = torch.Generator().manual_seed(100 * k + ragged)
    model = _model(k, dtype, seed=k)
    y = (torch.randn(13, 29, 1, generator=g, dtype=F64) * 1.5).to(dtype)
    lengths = torch.randint(1, 30, (13,), generator=g) if ragged else None
    fast, general = _answers(model, y, lengths), _general(monkeypatch, model, y, lengths)
    # float64: the same numbers up to rounding; float32: computed in float64 by both, rounded once (1 ulp)
    rtol, atol = (1e-12, 1e-13) if dtype == F64 else (2.4e-7, 1e-7)
    for name, want in general.items():
        got = fast[name]
        assert got.dtype == want.dtype, name
        if name == "mode":
            assert torch.equal(got, want)
        else:
            torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("d", [None, 1, 3])
def test_compiled_gaussian_table_equals_torch_log_prob(d):
    model = _model(4, F64, seed=7, d=d)
    g = torch.Generator().manual_seed(8)
    y = torch.randn(6, 11, *(() if d is None else (d,)), generator=g, dtype=F64) * 4
    want = model.emission.log_prob(y.unsqueeze(2))  # torch.distributions' own formula
    assert fast_emission.compilable(model.emission.mean, model.emission.stddev, y)
    torch.testing.assert_close(model.emission_log_prob(y), want, rtol=1e-12, atol=1e-12)
    # a strided (non-contiguous) y gives the same
    torch.testing.assert_close(model.emission_log_prob(y[:, ::2]), want[:, ::2], rtol=1e-12, atol=1e-12)


def test_gradients_still_flow_through_the_tensor_form():
    model = _model(3, F64, seed=2)
    loc = model.emission.base_dist.loc.clone().requires_grad_(True)
    model.emission = D.Independent(D.Normal(loc, model.emission.base_dist.scale), 1)
    y = torch.randn(4, 9, 1, dtype=F64)
    assert not fast_emission.compilable(loc, model.emission.base_dist.scale, y)
    model.log_prob(y).sum().backward()
    assert loc.grad is not None and torch.isfinite(loc.grad).all() and loc.grad.abs().sum() > 0


def test_compiled_step_weights_equal_the_tensor_form_on_special_values():
    g = torch.Generator().manual_seed(3)
    b, c, k = 5, 6, 3
    em = torch.randn(b, c, k, generator=g, dtype=F64) * 30
    em[0, 1] = -torch.inf  # every state impossible
    em[1, 2, 0] = -torch.inf  # one state impossible
    em[2, 3, 1] = torch.inf
    em[3, 0, 2] = torch.nan
    col_max = torch.randn(k, generator=g, dtype=F64)
    for init in (torch.randn(k, generator=g, dtype=F64), torch.randn(b, k, generator=g, dtype=F64)):
        for t0 in (0, 4):
            probs, tops = _compiled._step_weights(init, col_max, em, t0)
            ref_probs, ref_tops = _compiled._step_weights_torch(init, col_max, em, t0)
            np.testing.assert_array_equal(tops, ref_tops)
            np.testing.assert_allclose(probs, ref_probs, rtol=1e-14, atol=0)  # exp's last bit may differ


@pytest.mark.parametrize("k", [1, 2, 3])
def test_long_sequences_gather_normalisers_exactly(k):
    """Thousands of steps whose normalisers drift far from 1 (near-deterministic emissions, or sticky
    transitions whose scaled rows sum above 1): the running products are logged before they leave the
    normal range, and log P(y) matches the log-space recursion."""
    g = torch.Generator().manual_seed(k)
    b, t = 5, 3000
    init = torch.randn(k, generator=g, dtype=F64).log_softmax(-1)
    for scale in (0.01, 1.0, 40.0):
        trans = (torch.randn(k, k, generator=g, dtype=F64) * scale).log_softmax(-1)
        e = torch.randn(b, t, k, generator=g, dtype=F64) * scale
        lengths = torch.tensor([t, t - 1, 1, 1700, t])
        ref = Chain(init, trans, e, lengths, fast=False).log_partition()
        fast = _compiled.forward(init, trans, iter([e[:, :1000], e[:, 1000:]]), lengths)
        torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-9)
        _, loglik, _, _ = _compiled.forward_backward(init, trans, e, lengths)
        torch.testing.assert_close(loglik, ref, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(
    "bad, name",
    [
        (
            lambda y: (
                y.index_put((torch.tensor(2), torch.tensor(5)), torch.tensor(torch.nan, dtype=F64)),
                None,
            ),
            "y",
        ),
        (
            lambda y: (
                y.index_put((torch.tensor(4), torch.tensor(19)), torch.tensor(-torch.inf, dtype=F64)),
                None,
            ),
            "y",
        ),
        (lambda y: (y[..., 0], None), "y"),
        (lambda y: (y, torch.full((y.shape[0],), y.shape[1] + 1)), "lengths"),
        (lambda y: (y, torch.full((y.shape[0] + 1,), 2)), "lengths"),
    ],
)
def test_bad_input_is_still_refused_by_name(bad, name):
    model = _model(2, F64, seed=1)
    y, lengths = bad(torch.randn(5, 20, 1, dtype=F64))
    for call in (model.log_prob, model.posterior, lambda y, lengths: model.fit(y, lengths, max_iter=1)):
        with pytest.raises(ValueError, match=f"^{name}"):
            call(y, lengths)


@pytest.mark.parametrize("d", [None, 1, 2])
def test_direct_gaussian_log_prob_is_taken_and_equals_the_generic_recursion(d):
    """log_prob's direct path (no Chain) applies to the benchmark's case, and equals the log-space
    recursion on the same emission table, empty sequences included."""
    from latentvar.hmm.inputs import prepare

    model = _model(3, F64, seed=5, d=d)
    y = torch.randn(7, 12, *(() if d is None else (d,)), dtype=F64)
    lengths = torch.tensor([12, 0, 5, 1, 12, 7, 3])
    with torch.no_grad():
        assert fast_emission.gaussian_log_prob(model, prepare(model, y, lengths)) is not None
        got = model.log_prob(y, lengths)
    e = model.emission.log_prob(y.unsqueeze(2))
    want = Chain(model.log_init, model.log_trans, e, lengths, fast=False).log_partition()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert fast_emission.gaussian_log_prob(model, prepare(model, y[:, :0], None)) is not None
    assert model.log_prob(y[:, :0]).eq(0).all()
    assert model.posterior(y[:, :0]).marginals.shape == (7, 0, 3)


def test_direct_gaussian_log_prob_declines_where_the_scaled_forward_underflows():
    """Two far-apart states and a switch the transitions make nearly impossible (log A = -800): the scaled
    weights underflow, the direct path declines, and the log-space recursion answers (finite)."""
    from latentvar.hmm.inputs import prepare

    em = D.Normal(torch.tensor([-10.0, 10.0], dtype=F64), torch.tensor([0.1, 0.1], dtype=F64))
    model = HMM(torch.zeros(2, dtype=F64), torch.tensor([[0.0, -800.0], [-800.0, 0.0]], dtype=F64), em)
    y = torch.tensor([[-10.0, -10.0, 10.0, 10.0]], dtype=F64)
    with torch.no_grad():
        assert fast_emission.gaussian_log_prob(model, prepare(model, y, None)) is None
        got = model.log_prob(y)
    want = Chain(model.log_init, model.log_trans, em.log_prob(y.unsqueeze(-1)), torch.tensor([4]), fast=False)
    torch.testing.assert_close(got, want.log_partition(), rtol=1e-12, atol=0)
    assert torch.isfinite(got).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_check_finite_same_verdicts_through_numpy_and_torch(dtype):
    """check_finite reads CPU float32/64 tensors through NumPy, others through torch: the same verdicts."""
    from latentvar._checks import check_finite

    x = torch.randn(4, 5, dtype=F64).to(dtype).requires_grad_(dtype.is_floating_point)
    assert check_finite("x", x) is x
    for bad, neg_ok in ((torch.nan, False), (torch.inf, False), (-torch.inf, True), (torch.nan, True)):
        y = x.detach().clone()
        y[2, 3] = bad
        refused = bad != -torch.inf or not neg_ok
        if refused:
            with pytest.raises(ValueError, match="^x: expected finite values, got 1 "):
                check_finite("x", y, allow_neg_inf=neg_ok)
        else:
            assert check_finite("x", y, allow_neg_inf=neg_ok) is y
    with pytest.raises(ValueError, match="^x"):
        y = x.detach().clone()
        y[0, 0] = -torch.inf
        check_finite("x", y)


def test_cached_constants_follow_parameter_changes():
    """log_prob's direct path caches the scaled transitions and log π per model: replacing a parameter,
    writing into it in place, or giving it new storage must give the log_prob of the new parameters."""
    model = _model(3, F64, seed=9)
    y = torch.randn(4, 15, 1, dtype=F64)

    def reference():
        e = model.emission.log_prob(y.unsqueeze(2))
        return Chain(model.log_init, model.log_trans, e, torch.full((4,), 15), fast=False).log_partition()

    with torch.no_grad():
        before = model.log_prob(y)
        torch.testing.assert_close(before, reference(), rtol=1e-12, atol=1e-12)
        model.trans_logits[0, 1] += 2.0  # in place
        torch.testing.assert_close(model.log_prob(y), reference(), rtol=1e-12, atol=1e-12)
        model.init_logits = torch.tensor([5.0, -1.0, 0.0], dtype=F64)  # replaced
        torch.testing.assert_close(model.log_prob(y), reference(), rtol=1e-12, atol=1e-12)
        model.trans_logits.data = torch.randn(3, 3, dtype=F64)  # new storage
        torch.testing.assert_close(model.log_prob(y), reference(), rtol=1e-12, atol=1e-12)
        assert not torch.allclose(model.log_prob(y), before)
