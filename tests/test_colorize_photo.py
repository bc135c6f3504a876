"""The photo colorizer: grids against torch's own interpolation, decoding against brute force, a receptive
field that covers the crop, full-resolution segments that follow the image, crops, photo-corpus training
with val selection, torchrun, the shipped models and `apply` on photos as people have them."""

import json
import math
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from killing import CLI, ENV, kill_once_checkpointed
from latentvar.cli import app
from latentvar.colorize import grids
from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.crops import PhotoCrops
from latentvar.colorize.model import PhotoTrunk, build_model, lightness_bin
from latentvar.colorize.photos import write_manifest
from latentvar.colorize.quantize import ABBins
from latentvar.colorize.segeval import corpus_validation
from latentvar.colorize.train import TrainConfig, train
from latentvar.io import FILE_MODE, load_checkpoint

runner = CliRunner()


def _photo(rng, h=96, w=128) -> np.ndarray:
    """A fake 'landscape': blue sky over green ground with noise, the horizon at a random height."""
    img = np.empty((h, w, 3), np.float64)
    horizon = rng.integers(h // 3, 2 * h // 3)
    img[:horizon] = [0.45, 0.65, 0.95]
    img[horizon:] = [0.25, 0.55, 0.2]
    img += rng.normal(0, 0.05, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    photos = []
    for i, split in enumerate(["train"] * 6 + ["val"] * 2 + ["test"] * 2):
        Image.fromarray(_photo(rng)).save(root / "images" / f"p{i}.jpg", quality=92)
        photos.append({"id": f"p{i}", "split": split, "package": "synthetic", "licence": "CC0-1.0"})
    write_manifest(root / "manifest.json", photos, {"num_photos": len(photos)})
    return root


def _untrained(kind="latent", k=3) -> Colorizer:
    bins = ABBins()
    model = build_model(kind, bins.centres, segments=k, width=8, hidden=8, arch="photo")
    return Colorizer(model, size=64, meta={"config": {"segments": k}})


@pytest.mark.parametrize("shape", [(5, 7, 23, 41), (3, 4, 100, 7), (16, 16, 16, 16), (8, 9, 5, 4)])
def test_bilateral_upsampling_taps_are_torch_bilinear(shape):
    """With a range kernel too wide to matter, the joint bilateral upsampling of any rows is exactly
    F.interpolate's bilinear (align_corners=False): its taps and spatial weights are torch's."""
    h, w, H, W = shape
    x = torch.randn(3, h, w)
    want = F.interpolate(x[None], size=(H, W), mode="bilinear", align_corners=False)[0]
    guide, guide_full = torch.rand(h, w) * 100, torch.rand(H, W) * 100
    for rows in (slice(0, H), slice(1, min(H, 4)), slice(H - 1, H)):
        got = grids.joint_bilateral_rows(x, guide, guide_full[rows], (H, W), rows, sigma=1e9)
        torch.testing.assert_close(got, want[:, rows], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "shape", [(5, 7, 23, 41), (3, 4, 100, 7), (16, 16, 16, 16), (8, 9, 5, 4), (1, 1, 3, 2)]
)
def test_compiled_bilateral_kernel_equals_the_torch_expression(shape, monkeypatch):
    """The numba kernel (`_bilateral`) against the torch expression it replaces on CPU, with a range kernel
    that matters (σ = 8 L units over guides spread on 0..100), any strip of rows, several channels."""
    h, w, H, W = shape
    g = torch.Generator().manual_seed(h * 1000 + W)
    x = torch.randn(5, h, w, generator=g)
    guide, guide_full = torch.rand(h, w, generator=g) * 100, torch.rand(H, W, generator=g) * 100
    for rows in (slice(0, H), slice(1, min(H, 4)), slice(H - 1, H)):
        monkeypatch.setattr(grids, "COMPILED", False)
        want = grids.joint_bilateral_rows(x, guide, guide_full[rows], (H, W), rows)
        monkeypatch.setattr(grids, "COMPILED", True)
        got = grids.joint_bilateral_rows(x, guide, guide_full[rows], (H, W), rows)
        assert got.shape == want.shape == (5, rows.stop - rows.start, W)
        torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-5)


def test_bilateral_upsampling_at_points_is_the_rows_version_at_those_pixels():
    h, w, H, W = 6, 9, 37, 50
    x, guide, guide_full = torch.randn(2, h, w), torch.rand(h, w) * 100, torch.rand(H, W) * 100
    full = grids.joint_bilateral_rows(x, guide, guide_full, (H, W), slice(0, H))
    ys, xs = torch.randint(0, H, (300,)), torch.randint(0, W, (300,))
    got = grids.joint_bilateral_points(x, guide, guide_full[ys, xs], (H, W), ys, xs)
    torch.testing.assert_close(got, full[:, ys, xs], atol=1e-6, rtol=0)


def test_rebalanced_mixture_decode_equals_the_brute_force_reweighted_marginal():
    """Rebalancing reweights the per-pixel marginal by prior(q)^-λ before the annealed mean / mode:
    checked against the (pixels, k, q) marginal built by hand, and against the smoothed prior's formula."""
    from latentvar.colorize.quantize import bin_prior, rebalance_weights

    k, nl, q = 3, 10, 261
    g = torch.Generator().manual_seed(3)
    log_w = torch.log_softmax(torch.randn(6, 5, k, generator=g), -1)
    table = torch.log_softmax(torch.randn(k, nl, q, generator=g), -1)
    lbin = torch.randint(0, nl, (6, 5), generator=g)
    y = torch.randint(0, 40, (500,), generator=g)  # a prior concentrated on the first 40 bins
    prior = bin_prior(y, q)
    counts = torch.bincount(y, minlength=q).double()
    torch.testing.assert_close(prior, 0.5 * counts / 500 + 0.5 / q)
    assert abs(float(prior.sum()) - 1) < 1e-12
    centres = ABBins().centres
    marginal = torch.logsumexp(log_w[..., None] + table[:, lbin].permute(1, 2, 0, 3), dim=2)  # (6, 5, q)
    for lam in (0.3, 1.0):
        w = rebalance_weights(prior, lam)
        assert float(w.max()) == 1.0
        torch.testing.assert_close(
            w.double().log(), -lam * prior.log() + lam * prior.log().min(), atol=1e-5, rtol=0
        )
        adjusted = marginal - lam * prior.log().float()
        want = torch.softmax(adjusted / 0.5, -1) @ centres
        got = grids.mixture_decode(log_w, table, lbin, centres, 0.5, bin_weights=w)
        torch.testing.assert_close(got, want, atol=1e-3, rtol=0)
        mode = grids.mixture_decode(log_w, table, lbin, centres, 0.5, decode="mode", bin_weights=w)
        torch.testing.assert_close(mode, centres[adjusted.argmax(-1)])
    for bad in (torch.tensor([], dtype=torch.int64), torch.tensor([3, -1]), torch.tensor([q])):
        with pytest.raises(ValueError, match=r"^y: expected bin ids in \[0, 261\)"):
            bin_prior(bad, q)


def test_colorize_rebalance_reweights_the_law_and_names_bad_values():
    from latentvar.colorize.quantize import bin_prior

    c = _untrained()
    rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    plain = c.colorize(rgb)
    with pytest.raises(ValueError, match=r"^rebalance: this run carries no bin prior"):
        c.colorize(rgb, rebalance=0.5)
    np.testing.assert_array_equal(c.colorize(rgb, rebalance=0), plain)
    c.bin_prior = bin_prior(torch.arange(10).repeat(50), c.bins.num_bins)  # grey-ish bins common
    log_w, table, L = c._latent(rgb)
    w = c.rebalance_weights(0.7)
    want = c._finish(
        rgb,
        grids.mixture_decode(log_w, table, lightness_bin(L), c.bins.centres, c.temperature, "annealed", w),
        L,
    )
    got = c.colorize(rgb, rebalance=0.7)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, plain)
    for bad in (-0.1, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match=r"^rebalance: expected a finite number >= 0"):
            c.colorize(rgb, rebalance=bad)
    grey = Colorizer.grey()
    with pytest.raises(ValueError, match=r"^rebalance: a grey model predicts one colour"):
        grey.colorize(rgb, rebalance=0.5)


def test_mixture_decode_equals_the_brute_force_marginal():
    k, nl, q = 3, 10, 261
    log_w = torch.log_softmax(torch.randn(6, 5, k), -1)
    table = torch.log_softmax(torch.randn(k, nl, q), -1)
    lbin = torch.randint(0, nl, (6, 5))
    centres = ABBins().centres
    marginal = torch.logsumexp(log_w[..., None] + table[:, lbin].permute(1, 2, 0, 3), dim=2)  # (6, 5, q)
    for t in (0.38, 1.0):
        want = torch.softmax(marginal / t, -1) @ centres
        torch.testing.assert_close(
            grids.mixture_decode(log_w, table, lbin, centres, t), want, atol=1e-3, rtol=0
        )
    got = grids.mixture_decode(log_w, table, lbin, centres, 1.0, decode="mode")
    torch.testing.assert_close(got, centres[marginal.argmax(-1)])


def test_photo_trunk_sees_the_whole_crop():
    """The output at one corner depends on the input at the opposite corner (global feature + depth)."""
    trunk = PhotoTrunk(8)
    x = torch.zeros(1, 1, 64, 64, requires_grad=True)
    trunk(x)[0, :, 0, 0].sum().backward()
    assert x.grad[0, 0, -4:, -4:].abs().sum() > 0
    assert trunk(torch.zeros(2, 1, 48, 80)).shape == (2, 8, 12, 20)


def test_full_resolution_segments_follow_a_lightness_edge():
    """A dark | bright image with the edge at column 37 (not on the network's 4-px grid): the segment map
    changes exactly there, and the colour output keeps the input's size and its L."""
    c = _untrained()
    img = np.full((50, 70, 3), 220, np.uint8)
    img[:, :37] = 30
    seg = c.segment(img)
    assert seg.shape == (50, 70)
    assert (seg[:, :37] == seg[0, 0]).all() and (seg[:, 37:] == seg[0, -1]).all() and seg[0, 0] != seg[0, -1]
    out = c.colorize(img)
    assert out.shape == (50, 70, 3)
    from latentvar.colorize.lab import rgb_to_lab, to_float_rgb

    L_in, L_out = rgb_to_lab(to_float_rgb(img))[..., 0], rgb_to_lab(to_float_rgb(out))[..., 0]
    assert (L_in - L_out).abs().max() < 2.0  # the input's own lightness, pixel for pixel
    assert c.posterior_segment(img, img).shape == (50, 70)
    assert c.sample(img, 2).shape == (2, 50, 70, 3)
    assert math.isfinite(float(c.log_prob(img)))


def test_baselines_colorize_photos_at_their_size():
    for kind in ("per-pixel", "regression"):
        c = _untrained(kind)
        assert c.colorize(np.zeros((33, 65, 3), np.uint8)).shape == (33, 65, 3)


def test_crops_are_a_pure_function_of_seed_and_step(corpus):
    from latentvar.colorize.photos import load_photo_split

    crops = PhotoCrops(load_photo_split(corpus, "train"), crop=64)
    a, b = crops.batch(0, 5, 8), crops.batch(0, 5, 8)
    assert a.shape == (8, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, crops.batch(0, 6, 8)) and not np.array_equal(a, crops.batch(1, 5, 8))
    with pytest.raises(ValueError, match="^crop: "):
        PhotoCrops(load_photo_split(corpus, "train"), crop=128)


def test_photo_training_validates_keeps_the_best_and_stops_early(tmp_path, corpus):
    cfg = dict(data=str(corpus), segments=3, size=64, batch_size=4, width=8, hidden=8, lr=3e-3)
    meta = train(TrainConfig(**cfg, steps=6, val_every=2, out=str(tmp_path / "r")), show_progress=False)
    assert meta["config"]["arch"] == "photo" and [c["step"] for c in meta["validation"]] == [2, 4, 6]
    best = min(meta["validation"], key=lambda c: c["val"])
    _, best_meta = load_checkpoint(tmp_path / "r", name="best")
    assert best_meta["step"] == best["step"] == meta["best"]["step"]
    assert meta["best"]["gap"] == pytest.approx(best["val"] - best["train"])
    c = Colorizer.load(tmp_path / "r")  # the best-on-val weights
    assert c.meta["step"] == best["step"] and c.arch == "photo"
    # the val numbers the K rule compares, recomputed on the corpus: the run's own check of those weights
    again = corpus_validation(c, corpus)
    assert again["val_nll"] == pytest.approx(best["val"], abs=1e-4)
    assert again["val_auc"] == pytest.approx(best["val_auc"], abs=1e-4)
    # patience 1 with a learning rate that cannot improve: stops after the second check
    stopped = train(
        TrainConfig(**{**cfg, "lr": 1e-12}, steps=20, val_every=2, patience=1, out=str(tmp_path / "s")),
        show_progress=False,
    )
    assert stopped["step"] < 20 and len(stopped["validation"]) >= 2
    with pytest.raises(ValueError, match="^size: photo crops"):
        TrainConfig(data=str(corpus), size=48).check()
    with pytest.raises(ValueError, match="^device: "):
        TrainConfig(device="tpu").check()


@pytest.mark.slow
def test_photo_training_resumes_after_sigkill_to_the_unbroken_result(tmp_path, corpus):
    """SIGKILL a photo-corpus run once a checkpoint exists, resume it: the weights, Adam state, history and
    val checks equal an unbroken run's (crops, learning-rate schedule and val views are functions of the
    step)."""
    args = ["colorize", "train", "--data", str(corpus), "--segments", "3", "--size", "64", "--width", "8"]
    args += ["--batch-size", "4", "--val-every", "2", "--checkpoint-every", "2", "--lr-decay", "cosine"]
    killed = tmp_path / "killed"
    kill_once_checkpointed(CLI, killed, [*args, "--steps", "60", "--out", str(killed)])
    killed_at = load_checkpoint(killed)[1]["step"]
    assert 2 <= killed_at < 60
    common = dict(
        data=str(corpus),
        segments=3,
        size=64,
        width=8,
        batch_size=4,
        val_every=2,
        checkpoint_every=2,
        lr_decay="cosine",
        steps=60,
    )
    resumed = train(TrainConfig(**common, out=str(killed)), resume=True, show_progress=False)
    unbroken = train(TrainConfig(**common, out=str(tmp_path / "u")), show_progress=False)
    assert resumed["step"] == unbroken["step"] == 60
    assert resumed["history"] == unbroken["history"] and resumed["validation"] == unbroken["validation"]
    t1, t2 = load_checkpoint(killed)[0], load_checkpoint(tmp_path / "u")[0]
    assert t1.keys() == t2.keys() and all(torch.equal(t1[k], t2[k]) for k in t1)


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path, corpus):
    """`colorize train` under torchrun (env:// rendezvous, 2 processes on gloo) = one process."""
    common = ["colorize", "train", "--data", str(corpus), "--segments", "3", "--size", "64", "--width", "8"]
    common += ["--batch-size", "4", "--steps", "3", "--val-every", "0"]
    one = tmp_path / "one"
    train(
        TrainConfig(
            data=str(corpus), segments=3, size=64, width=8, batch_size=4, steps=3, val_every=0, out=str(one)
        ),
        show_progress=False,
    )
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "latentvar", *common]
    proc = subprocess.run([*cmd, "--out", str(tmp_path / "two")], env=ENV, capture_output=True, timeout=240)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    t1, _ = load_checkpoint(one)
    t2, meta = load_checkpoint(tmp_path / "two")
    assert meta["config"]["devices"] == 2
    for name in t1:
        if name.startswith("model."):
            torch.testing.assert_close(t1[name], t2[name], atol=1e-4, rtol=1e-4)


def test_shipped_models_load_by_name():
    photo, emoji = Colorizer.load(), Colorizer.load("twemoji")
    assert photo.arch == "photo" and photo.kind == "latent"
    assert emoji.arch == "emoji" and emoji.size == 32
    assert photo.colorize(np.zeros((40, 30, 3), np.uint8)).shape == (40, 30, 3)
    # the shipped photo model decodes rebalanced by its own train bin prior, chosen on val
    assert photo.bin_prior is not None and photo.bin_prior.shape == (photo.bins.num_bins,)
    assert abs(float(photo.bin_prior.sum()) - 1) < 1e-9 and photo.rebalance >= 0 and emoji.rebalance == 0
    # every segment of every shipped model has its own colour in segment maps and overlays
    from latentvar.colorize.visual import SEGMENT_PALETTE

    for model in (photo, emoji):
        k = model.meta["config"]["segments"]
        assert len({tuple(c) for c in SEGMENT_PALETTE[:k].tolist()}) == k
    with pytest.raises(FileNotFoundError, match="^run: no checkpoint"):
        Colorizer.load("no-such-model")


def test_apply_photos_as_people_have_them(tmp_path):
    """Default model (no --run); a rotated phone photo comes out upright at its size; a corrupt file is
    `error: ...` with exit status 2."""
    rng = np.random.default_rng(1)
    photo = Image.fromarray(_photo(rng, 60, 90))  # stored 60 x 90 (h x w), EXIF says rotate 90° -> 90 x 60
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    Image.fromarray(_photo(rng, 40, 52)).save(tmp_path / "plain.tif")
    out = tmp_path / "out"
    args = ["colorize", "apply", str(tmp_path / "phone.jpg"), str(tmp_path / "plain.tif")]
    result = runner.invoke(app, [*args, "--out", str(out), "--samples", "1"])
    assert result.exit_code == 0, result.output
    for stem, size in (("phone", (60, 90)), ("plain", (52, 40))):
        for suffix in ("color", "segments", "overlay", "sample0"):
            with Image.open(out / f"{stem}_{suffix}.png") as im:
                assert im.size == size, (stem, suffix, im.size)
    # readable by others (0644 under the usual umask), not mkstemp's 0600
    assert stat.S_IMODE((out / "phone_color.png").stat().st_mode) == FILE_MODE and FILE_MODE & 0o044
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = runner.invoke(app, ["colorize", "apply", str(tmp_path / "bad.jpg"), "--out", str(out)])
    assert result.exit_code == 2 and "bad.jpg" in result.output and "Traceback" not in result.output


def test_overlay_draws_boundaries_and_keeps_size():
    from latentvar.colorize.visual import boundaries, overlay

    seg = np.zeros((10, 12), np.int64)
    seg[:, 7:] = 1
    edge = boundaries(seg)
    assert edge[:, 6].all() and edge.sum() == 10
    out = overlay(np.zeros((10, 12, 3), np.uint8), seg)
    assert out.shape == (10, 12, 3) and (out[:, 6] == 255).all() and (out[:, 0] != 255).all()
    with pytest.raises(ValueError, match="^segments: "):
        overlay(np.zeros((10, 11, 3), np.uint8), seg)


def test_eval_on_a_photo_corpus(tmp_path, corpus):
    run = tmp_path / "run"
    cfg = TrainConfig(
        data=str(corpus),
        segments=3,
        size=64,
        batch_size=4,
        width=8,
        hidden=8,
        steps=2,
        val_every=0,
        out=str(run),
    )
    train(cfg, show_progress=False)
    report = tmp_path / "m.json"
    for extra in (["--run", str(run)], ["--baseline", "grey"]):
        result = runner.invoke(
            app, ["colorize", "eval", "--data", str(corpus), *extra, "--json", str(report)]
        )
        assert result.exit_code == 0, result.output
        metrics = json.loads(report.read_text())
        assert metrics["num_images"] == 2 and metrics["split"] == "test" and 0 < metrics["auc"] <= 1


EXAMPLE = Path(__file__).resolve().parents[1] / "src/latentvar/data/photo_examples/lxqt-themes__fog.jpg"


def test_palettes_are_the_segments_colour_law_by_brute_force():
    """p̄_k(q) = Σ_p P(z_p=k|x) P(q|k,x_p) / Σ_p P(z_p=k|x), summed pixel by pixel here."""
    from latentvar.colorize.model import lightness_bin

    colorizer, photo = Colorizer.load(), np.asarray(Image.open(EXAMPLE).convert("RGB"))
    with torch.no_grad():
        log_w, table, L = colorizer._latent(photo)
    w, lb = log_w.double().exp().reshape(-1, log_w.shape[-1]), lightness_bin(L).reshape(-1)
    per_pixel = table.double().exp()[:, lb].permute(1, 0, 2)  # (p, k, q)
    law = ((w[..., None] * per_pixel).sum(0) / w.sum(0)[:, None]).float()
    assert w.sum(0).min() < 1.0  # a segment this photo barely uses (under one of ~42,000 pixels): its own law
    for s in colorizer.palettes(photo, 5):
        probs, idx = law[s["segment"]].topk(5)
        assert torch.allclose(torch.tensor([c["probability"] for c in s["colours"]]), probs, atol=1e-5)
        assert [c["ab"] for c in s["colours"]] == colorizer.bins.centres[idx].tolist()


def test_recoloured_pixels_take_the_chosen_colour_where_the_law_allows():
    """The tilt with a narrow width gives the chosen colour itself wherever the law puts mass near it."""
    from latentvar.colorize.lab import rgb_to_lab

    c = Colorizer.load()
    rgb = np.full((64, 64, 3), 128, np.uint8)  # mid grey: L ≈ 54, where most ab bins are in gamut
    seg = c.segment(rgb, dtype=np.uint8)
    k = int(seg[0, 0])
    out = c.recolour(rgb, k, (20.0, -30.0), segments=seg, width=2.0)
    ab = rgb_to_lab(torch.from_numpy(out[seg == k]).float() / 255)[:, 1:]
    assert torch.allclose(ab.mean(0), torch.tensor([20.0, -30.0]), atol=2.0)


def test_recolour_refuses_bad_arguments_by_name():
    c, rgb = Colorizer.load(), np.full((32, 32, 3), 100, np.uint8)
    k = c.meta["config"]["segments"]
    for kwargs, message in [
        ({"segment": k, "ab": (0, 0)}, rf"^segment: expected a segment id in 0\.\.{k - 1}, got {k}"),
        ({"segment": 0, "ab": (150, 0)}, r"^ab: \(150, 0\) is outside the sRGB gamut"),
        ({"segment": 0, "ab": (1, 2, 3)}, r"^ab: expected a colour \(a, b\) of two finite numbers"),
        ({"segment": 0, "ab": (0, 0), "width": 0}, r"^width: expected a positive number"),
        ({"segment": 0, "ab": (0, 0), "base": np.zeros((2, 2, 3), np.uint8)}, r"^base: expected RGB uint8"),
        (
            {"segment": 0, "ab": (0, 0), "segments": np.zeros((2, 2))},
            r"^segments: expected the image's shape",
        ),
        ({"segment": 0, "ab": (0, 0), "where": np.ones((2, 2), bool)}, r"^where: expected a bool mask"),
        ({"segment": 0, "ab": (0, 0), "where": np.ones((32, 32))}, r"^where: expected a bool mask"),
    ]:
        with pytest.raises(ValueError, match=message):
            c.recolour(rgb, **kwargs)
    with pytest.raises(ValueError, match=r"^n: expected an integer number of colours in 1\.\.261"):
        c.palettes(rgb, 0)


def test_region_at_is_the_connected_part_of_the_segment_under_the_pixel():
    """8-neighbour connected regions, checked on a drawn map: two diagonal-touching pixels are one region,
    the same segment across a gap another; a bad pixel is refused by name."""
    from latentvar.colorize.colorizer import region_at

    seg = np.zeros((5, 6), np.uint8)
    seg[0, 0] = seg[1, 1] = 2  # diagonal neighbours: one region
    seg[4, 5] = 2  # the same segment, elsewhere
    region = region_at(seg, 0, 0)
    assert region.sum() == 2 and region[1, 1] and not region[4, 5]
    assert region_at(seg, 5, 4).sum() == 1
    assert region_at(seg, 3, 2).sum() == 30 - 3  # segment 0: everything else, one region
    for x, y, message in [
        (6, 0, r"^x: expected a pixel index in 0\.\.5"),
        (0, -1, r"^y: expected"),
        (0.5, 0, r"^x: "),
    ]:
        with pytest.raises(ValueError, match=message):
            region_at(seg, x, y)
