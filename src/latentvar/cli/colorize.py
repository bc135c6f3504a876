"""`latentvar colorize ...`."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Colorization with latent segmentation: train, apply, eval, demo.", no_args_is_help=True
)
