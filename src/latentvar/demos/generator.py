"""Runs of the DCGAN generator on Twemoji: train (GAN or VAE, resumable), sample, estimate log P(y).

A run directory holds ``checkpoint.safetensors`` + ``checkpoint.json`` (decoder, σ, encoder,
discriminator, optimiser states, RNG state, step, config). Training saves every ``save_every`` steps
and at the end, so a killed run resumes from its last checkpoint (``--resume``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from latentvar import estimate
from latentvar.dcgan import (
    ConvEncoder,
    DCGANDiscriminator,
    choose_sigma,
    discriminator_loss,
    elbo_loss,
    generator_loss,
    make_generator,
    twemoji_tensor,
)
from latentvar.generator import Generator
from latentvar.io import load_checkpoint, load_optimizer_tensors, optimizer_tensors, save_checkpoint
from latentvar.progress import progress

IMAGE_DIMS = 3 * 32 * 32


def _load_data(data: str, split: str) -> torch.Tensor:
    if data != "twemoji":
        raise ValueError(f"data: expected 'twemoji' (the embedded 32x32 emoji set), got {data!r}")
    return twemoji_tensor(split)


# --------------------------------------------------------------------------------------------------------
# checkpoints: module and optimiser states flattened into one safetensors dict


class Run:
    """The modules of one run (generator, encoder, optional discriminator) and their optimisers."""

    def __init__(self, config: dict):
        self.config = config
        j, f = config["latent_channels"], config["features"]
        self.model: Generator = make_generator(j, f, sigma=config.get("sigma_init", 0.1), learn_sigma=True)
        self.encoder = ConvEncoder(j, f)
        self.disc = DCGANDiscriminator(f) if config["objective"] == "gan" else None
        lr = config["lr"]
        if self.disc is None:
            params = list(self.model.parameters()) + list(self.encoder.parameters())
            self.opt_main = torch.optim.Adam(params, lr=lr)
            self.opt_disc = None
        else:
            self.opt_main = torch.optim.Adam(self.model.decoder.parameters(), lr=lr, betas=(0.5, 0.999))
            self.opt_disc = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_enc = torch.optim.Adam(
            list(self.encoder.parameters()) + [self.model.likelihood.log_sigma], lr=1e-3
        )
        self.step = 0
        self.encoder_step = 0
        self.meta: dict = {}

    def modules(self) -> dict[str, nn.Module]:
        mods = {"model": self.model, "encoder": self.encoder}
        if self.disc is not None:
            mods["disc"] = self.disc
        return mods

    def save(self, out: Path, **meta) -> None:
        tensors = {}
        for name, mod in self.modules().items():
            tensors |= {f"{name}.{k}": v for k, v in mod.state_dict().items()}
        tensors |= optimizer_tensors(self.opt_main, "opt_main") | optimizer_tensors(self.opt_enc, "opt_enc")
        if self.opt_disc is not None:
            tensors |= optimizer_tensors(self.opt_disc, "opt_disc")
        tensors["rng"] = torch.get_rng_state()
        self.meta |= meta
        info = {"config": self.config, "step": self.step, "encoder_step": self.encoder_step} | self.meta
        save_checkpoint(out, tensors, info)

    @classmethod
    def load(cls, out: Path) -> Run:
        tensors, meta = load_checkpoint(out)
        run = cls(meta["config"])
        for name, mod in run.modules().items():
            prefix = name + "."
            mod.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        load_optimizer_tensors(run.opt_main, tensors, "opt_main")
        load_optimizer_tensors(run.opt_enc, tensors, "opt_enc")
        if run.opt_disc is not None:
            load_optimizer_tensors(run.opt_disc, tensors, "opt_disc")
        torch.set_rng_state(tensors["rng"])
        run.step, run.encoder_step = meta["step"], meta.get("encoder_step", 0)
        run.meta = {k: v for k, v in meta.items() if k not in ("config", "step", "encoder_step")}
        return run


# --------------------------------------------------------------------------------------------------------
# training


def _batches(y: torch.Tensor, batch_size: int, generator: torch.Generator):
    while True:
        perm = torch.randperm(y.shape[0], generator=generator)
        for i in range(0, y.shape[0] - batch_size + 1, batch_size):
            yield y[perm[i : i + batch_size]]


def _augment(batch: torch.Tensor) -> torch.Tensor:
    """Random horizontal flips: emoji are (nearly) mirror-symmetric in distribution."""
    flip = torch.rand(batch.shape[0]) < 0.5
    return torch.where(flip[:, None, None, None], batch.flip(-1), batch)


def train(
    data: str,
    objective: str,
    out: Path,
    steps: int = 3000,
    encoder_steps: int = 1500,
    latent_channels: int = 64,
    features: int = 32,
    batch_size: int = 64,
    seed: int = 0,
    resume: bool = False,
    save_every: int = 250,
    show_progress: bool = True,
    sigma_images: int = 200,
) -> dict:
    """Train a DCGAN decoder as a VAE or a GAN on ``data``; for the GAN, then fit the encoder and σ
    (decoder frozen) and choose σ on the validation split. Returns the checkpoint's metadata."""
    if objective not in ("gan", "vae"):
        raise ValueError(f"objective: expected 'gan' or 'vae', got {objective!r}")
    for name, value in [("steps", steps), ("latent_channels", latent_channels), ("batch_size", batch_size)]:
        if not (isinstance(value, int) and value > 0):
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    out = Path(out)
    y_train, y_val = _load_data(data, "train"), _load_data(data, "val")
    if resume and (out / "checkpoint.json").exists():
        run = Run.load(out)
        run.config["steps"], run.config["encoder_steps"] = steps, encoder_steps
    else:
        torch.manual_seed(seed)
        lr = 2e-4 if objective == "gan" else 1e-3
        config = {
            "data": data,
            "objective": objective,
            "latent_channels": latent_channels,
            "features": features,
            "batch_size": batch_size,
            "seed": seed,
            "lr": lr,
            "steps": steps,
            "encoder_steps": encoder_steps,
            "sigma_init": 0.1,
        }
        run = Run(config)
    order = torch.Generator().manual_seed(seed + run.step)
    batches = _batches(y_train, batch_size, order)
    t0 = time.time()
    bar = progress(
        range(run.step, steps),
        desc=f"{objective} training",
        total=steps - run.step,
        disable=not show_progress,
    )
    for _ in bar:
        run.model.train(), run.encoder.train()
        y = _augment(next(batches))
        if run.disc is None:
            loss = elbo_loss(run.model, run.encoder, y)
            run.opt_main.zero_grad(), loss.backward(), run.opt_main.step()
            bar.set_postfix(
                neg_elbo=f"{loss.item():.1f}", sigma=f"{float(run.model.likelihood.sigma.detach()):.3f}"
            )
        else:
            run.disc.train()
            fake = run.model.decoder(torch.randn(y.shape[0], *run.model.latent_shape))
            d_loss = discriminator_loss(run.disc, y, fake)
            run.opt_disc.zero_grad(), d_loss.backward(), run.opt_disc.step()
            g_loss = generator_loss(run.disc, fake)
            run.opt_main.zero_grad(), g_loss.backward(), run.opt_main.step()
            bar.set_postfix(d=f"{d_loss.item():.3f}", g=f"{g_loss.item():.3f}")
        run.step += 1
        if run.step % save_every == 0 or run.step == steps:
            run.save(out, train_seconds=run.meta.get("train_seconds", 0.0) + time.time() - t0)
            t0 = time.time()
    if objective == "gan":
        y_sigma = y_val[:sigma_images]
        _fit_observation_model(
            run, y_train, y_sigma, out, encoder_steps, batch_size, save_every, show_progress
        )
    return run.meta | {"step": run.step}


def _fit_observation_model(
    run: Run, y_train, y_val, out, encoder_steps, batch_size, save_every, show_progress
):
    """GAN only: freeze the decoder (eval mode), fit encoder + log σ by the ELBO (amortised inference),
    then choose σ by the validation IWAE bound (`choose_sigma`)."""
    run.model.eval()
    for p in run.model.decoder.parameters():
        p.requires_grad_(False)
    order = torch.Generator().manual_seed(run.config["seed"] + 10_000 + run.encoder_step)
    batches = _batches(y_train, batch_size, order)
    t0 = time.time()
    bar = progress(
        range(run.encoder_step, encoder_steps),
        desc="encoder (decoder frozen)",
        total=encoder_steps - run.encoder_step,
        disable=not show_progress,
    )
    for _ in bar:
        run.encoder.train()
        loss = elbo_loss(run.model, run.encoder, _augment(next(batches)))
        run.opt_enc.zero_grad(), loss.backward(), run.opt_enc.step()
        bar.set_postfix(
            neg_elbo=f"{loss.item():.1f}", sigma=f"{float(run.model.likelihood.sigma.detach()):.3f}"
        )
        run.encoder_step += 1
        if run.encoder_step % save_every == 0 or run.encoder_step == encoder_steps:
            run.save(out, encoder_seconds=run.meta.get("encoder_seconds", 0.0) + time.time() - t0)
            t0 = time.time()
    if "sigma_selection" not in run.meta:
        run.encoder.eval()
        selection = choose_sigma(run.model, run.encoder, y_val, num_samples=16)
        run.save(out, sigma_selection=selection)


# --------------------------------------------------------------------------------------------------------
# sampling and estimation


def load_eval(run_dir: Path) -> Run:
    run = Run.load(run_dir)
    run.model.eval(), run.encoder.eval()
    return run


def image_grid(images: np.ndarray, columns: int, pad: int = 1) -> np.ndarray:
    """(b, h, w, 3) uint8 -> one (rows·(h+pad)+pad, columns·(w+pad)+pad, 3) white-padded grid."""
    b, h, w, c = images.shape
    rows = math.ceil(b / columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, columns)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = (
            im
        )
    return grid


def save_png(path: Path, array: np.ndarray, scale: int = 2) -> None:
    from PIL import Image

    from latentvar.io import atomic_write_bytes
    from latentvar.report import png_bytes

    im = Image.fromarray(array)
    im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    atomic_write_bytes(path, png_bytes(im))


@torch.no_grad()
def sample_images(run: Run, n: int, seed: int = 0) -> np.ndarray:
    from latentvar.dcgan import to_uint8

    torch.manual_seed(seed)
    z = run.model.prior.sample((n,))
    return to_uint8(run.model.mean_images(z))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great-circle interpolation (White 2016, "Sampling generative networks") between rows of a and b
    (p, d) at fractions t (s,) -> (p, s, d): it keeps |z| typical of N(0, I), unlike a straight line."""
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    omega = torch.acos(cos.clamp(-1, 1))[:, None, None]
    t = t[None, :, None]
    return (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / torch.sin(omega)


@torch.no_grad()
def interpolations(run: Run, pairs: int = 6, steps: int = 10, seed: int = 1) -> np.ndarray:
    """Decoder means along slerp paths between pairs of prior samples: (pairs·steps, h, w, 3)."""
    from latentvar.dcgan import to_uint8

    torch.manual_seed(seed)
    a, b = run.model.prior.sample((pairs,)).flatten(1), run.model.prior.sample((pairs,)).flatten(1)
    z = slerp(a, b, torch.linspace(0, 1, steps))
    return to_uint8(run.model.mean_images(z.reshape(pairs * steps, *run.model.latent_shape)))


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
    ais_chains: int = 16,
    seed: int = 0,
    show_progress: bool = True,
    ais_step_size: float = 0.02,
    ais_leapfrog: int = 5,
    ais_init: str = "auto",
) -> dict:
    """Estimates of -log P(y) per image on ``split`` (the first ``num_images`` images). AIS starts its
    HMC step size at ``ais_step_size``: 0.02 suits these 64-d image posteriors (σ ~ 0.1-0.4); the
    library default 0.5, tuned on the LinearGaussian, adapts too slowly here (acceptance ~0.1 after
    150 steps, measured). ``ais_init``: "encoder" anneals from the run's q(z|y) (the VAE's encoder, the
    GAN's post-hoc fitted one), "prior" from P(z), "auto" (the default) picks what measured better at
    1000 temperatures x 5 leapfrog steps (docs/generator.md): the encoder for a VAE (tighter on test
    images, BDMC gap 35 against 81 nats), the prior for a GAN (tighter on test images, BDMC gap 14
    against 135 nats)."""
    known = {"elbo", "iwae", "ais", "naive_mc"}
    bad = [e for e in estimators if e not in known]
    if bad or not estimators:
        raise ValueError(
            f"estimators: expected a comma-separated subset of {sorted(known)}, got {estimators!r}"
        )
    if ais_init not in ("auto", "encoder", "prior"):
        raise ValueError(f"ais_init: expected 'auto', 'encoder' or 'prior', got {ais_init!r}")
    run = load_eval(Path(run_dir))
    ais_init = resolve_ais_init(ais_init, run)
    y = _load_data(data, split)[:num_images]
    torch.manual_seed(seed)
    results = {}
    for name in estimators:
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
                    ais_steps,
                    ais_chains,
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
                "num_steps": ais_steps,
                "initial_step_size": ais_step_size,
                "leapfrog_steps": ais_leapfrog,
                "init": ais_init,
                "acceptance": float(est.extra["acceptance"].mean()),
            }
    return results
