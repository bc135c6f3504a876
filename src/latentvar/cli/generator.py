"""`latentvar generator ...`."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Image generators: train (GAN/VAE), sample, estimate log-likelihood.", no_args_is_help=True
)
