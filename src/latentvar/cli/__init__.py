"""The `latentvar` command: one verb group per application (`--help` on each). A verb parses its flags and
calls its application (`latentvar.colorize`, `latentvar.apps.*`) or the public API, imported on first use
so that `latentvar --help` stays fast.

Conventions, the same for every verb:
- exit status 0 done, 2 bad input (`error: <argument>: ...` on stderr), 1 an internal error (one line on
  stderr; LATENTVAR_DEBUG=1 shows the traceback) -- `_errors.py`;
- a verb that computes metrics writes them as JSON to `--json PATH`, `--json -` meaning stdout; stdout
  carries nothing else (`lm sample`'s sentences and `serve`'s address are those verbs' output); summaries,
  notes and progress bars go to stderr -- `_output.py`."""

from __future__ import annotations

import sys

import typer

from latentvar.cli import colorize, ctc, generator, hmm, lm, mixture, serve
from latentvar.cli._errors import run

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


def _print_version(value: bool) -> None:
    if value:
        import latentvar

        typer.echo(f"latentvar {latentvar.__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print 'latentvar VERSION' and exit."
    ),
) -> None:
    pass


app.command("demo", help="The main job on the embedded default data; writes OUT/report.html.")(colorize.demo)
app.command("serve")(serve.serve)


def main() -> None:
    """Entry point: exit status 0, 2 (bad input) or 1 (internal error), each error one line on stderr
    (set LATENTVAR_DEBUG=1 to see the traceback)."""
    sys.exit(run(app))


if __name__ == "__main__":
    main()
