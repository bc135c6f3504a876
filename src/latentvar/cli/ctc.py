"""`latentvar ctc ...`."""

from __future__ import annotations

import typer

app = typer.Typer(help="CTC as a latent-variable model: train, align, decode.", no_args_is_help=True)
