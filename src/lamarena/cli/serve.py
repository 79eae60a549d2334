"""``lamarena serve``: the web arena."""

from __future__ import annotations

from typing import Annotated

import typer

from lamarena.cli.common import (
    ConfigOption,
    DbOption,
    Sampling,
)
from lamarena.settings import load_settings

__all__ = ["register", "serve"]


def serve(
    config: ConfigOption = None,
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port to listen on.")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (use PostgreSQL for >1).")
    ] = None,
    sampling: Annotated[
        Sampling | None,
        typer.Option(
            help="uniform, balanced (favour rarely seen pairs), or active (votes where they "
            "sharpen the top of the ranking; every pair keeps a floor; each battle records its "
            "pair's probability)."
        ),
    ] = None,
    completion_code: Annotated[
        str | None, typer.Option(help="Code a study participant gets after enough votes.")
    ] = None,
    completion_votes: Annotated[
        int | None, typer.Option(min=0, help="Votes that earn the completion code.")
    ] = None,
    equal_pace: Annotated[
        bool | None,
        typer.Option(
            "--equal-pace/--free-pace",
            help="Show both replies at one pace once both have started (hides speed).",
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Proxy addresses (comma-separated) trusted to name the client in "
            "X-Forwarded-For; default none."
        ),
    ] = None,
    max_turns: Annotated[
        int | None,
        typer.Option(min=1, help="Turns a person may speak before voting (default 5; 1: single)."),
    ] = None,
) -> None:
    """Run the web arena (SQLite and the built-in offline models by default)."""
    from lamarena.arena import run

    settings = load_settings(
        models_config=config,
        database_url=db,
        host=host,
        port=port,
        workers=workers,
        sampling=sampling.value if sampling else None,
        completion_code=completion_code,
        completion_votes=completion_votes,
        equal_pace=equal_pace,
        forwarded_allow_ips=forwarded_allow_ips,
        max_turns=max_turns,
    )
    run(settings)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``lamarena`` app."""
    app.command()(serve)
