"""Bad input on the command line ends with its message and exit status 2, not a traceback."""

from __future__ import annotations

import os
from contextlib import contextmanager

import typer


@contextmanager
def user_errors():
    """Turn a ValueError / FileNotFoundError (bad input, named argument) into `error: ...` and exit 2.
    Set LATENTVAR_DEBUG=1 to see the traceback instead."""
    try:
        yield
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("LATENTVAR_DEBUG"):
            raise
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
