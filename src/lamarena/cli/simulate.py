"""``lamarena simulate``: votes from known strengths, for studies, demos and calibration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lamarena.cli.common import (
    JsonOption,
    Sampling,
)
from lamarena.errors import InvalidInputError

__all__ = ["STUDY_PARTICIPANT_SD", "STUDY_VOTES_PER_PARTICIPANT", "register", "simulate"]


def simulate(
    models: Annotated[
        str, typer.Option(help="How many models (N) or their names (NAME,NAME,...).")
    ],
    votes: Annotated[int, typer.Option(min=1, help="How many battles to draw.")],
    out: Annotated[Path, typer.Option(help="Output JSONL file.")],
    seed: Annotated[int, typer.Option(help="Seed for strengths and outcomes.")] = 0,
    study: Annotated[
        bool,
        typer.Option(
            "--study",
            help="As the study ran it: participants casting 10 votes each on one pair, with a "
            "preference of their own (sd 0.8 log-odds); query transcripts and vote reasons.",
        ),
    ] = False,
    tie_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.1,
    length_effect: Annotated[
        float, typer.Option(help="Elo points gained by the longer reply (style bias).")
    ] = 0.0,
    latency_effect: Annotated[
        float, typer.Option(help="Elo points lost by the slower first token (style bias).")
    ] = 0.0,
    sampling: Annotated[
        Sampling,
        typer.Option(
            help="How pairs are drawn, as serve --sampling (the adaptive ones refit every 50 "
            "votes); each battle records its pair's probability."
        ),
    ] = Sampling.UNIFORM,
    as_json: JsonOption = False,
) -> None:
    """Draw battles from known strengths and write them as battle-record JSONL."""
    from lamarena.simulation import parse_strengths, simulate_battles
    from lamarena.store import records_from_frame, write_battle_records

    if out.suffix != ".jsonl":
        raise InvalidInputError(f"--out {out}: simulated votes are written as .jsonl")
    strengths = parse_strengths(models, seed=seed)
    battles = simulate_battles(
        strengths,
        votes,
        seed=seed,
        tie_rate=tie_rate,
        length_effect=length_effect,
        latency_effect=latency_effect,
        study=study,
        feedback=study,
        votes_per_participant=STUDY_VOTES_PER_PARTICIPANT if study else None,
        participant_sd=STUDY_PARTICIPANT_SD if study else 0.0,
        sampling=sampling.value,
    )
    written = write_battle_records(records_from_frame(battles), out)
    summary = {
        "out": str(out),
        "battles": written,
        "strengths": dict(strengths),
        "sampling": sampling.value,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(f"wrote {written} simulated battles among {len(strengths)} models to {out}")


STUDY_VOTES_PER_PARTICIPANT = 10
"""Votes each simulated participant casts with ``simulate --study`` (the study's design)."""
STUDY_PARTICIPANT_SD = 0.8
"""Standard deviation of a simulated participant's own preference (log-odds)."""


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the ``lamarena`` app."""
    app.command()(simulate)
