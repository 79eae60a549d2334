"""``lamarena models list|check`` and ``lamarena ask``: the configured models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lamarena.cli.common import (
    ConfigOption,
    JsonOption,
)
from lamarena.errors import ModelError
from lamarena.settings import load_settings

__all__ = ["ask", "models_app", "register"]


models_app = typer.Typer(help="List and probe the configured models.", no_args_is_help=True)


@models_app.command("list")
def models_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the models of models.yaml, or the built-in offline models."""
    from lamarena.models.registry import model_entries

    entries = model_entries(load_settings(models_config=config))
    rows = [entry.describe() for entry in entries]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        label = "offline" if row["offline"] else "remote"
        typer.echo(f"{row['name']:<28} {row['kind']:<9} {label:<8} {row['model']}")
        if row.get("description"):
            typer.echo(f"{'':<28} {row['description']}")
        if row.get("interface"):
            trust = "trust_remote_code: true" if row.get("trust_remote_code") else "no remote code"
            typer.echo(f"{'':<28} interface {row['interface']}, {trust}")


@models_app.command("check")
def models_check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Ask every model a short spoken question and report whether and how fast it answers.

    A hosted id the installed SDKs list as shut down fails without a request; one that shuts
    down within 60 days gets a warn line.
    """
    import asyncio

    from lamarena.models.registry import check_models

    settings = load_settings(models_config=config)
    results = asyncio.run(check_models(settings))
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for row in results:
            if row["ok"]:
                typer.echo(
                    f"{row['name']:<28} ok    ttft {row['ttft_s']:.2f} s  total "
                    f"{row['total_s']:.2f} s  {row['reply']!r}"
                )
            else:
                typer.echo(f"{row['name']:<28} FAIL  {row['error']}")
            for warning in row.get("warnings", []):
                typer.echo(f"{'':<28} warn  {warning}")
    if not all(row["ok"] for row in results):
        raise typer.Exit(1)


def ask(
    model: Annotated[str, typer.Argument(help="A model name (see `lamarena models list`).")],
    audio: Annotated[Path, typer.Argument(help="The spoken query: wav, flac, ogg, mp3, webm.")],
    config: ConfigOption = None,
    prompt: Annotated[
        str | None, typer.Option(help="Text sent with the audio (default: the model's prompt).")
    ] = None,
) -> None:
    """Stream one model's reply to a recorded query; timings go to stderr."""
    import asyncio

    from lamarena.audio import AudioLimits, load_audio
    from lamarena.models.registry import ask_model

    settings = load_settings(models_config=config)
    clip = load_audio(audio, limits=AudioLimits(max_duration_s=None, max_bytes=None))

    def show(delta: str) -> None:
        typer.echo(delta, nl=False)

    reply = asyncio.run(ask_model(settings, model, clip, prompt=prompt, on_delta=show))
    typer.echo("")
    if reply.transcript is not None:
        typer.echo(f"transcript: {reply.transcript}", err=True)
    ttft = "-" if reply.ttft_s is None else f"{reply.ttft_s:.2f} s"
    typer.echo(f"ttft {ttft}, total {reply.total_s:.2f} s, {reply.chars} chars", err=True)
    if reply.error is not None:
        raise ModelError(model, reply.error.removeprefix(f"model '{model}': "))


def register(app: typer.Typer) -> None:
    """Add ``ask`` to the ``lamarena`` app."""
    app.command()(ask)
