"""The learned segment prior (`latentvar.colorize.prior`): its smoothing, jitter and training terms, and the
exactness of the latent model built on it (marginal, posterior) against brute force."""

from __future__ import annotations

import math

import pytest
import torch

from latentvar.colorize.model import build_model, lightness_input
from latentvar.colorize.prior import (
    EdgeAwareSmoothing,
    balance_loss,
    confidence_loss,
    invariance_loss,
    jitter_lightness,
)
from latentvar.colorize.quantize import ABBins
from latentvar.colorize.train import TrainConfig, restore_model
from latentvar.runs import module_tensors


def test_smoothing_keeps_a_constant_field_and_zero_steps_is_the_identity():
    logits = torch.randn(1, 3, 1, 1).expand(2, 3, 8, 8).contiguous()
    x = torch.rand(2, 1, 8, 8) * 0.1  # lightness varying within the range kernel (σ = 0.1)
    out = EdgeAwareSmoothing(3)(logits, x)
    # every neighbour has the same probabilities, so every pixel gets the same message: a constant shift
    shift = out - logits
    torch.testing.assert_close(shift, shift[:, :, :1, :1].expand_as(shift))
    torch.testing.assert_close(EdgeAwareSmoothing(0)(logits, x), logits)


def test_smoothing_removes_a_speck_on_flat_grey_but_stops_at_an_edge():
    k, h, w = 2, 9, 9
    logits = torch.zeros(1, k, h, w)
    logits[0, 0] = 1.0  # segment 0 everywhere ...
    logits[0, 0, 4, 4], logits[0, 1, 4, 4] = 0.0, 1.0  # ... but a one-pixel speck of segment 1
    flat = torch.zeros(1, 1, h, w)
    smooth = EdgeAwareSmoothing(3, strength=4.0)
    assert smooth(logits, flat)[0, :, 4, 4].argmax() == 0  # on flat grey the speck joins its neighbours
    edge = flat.clone()
    edge[0, 0, 4, 4] = 1.0  # the speck is a lightness edge: its neighbours' messages are cut off
    assert smooth(logits, edge)[0, :, 4, 4].argmax() == 1


def test_smoothing_gradients_reach_its_parameters():
    smooth = EdgeAwareSmoothing(2)
    smooth(torch.randn(2, 4, 8, 8), torch.rand(2, 1, 8, 8)).pow(2).sum().backward()
    assert smooth.log_strength.grad is not None and smooth.log_sigma.grad.abs() > 0


def test_jitter_is_a_pure_function_of_each_image():
    g = torch.Generator().manual_seed(0)
    L = torch.rand(4, 16, 16, generator=g) * 100
    out = jitter_lightness(L)
    assert out.min() >= 0 and out.max() <= 100 and not torch.allclose(out, L)
    # the same image in another batch, at another position: the same jitter (resume and DDP splits agree)
    torch.testing.assert_close(jitter_lightness(L[[2, 0]]), out[[2, 0]])
    # different images get different jitters: the photometric change is not the same for all
    assert not torch.allclose(out[0] - L[0], out[1] - L[1])


def test_balance_loss_is_zero_for_equal_use_and_log_k_for_one_segment():
    k = 5
    uniform = torch.full((2, k, 3, 3), -math.log(k))
    assert abs(float(balance_loss(uniform))) < 1e-6
    one = torch.full((2, k, 3, 3), -1e4)
    one[:, 2] = 0.0
    assert abs(float(balance_loss(one)) - math.log(k)) < 1e-4


def test_confidence_loss_is_zero_for_sure_pixels_and_log_k_for_uniform_ones():
    """With balance it is IIC's log K - I(pixel; segment): a uniform P(z|x) everywhere meets balance (0)
    but not confidence (log K), so the two together rule out the trivial prior."""
    k = 4
    uniform = torch.full((2, k, 3, 3), -math.log(k))
    assert float(balance_loss(uniform)) == pytest.approx(0.0, abs=1e-6)
    assert float(confidence_loss(uniform)) == pytest.approx(math.log(k), abs=1e-6)
    sure = torch.full((2, k, 3, 3), -1e4)
    sure[:, 1] = 0.0
    assert float(confidence_loss(sure)) == pytest.approx(0.0, abs=1e-6)


def test_invariance_loss_is_the_symmetric_kl():
    p = torch.log_softmax(torch.randn(2, 4, 3, 3), 1)
    q = torch.log_softmax(torch.randn(2, 4, 3, 3), 1)
    assert float(invariance_loss(p, p)) == pytest.approx(0.0, abs=1e-7)
    kl = lambda a, b: (a.exp() * (a - b)).sum(1)  # noqa: E731
    expected = 0.5 * (kl(p, q) + kl(q, p)).mean()
    torch.testing.assert_close(invariance_loss(p, q), expected)
    torch.testing.assert_close(invariance_loss(q, p), expected)


@pytest.mark.parametrize(
    "arch,size,law",
    [("emoji", 8, "linear"), ("photo", 16, "linear"), ("photo", 16, "levels"), ("emoji", 8, "global")],
)
def test_learned_prior_marginal_and_posterior_are_exact(arch, size, law):
    """log P(y|x) = log Σ_z P(z|x) P(y|z,x) by brute force over every z of a few pixels, and the posterior
    P(z_p|x,y) ∝ P(z_p|x) P(y_p|z_p,x) -- the smoothing keeps P(z|x) a per-pixel Categorical."""
    torch.manual_seed(0)
    bins = ABBins()
    model = build_model(
        "latent", bins.centres, 3, 8, 16, arch, prior="learned", smooth_steps=2, colour_law=law
    )
    L = torch.rand(1, size, size) * 100
    y = torch.randint(0, bins.num_bins, (1, size, size))
    with torch.no_grad():
        mix = model.mixture(L)
    log_w = mix.log_weights  # (1, h, w, k)
    log_c = mix.components.log_prob(y[..., None])  # (1, h, w, k)
    pixels = [(0, 0), (1, 3), (size - 1, size - 2)]
    brute = torch.tensor(0.0, dtype=torch.float64)
    for p in pixels:  # the product over pixels factorises: a sum over each pixel's K values
        terms = [float(log_w[0, p[0], p[1], z] + log_c[0, p[0], p[1], z]) for z in range(3)]
        brute += torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0)
    lp = mix.log_prob(y)[0]
    assert float(sum(lp[p] for p in pixels)) == pytest.approx(float(brute), abs=1e-4)
    with torch.no_grad():
        post = mix.posterior(y).marginals[0]
    for p in pixels:
        joint = log_w[0, p[0], p[1]] + log_c[0, p[0], p[1]]
        torch.testing.assert_close(post[p[0], p[1]], torch.softmax(joint, 0), atol=1e-5, rtol=1e-5)
    # the training loss with both terms off is the exact NLL the mixture gives
    model.balance = model.invariance = model.confidence = 0.0
    ab = torch.zeros(1, size, size, 2)
    torch.testing.assert_close(model(L, y, ab), -mix.log_prob(y).mean(), atol=1e-5, rtol=1e-5)


def test_learned_prior_has_no_lightness_quantiser(monkeypatch):
    model = build_model("latent", ABBins().centres, 4, 8, 16, "photo", prior="learned")
    names = {n for n, _ in model.named_parameters()}
    assert not any("lightness_centres" in n or "log_sharpness" in n for n in names)

    def quantiser(x):
        raise AssertionError("the learned prior used the lightness quantiser")

    monkeypatch.setattr(model.net, "lightness_prior", quantiser)
    L = torch.rand(1, 32, 32) * 100
    model.mixture(L)
    model(L, torch.zeros(1, 32, 32, dtype=torch.int64), torch.zeros(1, 32, 32, 2)).backward()
    assert lightness_input(L).shape == (1, 1, 32, 32)


def test_a_learned_prior_run_round_trips_through_its_checkpoint_config():
    config = TrainConfig(
        model="latent", prior="learned", smooth_steps=2, balance=0.25, invariance=0.5, confidence=0.5
    )
    config.check()
    model = build_model("latent", ABBins().centres, 8, 16, 64, "emoji", **config.prior_options())
    meta = {"config": {**config.__dict__}}
    again = restore_model(module_tensors(model, "model"), meta)
    assert again.config == model.config and again.balance == 0.25 and again.invariance == 0.5
    assert again.confidence == 0.5
    # a config from before the learned prior (no 'prior' key) restores the lightness prior
    old = build_model("latent", ABBins().centres, 8, 16, 64, "emoji")
    cfg = {
        k: v
        for k, v in config.__dict__.items()
        if k not in ("prior", "smooth_steps", "balance", "invariance")
    }
    assert restore_model(module_tensors(old, "model"), {"config": cfg}).net.prior == "lightness"


@pytest.mark.parametrize(
    "field,value",
    [
        ("prior", "bands"),
        ("smooth_steps", -1),
        ("smooth_steps", 9),
        ("balance", -0.1),
        ("invariance", math.inf),
        ("colour_law", "quadratic"),
    ],
)
def test_bad_prior_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}: "):
        TrainConfig(model="latent", **{field: value}).check()


def test_the_levels_colour_law_gives_each_segment_its_own_colour_per_lightness_bin():
    """'levels': segment k's law at L-bin l is softmax(α_kl + u_l), α from the segment's summary alone -- the
    head's output read as (l, q), not α_k + β_k ℓ; a pixel enters only through its L-bin."""
    torch.manual_seed(1)
    bins = ABBins()
    model = build_model("latent", bins.centres, 3, 8, 16, "photo", prior="learned", colour_law="levels")
    net = model.net
    torch.nn.init.normal_(net.lightness_logits)
    L = torch.rand(2, 16, 16) * 100
    with torch.no_grad():
        logits, features, semantic = net.prior_logits(L)
        comp = net.components(features, semantic, L, logits)
        # the summary the head sees, rebuilt from its definition, and the table it must give
        coarse = torch.nn.functional.adaptive_avg_pool2d(logits, semantic.shape[-2:])
        mask = torch.softmax(coarse, 1)
        mass = mask.sum((2, 3)) + 1e-6
        x = torch.nn.functional.adaptive_avg_pool2d(lightness_input(L), semantic.shape[-2:])[:, 0]
        pooled = torch.einsum("bkhw,bchw->bkc", mask, features) / mass[..., None]
        mean_l = torch.einsum("bkhw,bhw->bk", mask, x) / mass
        share = mass / (mask.shape[2] * mask.shape[3])
        head = net.colour_head(torch.cat([pooled, share[..., None], mean_l[..., None]], -1))
        want = torch.log_softmax(head.reshape(2, 3, 10, -1) + net.lightness_logits, -1)
    torch.testing.assert_close(comp.log_table, want, atol=1e-5, rtol=1e-5)
    # not reducible to the linear law: the logit differences between two L-bins vary across the bins
    step = want[..., 1:, :] - want[..., :-1, :]
    assert (step - step.mean(-2, keepdim=True)).abs().max() > 0.1
    # round trip: the key travels in the config; a config without it restores the linear law
    config = TrainConfig(model="latent", segments=3, width=8, hidden=16, arch="photo", colour_law="levels")
    config.check()
    meta = {"config": {**config.__dict__}}
    again = restore_model(module_tensors(model, "model"), meta)
    assert again.net.colour_law == "levels" and again.config["colour_law"] == "levels"
    linear = build_model("latent", bins.centres, 3, 8, 16, "photo", prior="learned")
    cfg = {k: v for k, v in config.__dict__.items() if k != "colour_law"}
    assert restore_model(module_tensors(linear, "model"), {"config": cfg}).net.colour_law == "linear"


def test_the_global_colour_law_is_one_colour_class_per_segment_for_every_image():
    """'global': segment k's law at L-bin l is softmax(α_k + β_k ℓ_l + u_l) with (α, β) parameters -- the same
    table whatever the image, so segment k means one colour class everywhere; it round-trips by its key."""
    torch.manual_seed(2)
    bins = ABBins()
    model = build_model("latent", bins.centres, 3, 8, 16, "emoji", prior="learned", colour_law="global")
    net = model.net
    assert not hasattr(net, "colour_head")  # nothing maps an image's summary to colour
    torch.nn.init.normal_(net.lightness_logits)
    one, other = torch.rand(1, 8, 8) * 100, torch.rand(2, 8, 8) * 30 + 60
    with torch.no_grad():
        tables = [net(L)[1].log_table for L in (one, other)]
    alpha, beta = net.global_law[:, 0], net.global_law[:, 1]
    ell = (torch.arange(10) + 0.5) / 5 - 1
    want = torch.log_softmax(alpha[:, None] + beta[:, None] * ell[None, :, None] + net.lightness_logits, -1)
    for table in tables:
        for image in table:
            torch.testing.assert_close(image, want.detach(), atol=1e-5, rtol=1e-5)
    # the segments start as distinct colours (`colour_wheel`): segment 0 peaks at the neutral bin, the others
    # at bins of chroma near 40 in different hues, each segment's law falling off with ab distance
    peaks = bins.centres[net.global_law[:, 0].argmax(-1)]
    assert peaks[0].norm() == bins.centres.norm(dim=-1).min()
    hues = torch.atan2(peaks[1:, 1], peaks[1:, 0])
    assert (peaks[1:].norm(dim=-1) - 40).abs().max() < 10 and len(set(hues.round(decimals=1).tolist())) == 2
    assert (net.global_law[:, 1] == 0).all()
    # the NLL's gradient reaches the shared law
    L, y = torch.rand(2, 8, 8) * 100, torch.randint(0, bins.num_bins, (2, 8, 8))
    model(L, y, torch.zeros(2, 8, 8, 2)).backward()
    assert net.global_law.grad is not None and net.global_law.grad.abs().sum() > 0
    config = TrainConfig(model="latent", segments=3, width=8, hidden=16, arch="emoji", colour_law="global")
    config.check()
    again = restore_model(module_tensors(model, "model"), {"config": {**config.__dict__}})
    assert again.net.colour_law == "global"
    torch.testing.assert_close(again.net.global_law, net.global_law)
