"""Runs of the DCGAN generator on Twemoji (`latentvar generator train`): GAN or VAE training, resumable.

A run directory holds ``checkpoint.safetensors`` + ``checkpoint.json`` (decoder, σ, encoder,
discriminator, optimiser states, RNG state, step, config). Training saves every ``save_every`` steps
and at the end, so a killed run resumes from its last checkpoint (``--resume``).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from latentvar import runs
from latentvar.apps.images.data import load_images
from latentvar.apps.images.dcgan import (
    ConvEncoder,
    DCGANDiscriminator,
    choose_sigma,
    discriminator_loss,
    elbo_loss,
    generator_loss,
    make_generator,
)
from latentvar.generator import Generator
from latentvar.io import load_checkpoint
from latentvar.runs import load_optimizer, module_tensors, save_optimizer, tensors_under

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

    def metadata(self) -> dict:
        return {"config": self.config, "step": self.step, "encoder_step": self.encoder_step} | self.meta

    def save(self, out: Path, **meta) -> None:
        tensors = {}
        for name, mod in self.modules().items():
            tensors |= module_tensors(mod, name)
        tensors |= save_optimizer(self.opt_main, "main") | save_optimizer(self.opt_enc, "enc")
        if self.opt_disc is not None:
            tensors |= save_optimizer(self.opt_disc, "disc")
        self.meta |= meta
        runs.Run(out).save(tensors | runs.rng_tensors(), self.metadata())

    @classmethod
    def load(cls, out: Path) -> Run:
        tensors, meta = load_checkpoint(out)  # its errors name the folder, and a pickle found there
        return cls.restore(runs.Checkpoint(meta["step"], tensors, meta))

    @classmethod
    def restore(cls, saved: runs.Checkpoint) -> Run:
        tensors, meta = saved.tensors, saved.meta
        run = cls(meta["config"])
        for name, mod in run.modules().items():
            mod.load_state_dict(tensors_under(tensors, name))
        load_optimizer(run.opt_main, tensors, "main")
        load_optimizer(run.opt_enc, tensors, "enc")
        if run.opt_disc is not None:
            load_optimizer(run.opt_disc, tensors, "disc")
        runs.restore_rng(tensors)
        run.step, run.encoder_step = saved.step, meta.get("encoder_step", 0)
        run.meta = {k: v for k, v in meta.items() if k not in ("config", "step", "encoder_step")}
        return run


# --------------------------------------------------------------------------------------------------------
# training


def _batches(y: torch.Tensor, batch_size: int, seed: int, step: int):
    """The minibatches from step ``step`` on: epoch e's order is a permutation drawn from (seed, e), so
    each step's batch is a pure function of (seed, step) and a resumed run sees an unbroken one's."""
    per_epoch = y.shape[0] // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch_size: expected at most the {y.shape[0]} training images, got {batch_size}")
    epoch, first = divmod(step, per_epoch)
    while True:
        g = runs.step_generator(seed, epoch)
        perm = torch.randperm(y.shape[0], generator=g)
        for i in range(first * batch_size, per_epoch * batch_size, batch_size):
            yield y[perm[i : i + batch_size]]
        epoch, first = epoch + 1, 0


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
    y_train, y_val = load_images(data, "train"), load_images(data, "val")
    if (saved := runs.Run(out, resume).load()) is not None:
        run = Run.restore(saved)
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
    batches = _batches(y_train, batch_size, run.config["seed"], run.step)
    t0 = time.time()
    bar = runs.Run(out).progress(run.step, steps, f"{objective} training", disable=not show_progress)
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
    return run.metadata()


def _fit_observation_model(
    run: Run, y_train, y_val, out, encoder_steps, batch_size, save_every, show_progress
):
    """GAN only: freeze the decoder (eval mode), fit encoder + log σ by the ELBO (amortised inference),
    then choose σ by the validation IWAE bound (`choose_sigma`)."""
    run.model.eval()
    for p in run.model.decoder.parameters():
        p.requires_grad_(False)
    batches = _batches(y_train, batch_size, run.config["seed"] + 10_000, run.encoder_step)
    t0 = time.time()
    bar = runs.Run(out).progress(
        run.encoder_step, encoder_steps, "encoder (decoder frozen)", disable=not show_progress
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


def load_eval(run_dir: Path) -> Run:
    run = Run.load(run_dir)
    run.model.eval(), run.encoder.eval()
    return run
