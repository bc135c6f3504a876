"""The streaming photo data path: every kind of collection, the corpus's crops unchanged, JPEG draft
decoding, batches a pure function of (seed, step) whatever the workers and ranks, SIGKILL-and-resume,
a folder of photos as people have them (mixed sizes, orientations, formats, corrupt files), and the scale
knobs (gradient accumulation, a deeper trunk)."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from killing import CLI, kill_once_checkpointed
from latentvar.cli import app
from latentvar.colorize.batches import Batches
from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.crops import PhotoCrops, split_paths
from latentvar.colorize.model import build_model
from latentvar.colorize.photos import split_of, write_manifest
from latentvar.colorize.quantize import ABBins
from latentvar.colorize.sources import open_collection
from latentvar.colorize.stream import CropSampler, read_rgb_for_side
from latentvar.colorize.train import TrainConfig, restore_model, train
from latentvar.io import load_checkpoint

runner = CliRunner()
SMALL = dict(segments=3, width=8, hidden=8, batch_size=4, size=64)


def _photo(rng, h, w) -> np.ndarray:
    """Sky over ground with a random horizon, smooth colour gradients and noise (JPEG-friendly)."""
    img = np.empty((h, w, 3), np.float64)
    horizon = rng.integers(h // 3, 2 * h // 3)
    img[:horizon] = rng.uniform([0.3, 0.5, 0.8], [0.5, 0.7, 1.0])
    img[horizon:] = rng.uniform([0.1, 0.4, 0.1], [0.4, 0.6, 0.3])
    img *= np.linspace(0.8, 1.1, w)[None, :, None]
    img += rng.normal(0, 0.04, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _exif_rotated_jpeg(rgb: np.ndarray) -> bytes:
    """A JPEG stored sideways with EXIF Orientation 6 (rotate 90° CW to view), as phones write them."""
    im = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1)))  # stored turned left
    exif = im.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


CORRUPT = ("broken/garbage.jpg", "broken/truncated.jpg", "broken/empty.png")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder a user would have: JPEG landscape and portrait at several sizes, an EXIF-rotated phone
    photo, PNG (RGBA with transparency, 16-bit grey), WebP, BMP, TIFF, a CMYK JPEG, nested folders, a
    text file, and three corrupt images."""
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(1)
    for sub in ("2023/holiday", "2024", "broken", "misc"):
        (root / sub).mkdir(parents=True)
    sizes = [(480, 640), (640, 480), (300, 900), (1200, 800), (200, 260), (150, 150), (720, 405), (333, 500)]
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(_photo(rng, h, w)).save(root / ("2023/holiday" if i % 2 else "2024") / f"img{i}.jpg")
    (root / "2024" / "phone.jpg").write_bytes(_exif_rotated_jpeg(_photo(rng, 300, 400)))
    rgba = np.concatenate([_photo(rng, 256, 320), np.full((256, 320, 1), 255, np.uint8)], -1)
    rgba[:40, :40, 3] = 0
    Image.fromarray(rgba, "RGBA").save(root / "misc" / "cutout.png")
    grey16 = (_photo(rng, 200, 300)[..., 1].astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(root / "misc" / "scan16.png")
    Image.fromarray(_photo(rng, 240, 360)).save(root / "misc" / "web.webp", quality=85)
    Image.fromarray(_photo(rng, 210, 280)).save(root / "misc" / "old.bmp")
    Image.fromarray(_photo(rng, 260, 200)).save(root / "misc" / "scan.tiff")
    Image.fromarray(_photo(rng, 300, 300)).convert("CMYK").save(root / "misc" / "print.jpg")
    (root / "misc" / "notes.txt").write_text("not an image")
    (root / CORRUPT[0]).write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG at all")
    good = (root / "2024" / "img0.jpg").read_bytes()
    (root / CORRUPT[1]).write_bytes(good[: len(good) // 3])
    (root / CORRUPT[2]).write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    entries = []
    for i, split in enumerate(["train"] * 6 + ["val"] * 2 + ["test"] * 2):
        h, w = (384, 512) if i % 2 else (512, 352)  # as large as the corpus keeps: JPEG draft would apply
        Image.fromarray(_photo(rng, h, w)).save(root / "images" / f"p{i}.jpg", quality=92)
        entries.append({"id": f"p{i}", "split": split, "package": "synthetic", "licence": "CC0-1.0"})
    write_manifest(root / "manifest.json", entries, {"num_photos": len(entries)})
    return root


def test_a_corpus_streams_the_crops_photocrops_made(corpus):
    """The prepared corpus trains on exactly the crops of the in-memory `PhotoCrops` (same draws, same
    Lanczos pyramid levels), now read on the fly."""
    coll = open_collection(corpus)
    assert coll.kind == "corpus" and len(coll.train) == 6 and len(coll.val) == 2
    sampler = CropSampler(coll, coll.train, 64)
    reference = PhotoCrops(split_paths(corpus, "train"), crop=64)
    assert sampler.sides == reference.sides
    for seed, step in [(0, 0), (0, 7), (3, 2)]:
        got, skipped = sampler.rows(seed, step, 8, 0, 8)
        np.testing.assert_array_equal(got, reference.batch(seed, step, 8))
        assert skipped == []
        part, _ = sampler.rows(seed, step, 8, 2, 6)  # a rank's rows are those rows of the global batch
        np.testing.assert_array_equal(part, got[2:6])


def test_folder_list_and_tar_shards_are_one_collection(tmp_path, photos):
    folder = open_collection(photos)
    assert folder.kind == "folder" and len(folder) == 18  # 15 images + 3 corrupt; notes.txt is not listed
    names = [folder.names[i] for i in range(len(folder))]
    assert names == sorted(names) and "misc/notes.txt" not in names
    # the val split is fixed by each file's own name (sha256), whatever else is in the collection
    assert [names[i] for i in folder.val] == [n for n in names if split_of(n) == "val"]
    listing = tmp_path / "list.txt"
    listing.write_text("# my photos\n\n" + "\n".join(str(photos / n) for n in names) + "\n")
    listed = open_collection(listing)
    assert listed.kind == "list" and [listed.label(i) for i in range(len(listed))] == [
        folder.label(i) for i in range(len(folder))
    ]
    relative = photos / "mine.txt"  # relative to the list's folder: the same files, the same split
    relative.write_text("\n".join(names) + "\n")
    mine = open_collection(relative)
    assert [mine.label(i) for i in range(len(mine))] == [folder.label(i) for i in range(len(folder))]
    assert np.array_equal(mine.val, folder.val) and np.array_equal(mine.train, folder.train)
    shards = tmp_path / "shards"
    shards.mkdir()
    for s in range(2):  # WebDataset layout: <key>.<ext> members, a .json beside each image
        with tarfile.open(shards / f"train-{s:06d}.tar", "w") as tar:
            for i, n in enumerate(names[s::2]):
                key = f"{s:02d}{i:04d}"
                tar.add(photos / n, arcname=f"{key}{Path(n).suffix}")
                meta = json.dumps({"path": n}).encode()
                info = tarfile.TarInfo(f"{key}.json")
                info.size = len(meta)
                tar.addfile(info, io.BytesIO(meta))
    tars = open_collection(shards)
    assert tars.kind == "tar" and len(tars) == len(folder)
    one = open_collection(shards / "train-000001.tar")
    assert one.kind == "tar" and len(one) == len(names[1::2])
    for i in range(len(tars)):  # each member reads back byte for byte
        s, k = divmod(i, len(names[0::2]))
        original = names[0::2][k] if s == 0 else names[1::2][k]
        assert tars.source(i).read() == (photos / original).read_bytes()
    with pytest.raises(ValueError, match="^data: "):
        open_collection(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="^data: no image files"):
        open_collection(tmp_path / "empty")


def test_draft_decodes_only_the_resolution_needed_and_matches_a_full_decode(photos):
    """A JPEG read for a 96-px short side decodes at 1/8 of its 800 × 1200 px (libjpeg's DCT scaling),
    and the result is within a few grey levels of the full decode resized the same way."""
    path = photos / "2023" / "holiday" / "img3.jpg"  # 800 wide, 1200 high
    fast = read_rgb_for_side(str(path), 96)
    full = read_rgb_for_side(str(path), 96, draft=False)
    assert fast.shape == full.shape == (144, 96, 3)
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 3.0
    with Image.open(path) as im:
        im.draft(None, (96, 144))  # what read_rgb_for_side asks for
        assert im.size == (100, 150)  # the decoder's size: 1/8, not 800 × 1200
    # resampling only the crop's box: the crop of the whole resize, up to rounding
    from latentvar.colorize.stream import crop_at, decode_for_side

    rgb = decode_for_side(str(path), 150, draft=False)
    for where, flip in [((0.0, 0.0), False), ((0.99, 0.99), True), ((0.3, 0.7), False)]:
        exact = crop_at(rgb, 150, where, flip, 64, exact=True)
        boxed = crop_at(rgb, 150, where, flip, 64, exact=False)
        assert boxed.shape == exact.shape == (64, 64, 3)
        assert np.abs(boxed.astype(int) - exact.astype(int)).max() <= 2
    # EXIF orientation applied: the phone photo (stored sideways) comes out in landscape
    assert read_rgb_for_side(str(photos / "2024" / "phone.jpg"), 96).shape == (96, 128, 3)


def _batches(config: TrainConfig, workers: int, rank: int, steps: range):
    config.workers = workers
    config.check()
    b = Batches(config, ABBins(), torch.device("cpu"))
    b.start(rank, steps.start)
    try:
        return [b(s, rank) for s in steps], b
    finally:
        b.close()


def test_a_batch_is_a_pure_function_of_seed_and_step_whatever_the_workers_and_ranks(tmp_path, photos):
    cfg = dict(data=str(photos), steps=9, out=str(tmp_path / "x"), **SMALL)
    alone, _ = _batches(TrainConfig(**cfg), 0, 0, range(2, 9))
    for rank in (0, 1):
        two, b = _batches(TrainConfig(**cfg, devices=2), 2, rank, range(2, 9))
        for whole, part in zip(alone, two, strict=True):
            for x, y in zip(whole, part, strict=True):
                torch.testing.assert_close(x[2 * rank : 2 * rank + 2], y, atol=0, rtol=0)
    direct = b(5, 0)  # a step out of the loader's order is made in-process, the same
    torch.testing.assert_close(direct[0], _batches(TrainConfig(**cfg), 1, 0, range(5, 6))[0][0][0][:2])


def test_two_workers_two_ranks_train_as_no_workers_one_rank(tmp_path, photos):
    """DDP on gloo, 2 processes with 2 loader workers each = one process decoding in-line: same weights
    (the DDP test's tolerance)."""
    common = dict(data=str(photos), steps=3, val_every=0, **SMALL)
    one = train(TrainConfig(**common, out=str(tmp_path / "one")), show_progress=False)
    two = train(TrainConfig(**common, out=str(tmp_path / "two"), devices=2, workers=2), show_progress=False)
    assert one["step"] == two["step"] == 3 and two["config"]["workers"] == 2
    t1, t2 = load_checkpoint(tmp_path / "one")[0], load_checkpoint(tmp_path / "two")[0]
    for name in t1:
        if name.startswith("model."):
            torch.testing.assert_close(t1[name], t2[name], atol=1e-4, rtol=1e-4)


def test_train_on_a_folder_of_ordinary_photos_skips_and_names_the_corrupt_files(tmp_path, photos):
    out = tmp_path / "run"
    args = ["colorize", "train", "--data", str(photos), "--segments", "3", "--width", "8", "--steps", "6"]
    args += ["--batch-size", "8", "--workers", "2", "--val-every", "3", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["config"]["arch"] == "photo" and meta["config"]["size"] == 64  # photo sizes: crops
    assert meta["num_train_images"] == len(open_collection(photos).train)
    named = {Path(name).relative_to(photos).as_posix() for name, _ in meta["skipped_files"]}
    assert named and named <= set(CORRUPT) and meta["num_skipped"] == len(named)
    for name in named:
        assert f"skipped unreadable file {photos / name}" in result.output
    assert [c["step"] for c in meta["validation"]] == [3, 6] and np.isfinite(meta["best"]["val_nll"])
    c = Colorizer.load(out)
    assert c.colorize(np.full((50, 70, 3), 128, np.uint8)).shape == (50, 70, 3)


def test_unreadable_collections_and_bad_knobs_name_the_argument(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"nope")
    cfg = TrainConfig(data=str(bad), arch="photo", out=str(tmp_path / "r"), steps=1)
    with pytest.raises(ValueError, match="^data: no readable image"):
        train(cfg, show_progress=False)
    listing = tmp_path / "list.txt"
    listing.write_text("does/not/exist.jpg\n")
    with pytest.raises(ValueError, match="^data: no readable image"):
        train(TrainConfig(data=str(listing), out=str(tmp_path / "r"), steps=1), show_progress=False)
    for kw, name in [
        ({"workers": -1}, "workers"),
        ({"accumulate": 0}, "accumulate"),
        ({"accumulate": 3, "batch_size": 4}, "batch_size"),
        ({"depth": 2, "arch": "emoji"}, "depth"),
        ({"bf16": "yes"}, "bf16"),
        ({"val_images": 0}, "val_images"),
    ]:
        with pytest.raises(ValueError, match=f"^{name}: "):
            TrainConfig(**kw).check()


def test_gradient_accumulation_is_the_full_batch_step(tmp_path, photos):
    from latentvar.colorize.train import _step

    cfg = TrainConfig(data=str(photos), steps=1, **{**SMALL, "batch_size": 8})
    cfg.check()
    batch = Batches(cfg, ABBins(), torch.device("cpu"))(0, 0)
    grads = []
    for parts in (1, 4):  # SGD with lr 1: the weights move by minus the gradient (Adam would hide a scale)
        torch.manual_seed(0)
        model = build_model("latent", ABBins().centres, 3, 8, 8, "photo")
        before = [p.detach().clone() for p in model.parameters()]
        cfg.accumulate = parts
        _step(model, torch.optim.SGD(model.parameters(), lr=1.0), batch, cfg, 0)
        grads.append(
            torch.cat([(b - p.detach()).flatten() for b, p in zip(before, model.parameters(), strict=True)])
        )
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-4)
    # balance=0: the learned prior's balance term is an entropy of the batch's mean P(z|x), taken per
    # micro-batch under accumulation (documented), so only without it is the step exactly the full batch's
    common = dict(data=str(photos), steps=3, val_every=0, balance=0.0, **{**SMALL, "batch_size": 8})
    whole = train(TrainConfig(**common, out=str(tmp_path / "a")), show_progress=False)
    parts = train(TrainConfig(**common, out=str(tmp_path / "b"), accumulate=4), show_progress=False)
    assert whole["history"] == pytest.approx(parts["history"], abs=1e-5)
    t1, t2 = load_checkpoint(tmp_path / "a")[0], load_checkpoint(tmp_path / "b")[0]
    for name in t1:
        if name.startswith("model."):
            torch.testing.assert_close(t1[name], t2[name], atol=1e-4, rtol=1e-4)


def test_a_deeper_trunk_trains_and_round_trips_through_its_checkpoint(tmp_path, photos):
    bins = ABBins()
    base = build_model("latent", bins.centres, 3, 8, 8, "photo")
    assert (
        base.state_dict().keys()
        == build_model("latent", bins.centres, 3, 8, 8, "photo", 0).state_dict().keys()
    )
    deep = build_model("latent", bins.centres, 3, 8, 8, "photo", depth=2)
    assert sum(p.numel() for p in deep.parameters()) > sum(p.numel() for p in base.parameters())
    meta = train(
        TrainConfig(data=str(photos), steps=2, val_every=0, depth=2, out=str(tmp_path / "d"), **SMALL),
        show_progress=False,
    )
    tensors, saved = load_checkpoint(tmp_path / "d")
    assert saved["config"]["depth"] == 2 and meta["parameters"] == sum(p.numel() for p in deep.parameters())
    restored = restore_model(tensors, saved)  # strict: every tensor of the deeper trunk must fit
    L = torch.full((1, 64, 64), 50.0)
    assert torch.isfinite(restored.log_probs(L)).all()
    old = dict(saved, config={k: v for k, v in saved["config"].items() if k != "depth"})
    with pytest.raises(RuntimeError):  # a run from before the knob is read as depth 0
        restore_model(tensors, old)


def test_a_deeper_trunk_warm_started_from_a_shallower_one_starts_as_that_model():
    """The new residual blocks start as the identity (their second convolution is zero), so a depth-2 model
    given a depth-0 model's weights gives the same P(z|x) and colour laws until it trains."""
    bins = ABBins()
    torch.manual_seed(0)
    base = build_model("latent", bins.centres, 3, 8, 8, "photo")
    deep = build_model("latent", bins.centres, 3, 8, 8, "photo", depth=2)
    missing, unexpected = deep.load_state_dict(base.state_dict(), strict=False)
    assert unexpected == [] and missing and all(".deep." in k for k in missing)
    L = torch.rand(2, 64, 64) * 100
    with torch.no_grad():
        assert torch.allclose(deep.log_probs(L), base.log_probs(L), atol=1e-6)
        block = deep.net.trunk.deep[0]
        x = torch.rand(1, 32, 4, 4)  # non-negative, as the ReLU before it gives
        assert torch.equal(block(x), x)


@pytest.mark.slow
def test_sigkill_and_resume_with_workers_equals_an_unbroken_run(tmp_path, photos):
    args = ["colorize", "train", "--data", str(photos), "--segments", "3", "--width", "8", "--workers", "2"]
    args += ["--batch-size", "4", "--val-every", "4", "--checkpoint-every", "2", "--lr-decay", "cosine"]
    killed = tmp_path / "killed"
    kill_once_checkpointed(CLI, killed, [*args, "--steps", "40", "--out", str(killed)])
    killed_at = load_checkpoint(killed)[1]["step"]
    assert 2 <= killed_at < 40
    small = {k: v for k, v in SMALL.items() if k != "hidden"}  # the CLI has no --hidden
    common = dict(data=str(photos), val_every=4, checkpoint_every=2, lr_decay="cosine", steps=40, **small)
    resumed = train(TrainConfig(**common, workers=2, out=str(killed)), resume=True, show_progress=False)
    unbroken = train(TrainConfig(**common, out=str(tmp_path / "u")), show_progress=False)
    assert resumed["step"] == unbroken["step"] == 40
    assert resumed["history"] == unbroken["history"] and resumed["validation"] == unbroken["validation"]
    assert resumed["num_skipped"] == unbroken["num_skipped"]
    t1, t2 = load_checkpoint(killed)[0], load_checkpoint(tmp_path / "u")[0]
    assert t1.keys() == t2.keys() and all(torch.equal(t1[k], t2[k]) for k in t1)


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [1, 2])
def test_torchrun_two_processes_with_workers_on_a_folder_match_one(tmp_path, photos, nodes):
    """`torchrun` (env:// rendezvous, 2 processes on gloo), 2 loader workers each, on a folder of photos =
    one process decoding in-line: one node of 2 processes, or 2 nodes of one (``--nnodes 2``, static
    rendezvous at a master address, as on a cluster; here both nodes are this machine)."""
    import os
    import shutil
    import socket
    import subprocess
    import sys

    from killing import ENV

    one = tmp_path / "one"
    kw = {k: v for k, v in SMALL.items() if k != "hidden"}  # the CLI has no --hidden
    train(TrainConfig(data=str(photos), steps=3, val_every=0, out=str(one), **kw), show_progress=False)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    args = ["colorize", "train", "--data", str(photos), *flags, "--steps", "3", "--val-every", "0"]
    args += ["--workers", "2", "--out", str(tmp_path / "two")]
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if nodes == 1:
        launches = [[torchrun, "--standalone", "--nproc-per-node", "2"]]
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        at = ["--nnodes", "2", "--nproc-per-node", "1", "--master-addr", "127.0.0.1", f"--master-port={port}"]
        launches = [[torchrun, *at, f"--node-rank={rank}"] for rank in range(2)]
    procs = [
        subprocess.Popen(
            [*cmd, "-m", "latentvar", *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for cmd in launches
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err.decode()[-3000:]
    t1 = load_checkpoint(one)[0]
    t2, meta = load_checkpoint(tmp_path / "two")
    assert meta["config"]["devices"] == 2 and meta["config"]["workers"] == 2
    for name in t1:
        if name.startswith("model."):
            torch.testing.assert_close(t1[name], t2[name], atol=1e-4, rtol=1e-4)
