"""`latentvar lm ...`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Autoregressive language models: fit, eval, sample.", no_args_is_help=True)
