"""The ``lamarena`` command line: parse, build settings, call one function, print.

Every command exits 0 on success and 1 with a single ``error: ...`` line on bad input (set
``LAMARENA_DEBUG=1`` for the traceback). ``--json`` output is one JSON document on stdout.
"""

from __future__ import annotations

import sys

import typer

from lamarena.cli import analyze, models, ratings, serve, simulate
from lamarena.cli.models import models_app
from lamarena.cli.static import static_app
from lamarena.cli.votes import battles_app, votes_app
from lamarena.errors import LamarenaError
from lamarena.settings import load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="lamarena",
    help="Evaluate Large Audio Models: a voting arena, static benchmarks, and their gap.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(votes_app, name="votes")
app.add_typer(battles_app, name="battles")
app.add_typer(models_app, name="models")
for command_module in (ratings, simulate, serve, models, analyze):
    command_module.register(app)
app.add_typer(static_app, name="static")


def _debug_requested() -> bool:
    """Whether ``LAMARENA_DEBUG`` asks for tracebacks; a broken environment means no."""
    try:
        return load_settings().debug
    except LamarenaError:
        return False


def main() -> None:
    """Run the CLI: usage errors and lamarena errors become one ``error:`` line on stderr.

    Exit status: 0 on success, 1 for a lamarena error (bad data, bad file, bad settings,
    database unreachable), 2 for a usage error (unknown option, missing argument).
    """
    debug = _debug_requested()
    try:
        status = app(standalone_mode=False)
    except typer.TyperException as exc:
        message = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":
            # The "error" is the help text, which the rich formatter may already have printed.
            if message.strip():
                typer.echo(message, err=True)
        else:
            typer.echo(f"error: {' '.join(message.split())}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except LamarenaError as exc:
        if debug:
            raise
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        sys.exit(1)
    except OSError as exc:
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)
