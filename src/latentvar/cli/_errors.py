"""How the `latentvar` command ends: exit status 0 (done), 2 (bad input: `error: <argument>: ...` on
stderr), 1 (an error of the environment -- a full disk, a permission: `error: <what>` -- or an internal
error: one line on stderr). Set LATENTVAR_DEBUG=1 to see the traceback instead."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import typer

from latentvar.extras import MissingExtraError

# click's exceptions as this typer raises them (typer >= 0.2x carries its own copy of click)
click = sys.modules[typer.BadParameter.__module__]

BAD_INPUT = 2
INTERNAL_ERROR = 1


def _debug() -> bool:
    return bool(os.environ.get("LATENTVAR_DEBUG"))


@contextmanager
def user_errors():
    """Turn a ValueError / FileNotFoundError (bad input, named argument) or a missing optional extra into
    `error: ...` and exit 2. Set LATENTVAR_DEBUG=1 to see the traceback instead."""
    try:
        yield
    except (ValueError, FileNotFoundError, MissingExtraError) as err:
        if _debug():
            raise
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(BAD_INPUT) from None


def _flag_name(param, hint: str | None) -> str:
    """The argument a usage error is about, as the messages of ValueError name it: `--states/-k` -> states."""
    if param is not None:
        opts = getattr(param, "opts", None) or [param.name or "argument"]
        return max(opts, key=len).lstrip("-")
    if hint:
        first = hint.split("/")[0].strip().strip("'\"")
        return first.lstrip("-") or "argument"
    return "usage"


def usage_error_line(err: click.UsageError) -> str:
    """One line for a click usage error, in the form of every other bad input: `error: <argument>: ...`."""
    if isinstance(err, click.NoSuchOption):
        name, message = err.option_name.lstrip("-"), err.format_message()
    elif isinstance(err, click.BadParameter):
        name = _flag_name(err.param, err.param_hint if isinstance(err.param_hint, str) else None)
        message = err.message if err.message else err.format_message()
        if isinstance(err, click.MissingParameter):
            message = err.format_message()
    else:
        name, message = "usage", err.format_message()
    where = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
    return f"error: {name}: {' '.join(message.split()).rstrip('.')}{where}"


def run(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run the command line and return its exit status (module docstring); prints what went wrong."""
    try:
        with user_errors():
            code = app(args=args, prog_name="latentvar", standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except click.NoArgsIsHelpError as err:
        err.show()
        return BAD_INPUT
    except click.UsageError as err:
        if _debug():
            raise
        typer.echo(usage_error_line(err), err=True)
        return BAD_INPUT
    except click.ClickException as err:
        typer.echo(f"error: {' '.join(err.format_message().split())}", err=True)
        return err.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return INTERNAL_ERROR
    except KeyboardInterrupt:
        return 130
    except OSError as err:  # the environment, not the input: a full disk, a permission (exit 1, one line)
        if _debug():
            raise
        typer.echo(f"error: {' '.join(str(err).split())}", err=True)
        return INTERNAL_ERROR
    except Exception as err:  # noqa: BLE001 -- the last resort: one line, not a traceback
        if _debug():
            raise
        text = " ".join(str(err).split()) or "(no message)"
        typer.echo(
            f"error: internal error ({type(err).__name__}): {text} (LATENTVAR_DEBUG=1 shows the traceback)",
            err=True,
        )
        return INTERNAL_ERROR
    return code if isinstance(code, int) else 0
