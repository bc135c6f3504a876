"""Where a verb's output goes, the same rule for every verb: metrics as JSON to `--json PATH` (`-`:
stdout, which then carries that JSON and nothing else); summaries for a person on stderr."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

STDOUT = Path("-")


def json_option(default: Path | None, what: str = "the metrics"):
    """The `--json` option of a verb that computes metrics; `default` STDOUT for the evaluation verbs,
    whose metrics are what they are for, None (no JSON) for the verbs that write a run."""
    unset = "" if default == STDOUT else " (default: no JSON)"  # typer shows the '-' default itself
    return typer.Option(default, "--json", help=f"Write {what} here as JSON; '-' is stdout{unset}.")


def write_json(path: Path | None, obj) -> None:
    """--json PATH: `obj` as JSON to PATH (atomic, 0644 under the usual umask), or to stdout for `-`."""
    from latentvar.io import atomic_write_json, json_text

    if path is None:
        return
    if str(path) == "-":
        sys.stdout.write(json_text(obj))
        sys.stdout.flush()
    else:
        atomic_write_json(path, obj)


def say(text: str) -> None:
    """A summary line for a person: stderr, so that stdout stays machine-readable."""
    typer.echo(text, err=True)


def where(path: Path | None) -> str:
    """' -> PATH' for a summary line, nothing when the JSON went to stdout or nowhere."""
    return "" if path is None or str(path) == "-" else f" -> {path}"


def scalars(metrics: dict, keys: tuple[str, ...]) -> str:
    """`k=v` for those of `keys` that `metrics` holds as numbers, for a one-line summary."""
    shown = [(k, metrics[k]) for k in keys if isinstance(metrics.get(k), int | float)]
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown)
