"""Remove what the arena keeps of battles nobody voted on (``lamarena battles prune``).

:func:`prune_battles` deletes, in one transaction, every battle without a vote created more than
``older_than`` ago, with its replies, and every ``client_events`` row older than that. The query
audio those battles kept (``battles.kept_audio_path``) and their spoken replies' WAVs
(``replies.audio_sha256``) are removed only after the transaction commits, and only where no
remaining battle refers to the same file (the arena keeps one file per distinct recording),
checked again just before each file is removed. A path is read as the
arena wrote it (a relative path is relative to the current directory, where ``serve`` ran), and
a file is removed only when it lies inside the data directory: a path elsewhere is counted and
left in place. ``dry_run`` reports the same counts and deletes nothing.

On PostgreSQL the battles to delete are locked (``SELECT ... FOR UPDATE``) and checked again for
a vote, so a vote that arrives meanwhile either commits first (the battle stays) or waits and
then finds the battle gone; on SQLite the transaction holds the write lock from its start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, exists, func, select
from sqlalchemy.orm import Session

from lamarena.errors import InvalidInputError
from lamarena.store.audio_files import reply_audio_path
from lamarena.store.db import database_errors, make_sessionmaker, reader
from lamarena.store.tables import Battle, ClientEvent, Reply, Turn, Vote

__all__ = ["MAX_DURATION", "PruneReport", "parse_duration", "prune_battles"]

logger = logging.getLogger(__name__)

MAX_DURATION = timedelta(days=36_500)
"""The longest ``--older-than`` accepted (about a century)."""

_DURATION = re.compile(r"([0-9]+)([dhm])")
_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
_IN_CHUNK = 500  # ids per IN (...) query, well under every driver's parameter limit


def parse_duration(text: str) -> timedelta:
    """Parse ``7d`` (days), ``24h`` (hours) or ``90m`` (minutes): a whole number and one unit.

    Raises:
        InvalidInputError: any other form, zero, or longer than :data:`MAX_DURATION`.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InvalidInputError(
            f"--older-than {text!r}: give a whole number and a unit: 7d (days), 24h (hours) or "
            "90m (minutes)"
        )
    count = int(match.group(1))
    if count == 0:
        raise InvalidInputError(f"--older-than {text!r}: must be more than zero")
    if count > MAX_DURATION // _UNITS[match.group(2)]:
        raise InvalidInputError(f"--older-than {text!r}: at most {MAX_DURATION.days}d")
    return count * _UNITS[match.group(2)]


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed (or, with ``dry_run``, would remove).

    Attributes:
        cutoff: battles and client events created before this went.
        dry_run: nothing was deleted.
        battles: battles without a vote deleted.
        replies: their replies deleted.
        client_events: client events deleted.
        audio_files: kept audio files removed.
        audio_bytes: their size in bytes.
        audio_missing: files of deleted battles that were already gone.
        audio_outside: files left in place because they lie outside the data directory.
    """

    cutoff: datetime
    dry_run: bool
    battles: int
    replies: int
    client_events: int
    audio_files: int
    audio_bytes: int
    audio_missing: int
    audio_outside: int

    def to_dict(self) -> dict[str, Any]:
        """The ``battles prune --json`` document (``cutoff`` in ISO 8601)."""
        document = asdict(self)
        document["cutoff"] = self.cutoff.isoformat()
        return document


@dataclass(frozen=True)
class _Doomed:
    battles: int
    replies: int
    client_events: int
    paths: list[str]
    reply_audio: list[str]
    """The sha256 of each spoken reply WAV no remaining battle names."""


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[start : start + _IN_CHUNK] for start in range(0, len(values), _IN_CHUNK)]


def _unvoted_before(cutoff: datetime) -> Any:
    return (Battle.created_at < cutoff) & ~exists().where(Vote.battle_id == Battle.id)


def _referenced(session: Session, paths: Sequence[str], *, besides: set[str]) -> set[str]:
    """Those of ``paths`` that a battle other than ``besides`` keeps."""
    found: set[str] = set()
    for chunk in _chunks(paths):
        for column, battle in (
            (Battle.kept_audio_path, Battle.id),
            (Turn.kept_audio_path, Turn.battle_id),
        ):
            rows = session.execute(select(battle, column).where(column.in_(chunk))).all()
            found.update(path for owner, path in rows if owner not in besides and path is not None)
    return found


def _referenced_reply_audio(
    session: Session, hashes: Sequence[str], *, besides: set[str]
) -> set[str]:
    """Those of ``hashes`` that a reply of a battle other than ``besides`` names."""
    found: set[str] = set()
    for chunk in _chunks(hashes):
        rows = session.execute(
            select(Reply.battle_id, Reply.audio_sha256).where(Reply.audio_sha256.in_(chunk))
        ).all()
        found.update(sha for owner, sha in rows if owner not in besides and sha is not None)
    return found


def _prune_rows(session: Session, cutoff: datetime, *, dry_run: bool) -> _Doomed:
    """Find (and unless ``dry_run`` delete) the rows; return counts and orphaned audio paths."""
    candidates = select(Battle.id).where(_unvoted_before(cutoff))
    if not dry_run:
        # Lock the candidates (PostgreSQL), then check again for a vote that committed before
        # the lock: no vote can reference a locked battle until this transaction ends.
        candidates = candidates.with_for_update()
    locked = list(session.scalars(candidates))
    ids: list[str] = []
    paths: set[str] = set()
    for chunk in _chunks(locked):
        rows = session.execute(
            select(Battle.id, Battle.kept_audio_path).where(
                Battle.id.in_(chunk), _unvoted_before(cutoff)
            )
        ).all()
        ids.extend(row.id for row in rows)
        paths.update(row.kept_audio_path for row in rows if row.kept_audio_path is not None)
    for chunk in _chunks(ids):  # the later turns' kept queries go with their battles
        paths.update(
            path
            for path in session.scalars(
                select(Turn.kept_audio_path).where(Turn.battle_id.in_(chunk))
            )
            if path is not None
        )
    replies = 0
    spoken: set[str] = set()
    for chunk in _chunks(ids):
        counted = session.scalar(select(func.count(Reply.id)).where(Reply.battle_id.in_(chunk)))
        replies += counted or 0
        spoken.update(
            sha
            for sha in session.scalars(
                select(Reply.audio_sha256).where(
                    Reply.battle_id.in_(chunk), Reply.audio_sha256.is_not(None)
                )
            )
            if sha is not None
        )
    events = session.scalar(
        select(func.count(ClientEvent.id)).where(ClientEvent.created_at < cutoff)
    )
    orphaned = sorted(paths - _referenced(session, sorted(paths), besides=set(ids)))
    silent = sorted(spoken - _referenced_reply_audio(session, sorted(spoken), besides=set(ids)))
    if not dry_run:
        for chunk in _chunks(ids):
            session.execute(delete(Reply).where(Reply.battle_id.in_(chunk)))
            session.execute(delete(Turn).where(Turn.battle_id.in_(chunk)))
            session.execute(delete(Battle).where(Battle.id.in_(chunk)))
        session.execute(delete(ClientEvent).where(ClientEvent.created_at < cutoff))
    return _Doomed(
        battles=len(ids),
        replies=replies,
        client_events=events or 0,
        paths=orphaned,
        reply_audio=silent,
    )


def prune_battles(
    engine: Engine,
    older_than: timedelta,
    data_dir: Path,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneReport:
    """Delete unvoted battles older than ``older_than``, their replies, audio and old events.

    Args:
        engine: the store's engine (already migrated).
        older_than: how old a battle or client event must be to go (more than zero).
        data_dir: the arena's data directory; only kept audio inside it is removed.
        dry_run: report what would go and change nothing.
        now: the time ``older_than`` counts back from; now when None.

    Returns:
        What was (or would be) removed.

    Raises:
        InvalidInputError: ``older_than`` is not positive.
        DatabaseError: the database cannot be reached or refused the deletion; nothing was
            deleted and no file was removed.
    """
    if older_than <= timedelta(0):
        raise InvalidInputError(f"older_than must be more than zero, got {older_than}")
    cutoff = (now or datetime.now(UTC)) - older_than
    with database_errors(engine, "pruning battles", "nothing was deleted"):
        factory = make_sessionmaker(reader(engine) if dry_run else engine)
        with factory.begin() as session:
            doomed = _prune_rows(session, cutoff, dry_run=dry_run)
    # The transaction has committed: only now may the files go.
    directory = data_dir.resolve()
    removed = size = missing = outside = 0
    files = [(stored, False) for stored in doomed.paths]
    files += [(str(reply_audio_path(data_dir, sha)), True) for sha in doomed.reply_audio]
    for stored, is_reply in files:
        path = Path(stored).resolve()
        if not path.is_relative_to(directory):
            outside += 1
            continue
        if not path.is_file():
            missing += 1
            continue
        if not dry_run:
            # A battle opened since the commit may have kept the same recording again.
            with (
                database_errors(engine, "checking kept audio", "the file was left in place"),
                make_sessionmaker(reader(engine)).begin() as session,
            ):
                if is_reply:
                    if _referenced_reply_audio(session, [path.stem], besides=set()):
                        continue
                elif _referenced(session, [stored], besides=set()):
                    continue
        file_size = path.stat().st_size
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                missing += 1
                continue
        removed += 1
        size += file_size
    report = PruneReport(
        cutoff=cutoff,
        dry_run=dry_run,
        battles=doomed.battles,
        replies=doomed.replies,
        client_events=doomed.client_events,
        audio_files=removed,
        audio_bytes=size,
        audio_missing=missing,
        audio_outside=outside,
    )
    logger.info("pruned battles before %s: %s", cutoff.isoformat(), report.to_dict())
    return report
