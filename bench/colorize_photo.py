"""Photo colorizer speed and memory: training crops/s, colorizing a 512×512 photo, apply on 12000×9000.

    PYTHONPATH=src python bench/colorize_photo.py [--repeats 5] [--steps 5] [--big]

- Training: optimiser steps on batches of 64 random 64×64 crops (the shipped photo model's settings:
  latent, the shipped photo model's K, photo trunk width 32), median of ``repeats`` runs of ``steps`` steps, with 1 and 2
  intra-op threads; the regression model (same trunk, no latent) is the in-process reference.
- Colorizing: `Colorizer.load().colorize(path)` on a 512×512 JPEG from disk (loading the model, reading,
  network, decoding, joint bilateral upsampling, Lab -> RGB), a fresh Colorizer per call, median of
  ``repeats``; also `segment`, `sample(n=3)` and all of `apply`'s outputs for one image.
- ``--big``: `latentvar colorize apply` on a generated 12000×9000 JPEG (--samples 1) in a subprocess, its
  peak resident memory (`resource.getrusage` of the child) and wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorize_speed import median_ms  # bench/ is on the path when this script runs
from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.model import build_model, parameter_count
from latentvar.colorize.quantize import ABBins

SEGMENTS = Colorizer.load().meta["config"]["segments"]  # the shipped photo model's K


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random 'photo' (low-frequency colour fields plus texture), RGB uint8."""
    rng = np.random.default_rng(seed)
    small = rng.random((max(2, h // 64), max(2, w // 64), 3)).astype(np.float32)
    img = np.asarray(
        Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
    )
    noise = rng.integers(-12, 13, size=(h, w, 1), dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def train_rate(kind: str, threads: int, steps: int, repeats: int) -> tuple[float, int]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    bins = ABBins()
    model = build_model(kind, bins.centres, segments=SEGMENTS, width=32, hidden=64, arch="photo")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    from latentvar.colorize.images import rgba_to_lab

    crops = np.stack([_photo(64, 64, s) for s in range(64)])
    L, ab = rgba_to_lab(crops)
    y = bins.encode(ab)
    rates = []
    for r in range(repeats + 1):  # the first run warms up
        start = time.perf_counter()
        for _ in range(steps):
            loss = model(L, y, ab)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if r:
            rates.append(steps * 64 / (time.perf_counter() - start))
    return statistics.median(rates), parameter_count(model)


def apply_all(c: Colorizer, path: Path) -> None:
    """What `colorize apply` computes per image: colour, segments, overlay, 3 samples (no PNG writing)."""
    from latentvar.colorize.colorizer import as_image
    from latentvar.colorize.visual import overlay

    rgb = as_image(path)
    c.colorize(rgb)
    overlay(rgb, c.segment(rgb, dtype=np.uint8))
    c.sample(rgb, 3)


def big_apply(tmp: Path) -> tuple[float, float]:
    path = tmp / "big.jpg"
    img = np.concatenate([_photo(1000, 12000, s) for s in range(9)], axis=0)  # 9000 x 12000
    Image.fromarray(img).save(path, quality=90)
    del img
    code = "import sys; from latentvar.cli import main; sys.argv[0] = 'latentvar'; main()"
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "colorize",
            "apply",
            str(path),
            "--out",
            str(tmp / "out"),
            "--samples",
            "1",
        ],
        check=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak_kib / 2**20, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--big", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    if not args.skip_training:
        train_table(args)
    photo_table(args)


def train_table(args) -> None:
    print("training, 64x64 crops, batch 64, photo trunk width 32")
    print(f"{'model':<12}{'threads':>8}{'parameters':>12}{'crops/s':>10}{'vs regression':>15}")
    for threads in (1, 2):
        ref, _ = train_rate("regression", threads, args.steps, args.repeats)
        for kind in ("regression", "latent", "per-pixel"):
            rate, params = (
                ref,
                parameter_count(build_model(kind, ABBins().centres, SEGMENTS, 32, 64, "photo")),
            )
            if kind != "regression":
                rate, params = train_rate(kind, threads, args.steps, args.repeats)
            print(f"{kind:<12}{threads:>8}{params:>12,}{rate:>10.0f}{rate / ref:>15.2f}")


def photo_table(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        Image.fromarray(_photo(512, 512)).save(tmp / "p512.jpg", quality=90)
        fresh = Colorizer.load  # a new Colorizer per call: no network pass reused from the last call
        for threads in (1, 2):
            torch.set_num_threads(threads)
            print(
                f"\n512x512 JPEG from disk, shipped photo model, {threads} thread(s), median of {args.repeats}"
            )
            for what, call in (
                ("colorize", lambda: fresh().colorize(tmp / "p512.jpg")),
                ("segment", lambda: fresh().segment(tmp / "p512.jpg")),
                ("sample(n=3)", lambda: fresh().sample(tmp / "p512.jpg", 3)),
                ("apply's 4 outputs", lambda: apply_all(fresh(), tmp / "p512.jpg")),
            ):
                print(f"{what:<14}{median_ms(call, args.repeats):8.0f} ms")
        if args.big:
            peak, wall = big_apply(tmp)
            print(f"\napply on a 12000x9000 JPEG (--samples 1): peak RSS {peak:.2f} GiB, {wall:.1f} s wall")


if __name__ == "__main__":
    main()
