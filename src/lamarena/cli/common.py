"""What the commands share: vote formats, common options, the store and the battles frame."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lamarena.errors import InvalidInputError
from lamarena.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "VOTES_FOLDER_HELP",
    "CiMethod",
    "ClusterBy",
    "ConfigOption",
    "DbOption",
    "GroupBy",
    "JsonOption",
    "ReplyMode",
    "Sampling",
    "SchedulerOption",
    "TieModel",
    "VoteFormat",
    "Weighting",
    "check_scheduler",
    "check_votes_file",
    "format_number",
    "load_battles",
    "load_encoded_battles",
    "open_store",
]


class VoteFormat(StrEnum):
    """Formats ``votes import`` and ``leaderboard --votes`` read."""

    TALK_ARENA = "talk-arena"
    FASTCHAT = "fastchat"
    JSONL = "jsonl"
    PARQUET = "parquet"


class CiMethod(StrEnum):
    """How the leaderboard's confidence intervals are computed."""

    BOOTSTRAP = "bootstrap"
    ANALYTIC = "analytic"


class TieModel(StrEnum):
    """How the leaderboard's fit treats ties and both-bad votes."""

    HALF = "half"
    DAVIDSON = "davidson"


class Weighting(StrEnum):
    """Whether the leaderboard undoes an adaptive pair design by inverse-probability weights."""

    AUTO = "auto"
    IPW = "ipw"
    NONE = "none"


class GroupBy(StrEnum):
    """What ``leaderboard --by`` keeps apart."""

    MODE = "mode"
    TURNS = "turns"


class ReplyMode(StrEnum):
    """Which votes ``leaderboard --mode`` ranks: text-out or speech-out."""

    TEXT = "text"
    SPEECH = "speech"


class ClusterBy(StrEnum):
    """Which votes belong together (resampled whole, summed together in the sandwich)."""

    AUTO = "auto"
    PARTICIPANT = "participant"
    SESSION = "session"
    NONE = "none"


DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy URL (default: LAMARENA_DATABASE_URL or sqlite)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="models.yaml (default: the built-in offline models)."),
]


class Sampling(StrEnum):
    """How the arena draws the two models of a battle."""

    UNIFORM = "uniform"
    BALANCED = "balanced"
    ACTIVE = "active"


def open_store(settings: Settings) -> Any:
    """Create the engine for the configured database and bring its schema to head."""
    from lamarena.store import make_engine, migrate_to_head

    engine = make_engine(settings.database_url)
    migrate_to_head(engine)
    return engine


SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Dask scheduler address, e.g. tcp://host:8786; with a --votes folder, each shard "
        "is read and checked on the cluster (its workers read the folder, so it must be on "
        "storage they share).",
    ),
]
VOTES_FOLDER_HELP = (
    "a folder of *.parquet (--from parquet) or *.jsonl (--from jsonl) shards, read as one file "
    "of their records in name order"
)


def check_scheduler(votes: Path | None, scheduler: str | None) -> None:
    """Refuse ``--scheduler`` unless ``--votes`` names a folder of shards.

    Raises:
        InvalidInputError: a scheduler without a ``--votes`` folder.
    """
    if scheduler is not None and (votes is None or not votes.is_dir()):
        given = "no --votes" if votes is None else f"--votes {votes} is not a folder"
        raise InvalidInputError(
            f"--scheduler spreads the shards of a --votes folder over a Dask cluster, but "
            f"{given}: give --votes FOLDER (of *.parquet or *.jsonl shards) or drop --scheduler"
        )


def check_votes_file(fmt: VoteFormat | None, *, exclude_flagged: bool = False) -> VoteFormat:
    """The ``--from`` format of a ``--votes`` file or folder.

    Raises:
        InvalidInputError: no ``--from``, or ``--exclude-flagged`` (a file has no voter signals).
    """
    if fmt is None:
        raise InvalidInputError("--votes needs --from talk-arena|fastchat|jsonl|parquet")
    if exclude_flagged:
        raise InvalidInputError(
            "--exclude-flagged needs the voter signals stored in the database (votes audit); "
            "a --votes file has none: rank the database with --db instead"
        )
    return fmt


def load_battles(
    settings: Settings,
    votes: Path | None,
    fmt: VoteFormat | None,
    *,
    include_flagged: bool = False,
    exclude_flagged: bool = False,
    scheduler: str | None = None,
) -> pd.DataFrame:
    """Battles from a votes file or folder of shards (when given) or from the store.

    Battles whose vote does not count (``counted`` false) are left out unless
    ``include_flagged``; ``exclude_flagged`` also leaves out the votes of the sessions and
    addresses ``votes audit`` flags, which needs the store's voter signals. A folder's shards
    are read as one file of their records in name order
    (:func:`~lamarena.store.shards.read_shard_frame`), each on the Dask cluster at
    ``scheduler`` when given.
    """
    _check_sources(votes, scheduler, include_flagged, exclude_flagged)
    if votes is not None:
        from lamarena.store import read_battle_records, records_to_frame

        fmt = check_votes_file(fmt, exclude_flagged=exclude_flagged)
        if votes.is_dir():
            from lamarena.store.shards import read_shard_frame

            frame = read_shard_frame(votes, fmt.value, scheduler=scheduler)
        else:
            frame = records_to_frame(read_battle_records(votes, fmt.value))
        if not include_flagged:
            frame = frame[frame["counted"]].reset_index(drop=True)
        return frame
    engine = open_store(settings)
    try:
        from lamarena.store import load_battles_frame

        return load_battles_frame(
            engine, include_uncounted=include_flagged, exclude_flagged=exclude_flagged
        )
    finally:
        engine.dispose()


def _check_sources(
    votes: Path | None, scheduler: str | None, include_flagged: bool, exclude_flagged: bool
) -> None:
    """Refuse flag options that exclude each other and a scheduler without a folder."""
    if include_flagged and exclude_flagged:
        raise InvalidInputError("give --include-flagged or --exclude-flagged, not both")
    check_scheduler(votes, scheduler)


def load_encoded_battles(
    settings: Settings,
    votes: Path | None,
    fmt: VoteFormat | None,
    *,
    include_flagged: bool = False,
    exclude_flagged: bool = False,
    scheduler: str | None = None,
) -> Any:
    """The battles :func:`load_battles` loads, as integer columns (no object per vote).

    JSONL and Parquet files are read by the columnar loader (the record loader's checks and
    messages; see :mod:`lamarena.store.columnar`), a folder of their shards shard by shard and
    merged (:func:`~lamarena.store.shards.read_vote_shards`; each shard on the Dask cluster at
    ``scheduler`` when given), the database by one lean ``SELECT``. Enough for every leaderboard
    but a style-controlled one, which needs the replies' lengths and timings.

    Returns:
        An :class:`~lamarena.analysis.encoded.EncodedBattles`.
    """
    from lamarena.analysis.encoded import encode_columns

    _check_sources(votes, scheduler, include_flagged, exclude_flagged)
    if votes is not None:
        fmt = check_votes_file(fmt, exclude_flagged=exclude_flagged)
        if votes.is_dir():
            from lamarena.store.shards import read_vote_shards

            columns = read_vote_shards(votes, fmt.value, scheduler=scheduler)
        else:
            from lamarena.store.columnar import read_vote_columns

            columns = read_vote_columns(votes, fmt.value)
    else:
        from lamarena.store.columnar_store import read_store_columns

        engine = open_store(settings)
        try:
            columns = read_store_columns(
                engine, include_uncounted=include_flagged, exclude_flagged=exclude_flagged
            )
        finally:
            engine.dispose()
    if not include_flagged:
        columns = columns.take(columns.counted)
    return encode_columns(columns)


def format_number(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or a dash for no value."""
    return "-" if value is None else format(value, spec)
