"""Vote import and export: the services behind ``lamarena votes import|export``.

Each service owns its transaction: an import validates the whole file first, then writes every
battle in one transaction, so a bad file (or a battle already stored) changes nothing.
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
from lamarena.store.db import make_sessionmaker
from lamarena.store.exporters import EXPORT_SUFFIXES, write_battle_records
from lamarena.store.importers import BattleFormat, read_battle_records
from lamarena.store.records import BattleRecord

__all__ = ["export_votes", "import_votes", "load_battle_records", "load_battles_frame"]

logger = logging.getLogger(__name__)


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
        if record.session_id not in owners or record.participant_id is None:
            continue
        owner = owners[record.session_id]
        if owner is not None and owner != record.participant_id:
            raise RecordError(
                source,
                record.battle_id,
                "participant_id",
                f"session {record.session_id!r} already belongs to participant {owner!r} "
                "in the database",
            )


def import_votes(
    engine: Engine, path: str | Path, fmt: BattleFormat, *, imported_at: datetime | None = None
) -> int:
    """Import a battle file into the store, all or nothing.

    Args:
        engine: the store's engine (already migrated).
        path: the file to import.
        fmt: ``talk-arena``, ``fastchat``, ``jsonl`` or ``parquet``.
        imported_at: ``created_at`` of battles whose file has no time (Talk Arena); now if None.

    Returns:
        The number of battles imported.

    Raises:
        InvalidInputError: the file cannot be read or parsed, a record is invalid (RecordError),
            or a battle id is already stored; in every case nothing is written.
    """
    source = str(path)
    records = read_battle_records(path, fmt, imported_at=imported_at)
    session_ids = sorted({record.session_id for record in records if record.session_id})
    with make_sessionmaker(engine).begin() as session:
        taken = repo.existing_battle_ids(session, (record.battle_id for record in records))
        owners = repo.session_participants(session, session_ids)
        _check_against_database(source, records, taken, owners)
        try:
            count = repo.insert_battle_records(session, records)
        except IntegrityError as exc:  # a concurrent writer stored one of these ids meanwhile
            detail = " ".join(str(exc.orig).split())[:200]
            raise InvalidInputError(
                f"{source}: the database refused the battles ({detail}); nothing was imported"
            ) from exc
    logger.info("imported %d battles from %s (%s)", count, source, fmt)
    return count


def load_battle_records(engine: Engine) -> list[BattleRecord]:
    """Load every voted battle of the store, oldest first."""
    with make_sessionmaker(engine).begin() as session:
        return repo.load_battle_records(session)


def export_votes(engine: Engine, out_path: str | Path) -> int:
    """Export every voted battle to JSONL or Parquet (by the suffix of ``out_path``), atomically.

    Args:
        engine: the store's engine.
        out_path: a ``.jsonl`` or ``.parquet`` file; an existing file is replaced.

    Returns:
        The number of battles written.

    Raises:
        InvalidInputError: the suffix is neither ``.jsonl`` nor ``.parquet`` or the directory
            cannot be written.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() not in EXPORT_SUFFIXES:
        raise InvalidInputError(
            f"{out_path}: cannot export to {out_path.suffix or 'a file without suffix'}; "
            "name the file .jsonl or .parquet"
        )
    return write_battle_records(load_battle_records(engine), out_path)


def load_battles_frame(engine: Engine) -> pd.DataFrame:
    """Load every voted battle as the analysis DataFrame.

    Returns:
        Columns ``battle_id, model_a, model_b, winner, chars_a, chars_b, ttft_a_s, ttft_b_s,
        total_a_s, total_b_s, query_transcript, created_at`` (see ``records.FRAME_COLUMNS``).
    """
    with make_sessionmaker(engine).begin() as session:
        return repo.battles_frame(session)
