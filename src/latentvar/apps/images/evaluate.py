"""Estimates of -log P(y) per image for a generator run (`latentvar generator loglik`): ELBO, IWAE, AIS and
naive Monte Carlo from `latentvar.estimate`, with bits per dimension.

Shapes: ``b`` images, ``j`` latent channels, ``c h w`` image channels and pixels.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from latentvar import estimate
from latentvar.apps.images.data import IMAGE_DIMS, load_images
from latentvar.apps.images.train import Run, load_eval
from latentvar.progress import progress


def bits_per_dim(log_prob_nats: float, dims: int = IMAGE_DIMS) -> float:
    """Bits per dimension of the 8-bit values x = 127.5 (y + 1): log p(x) = log p(y) - D log 127.5. The
    Gaussian is a density, not a discrete likelihood (no dequantisation), so this is the usual
    continuous-density convention, comparable only to numbers computed the same way."""
    return -(log_prob_nats - dims * math.log(127.5)) / (dims * math.log(2))


def resolve_ais_init(ais_init: str, run: Run) -> str:
    """ "auto" -> "encoder" for a VAE (its encoder was trained with the decoder), "prior" for a GAN (its
    encoder is fitted afterwards, at a σ other than the one chosen on validation); measured in
    docs/generator.md. "encoder" and "prior" pass through."""
    if ais_init != "auto":
        return ais_init
    return "encoder" if run.config["objective"] == "vae" else "prior"


def loglik(
    run_dir: Path,
    data: str,
    estimators: list[str],
    split: str = "test",
    num_images: int = 100,
    num_samples: int = 1000,
    ais_steps: int = 500,
    ais_chains: int | None = None,
    seed: int = 0,
    show_progress: bool = True,
    ais_step_size: float = 0.02,
    ais_leapfrog: int = 5,
    ais_init: str = "auto",
    ais_schedule: str = "sigmoid",
    ais_max_cost: int | None = None,
) -> dict:
    """Estimates of -log P(y) per image on ``split`` (the first ``num_images`` images). AIS starts its
    HMC step size at ``ais_step_size``: 0.02 suits these 64-d image posteriors (σ ~ 0.1-0.4); the
    library default 0.5, tuned on the LinearGaussian, adapts too slowly here (acceptance ~0.1 after
    150 steps, measured). ``ais_init``: "encoder" anneals from the run's q(z|y) (the VAE's encoder, the
    GAN's post-hoc fitted one), "prior" from P(z), "auto" (the default) picks what measured better at
    1000 temperatures x 5 leapfrog steps (docs/generator.md): the encoder for a VAE (tighter on test
    images, BDMC gap 35 against 81 nats), the prior for a GAN (tighter on test images, BDMC gap 14
    against 135 nats). ``ais_schedule="adaptive"``: `estimate.ais`'s self-tuning schedule (no budget, or
    ``ais_max_cost`` chain-transitions; ``ais_steps`` is then not used, ``ais_chains`` only when given)."""
    known = {"elbo", "iwae", "ais", "naive_mc"}
    bad = [e for e in estimators if e not in known]
    if bad or not estimators:
        raise ValueError(
            f"estimators: expected a comma-separated subset of {sorted(known)}, got {estimators!r}"
        )
    if ais_init not in ("auto", "encoder", "prior"):
        raise ValueError(f"ais_init: expected 'auto', 'encoder' or 'prior', got {ais_init!r}")
    if ais_schedule not in ("sigmoid", "adaptive"):
        raise ValueError(f"ais_schedule: expected 'sigmoid' or 'adaptive', got {ais_schedule!r}")
    if ais_max_cost is not None and ais_schedule != "adaptive":
        raise ValueError("ais_max_cost: a chain-transition budget needs ais_schedule='adaptive'")
    adaptive = ais_schedule == "adaptive"
    if ais_chains is None and not adaptive:
        ais_chains = 16  # the adaptive schedule's own default is 128 chains in 8 replicates
    run = load_eval(Path(run_dir))
    ais_init = resolve_ais_init(ais_init, run)
    y = load_images(data, split)[:num_images]
    torch.manual_seed(seed)
    results = {}
    for name in progress(estimators, desc="loglik", disable=not show_progress or len(estimators) < 2):
        t0 = time.time()
        with torch.no_grad():
            if name == "elbo":
                est = estimate.elbo(run.model, y, run.encoder, num_samples)
            elif name == "iwae":
                est = estimate.iwae(run.model, y, run.encoder, num_samples)
            elif name == "naive_mc":
                est = estimate.naive_mc(run.model, y, num_samples)
            else:
                est = estimate.ais(
                    run.model,
                    y,
                    None if adaptive else ais_steps,
                    ais_chains,
                    schedule=ais_schedule,
                    max_cost=ais_max_cost,
                    initial=run.encoder if ais_init == "encoder" else None,
                    leapfrog_steps=ais_leapfrog,
                    step_size=ais_step_size,
                    show_progress=show_progress,
                )
        results[name] = {
            "nats_per_image": -est.mean,
            "stderr": est.mean_stderr,
            "bits_per_dim": bits_per_dim(est.mean),
            "num_images": int(y.shape[0]),
            "num_samples": est.num_samples,
            "seconds": time.time() - t0,
        }
        if "ess" in est.extra:
            results[name]["mean_ess"] = float(est.extra["ess"].mean())
        if name == "ais":
            results[name] |= {
                "schedule": ais_schedule,
                "num_steps": int(est.extra["num_temperatures"]) if adaptive else ais_steps,
                "initial_step_size": ais_step_size,
                "leapfrog_steps": ais_leapfrog,
                "init": ais_init,
                "acceptance": float(est.extra["acceptance"].mean()),
            }
            if adaptive:
                results[name] |= {"cost": int(est.extra["cost"]), "diagnostic": est.diagnostic}
    return results
