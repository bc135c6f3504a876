"""`latentvar generator ...`: DCGAN generators on Twemoji (GAN or VAE), samples, and log P(y) estimates."""

from __future__ import annotations

from pathlib import Path

import typer

from latentvar.cli import flags
from latentvar.cli._output import STDOUT, json_option, say, where, write_json

ESTIMATORS = ("elbo", "iwae", "ais", "naive_mc")

app = typer.Typer(
    help="Image generators: train (GAN/VAE), sample, estimate log-likelihood, report.", no_args_is_help=True
)


@app.command("train")
def train(
    data: str = typer.Option("twemoji", help="Training images: 'twemoji' (embedded, 32x32, on white)."),
    objective: str = typer.Option(..., help="gan (DCGAN adversarial loss) or vae (ELBO, learned σ)."),
    out: Path = typer.Option(..., help="Run directory (checkpoint.safetensors + checkpoint.json)."),
    steps: int = typer.Option(3000, help="Training steps (batches of 64)."),
    encoder_steps: int = typer.Option(
        1500, help="GAN only: steps fitting the encoder and σ with the decoder frozen (amortised inference)."
    ),
    latent_channels: int = typer.Option(64, help="J: z has shape (J, 1, 1), z ~ N(0, I)."),
    features: int = typer.Option(32, help="Base width of the DCGAN networks."),
    seed: int = typer.Option(0, help="Seed of initialisation and batch order."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT's checkpoint if there is one."),
    threads: int = typer.Option(1, help="torch CPU threads (1 is fastest on a shared 2-core machine)."),
    sigma_images: int = typer.Option(200, help="GAN only: validation images used to choose σ."),
) -> None:
    """Train a DCGAN decoder (project and reshape, fractionally strided convolutions, batch norm) on Twemoji.

    vae: decoder + convolutional encoder by the ELBO, Gaussian P(y|z) with a learned σ. gan: decoder vs
    a DCGAN discriminator; afterwards the decoder is frozen, an encoder and σ are fitted by the ELBO on
    the training images, and σ is chosen on the validation images by the IWAE bound (k=16)."""
    flags.choice("data", data, ("twemoji",))
    flags.choice("objective", objective, ("gan", "vae"))
    for flag, value, low in [
        ("steps", steps, 1),
        ("encoder-steps", encoder_steps, 0),
        ("latent-channels", latent_channels, 1),
        ("features", features, 1),
        ("threads", threads, 1),
        ("sigma-images", sigma_images, 1),
    ]:
        flags.count(flag, value, minimum=low)
    flags.out_dir("out", out)
    import torch

    from latentvar.apps.images.train import train as run_train

    torch.set_num_threads(threads)

    with flags.run_named("run"):
        meta = run_train(
            data,
            objective,
            out,
            steps,
            encoder_steps,
            latent_channels,
            features,
            seed=seed,
            resume=resume,
            sigma_images=sigma_images,
        )
    sigma = meta.get("sigma_selection", {}).get("sigma")
    say(f"trained {objective} for {meta['step']} steps -> {out}" + (f" (σ = {sigma:.4f})" if sigma else ""))


@app.command("sample")
def sample(
    run: Path = typer.Option(..., help="Run directory written by `latentvar generator train`."),
    n: int = typer.Option(64, "-n", help="Number of samples (decoder means at z ~ N(0, I))."),
    out: Path = typer.Option(Path("grid.png"), help="PNG file for the grid of samples."),
    seed: int = typer.Option(0, help="Seed of the latent draws."),
) -> None:
    """Draw z ~ N(0, I) and write a grid of the decoded images (the noiseless means E[y|z])."""
    import math

    from latentvar.apps.images.samples import image_grid, sample_images, save_png
    from latentvar.apps.images.train import load_eval

    flags.run_dir("run", run)
    flags.count("n", n)
    flags.out_file("out", out)
    images = sample_images(load_eval(run), n, seed)
    save_png(out, image_grid(images, columns=math.ceil(math.sqrt(n))))
    say(f"wrote {n} samples to {out}")


@app.command("loglik")
def loglik(
    run: Path = typer.Option(..., help="Run directory written by `latentvar generator train`."),
    data: str = typer.Option("twemoji", help="Evaluation images: 'twemoji'."),
    estimators: str = typer.Option("elbo,iwae,ais", help="Comma-separated: elbo, iwae, ais, naive_mc."),
    json_out: Path = json_option(STDOUT, "one key per estimator"),
    split: str = typer.Option("test", help="train, val or test."),
    num_images: int = typer.Option(100, help="Evaluate the first N images of the split."),
    num_samples: int = typer.Option(1000, help="Samples per image for elbo / iwae / naive_mc (k)."),
    ais_steps: int = typer.Option(500, help="AIS: number of intermediate temperatures."),
    ais_chains: int = typer.Option(
        None, help="AIS: independent chains per image (default 16; adaptive: 128 in 8 replicates)."
    ),
    ais_step_size: float = typer.Option(
        0.02, help="AIS: initial HMC step size (adapted towards 0.65 acceptance)."
    ),
    ais_leapfrog: int = typer.Option(5, help="AIS: leapfrog steps per HMC transition."),
    ais_init: str = typer.Option(
        "auto",
        help="AIS: start the chains from the run's encoder q(z|y) ('encoder') or the prior P(z) ('prior'); "
        "'auto': encoder for a VAE, prior for a GAN (what measured better, docs/generator.md).",
    ),
    ais_schedule: str = typer.Option(
        "sigmoid",
        help="AIS: 'sigmoid' (--ais-steps temperatures, fixed) or 'adaptive' (the schedule tunes itself: "
        "estimate.ais with no budget, docs/generator.md; --ais-steps is then not used).",
    ),
    ais_max_cost: int = typer.Option(
        None, help="AIS, adaptive only: a budget of chain-transitions (tuning included); default none."
    ),
    seed: int = typer.Option(0, help="Seed of the estimators' randomness."),
    threads: int = typer.Option(1, help="torch CPU threads."),
) -> None:
    """Estimate -log P(y) per image. JSON: {estimator: {"nats_per_image", "stderr", "bits_per_dim", ...}}.

    nats_per_image is the mean over images of -log P(y) (lower is better; an upper bound in expectation,
    since every estimator here is a stochastic lower bound on log P(y)); stderr is the Monte Carlo
    standard error of that mean; bits_per_dim treats the 8-bit values with the continuous density."""
    flags.run_dir("run", run)
    flags.choice("data", data, ("twemoji",))
    names = [e.strip() for e in estimators.split(",") if e.strip()]
    if not names:
        raise ValueError(
            f"estimators: expected a comma-separated list of {', '.join(ESTIMATORS)}, got {estimators!r}"
        )
    for name in names:
        flags.choice("estimators", name, ESTIMATORS)
    flags.choice("split", split, ("train", "val", "test"))
    flags.counts(
        ("num-images", num_images),
        ("num-samples", num_samples),
        ("ais-steps", ais_steps),
        *([("ais-chains", ais_chains)] if ais_chains is not None else []),
        *([("ais-max-cost", ais_max_cost)] if ais_max_cost is not None else []),
        ("ais-leapfrog", ais_leapfrog),
        ("threads", threads),
    )
    flags.positive("ais-step-size", ais_step_size)
    flags.choice("ais_init", ais_init, ("auto", "encoder", "prior"))
    flags.choice("ais-schedule", ais_schedule, ("sigmoid", "adaptive"))
    if ais_max_cost is not None and ais_schedule != "adaptive":
        raise ValueError("ais-max-cost: a chain-transition budget needs --ais-schedule adaptive")
    flags.out_file("json", json_out)
    import torch

    from latentvar.apps.images.evaluate import loglik as run_loglik

    torch.set_num_threads(threads)

    results = run_loglik(
        run,
        data,
        names,
        split,
        num_images,
        num_samples,
        ais_steps,
        ais_chains,
        seed,
        ais_step_size=ais_step_size,
        ais_leapfrog=ais_leapfrog,
        ais_init=ais_init,
        ais_schedule=ais_schedule,
        ais_max_cost=ais_max_cost,
    )
    write_json(json_out, results)
    for name, r in results.items():
        nats, se, bpd = r["nats_per_image"], r["stderr"], r["bits_per_dim"]
        say(f"{name:>8}: {nats:.2f} ± {se:.2f} nats/image, {bpd:.3f} bits/dim")
    if where(json_out):
        say(where(json_out).lstrip())


@app.command("report")
def report(
    out: Path = typer.Option(Path("runs/generator_report"), help="Output directory for report.html."),
    vae: Path = typer.Option(None, help="A trained VAE run to include (optional)."),
    gan: Path = typer.Option(None, help="A trained GAN run to include (optional)."),
    num_images: int = typer.Option(50, help="Test images per Twemoji estimate."),
    quick: bool = typer.Option(
        False, "--quick", help="Smaller sample counts (a smoke test, not for numbers)."
    ),
    reuse: bool = typer.Option(
        False, "--reuse", help="Reuse OUT's LinearGaussian results from an earlier call."
    ),
) -> None:
    """Estimators on the LinearGaussian against exact log P(y), and on Twemoji runs: OUT/report.html."""
    flags.checkpoint("vae", vae)
    flags.checkpoint("gan", gan)
    flags.count("num-images", num_images)
    flags.out_dir("out", out)
    from latentvar.apps.images.report import write_report

    path = write_report(out, vae, gan, num_images, quick, reuse)
    say(f"report: {path}")
