"""Colorization end to end: image folders (with broken files), CLI train -> apply -> eval, resume after
SIGKILL, 2-process DDP on gloo, pickles refused."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from killing import CLI, kill_once_checkpointed
from latentvar.cli import app
from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.images import load_image_folder
from latentvar.colorize.train import TrainConfig, train
from latentvar.data.twemoji import load_twemoji
from latentvar.io import load_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Eight Twemoji test images as PNGs (one in a subfolder, one RGB jpg), plus two broken files."""
    root = tmp_path_factory.mktemp("images")
    (root / "sub").mkdir()
    for i, img in enumerate(load_twemoji("test", 32)[:8]):
        where = root / "sub" if i == 0 else root
        if i == 1:
            Image.fromarray(img[..., :3]).save(where / f"e{i}.jpg", quality=95)
        else:
            Image.fromarray(img, "RGBA").save(where / f"e{i}.png")
    (root / "garbage.png").write_bytes(b"definitely not a png")
    good = (root / "e2.png").read_bytes()
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    return root


def test_folder_loading_converts_modes_and_counts_broken_files(tmp_path, folder):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((20, 30)) * 65535).astype(np.uint16)).save(tmp_path / "grey16.png")
    Image.fromarray((rng.random((24, 24)) * 255).astype(np.uint8), "L").save(tmp_path / "grey.webp")
    Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).convert("P").save(tmp_path / "pal.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    got = load_image_folder(tmp_path, 16)
    assert got.images.shape == (3, 16, 16, 4) and got.images.dtype == np.uint8
    assert got.num_skipped == 1 and got.skipped[0][0].name == "broken.jpg"
    grey16 = got.images[[p.name for p in got.paths].index("grey16.png")]
    assert 60 < grey16[..., 0].mean() < 200  # scaled from 16 bits, not clipped to white
    both = load_image_folder(folder, 32)
    assert len(both.images) == 8 and both.num_skipped == 2
    with pytest.raises(ValueError, match=r"^size: "):
        load_image_folder(folder, 30)
    with pytest.raises(ValueError, match=r"^data: "):
        load_image_folder(tmp_path / "missing", 16)


def test_cli_train_apply_eval(tmp_path, folder):
    run = tmp_path / "run"
    args = [
        "colorize",
        "train",
        "--data",
        str(folder),
        "--model",
        "latent",
        "--segments",
        "3",
        "--size",
        "16",
    ]
    args += ["--steps", "4", "--batch-size", "4", "--checkpoint-every", "2", "--out", str(run)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 4 and meta["num_train_images"] == 8 and meta["num_skipped"] == 2
    assert len(meta["history"]) == 4

    out = tmp_path / "out"
    images = [str(folder / "e2.png"), str(folder / "e1.jpg")]
    result = runner.invoke(
        app, ["colorize", "apply", *images, "--run", str(run), "--out", str(out), "--samples", "2"]
    )
    assert result.exit_code == 0, result.output
    for stem in ("e2", "e1"):
        for suffix in ("color", "segments", "sample0", "sample1"):
            with Image.open(out / f"{stem}_{suffix}.png") as im:
                assert im.size == (32, 32)

    labels = tmp_path / "labels"
    labels.mkdir()
    for p in load_image_folder(folder, 16).paths:  # a 2-class labelling: opaque vs background
        with Image.open(p) as im:
            alpha = np.asarray(im.convert("RGBA").resize((16, 16)))[..., 3]
        Image.fromarray((alpha > 128).astype(np.uint8)).save(labels / f"{p.stem}.png")
    report = tmp_path / "eval.json"
    args = ["colorize", "eval", "--data", str(folder), "--run", str(run), "--labels", str(labels)]
    result = runner.invoke(app, [*args, "--json", str(report)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(report.read_text())
    for key in ("nll_nats_per_pixel", "auc", "psnr", "colorfulness", "num_images", "miou", "pixel_accuracy"):
        assert key in metrics, key
    assert metrics["num_images"] == 8 and 0 <= metrics["miou"] <= 1 and 0 < metrics["auc"] <= 1
    result = runner.invoke(app, [*args, "--bootstrap", "200", "--json", str(report)])
    assert result.exit_code == 0, result.output
    boot = json.loads(report.read_text())["vs_kmeans_grey"]  # mIoU's interval, re-matched per draw
    assert boot["miou"]["value"] == pytest.approx(metrics["miou"])
    assert boot["kmeans_grey_miou"]["value"] == pytest.approx(metrics["kmeans_grey_miou"])
    assert "mIoU - k-means" in result.output

    grey = tmp_path / "grey.json"
    result = runner.invoke(
        app, ["colorize", "eval", "--data", str(folder), "--baseline", "grey", "--json", str(grey)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(grey.read_text())["colorfulness"] < 1.0

    # no --run: the shipped photo model, as `apply` (issue 20; it used to exit 2 asking for --run)
    shipped = tmp_path / "shipped.json"
    result = runner.invoke(app, ["colorize", "eval", "--data", str(folder), "--json", str(shipped)])
    assert result.exit_code == 0, result.output
    assert json.loads(shipped.read_text())["model"] == "latent"
    result = runner.invoke(
        app, ["colorize", "eval", "--data", str(folder), "--run", "photo", "--baseline", "grey"]
    )
    assert result.exit_code == 2 and "run/baseline" in result.output
    result = runner.invoke(app, ["colorize", "train", "--model", "gan", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "model" in result.output


def test_resume_after_sigkill(tmp_path, folder):
    run = tmp_path / "run"
    args = ["colorize", "train", "--data", str(folder), "--model", "per-pixel", "--size", "16"]
    args += ["--batch-size", "4", "--steps", "100000", "--checkpoint-every", "3", "--out", str(run)]
    kill_once_checkpointed(CLI, run, args)
    tensors, meta = load_checkpoint(run)
    killed_at = meta["step"]
    assert killed_at >= 3 and killed_at % 3 == 0
    before = meta["history"]
    config = TrainConfig(
        data=str(folder), model="per-pixel", size=16, batch_size=4, steps=killed_at + 3, out=str(run)
    )
    resumed = train(config, resume=True, show_progress=False)
    assert resumed["step"] == killed_at + 3
    assert resumed["history"][:killed_at] == before and len(resumed["history"]) == killed_at + 3


def test_ddp_two_processes_matches_one(tmp_path, folder):
    """2-process DDP on gloo: averaged shard gradients = the full-batch gradient, so the weights agree."""
    common = {"data": str(folder), "model": "latent", "segments": 3, "size": 16, "batch_size": 4, "steps": 3}
    one = train(TrainConfig(**common, out=str(tmp_path / "one")), show_progress=False)
    two = train(TrainConfig(**common, out=str(tmp_path / "two"), devices=2), show_progress=False)
    assert one["step"] == two["step"] == 3
    t1, _ = load_checkpoint(tmp_path / "one")
    t2, _ = load_checkpoint(tmp_path / "two")
    for name in t1:
        if name.startswith("model."):
            torch.testing.assert_close(t1[name], t2[name], atol=1e-4, rtol=1e-4)


def test_pickles_are_refused(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "checkpoint.safetensors")
    (tmp_path / "checkpoint.json").write_text(json.dumps({"kind": "colorize-latent"}))
    with pytest.raises(ValueError, match=r"^run: .*pickle"):
        Colorizer.load(tmp_path)
    only_pickle = tmp_path / "p"
    only_pickle.mkdir()
    torch.save({"w": torch.zeros(2)}, only_pickle / "model.pt")
    with pytest.raises(FileNotFoundError, match="pickle"):
        Colorizer.load(only_pickle)
    with pytest.raises(ValueError, match=r"^run: .*pickle"):
        Colorizer.load(only_pickle / "model.pt")
