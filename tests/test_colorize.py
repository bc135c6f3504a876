"""Colour machinery, the latent model against brute force, metrics, training, bad input."""

import itertools
import math

import numpy as np
import pytest
import torch

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.lab import lab_to_rgb, rgb_to_lab
from latentvar.colorize.metrics import auc, colorfulness, confusion, hungarian_segmentation_scores
from latentvar.colorize.model import LatentColorizer, build_model
from latentvar.colorize.quantize import ABBins, in_gamut_bins
from latentvar.colorize.train import TrainConfig, prepare
from latentvar.data.twemoji import load_twemoji
from latentvar.mixture import Mixture

# CIE Lab (D65) of the sRGB primaries and white, as published by e.g. Bruce Lindbloom's calculator and
# colormine.org (independent of this code): L, a, b.
KNOWN = {
    (1.0, 0.0, 0.0): (53.2408, 80.0925, 67.2032),
    (0.0, 1.0, 0.0): (87.7347, -86.1827, 83.1793),
    (0.0, 0.0, 1.0): (32.2970, 79.1875, -107.8602),
    (1.0, 1.0, 1.0): (100.0, 0.0, 0.0),
    (0.0, 0.0, 0.0): (0.0, 0.0, 0.0),
}


def test_lab_known_values():
    rgb = torch.tensor(list(KNOWN), dtype=torch.float64)
    want = torch.tensor(list(KNOWN.values()), dtype=torch.float64)
    torch.testing.assert_close(rgb_to_lab(rgb), want, atol=2e-3, rtol=0)


def test_lab_round_trip():
    rgb = torch.rand(10_000, 3, dtype=torch.float64)
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb), clip=False), rgb, atol=1e-9, rtol=0)


def test_in_gamut_bins_are_reached_by_srgb():
    bins = ABBins()
    assert 250 <= bins.num_bins <= 320
    assert torch.all(torch.remainder(bins.centres, 10) == 0)
    # an independent random sampling of sRGB: every colour falls in a kept cell, and nearly every
    # kept cell is hit (the few missed are thin slivers at the gamut's edge)
    ab = rgb_to_lab(torch.rand(400_000, 3, dtype=torch.float64))[:, 1:]
    idx = bins.encode(ab)
    assert (bins.decode(idx).double() - ab).abs().max() <= 5.0 + 1e-6  # the nearest centre is its own cell
    assert torch.unique(idx).numel() >= 0.97 * bins.num_bins
    # the bins computed with a denser sampling barely change
    assert abs(in_gamut_bins(steps=32).shape[0] - bins.num_bins) <= 5


def test_encode_is_nearest_centre_and_decoders():
    bins = ABBins()
    ab = (torch.rand(5000, 2) - 0.5) * 200
    brute = ((ab[:, None] - bins.centres) ** 2).sum(-1).argmin(-1)
    d_fast = (bins.decode(bins.encode(ab)) - ab).norm(dim=-1)
    d_brute = (bins.decode(brute) - ab).norm(dim=-1)
    torch.testing.assert_close(d_fast, d_brute)
    soft = bins.soft_encode(ab[:10])
    torch.testing.assert_close(soft.sum(-1), torch.ones(10))
    assert ((soft > 0).sum(-1) == 5).all()
    onehot = torch.full((3, bins.num_bins), -1e9)
    onehot[torch.arange(3), torch.tensor([0, 7, 100])] = 0.0
    torch.testing.assert_close(bins.annealed_mean(onehot), bins.centres[[0, 7, 100]])
    torch.testing.assert_close(bins.mode(onehot), bins.centres[[0, 7, 100]])
    with pytest.raises(ValueError, match=r"^temperature: "):
        bins.annealed_mean(onehot, temperature=0.0)


def _tiny_latent(k=2):
    bins = ABBins()
    model = build_model("latent", bins.centres, segments=k, width=4, hidden=8)
    L = torch.rand(2, 4, 4) * 100
    y = torch.randint(0, bins.num_bins, (2, 4, 4))
    return model, L, y


def test_latent_log_prob_equals_brute_force_over_all_segmentations():
    """Σ over all K^(h·w) segmentations z of Π_p P(z_p|x) P(y_p|z_p,x) -- the joint, enumerated."""
    model, L, y = _tiny_latent(k=2)
    with torch.no_grad():
        mix = model.mixture(L)
        assert isinstance(mix, Mixture)
        log_prior = torch.log_softmax(mix.logits, -1)  # (b, h, w, k)
        comp = mix.components
        # P(y_p | z_p = k, x) read straight off the table, pixel by pixel
        lik = torch.empty(2, 4, 4, 2, dtype=torch.float64)
        for b, i, j, k in itertools.product(range(2), range(4), range(4), range(2)):
            lik[b, i, j, k] = comp.log_table[b, k, comp.lbin[b, i, j], y[b, i, j]]
        for b in range(2):
            lp = (log_prior[b].double() + lik[b]).reshape(16, 2)
            zs = torch.tensor(list(itertools.product(range(2), repeat=16)))  # (65536, 16)
            joint = lp.gather(1, zs.T).sum(0)  # log P(z, y | x) for every segmentation
            brute = torch.logsumexp(joint, 0)
            assert math.isclose(float(mix.log_prob(y)[b].sum()), float(brute), rel_tol=1e-5, abs_tol=1e-4)
            # the exact posterior marginal of pixel 0 equals the enumerated one
            post0 = torch.logsumexp(joint[zs[:, 0] == 1], 0) - brute
            assert math.isclose(float(mix.posterior(y).marginals[b, 0, 0, 1]), math.exp(post0), abs_tol=1e-5)


def test_posteriors_sum_to_one_and_marginal_per_pixel_matches():
    model, L, y = _tiny_latent(k=3)
    with torch.no_grad():
        mix = model.mixture(L)
        torch.testing.assert_close(mix.posterior(y).marginals.sum(-1), torch.ones(2, 4, 4))
        full = model.log_probs(L)  # (b, h, w, q): Σ_k, built another way
        torch.testing.assert_close(full.exp().sum(-1), torch.ones(2, 4, 4))
        torch.testing.assert_close(full.gather(-1, y[..., None])[..., 0], mix.log_prob(y), atol=1e-5, rtol=0)
        brute = torch.logsumexp(mix.log_weights[..., None] + mix.components.log_probs_per_pixel(), dim=-2)
        torch.testing.assert_close(full, brute, atol=1e-5, rtol=0)


def test_segment_colour_depends_on_image_only_through_segment_summary():
    """Two pixels of one image with the same L-bin have the same P(y|z=k,x), whatever else differs."""
    model, L, _ = _tiny_latent(k=2)
    L[0, 0, 0] = 41.0
    L[0, 3, 3] = 42.0  # same 5-unit L-bin, far apart
    with torch.no_grad():
        per_pixel = model.mixture(L).components.log_probs_per_pixel()
    torch.testing.assert_close(per_pixel[0, 0, 0], per_pixel[0, 3, 3])


def test_training_steps_reduce_the_nll():
    rgba = load_twemoji("val", 16)[:32]
    data = prepare(rgba, [str(i) for i in range(32)], ABBins())
    model = build_model("latent", ABBins().centres, segments=4, width=8, hidden=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = float(model(data.L, data.y, data.ab))
    for _ in range(25):
        loss = model(data.L, data.y, data.ab)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(model(data.L, data.y, data.ab))
    assert before > math.log(200)  # near uniform over ~261 bins at the start
    assert after < before - 1.0


def test_colorizer_api_on_an_untrained_model():
    model = LatentColorizer(ABBins().num_bins, segments=3, width=4, hidden=8)
    model.register_buffer("bin_centres", ABBins().centres.clone())
    c = Colorizer(model, size=16, meta={"config": {"segments": 3}})
    img = load_twemoji("test", 32)[0]
    assert c.colorize(img).shape == (32, 32, 3)
    assert c.segment(img).shape == (32, 32) and c.segment(img).max() < 3
    assert c.posterior_segment(img, img).shape == (32, 32)
    assert c.sample(img, 2).shape == (2, 32, 32, 3)
    assert float(c.log_prob(img)) < 0
    big = np.asarray(
        torch.nn.functional.interpolate(torch.as_tensor(img).permute(2, 0, 1)[None].float(), size=(64, 48))[0]
        .permute(1, 2, 0)
        .to(torch.uint8)
    )
    assert c.colorize(big).shape == (64, 48, 3)
    with pytest.raises(ValueError, match="n:"):
        c.sample(img, 0)
    with pytest.raises(ValueError, match=r"^img: "):
        c.colorize(np.zeros((4, 4, 2), np.uint8))


def test_grey_colorizer_has_no_segments():
    c = Colorizer.grey()
    img = load_twemoji("test", 32)[1]
    out = c.colorize(img)
    assert np.abs(out[..., 0].astype(int) - out[..., 1]).max() <= 1  # grey: R = G = B
    with pytest.raises(ValueError, match=r"^segment: "):
        c.segment(img)


def test_auc_psnr_colorfulness_and_hungarian():
    true = torch.zeros(100, 2)
    assert auc(true, true) == pytest.approx(1.0)
    pred = true + torch.tensor([75.0, 0.0])
    assert auc(pred, true) == pytest.approx((151 - 75) / 151)
    grey = torch.full((2, 8, 8, 3), 0.5)
    assert colorfulness(grey) == pytest.approx(0.0, abs=1e-4)
    assert colorfulness(torch.rand(2, 8, 8, 3)) > 10
    segments = np.random.default_rng(0).integers(0, 4, size=(3, 8, 8))
    perm = np.array([2, 0, 3, 1])
    scores = hungarian_segmentation_scores(confusion(segments, perm[segments], 4, 4))
    assert scores["miou"] == pytest.approx(1.0) and scores["pixel_accuracy"] == pytest.approx(1.0)
    half = hungarian_segmentation_scores(np.array([[10, 0], [10, 0]]))
    assert half["pixel_accuracy"] == pytest.approx(0.5)


def test_bad_config_names_the_argument():
    for kwargs, name in [
        ({"model": "gan"}, "model"),
        ({"segments": 0}, "segments"),
        ({"size": 30}, "size"),
        ({"steps": -1}, "steps"),
        ({"devices": 2, "batch_size": 5}, "batch_size"),
        ({"lr": 0.0}, "lr"),
    ]:
        with pytest.raises(ValueError, match=name):
            TrainConfig(**kwargs).check()


def test_openmoji_labels_from_palette():
    from latentvar.colorize.prepare import label_pixels, openmoji_palette

    palette = openmoji_palette({"colors": ["#000000", "#FCEA2B"], "skintones": {"a": ["#fcea2b", "#6a462f"]}})
    assert palette == ["#000000", "#fcea2b", "#6a462f"]
    rgb = np.array([[0, 0, 0], [252, 234, 43], [106, 70, 47]], np.uint8)
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, :, :3] = rgb + np.array([3, -3, 2], np.int8).astype(np.uint8) * (rgb > 5)  # near each colour
    rgba[0, :, 3] = 255
    rgba[1, 0, 3] = 0  # transparent -> background
    rgba[1, 1, 3] = 128  # partly transparent edge -> ignored
    rgba[1, 2] = [250, 230, 40, 255]
    labels = label_pixels(rgba, rgb)
    np.testing.assert_array_equal(labels, [[1, 2, 3], [0, 255, 2]])


def test_lightness_is_the_l_of_rgb_to_lab_for_every_input_kind():
    from latentvar.colorize.lab import lightness, to_float_rgb

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (17, 23, 4), dtype=np.uint8)
    levels = np.arange(256, dtype=np.uint8).repeat(3).reshape(1, 256, 3)  # every uint8 grey level
    a, c = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    pairs = np.stack([c, c.T, 255 - c, a], -1)  # every (alpha, level) pair, on each channel
    for image in (rgb, rgba, levels, pairs, rgb.astype(np.float32) / 255, torch.from_numpy(rgb)):
        expected = rgb_to_lab(to_float_rgb(image))[..., 0]
        assert torch.allclose(lightness(image), expected, atol=1e-4)
    assert lightness(rgb[::2, ::3]).shape == (9, 8)  # any strides


def test_in_gamut_matches_the_bin_set():
    bins = ABBins()
    assert bool(bins.in_gamut(bins.centres).all())
    assert bins.in_gamut(
        torch.tensor([[0.0, 0.0], [4.9, -4.9], [150.0, 0.0], [float("nan"), 0.0]])
    ).tolist() == [
        True,
        True,
        False,
        False,
    ]
