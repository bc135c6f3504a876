"""`latentvar hmm ...`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Hidden Markov models on real text: fit, eval, report.", no_args_is_help=True)
