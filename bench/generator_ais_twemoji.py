"""AIS on Twemoji test images for a trained run, checked by BDMC on images simulated from the same model.

Prints one JSON object: AIS (-log P(y) per image, stderr, ESS of the chains' weights, acceptance),
the BDMC [lower, upper] bracket on simulated images (its gap bounds AIS's error there), the
machine and its load (uptime) before and after. ``--init encoder`` starts the chains from the run's
encoder q(z|y), ``--init prior`` from P(z), ``--init auto`` (the default, as in `latentvar generator
loglik --ais-init`) the encoder for a VAE and the prior for a GAN. BDMC uses the same start, so its gap
checks the setting that produced the AIS number.

    PYTHONPATH=src python bench/generator_ais_twemoji.py --run runs/vae --num-images 20 --chains 16 \
        --steps 1000 --leapfrog 5 --bdmc-images 4 --init encoder
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from latentvar import estimate
from latentvar.apps.images.data import load_images
from latentvar.apps.images.evaluate import bits_per_dim, resolve_ais_init
from latentvar.apps.images.train import load_eval


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--num-images", type=int, default=20)
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--leapfrog", type=int, default=2)
    parser.add_argument("--step-size", type=float, default=0.02)
    parser.add_argument("--bdmc-images", type=int, default=4)
    parser.add_argument("--init", choices=["auto", "encoder", "prior"], default="auto", help="AIS start q0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bdmc-only", action="store_true", help="only BDMC (AIS runs on 1 test image only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = {"run": str(args.run), "args": vars(args) | {"run": str(args.run)}, "machine": platform.node()}
    out["uptime_before"] = _uptime()
    run = load_eval(args.run)
    args.init = out["args"]["init"] = resolve_ais_init(args.init, run)
    y = load_images("twemoji", "test")[: args.num_images]
    options = {
        "leapfrog_steps": args.leapfrog,
        "step_size": args.step_size,
        "show_progress": True,
        "initial": run.encoder if args.init == "encoder" else None,
    }
    t0 = time.time()
    if args.bdmc_only:
        y = y[:1]
    with torch.no_grad():
        est = estimate.ais(run.model, y, args.steps, args.chains, **options)
    out["ais"] = {
        "nats_per_image": -est.mean,
        "stderr": est.mean_stderr,
        "bits_per_dim": bits_per_dim(est.mean),
        "per_image": (-est.estimate).tolist(),
        "ess_mean": float(est.extra["ess"].mean()),
        "ess_min": float(est.extra["ess"].min()),
        "ess_per_image": est.extra["ess"].tolist(),
        "acceptance": float(est.extra["acceptance"].mean()),
        "final_step_size_median": float(est.extra["step_size"].median()),
        "seconds": time.time() - t0,
    }
    print(json.dumps(out["ais"]), flush=True)
    if args.bdmc_only:
        out.pop("ais")
    t0 = time.time()
    # reseed, so the simulated images do not depend on the AIS run above (same images for every --init)
    torch.manual_seed(args.seed + 1)
    # images simulated from a Gaussian observation model fall outside [-1, 1]; the density is defined on
    # all of R^D, so the range check meant for real images is switched off for the simulated ones
    run.model.check_images = lambda images, name="y": images
    result = estimate.bdmc(run.model, args.bdmc_images, args.steps, args.chains, **options)
    lower, upper = result.lower.estimate, result.upper.estimate
    out["bdmc"] = {
        "lower": lower.tolist(),
        "upper": upper.tolist(),
        "gap_per_image": (upper - lower).tolist(),
        "mean_gap": float((upper - lower).mean()),
        "forward_ess_mean": float(result.lower.extra["ess"].mean()),
        "reverse_ess_mean": float(result.upper.extra["ess"].mean()),
        "forward_acceptance": float(result.lower.extra["acceptance"].mean()),
        "reverse_acceptance": float(result.upper.extra["acceptance"].mean()),
        "seconds": time.time() - t0,
    }
    out["uptime_after"] = _uptime()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
