"""``lamarena serve``: the web arena."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from lamarena.cli.common import (
    ConfigOption,
    DbOption,
    Sampling,
)
from lamarena.settings import load_settings

__all__ = ["register", "serve"]


class ReplyMode(StrEnum):
    """What the arena's models answer with (``serve --mode``)."""

    TEXT = "text"
    SPEECH = "speech"


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
    mode: Annotated[
        ReplyMode | None,
        typer.Option(
            help="text (default) or speech: what the models answer with. In speech mode every "
            "model must speak (output: audio; the offline ones speak with espeak-ng)."
        ),
    ] = None,
    hide_transcripts: Annotated[
        bool | None,
        typer.Option(
            "--hide-transcripts/--show-transcripts",
            help="Speech mode: never show a spoken reply's text before the vote (default: "
            "shown once the reply was heard).",
        ),
    ] = None,
    min_listen: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=600,
            help="Speech mode: seconds of each reply a person must hear (or all of a shorter "
            "one) before the vote unlocks; the server refuses sooner votes (default 5).",
        ),
    ] = None,
) -> None:
    """Run the web arena (SQLite and the built-in offline models by default)."""
    from lamarena.arena import run
    from lamarena.models.registry import check_output_mode, model_entries

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
        mode=mode.value if mode else None,
        hide_transcripts=hide_transcripts,
        min_listen_s=min_listen,
    )
    # a mixed configuration is refused here, with its one-line message, before the server starts
    check_output_mode(model_entries(settings), settings.mode)
    run(settings)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``lamarena`` app."""
    app.command()(serve)
