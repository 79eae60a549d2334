"""Vote import and export: the services behind ``lamarena votes import|export``.

Each service owns its transaction: an import validates the whole file first, then writes every
battle in one transaction, so a bad file (or a battle already stored) changes nothing. A
database that cannot be reached, or that refuses a read or a write, is reported as one
:class:`~lamarena.errors.DatabaseError` naming the database (password hidden).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from lamarena.errors import InvalidInputError, RecordError
from lamarena.store import repo
from lamarena.store.audit import audit_session
from lamarena.store.db import database_errors, make_sessionmaker
from lamarena.store.exporters import EXPORT_SUFFIXES, write_battle_records
from lamarena.store.importers import BattleFormat, read_battle_records
from lamarena.store.records import BattleRecord, describe_session_owner

__all__ = ["export_votes", "import_votes", "load_battle_records", "load_battles_frame"]

logger = logging.getLogger(__name__)

_READ_HINT = "check that --db names a lamarena database"
_UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE
_SQLITE_DUPLICATE_KEY = ("SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE")


def _is_duplicate_key(exc: IntegrityError) -> bool:
    """Whether the database refused a row because its key is already stored.

    Other integrity failures (a trigger's ``RAISE(ABORT, ...)`` on SQLite, a foreign key whose
    row went away) are failures of the database, not of the file.
    """
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == _UNIQUE_VIOLATION)
    return getattr(exc.orig, "sqlite_errorname", None) in _SQLITE_DUPLICATE_KEY


def _check_against_database(
    source: str, records: list[BattleRecord], taken: set[str], owners: dict[str, str | None]
) -> None:
    if taken:
        first = next(record for record in records if record.battle_id in taken)
        others = f" (and {len(taken) - 1} more of this file's battles)" if len(taken) > 1 else ""
        raise RecordError(
            source,
            first.battle_id,
            "battle_id",
            f"is already in the database{others}; nothing was imported",
        )
    for record in records:
        if record.session_id is None or record.session_id not in owners:
            continue
        owner = owners[record.session_id]
        if owner != record.participant_id:
            given = "null" if record.participant_id is None else repr(record.participant_id)
            raise RecordError(
                source,
                record.battle_id,
                "participant_id",
                f"is {given}, but in the database "
                f"{describe_session_owner(record.session_id, owner)}; nothing was imported",
            )


def import_votes(
    engine: Engine, path: str | Path, fmt: BattleFormat, *, imported_at: datetime | None = None
) -> int:
    """Import a battle file into the store, all or nothing.

    A participant belongs to a session, so a record whose session is already stored must give
    that session's participant exactly (``null`` when it has none): a stored session's
    participant is never filled in or changed, since that would change the participant of the
    battles already stored in it.

    Args:
        engine: the store's engine (already migrated).
        path: the file to import.
        fmt: ``talk-arena``, ``fastchat``, ``jsonl`` or ``parquet``.
        imported_at: ``created_at`` of battles whose file has no time (Talk Arena); now if None.

    Returns:
        The number of battles imported.

    Raises:
        InvalidInputError: the file cannot be read or parsed, a record is invalid (RecordError),
            a battle id is already stored, or a record's participant differs from its stored
            session's (RecordError); in every case nothing is written.
        DatabaseError: the database cannot be reached or refused the import; nothing is written.
    """
    source = str(path)
    records = read_battle_records(path, fmt, imported_at=imported_at)
    session_ids = sorted({record.session_id for record in records if record.session_id})
    with (
        database_errors(engine, f"importing {source}", "nothing was imported"),
        make_sessionmaker(engine).begin() as session,
    ):
        taken = repo.existing_battle_ids(session, (record.battle_id for record in records))
        owners = repo.session_participants(session, session_ids)
        _check_against_database(source, records, taken, owners)
        try:
            count = repo.insert_battle_records(session, records)
        except IntegrityError as exc:
            if not _is_duplicate_key(exc):
                raise  # a DatabaseError, from database_errors
            # A concurrent writer stored one of these ids meanwhile.
            detail = " ".join(str(exc.orig).split())[:200]
            raise InvalidInputError(
                f"{source}: the database refused the battles ({detail}); nothing was imported"
            ) from exc
    logger.info("imported %d battles from %s (%s)", count, source, fmt)
    return count


def load_battle_records(engine: Engine) -> list[BattleRecord]:
    """Load every voted battle of the store, oldest first, counted or not.

    Arena sessions come as their salted hashes, as exports write them
    (:mod:`lamarena.store.hashing`).

    Raises:
        DatabaseError: the database cannot be reached or refused the read.
    """
    with (
        database_errors(engine, "reading the battles", _READ_HINT),
        make_sessionmaker(engine).begin() as session,
    ):
        return repo.load_battle_records(session)


def export_votes(engine: Engine, out_path: str | Path) -> int:
    """Export every voted battle to JSONL or Parquet (by the suffix of ``out_path``), atomically.

    Every battle is written, counted or not, with its ``counted`` and ``flags``; the session of
    an arena battle is its salted hash, never the cookie (:mod:`lamarena.store.hashing`).

    Args:
        engine: the store's engine.
        out_path: a ``.jsonl`` or ``.parquet`` file; an existing file is replaced.

    Returns:
        The number of battles written.

    Raises:
        InvalidInputError: the suffix is neither ``.jsonl`` nor ``.parquet`` or the directory
            cannot be written.
        DatabaseError: the database cannot be reached or refused the read; no file is written.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() not in EXPORT_SUFFIXES:
        raise InvalidInputError(
            f"{out_path}: cannot export to {out_path.suffix or 'a file without suffix'}; "
            "name the file .jsonl or .parquet"
        )
    return write_battle_records(load_battle_records(engine), out_path)


def load_battles_frame(
    engine: Engine, *, include_uncounted: bool = False, exclude_flagged: bool = False
) -> pd.DataFrame:
    """Load the voted battles a leaderboard ranks as the analysis DataFrame.

    Args:
        engine: the store's engine.
        include_uncounted: also load battles whose vote does not count (``counted`` false:
            the arena flagged them); by default they are left out.
        exclude_flagged: also leave out the votes of sessions and addresses that
            ``votes audit`` flags (:meth:`~lamarena.store.audit.VoteAudit.flagged_battle_ids`),
            read in the same transaction.

    Returns:
        Columns ``battle_id, model_a, model_b, winner, chars_a, chars_b, ttft_a_s, ttft_b_s,
        total_a_s, total_b_s, query_transcript, created_at, counted`` (see
        ``records.FRAME_COLUMNS``), oldest first, numbered from 0.

    Raises:
        DatabaseError: the database cannot be reached or refused the read.
    """
    with (
        database_errors(engine, "reading the battles", _READ_HINT),
        make_sessionmaker(engine).begin() as session,
    ):
        frame = repo.battles_frame(session, include_uncounted=include_uncounted)
        if exclude_flagged:
            flagged = audit_session(session).flagged_battle_ids()
            frame = frame[~frame["battle_id"].isin(flagged)].reset_index(drop=True)
        return frame
