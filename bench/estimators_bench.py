"""Estimators of log P(y): accuracy against the exact LinearGaussian answer, and speed.

    PYTHONPATH=src python bench/estimators_bench.py [--repeats 3] [--threads 2]

1. AIS on the LinearGaussian (d_z = 16, d_y = 256; `benchmark_linear_gaussian`) against the exact
   log P(y): error and wall time (target: within 0.1 nats in <= 60 s).
2. IWAE(k = 5000) with the mean-field encoder against the exact value (target: within 1 nat).
3. IWAE(k = 1000) throughput on the DCGAN decoder at Twemoji size (3x32x32, 64 latent channels,
   randomly initialised -- the cost does not depend on the weights), measured on a subset of images and
   extrapolated to 1,000 images; the same on the LinearGaussian over 1,000 images, measured in full.
Times are medians over ``--repeats`` runs; the reference in the same process is the exact closed-form
log P(y) of the same images.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from latentvar import estimate
from latentvar.apps.images.dcgan import ConvEncoder, make_generator
from latentvar.apps.images.linear_gaussian import benchmark_linear_gaussian, mean_field_encoder


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ais-images", type=int, default=8)
    ap.add_argument("--ais-steps", type=int, default=1000)
    ap.add_argument("--ais-chains", type=int, default=64)
    ap.add_argument(
        "--dcgan-images", type=int, default=20, help="subset measured for the 1,000-image extrapolation"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}"
    )

    model = benchmark_linear_gaussian()
    rows = []
    # 1. AIS
    ais_times, ais_errs, ais_max = [], [], []
    for rep in range(args.repeats):
        torch.manual_seed(rep)
        _, y = model.sample((args.ais_images,))
        exact, t_exact = timed(lambda y=y: model.log_prob(y))
        est, t = timed(lambda y=y: estimate.ais(model, y, args.ais_steps, args.ais_chains))
        err = est.estimate - exact
        ais_times.append(t)
        ais_errs.append(float(err.mean()))
        ais_max.append(float(err.abs().max()))
        print(
            f"AIS rep {rep}: {args.ais_images} images x {args.ais_chains} chains x {args.ais_steps} steps: "
            f"{t:.1f} s (exact {t_exact * 1e3:.2f} ms); "
            f"mean error {err.mean():+.3f} ± {est.mean_stderr:.3f}, "
            f"max |error| {err.abs().max():.3f}, acceptance {est.extra['acceptance'].mean():.2f}"
        )
    rows.append(
        [
            f"AIS T={args.ais_steps}, {args.ais_chains} chains, {args.ais_images} images",
            f"{statistics.median(ais_times):.1f} s",
            f"mean err {statistics.median(ais_errs):+.3f} "
            f"(runs: {', '.join(f'{e:+.3f}' for e in ais_errs)}); "
            f"max |err| per image {max(ais_max):.3f}",
        ]
    )
    # 2. IWAE(k=5000) on the LinearGaussian
    enc = mean_field_encoder(model)
    iw_times, iw_errs = [], []
    for rep in range(args.repeats):
        torch.manual_seed(100 + rep)
        _, y = model.sample((16,))
        est, t = timed(lambda y=y: estimate.iwae(model, y, enc, 5000))
        iw_times.append(t)
        iw_errs.append(float((est.estimate - model.log_prob(y)).mean()))
    rows.append(
        [
            "IWAE k=5000, mean-field q, 16 images",
            f"{statistics.median(iw_times):.2f} s",
            f"mean err {statistics.median(iw_errs):+.3f} (runs: {', '.join(f'{e:+.3f}' for e in iw_errs)})",
        ]
    )
    # 3a. IWAE(k=1000) over 1,000 LinearGaussian images, measured in full
    torch.manual_seed(7)
    _, y = model.sample((1000,))
    lg_times = [timed(lambda: estimate.iwae(model, y, enc, 1000))[1] for _ in range(args.repeats)]
    t_exact = statistics.median(timed(lambda: model.log_prob(y))[1] for _ in range(args.repeats))
    rows.append(
        [
            "IWAE k=1000, LinearGaussian, 1,000 images (measured)",
            f"{statistics.median(lg_times):.1f} s",
            f"exact log P(y) of the same images: {t_exact * 1e3:.1f} ms "
            f"(ratio {statistics.median(lg_times) / t_exact:.0f}x)",
        ]
    )
    # 3b. IWAE(k=1000) with the DCGAN decoder at Twemoji size, extrapolated
    gen = make_generator(64, 32).eval()
    encoder = ConvEncoder(64, 32).eval()
    y = torch.rand(args.dcgan_images, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        dc_times = [timed(lambda: estimate.iwae(gen, y, encoder, 1000))[1] for _ in range(args.repeats)]
    per_image = statistics.median(dc_times) / args.dcgan_images
    rows.append(
        [
            f"IWAE k=1000, DCGAN decoder 3x32x32, {args.dcgan_images} images measured",
            f"{statistics.median(dc_times):.1f} s",
            f"{per_image:.2f} s/image -> 1,000 images ~ {per_image * 1000 / 60:.1f} min (extrapolated)",
        ]
    )
    print()
    print("| benchmark | median time | result |")
    print("|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
