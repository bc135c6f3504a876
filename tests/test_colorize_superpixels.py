"""The learned prior's optional pooling over the grey image's Felzenszwalb regions (`prior.superpixel_pool`):
each pixel's logits become its region's mean, checked against skimage's own labels; P(z|x) stays a
per-pixel Categorical given x (the marginal and posterior by brute force); gradients reach the network; the
setting travels in the run's config and bad values name the field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.segmentation import felzenszwalb

from latentvar.colorize.model import build_model
from latentvar.colorize.prior import superpixel_labels, superpixel_pool
from latentvar.colorize.quantize import ABBins
from latentvar.colorize.train import TrainConfig, restore_model
from latentvar.runs import module_tensors


def _grey(seed: int = 0, size: int = 24) -> torch.Tensor:
    """Two flat halves (L 20 | 80) with a little noise: two obvious regions and some texture."""
    g = torch.Generator().manual_seed(seed)
    L = torch.full((2, size, size), 20.0)
    L[:, :, size // 2 :] = 80.0
    return (L + torch.rand(2, size, size, generator=g) * 3).clamp(0, 100)


def test_each_pixel_gets_its_regions_mean_under_skimages_own_labels():
    L = _grey()
    logits = torch.randn(2, 5, 24, 24)
    pooled = superpixel_pool(logits, L, 50.0)
    for i in range(2):
        regions = felzenszwalb(L[i].numpy().astype(np.float64) / 100, scale=50.0, sigma=0.5, min_size=12)
        assert torch.equal(superpixel_labels(L[i : i + 1], 50.0)[0], torch.from_numpy(regions).long())
        assert 2 <= regions.max() + 1 < 24 * 24  # pooled over a few regions, not each pixel alone
        for r in np.unique(regions):
            inside = torch.from_numpy(regions == r)
            want = logits[i][:, inside].mean(1)
            got = pooled[i][:, inside]
            torch.testing.assert_close(got, want[:, None].expand_as(got), atol=1e-5, rtol=1e-5)
    # the two halves never share a region: the pooling stops at the grey edge
    labels = superpixel_labels(L, 50.0)
    assert not set(labels[0, :, :12].unique().tolist()) & set(labels[0, :, 12:].unique().tolist())


def test_marginal_and_posterior_stay_exact_and_gradients_reach_the_trunk():
    torch.manual_seed(0)
    bins = ABBins()
    model = build_model("latent", bins.centres, 3, 8, 16, "photo", prior="learned", superpixels=40.0)
    L, y = _grey(1, 16)[:1], torch.randint(0, bins.num_bins, (1, 16, 16))
    with torch.no_grad():
        mix = model.mixture(L)
    log_w, log_c = mix.log_weights, mix.components.log_prob(y[..., None])
    # pooled: the left and right halves each hold at most a few distinct priors
    assert len({tuple(v) for v in log_w[0, :, :8].reshape(-1, 3).round(decimals=4).tolist()}) < 64
    pixels = [(0, 0), (5, 3), (15, 14)]
    brute = sum(torch.logsumexp(log_w[0, a, b] + log_c[0, a, b], 0) for a, b in pixels)
    lp = mix.log_prob(y)[0]
    assert float(sum(lp[p] for p in pixels)) == pytest.approx(float(brute), abs=1e-4)
    post = mix.posterior(y).marginals[0]
    for a, b in pixels:
        torch.testing.assert_close(post[a, b], torch.softmax(log_w[0, a, b] + log_c[0, a, b], 0))
    model(L, y, torch.zeros(1, 16, 16, 2)).backward()
    assert model.net.segment_head.weight.grad.abs().sum() > 0


def test_the_setting_travels_in_the_config_and_bad_values_name_it():
    config = TrainConfig(model="latent", prior="learned", superpixels=450.0, segments=4, width=8, hidden=16)
    config.check()
    model = build_model("latent", ABBins().centres, 4, 8, 16, "photo", **config.prior_options())
    assert model.config["superpixels"] == 450.0
    again = restore_model(module_tensors(model, "model"), {"config": {**config.__dict__, "arch": "photo"}})
    assert again.net.superpixels == 450.0
    plain = build_model("latent", ABBins().centres, 4, 8, 16, "photo", prior="learned")
    assert "superpixels" not in plain.config and plain.net.superpixels == 0.0  # older runs: no key, off
    for value in (-1.0, 1e9, float("nan"), True, "450"):
        with pytest.raises(ValueError, match="^superpixels: "):
            TrainConfig(model="latent", superpixels=value).check()
    with pytest.raises(ValueError, match="^superpixels: .*learned"):
        TrainConfig(model="latent", prior="lightness", superpixels=10.0).check()
    with pytest.raises(ValueError, match="^superpixels: "):
        build_model("latent", ABBins().centres, 4, 8, 16, "photo", prior="lightness", superpixels=10.0)


def test_the_grey_grouping_of_the_same_regions_is_scored_beside_the_model():
    """`segeval` adds ``superpixel_kmeans_L`` for a pooled prior: its regions grouped by mean L alone."""
    from latentvar.colorize import segeval
    from latentvar.colorize.colorizer import Colorizer

    torch.manual_seed(0)
    model = build_model("latent", ABBins().centres, 3, 8, 16, "photo", prior="learned", superpixels=200.0)
    colorizer = Colorizer(model, 64, {"work_side": 64})
    rgb = np.full((64, 96, 3), 40, np.uint8)
    rgb[:, 48:] = 220  # dark | light
    groups = segeval.superpixel_kmeans_l(colorizer, rgb, 2)
    assert groups.shape == (64, 96)
    assert len(np.unique(groups[:, :40])) == len(np.unique(groups[:, 56:])) == 1
    assert groups[0, 0] != groups[0, -1]
    segs, _ = segeval.segmentations(colorizer, rgb)
    assert "superpixel_kmeans_L" in segs
    plain = build_model("latent", ABBins().centres, 3, 8, 16, "photo", prior="learned")
    assert "superpixel_kmeans_L" not in segeval.segmentations(Colorizer(plain, 64, {"work_side": 64}), rgb)[0]


def test_the_demo_reports_photo_section_says_the_prior_is_pooled():
    from latentvar.colorize.demo import photo_section

    note = photo_section()[1]
    assert "<b>test split</b>" in note and "segments, its prior pooled over" in note


def test_a_user_can_change_the_scale_of_a_loaded_model(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from latentvar.cli import app
    from latentvar.colorize.colorizer import Colorizer
    from latentvar.colorize.segscore import components_per_segment

    photo = "src/latentvar/data/photo_examples/gcompris-qt-data__explore_monuments_india_hawaMahal.jpg"
    c = Colorizer.load("photo")
    pooled = components_per_segment(c.segment(photo))
    c.set_superpixels(0)  # the cached P(z|x) of the pooled prior must not be reused
    assert c.model.net.superpixels == 0.0 and components_per_segment(c.segment(photo)) > pooled
    for bad in (-1, 1e9, True, float("nan")):
        with pytest.raises(ValueError, match="^superpixels: "):
            c.set_superpixels(bad)
    with pytest.raises(ValueError, match="^superpixels: .*none"):
        Colorizer.load("twemoji").set_superpixels(100)
    runner = CliRunner()
    args = ["colorize", "apply", photo, "--out", str(tmp_path), "--samples", "0"]
    assert runner.invoke(app, [*args, "--superpixels", "0"]).exit_code == 0
    segments = np.asarray(
        Image.open(tmp_path / "gcompris-qt-data__explore_monuments_india_hawaMahal_segments.png")
    )
    assert segments.shape[:2] == Image.open(photo).size[::-1]
    result = runner.invoke(app, [*args, "--run", "twemoji", "--superpixels", "10"])
    assert result.exit_code == 2 and "superpixels" in result.output
