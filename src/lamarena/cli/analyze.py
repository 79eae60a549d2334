"""``lamarena analyze``: the study report from votes and static scores.

``lamarena analyze [--db URL | --votes FILE_OR_FOLDER --from FORMAT [--scheduler ADDRESS]]
--static DIR_OR_CSV --out REPORT_DIR`` writes ``REPORT_DIR/index.html`` (one offline page of
figures) and ``REPORT_DIR/numbers.json`` (every number on it). ``--label-model NAME --config
models.yaml`` has a text model name the topics (otherwise their distinctive terms name them).
`register` adds the command to the main typer app.

The report needs every battle's text (transcripts, reasons, reply lengths), so a ``--votes``
folder of shards is read as records, shard by shard, into one battles table; ``--scheduler``
spreads that reading (parsing, validation and the table rows of each shard) over a Dask cluster,
and the report itself is computed in this process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lamarena.cli.common import VOTES_FOLDER_HELP, VoteFormat, check_scheduler, check_votes_file
from lamarena.errors import ConfigError, InvalidInputError
from lamarena.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from lamarena.models.base import TextModel

__all__ = ["analyze", "load_battles_with_feedback", "register"]


def load_battles_with_feedback(
    settings: Settings,
    votes: Path | None,
    fmt: VoteFormat | None,
    *,
    scheduler: str | None = None,
) -> pd.DataFrame:
    """Battles from a votes file or folder (when given) or from the store, with their reasons.

    The frame is the store's analysis frame (``records_to_frame``) plus ``feedback_text``, of
    the battles that count. A folder's shards are read as one file of their records in name
    order (:func:`~lamarena.store.shards.read_shard_frame`), each on the Dask cluster at
    ``scheduler`` when given.

    Raises:
        InvalidInputError: ``--votes`` without ``--from``, a malformed file or shard, shards
            that clash, or ``scheduler`` without a folder.
        DatabaseError: the database cannot be read.
        ConfigError: the scheduler cannot be reached.
    """
    from lamarena.store import (
        load_battle_records,
        make_engine,
        migrate_to_head,
        read_battle_records,
        records_to_frame,
    )

    check_scheduler(votes, scheduler)
    if votes is not None:
        fmt = check_votes_file(fmt)
        if votes.is_dir():
            from lamarena.store.shards import read_shard_frame

            frame = read_shard_frame(votes, fmt.value, scheduler=scheduler, feedback=True)
            return frame[frame["counted"]].reset_index(drop=True)
        records = read_battle_records(votes, fmt.value)
    else:
        engine = make_engine(settings.database_url)
        try:
            migrate_to_head(engine)
            records = load_battle_records(engine)
        finally:
            engine.dispose()
    # flagged battles (a reply named its model, duplicated audio) stay out, as on the leaderboard
    records = [record for record in records if record.counted]
    frame = records_to_frame(records)
    frame["feedback_text"] = [record.feedback_text for record in records]
    return frame


def analyze(
    static: Annotated[
        Path,
        typer.Option(
            "--static",
            help="Static scores: a `static run --out` directory, or a CSV with a model column "
            "and one column per benchmark.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Report directory (index.html and numbers.json).")
    ],
    db: Annotated[
        str | None,
        typer.Option("--db", help="SQLAlchemy URL (default: LAMARENA_DATABASE_URL or sqlite)."),
    ] = None,
    votes: Annotated[
        Path | None,
        typer.Option(
            help="Analyse the votes in this file instead of the database, or in "
            f"{VOTES_FOLDER_HELP}."
        ),
    ] = None,
    from_: Annotated[
        VoteFormat | None,
        typer.Option("--from", help="Format of the --votes file (or of a folder's shards)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Dask scheduler address, e.g. tcp://host:8786; with a --votes folder, each "
            "shard's records are read, checked and turned into the battles table on the "
            "cluster (its workers read the folder, so it must be on storage they share); the "
            "report itself is computed here.",
        ),
    ] = None,
    bootstrap: Annotated[
        int | None, typer.Option(min=0, help="Bootstrap rounds of the leaderboard (10,000).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of every bootstrap and clustering.")
    ] = None,
    min_battles: Annotated[
        int | None, typer.Option(min=0, help="Fewer battles than this: provisional.")
    ] = None,
    topics: Annotated[
        int | None,
        typer.Option("--topics", min=1, help="Top-level topics (default: chosen by silhouette)."),
    ] = None,
    topic_sample: Annotated[
        int,
        typer.Option(
            min=0,
            help="With more query transcripts than this, find the topics of a seeded sample of "
            "this many and assign the rest to the nearest (0: cluster them all).",
        ),
    ] = 1000,
    topic_agreement: Annotated[
        int,
        typer.Option(
            min=0,
            help="When sampled, cluster a subset of up to this many fully and report the "
            "agreement (ARI, NMI) of the two (0: not measured).",
        ),
    ] = 2000,
    tau_rounds: Annotated[
        int, typer.Option(min=1, help="Bootstrap rounds of the Kendall tau intervals.")
    ] = 1000,
    cluster: Annotated[
        str,
        typer.Option(
            help="Votes that belong together: auto (participants where ids exist, else "
            "sessions), participant, session or none."
        ),
    ] = "auto",
    regression: Annotated[
        str,
        typer.Option(
            help="Primary vote regression: logistic (mixed model, latent-scale R², the "
            "study's) or linear (probability mixed model, observed scale)."
        ),
    ] = "logistic",
    permutations: Annotated[
        int,
        typer.Option(
            min=0,
            help="Most score assignments for the regression's model-level permutation "
            "p-values (all K! when that many or fewer; 0: none).",
        ),
    ] = 1000,
    label_model: Annotated[
        str | None,
        typer.Option(help="Name the topics with this text model of --config (default: terms)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="models.yaml holding the --label-model.")
    ] = None,
) -> None:
    """Write the study report: rankings, topics, benchmarks vs votes, feedback themes."""
    from lamarena.analysis.text.embeddings import sentence_embedder
    from lamarena.report import StudyOptions, compute_study, load_static_input, write_report

    if db is not None and votes is not None:
        raise InvalidInputError("give either --db or --votes, not both")
    check_scheduler(votes, scheduler)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out}: is a file; give a directory for the report")
    settings = load_settings(
        database_url=db,
        bootstrap_rounds=bootstrap,
        seed=seed,
        min_battles=min_battles,
        models_config=config,
    )
    namer = _label_model(settings, label_model)
    table = load_static_input(static)
    battles = load_battles_with_feedback(settings, votes, from_, scheduler=scheduler)
    options = StudyOptions(
        n_resamples=settings.bootstrap_rounds,
        tau_rounds=tau_rounds,
        seed=settings.seed,
        min_battles=settings.min_battles,
        n_topics=topics,
        topic_sample_size=topic_sample or None,
        topic_agreement_size=topic_agreement,
        cluster=cluster,
        regression_model=regression,
        permutations=permutations,
    )
    document = compute_study(
        battles,
        table,
        options=options,
        embedder=sentence_embedder(device=settings.local_device),
        static_source=str(static),
    )
    if namer is not None and document["topics"] is not None:
        document["topics"] = asyncio.run(
            _relabel(document["topics"], namer, settings.model_total_timeout_s)
        )
    files = write_report(document, out)
    sections = ", ".join(f"{name}: {why}" for name, why in document["notes"].items())
    typer.echo(
        f"wrote {files.html} and {files.numbers} ({document['n_battles']} battles, "
        f"{len(document['kendall_tau'])} benchmarks)"
    )
    if sections:
        typer.echo(f"left out: {sections}", err=True)


def _label_model(settings: Settings, name: str | None) -> TextModel | None:
    """The text model that names the topics, built before any work starts (None: terms only).

    Raises:
        ConfigError: no ``--config``, no such model, or one that cannot answer text.
    """
    if name is None:
        return None
    if settings.models_config is None:
        raise ConfigError(f"--label-model {name} needs --config models.yaml that lists it")
    from lamarena.models.registry import model_entries
    from lamarena.report.relabel import text_model

    return text_model(model_entries(settings), name)


async def _relabel(topics: dict[str, Any], model: TextModel, timeout_s: float) -> dict[str, Any]:
    """Name the topics with ``model``, then close it."""
    from lamarena.report.relabel import relabel_topics

    try:
        return await relabel_topics(topics, model, timeout_s=timeout_s)
    finally:
        close = getattr(model, "aclose", None)
        if close is not None:
            await close()


def register(app: typer.Typer) -> None:
    """Add ``analyze`` to the ``lamarena`` typer app."""
    app.command(name="analyze")(analyze)
