"""The `latentvar` command: one verb group per application (`--help` on each). A verb parses its flags and
calls its application (`latentvar.colorize`, `latentvar.apps.*`) or the public API, imported on first use
so that `latentvar --help` stays fast; bad input ends with its message and exit status 2 (`_errors.py`)."""

from __future__ import annotations

import sys

import typer

from latentvar.cli import colorize, ctc, generator, hmm, lm, mixture, serve
from latentvar.cli._errors import user_errors

app = typer.Typer(
    name="latentvar",
    help="Interpretable latent-variable models: exact inference, posteriors, training, reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for _module, _name in [
    (mixture, "mixture"),
    (colorize, "colorize"),
    (hmm, "hmm"),
    (lm, "lm"),
    (ctc, "ctc"),
    (generator, "generator"),
]:
    app.add_typer(_module.app, name=_name)
app.command("demo", help="The main job on the embedded default data; writes OUT/report.html.")(colorize.demo)
app.command("serve")(serve.serve)


def main() -> None:
    """Entry point: bad input ends with its message and exit status 2, not a traceback
    (set LATENTVAR_DEBUG=1 to see the traceback)."""
    try:
        with user_errors():
            app()
    except typer.Exit as done:
        sys.exit(done.exit_code)


if __name__ == "__main__":
    main()
