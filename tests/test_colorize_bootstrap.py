"""Intervals over images (`colorize.bootstrap`): the per-image parts add up to the set's metrics, the
bootstrap's spread matches the closed form for a mean, pairing cancels what two models share, and
`colorize eval --bootstrap` reports them."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from latentvar.cli import app
from latentvar.colorize.bootstrap import interval, intervals, resample_counts, segment_intervals
from latentvar.colorize.metrics import auc, auc_parts, auc_rebalanced
from latentvar.colorize.quantize import ABBins

runner = CliRunner()


def test_auc_parts_add_up_to_the_set_and_to_each_image():
    torch.manual_seed(0)
    pred, true = torch.randn(5, 6, 7, 2) * 30, torch.randn(5, 6, 7, 2) * 30
    centres = ABBins().centres
    area, pixels = auc_parts(pred, true)
    assert pixels.tolist() == [42.0] * 5
    assert float(area.sum() / pixels.sum()) == pytest.approx(auc(pred, true), abs=1e-6)
    for i in range(5):
        assert float(area[i] / pixels[i]) == pytest.approx(auc(pred[i], true[i]), abs=1e-6)
    area, weight = auc_parts(pred, true, centres)
    assert float(area.sum() / weight.sum()) == pytest.approx(auc_rebalanced(pred, true, centres), abs=1e-12)


def test_resample_counts_draw_n_images_reproducibly():
    a = np.concatenate(list(resample_counts(7, draws=600, seed=3)))
    b = np.concatenate(list(resample_counts(7, draws=600, seed=3)))
    assert a.shape == (600, 7) and (a.sum(1) == 7).all() and (a == b).all()
    assert abs(a.mean() - 1.0) < 0.05  # each image drawn once per draw on average
    with pytest.raises(ValueError, match="^images: "):
        next(resample_counts(0))
    with pytest.raises(ValueError, match="^draws: "):
        next(resample_counts(3, draws=0))


def test_interval_of_a_mean_matches_the_closed_form_spread():
    """The bootstrap distribution of a mean has variance (1/n) · (1/n) Σ (x - x̄)²; its 95 % interval is
    about x̄ ± 1.96 of that standard deviation (n = 200, so the mean is close to normal)."""
    x = np.random.default_rng(1).exponential(size=200)
    out = interval(x, draws=4000)
    sd = x.std() / np.sqrt(len(x))
    lo, hi = out["ci95"]
    assert out["value"] == pytest.approx(x.mean())
    assert (hi - lo) / (2 * 1.96 * sd) == pytest.approx(1.0, abs=0.08)
    assert lo < x.mean() < hi


def test_interval_of_a_ratio_of_sums():
    num, den = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 4.0])
    out = interval(num, den)
    assert out["value"] == pytest.approx(6.0 / 8.0)
    assert min(num / den) <= out["ci95"][0] <= out["value"] <= out["ci95"][1] <= max(num / den)
    assert interval(np.full(9, 0.3))["ci95"] == pytest.approx([0.3, 0.3])


def test_pairing_cancels_what_two_models_share():
    rng = np.random.default_rng(2)
    hardness = rng.normal(size=60)  # each image's own difficulty, shared by both models
    a, b = hardness + 0.05 + rng.normal(scale=0.01, size=60), hardness
    paired = interval(a, minus=(b, None))
    assert paired["value"] == pytest.approx(np.mean(a - b))
    assert paired["ci95"][0] > 0.04 and paired["ci95"][1] < 0.06  # the shared spread (sd 1) cancels
    assert interval(a, minus=(a, None))["ci95"] == pytest.approx([0.0, 0.0])
    with pytest.raises(ValueError, match="^minus: "):
        interval(a, minus=(b[:5], None))


def test_intervals_need_the_same_images_and_known_metrics():
    parts = {"image": ["a", "b"], "auc_area": [1.0, 2.0], "pixels": [2.0, 2.0], "psnr": [20.0, 21.0],
             "auc_rebalanced_area": [1.0, 1.0], "auc_rebalanced_weight": [2.0, 2.0]}  # fmt: skip
    with pytest.raises(ValueError, match="^against: "):
        intervals(parts, {**parts, "image": ["b", "a"]})
    with pytest.raises(ValueError, match="^metrics: "):
        intervals(parts, metrics=["miou"])
    out = intervals(parts, parts)
    assert set(out) == {"auc", "auc_rebalanced", "psnr"} and out["auc"]["value"] == 0.0


def test_segment_intervals_pair_the_prior_with_each_method():
    rng = np.random.default_rng(4)
    per_image = [
        {"scores": {"prior": {"ari": 0.5 + d}, "kmeans_L": {"ari": 0.3 + d}, "slic_L": {"ari": float("nan")}}}
        for d in rng.normal(scale=0.2, size=30)
    ]
    out = segment_intervals(per_image)
    assert set(out) == {"kmeans_L"}  # NaN pairs left out; no method against itself
    assert out["kmeans_L"]["value"] == pytest.approx(0.2) and out["kmeans_L"]["ci95"] == pytest.approx(
        [0.2, 0.2]
    )


def test_eval_bootstrap_reports_intervals_and_the_paired_difference_from_grey(tmp_path):
    report = tmp_path / "m.json"
    args = ["colorize", "eval", "--run", "twemoji", "--json", str(report)]
    result = runner.invoke(app, [*args, "--bootstrap", "300"])
    assert result.exit_code == 0, result.output
    m = json.loads(report.read_text())
    assert "95 % intervals over" in result.output and "auc - grey" in result.output
    assert "understates" not in result.output  # 363 images
    for key in ("nll_nats_per_pixel", "auc", "auc_rebalanced", "psnr", "colorfulness"):
        lo, hi = m["ci95"][key]
        assert lo <= m[key] <= hi, key
    assert set(m["vs_grey"]) == {"auc", "auc_rebalanced", "psnr"} and m["bootstrap"]["draws"] == 300
    assert "per_image" not in m  # the Python API's
    assert runner.invoke(app, args).exit_code == 0
    plain = json.loads(report.read_text())  # the same numbers without the bootstrap
    assert "ci95" not in plain and plain["auc"] == pytest.approx(m["auc"], abs=1e-6)
    assert plain["nll_nats_per_pixel"] == pytest.approx(m["nll_nats_per_pixel"], rel=1e-6)
    grey = tmp_path / "g.json"
    assert runner.invoke(app, ["colorize", "eval", "--baseline", "grey", "--json", str(grey)]).exit_code == 0
    diff = m["vs_grey"]["auc"]
    assert diff["value"] == pytest.approx(m["auc"] - json.loads(grey.read_text())["auc"], abs=1e-6)


def test_grouped_images_are_drawn_together():
    """Each image twice, as one group: the cluster bootstrap sees the original n units (same draws), where
    resampling the 2n copies alone would narrow the interval by about √2."""
    x = np.random.default_rng(5).normal(size=40)
    twice, groups = np.repeat(x, 2), np.repeat(np.arange(40), 2)
    grouped, alone = interval(twice, groups=groups), interval(x)
    assert grouped["value"] == pytest.approx(alone["value"]) and grouped["ci95"] == pytest.approx(
        alone["ci95"]
    )
    naive = interval(twice)["ci95"]
    assert (naive[1] - naive[0]) < 0.8 * (interval(x)["ci95"][1] - interval(x)["ci95"][0])
    with pytest.raises(ValueError, match="^groups: "):
        interval(x, groups=groups)
    per_image = [
        {"image": f"stamp{i}@{bg}", "scores": {"prior": {"ari": v}, "kmeans_L": {"ari": 0.0}}}
        for i, (v, bg) in enumerate(zip(twice, groups, strict=True))
    ]
    assert segment_intervals(per_image)["kmeans_L"]["ci95"] == pytest.approx(alone["ci95"])


def test_the_ship_script_adds_test_intervals_and_drops_the_parts():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts/colorize_ship.py"
    spec = importlib.util.spec_from_file_location("colorize_ship", path)
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    rng = np.random.default_rng(6)
    base = rng.uniform(80, 95, 12)  # each photo's own difficulty, shared by the three models

    def parts(shift):
        n = 12
        return {"image": [f"p{i}" for i in range(n)], "pixels": [100.0] * n,
                "nll_nats": list(rng.uniform(200, 300, n)), "auc_area": list(base + shift + rng.normal(0, 0.5, n)),
                "auc_rebalanced_area": list(rng.uniform(60, 70, n) + shift), "auc_rebalanced_weight": [100.0] * n,
                "psnr": list(rng.uniform(20, 24, n)), "colorfulness": list(rng.uniform(10, 30, n)),
                "colorfulness_ground_truth": list(rng.uniform(30, 50, n))}  # fmt: skip

    metrics = {
        kind: {"per_image": parts(s)} for kind, s in (("latent", 2.0), ("grey", 0.0), ("previous", 1.0))
    }
    ship.add_intervals(metrics)
    assert all("per_image" not in m for m in metrics.values())
    latent = metrics["latent"]
    assert (
        set(latent["vs_grey"]) == {"auc", "auc_rebalanced", "psnr"} and "colorfulness_ratio" in latent["ci95"]
    )
    assert set(latent["vs_previous"]) == {"nll_nats_per_pixel", "auc", "auc_rebalanced", "colorfulness_ratio"}
    assert latent["vs_grey"]["auc"]["ci95"][0] > 0.01  # 0.02 over grey on each photo: clear on 12 photos


def test_the_ship_script_ships_only_a_clearly_lower_val_nll(tmp_path):
    """`colorize_ship.superiority`: the shipped model against itself is no better (the interval is [0, 0]);
    against an untrained network on the same photos it is better beyond the photos' spread."""
    import importlib.util
    import shutil
    from pathlib import Path

    from latentvar.colorize.colorizer import Colorizer
    from latentvar.colorize.data import load_data
    from latentvar.colorize.model import build_model

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("colorize_ship", root / "scripts/colorize_ship.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    for photo in sorted((root / "src/latentvar/data/photo_examples").glob("*.jpg"))[:5]:
        shutil.copy(photo, tmp_path)
    shipped = Colorizer.load()
    val = load_data(str(tmp_path), 64, "val", shipped.bins)
    same = ship.superiority(shipped, shipped, val)
    assert same["value"] == 0.0 and same["ci95"] == [0.0, 0.0] and not same["better"]
    torch.manual_seed(0)
    untrained = Colorizer(
        build_model("latent", shipped.bins.centres, segments=3, width=8, hidden=8, arch="photo"), 64
    )
    verdict = ship.superiority(shipped, untrained, val)
    assert verdict["better"] and verdict["ci95"][1] < -1.0  # nats per pixel: an untrained law is near uniform
    assert not ship.superiority(untrained, shipped, val)["better"]


def test_format_intervals_warns_when_there_are_few_images():
    from latentvar.colorize.bootstrap import format_intervals

    ci = {k: [0.0, 1.0] for k in ("nll_nats_per_pixel", "auc", "auc_rebalanced", "psnr", "colorfulness")}
    result = {"num_images": 3, "bootstrap": {"draws": 10}, "ci95": {**ci, "colorfulness_ratio": [0.1, 0.2]},
              "nll_nats_per_pixel": 2.0, "auc": 0.9, "auc_rebalanced": 0.7, "psnr": 20.0, "colorfulness": 10.0,
              "colorfulness_ground_truth": 40.0}  # fmt: skip
    text = format_intervals(result)
    assert "over 3 images" in text and "understates the spread" in text and "0.250" in text
    assert "understates" not in format_intervals({**result, "num_images": 10})


def test_per_image_confusions_add_up_and_miou_intervals_pair_the_matching():
    from latentvar.colorize.bootstrap import miou_intervals
    from latentvar.colorize.metrics import confusion, hungarian_segmentation_scores

    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, size=(40, 6, 6))
    labels[:, 0, 0] = -1  # ignored
    exact = np.where(labels >= 0, (labels + 1) % 4, 0)  # the classes under another name: matched exactly
    noisy = np.where(rng.random(labels.shape) < 0.5, exact, rng.integers(0, 4, size=labels.shape))
    per = confusion(exact, labels, 4, 4, per_image=True)
    assert per.shape == (40, 4, 4) and (per.sum(0) == confusion(exact, labels, 4, 4)).all()
    out = miou_intervals(per, confusion(noisy, labels, 4, 4, per_image=True), draws=300)
    assert out["miou"]["value"] == 1.0 and out["miou"]["ci95"] == [1.0, 1.0]
    noisy_miou = hungarian_segmentation_scores(confusion(noisy, labels, 4, 4))["miou"]
    assert out["kmeans_grey_miou"]["value"] == pytest.approx(noisy_miou)
    lo, hi = out["difference"]["ci95"]
    assert 0 < lo <= out["difference"]["value"] <= hi
    same = miou_intervals(per, per, draws=50)["difference"]
    assert same["value"] == 0.0 and same["ci95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="^baseline: "):
        miou_intervals(per, per[:, :3])
