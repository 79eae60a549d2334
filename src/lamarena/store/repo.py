"""Repository functions over a SQLAlchemy session.

Each function takes an open :class:`sqlalchemy.orm.Session` and never commits: the caller (a
service such as ``votes.import_votes`` or an arena route) owns the transaction, so one request or
one import is all-or-nothing (STYLE.md B4). The whole-store functions live in
:mod:`lamarena.store.bulk` and are re-exported here. The arena uses :func:`create_session`,
:func:`create_battle`, :func:`add_reply` and :func:`record_vote`; imports use
:func:`insert_battle_records`; exports and the leaderboard use :func:`load_battle_records` and
:func:`battles_frame`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lamarena.errors import AlreadyVoted, InvalidInputError, NotFound
from lamarena.store.bulk import battles_frame, insert_battle_records, load_battle_records
from lamarena.store.records import Winner
from lamarena.store.tables import REPLY_MODES, SIDES, Battle, Participant, Reply, Turn, Vote
from lamarena.store.tables import Session as SessionRow
from lamarena.store.vote_counts import (
    add_votes,
    counted_vote,
    lock_battle,
    move_vote,
    remove_vote,
)

__all__ = [
    "add_reply",
    "add_turn",
    "battles_frame",
    "create_battle",
    "create_participant",
    "create_session",
    "existing_battle_ids",
    "flag_battle",
    "insert_battle_records",
    "load_battle_records",
    "record_vote",
    "session_participants",
    "session_vote_count",
    "set_query_transcript",
    "set_turn_transcript",
    "table_counts",
]

logger = logging.getLogger(__name__)

_IN_CHUNK = 500  # ids per IN (...) query, well under every driver's parameter limit


def _now(value: datetime | None) -> datetime:
    return datetime.now(UTC) if value is None else value


def create_participant(
    session: Session, participant_id: str, *, created_at: datetime | None = None
) -> None:
    """Add a participant known by an external id (a Prolific pid, say) unless it exists."""
    if session.get(Participant, participant_id) is None:
        session.add(Participant(id=participant_id, created_at=_now(created_at)))
        session.flush()


def create_session(
    session: Session,
    *,
    session_id: str | None = None,
    participant_id: str | None = None,
    consent_keep_audio: bool = False,
    created_at: datetime | None = None,
) -> str:
    """Add an arena session (one visit) and return its id.

    Args:
        session: the database session.
        session_id: the id to use; a new UUID when None.
        participant_id: the external id of the participant, created if new.
        consent_keep_audio: whether the participant agreed that their audio may be kept.
        created_at: when the session started; now when None.

    Returns:
        The session id.
    """
    created_at = _now(created_at)
    if participant_id is not None:
        create_participant(session, participant_id, created_at=created_at)
    row = SessionRow(
        id=session_id or str(uuid.uuid4()),
        participant_id=participant_id,
        created_at=created_at,
        consent_keep_audio=consent_keep_audio,
    )
    session.add(row)
    session.flush()
    return row.id


def create_battle(
    session: Session,
    *,
    model_a: str,
    model_b: str,
    session_id: str | None = None,
    query_audio_sha256: str | None = None,
    query_transcript: str | None = None,
    kept_audio_path: str | None = None,
    source: str = "arena",
    battle_id: str | None = None,
    created_at: datetime | None = None,
    participant_id: str | None = None,
    client_hash: str | None = None,
    flags: Iterable[str] = (),
    equal_pace: bool = False,
    server_run: str | None = None,
    sampling_probability: float | None = None,
    mode: str = "text",
) -> str:
    """Add a battle (no replies, no vote yet) and return its id.

    Args:
        session: the database session.
        model_a: the model shown as A.
        model_b: the model shown as B; must differ from ``model_a``.
        session_id: the arena session the battle belongs to.
        query_audio_sha256: the sha256 of the recorded query.
        query_transcript: what the query said, if transcribed.
        kept_audio_path: where the query audio was kept; only allowed with consent.
        source: where the battle comes from (``arena``, ``simulate``, ...).
        battle_id: the id to use; a new UUID when None.
        created_at: when the battle started; now when None.
        participant_id: the participant who opened it (None: the session's participant).
        client_hash: the salted hash of the client address that opened it.
        flags: why its vote must not count (``duplicate_audio``, ...); flagged battles are
            stored with ``counted`` false.
        equal_pace: whether its replies are shown at one pace.
        server_run: the ``serve`` run generating its replies.
        sampling_probability: the chance its unordered pair had when drawn, in (0, 1].
        mode: ``text`` or ``speech``, what its replies are.

    Returns:
        The battle id.

    Raises:
        InvalidInputError: the two models are the same, audio is kept without consent, the
            sampling probability is outside (0, 1], or the mode is unknown.
        NotFound: ``session_id`` does not exist.
    """
    if model_a == model_b:
        raise InvalidInputError(f"a battle needs two different models, got {model_a!r} twice")
    if mode not in REPLY_MODES:
        raise InvalidInputError(f"a battle's mode is one of {', '.join(REPLY_MODES)}, got {mode!r}")
    if sampling_probability is not None and not 0.0 < sampling_probability <= 1.0:
        raise InvalidInputError(f"a sampling probability is in (0, 1], got {sampling_probability}")
    consent = False
    if session_id is not None:
        owner = session.get(SessionRow, session_id)
        if owner is None:
            raise NotFound(f"session {session_id!r} does not exist")
        consent = owner.consent_keep_audio
        participant_id = participant_id or owner.participant_id
    if kept_audio_path is not None and not consent:
        raise InvalidInputError("query audio may be kept only when the session consented to it")
    flag_list = sorted(set(flags))
    row = Battle(
        id=battle_id or str(uuid.uuid4()),
        session_id=session_id,
        created_at=_now(created_at),
        model_a=model_a,
        model_b=model_b,
        query_audio_sha256=query_audio_sha256,
        query_transcript=query_transcript,
        audio_kept=kept_audio_path is not None,
        kept_audio_path=kept_audio_path,
        source=source,
        participant_id=participant_id,
        client_hash=client_hash,
        counted=not flag_list,
        flags=",".join(flag_list) or None,
        equal_pace=equal_pace,
        server_run=server_run,
        sampling_probability=sampling_probability,
        mode=mode,
    )
    session.add(row)
    session.flush()
    logger.debug("battle %s created: %s vs %s", row.id, model_a, model_b)
    return row.id


def add_reply(
    session: Session,
    battle_id: str,
    side: str,
    *,
    text: str | None = None,
    ttft_s: float | None = None,
    total_s: float | None = None,
    chars: int | None = None,
    error: str | None = None,
    turn: int = 1,
    ttfab_s: float | None = None,
    audio_s: float | None = None,
    audio_sha256: str | None = None,
    notice: str | None = None,
) -> None:
    """Store what one side of a battle answered in one turn (once per side and turn).

    A spoken reply also has ``ttfab_s`` (seconds to its first audio byte), ``audio_s`` (its
    duration) and ``audio_sha256`` (its WAV's address in the reply audio folder). ``notice`` says
    what the model was not given as asked (a clip cut to its ``max_audio_s``).

    Raises:
        InvalidInputError: ``side`` is not ``a`` or ``b``, or the side already has a reply in
            that turn.
        NotFound: the battle does not exist.
    """
    if side not in SIDES:
        raise InvalidInputError(f"side must be 'a' or 'b', got {side!r}")
    try:
        # No read first: the foreign key refuses an unknown battle and the unique index a
        # second reply (one statement less per reply on a busy arena); the savepoint keeps the
        # caller's transaction usable, and only then is it worth asking which it was.
        with session.begin_nested():
            session.add(
                Reply(
                    battle_id=battle_id,
                    turn=turn,
                    side=side,
                    text=text,
                    ttft_s=ttft_s,
                    total_s=total_s,
                    chars=chars,
                    error=error,
                    ttfab_s=ttfab_s,
                    audio_s=audio_s,
                    audio_sha256=audio_sha256,
                    notice=notice,
                )
            )
    except IntegrityError as exc:
        if session.get(Battle, battle_id) is None:
            raise NotFound(f"battle {battle_id!r} does not exist") from None
        raise InvalidInputError(
            f"battle {battle_id!r} already has a reply on side {side} in turn {turn}"
        ) from exc


def add_turn(
    session: Session,
    battle_id: str,
    turn: int,
    *,
    created_at: datetime,
    query_audio_sha256: str | None = None,
    kept_audio_path: str | None = None,
) -> None:
    """Store turn ``turn`` (2 or more) of a battle: the person spoke again before voting.

    The arena refuses a turn after the vote; should a voted battle get one anyway, its counted
    vote moves to the new number of turns in the vote counts (:mod:`lamarena.store.vote_counts`).

    Raises:
        InvalidInputError: ``turn`` is below 2, or the battle already has that turn.
        NotFound: the battle does not exist.
    """
    if turn < 2:
        raise InvalidInputError(f"turn {turn}: the battle itself is turn 1; later turns are 2+")
    voted = counted_vote(session, battle_id)  # locks the battle: a vote waits for the turn
    try:
        with session.begin_nested():
            session.add(
                Turn(
                    battle_id=battle_id,
                    turn=turn,
                    created_at=created_at,
                    query_audio_sha256=query_audio_sha256,
                    audio_kept=kept_audio_path is not None,
                    kept_audio_path=kept_audio_path,
                )
            )
    except IntegrityError as exc:
        if session.get(Battle, battle_id) is None:
            raise NotFound(f"battle {battle_id!r} does not exist") from None
        raise InvalidInputError(f"battle {battle_id!r} already has turn {turn}") from exc
    if voted is not None:  # a counted vote moves to the battle's new number of turns
        move_vote(session, voted, replace(voted, n_turns=voted.n_turns + 1))


def set_turn_transcript(session: Session, battle_id: str, turn: int, transcript: str) -> None:
    """Store what turn ``turn`` of a battle said (1: the battle's own query).

    Raises:
        NotFound: the battle or the turn does not exist.
    """
    if turn == 1:
        set_query_transcript(session, battle_id, transcript)
        return
    row = session.get(Turn, (battle_id, turn))
    if row is None:
        raise NotFound(f"battle {battle_id!r} has no turn {turn}")
    row.query_transcript = transcript
    session.flush()


def set_query_transcript(session: Session, battle_id: str, transcript: str) -> None:
    """Store what a battle's query said (the arena transcribes it after the replies).

    Raises:
        NotFound: the battle does not exist.
    """
    battle = session.get(Battle, battle_id)
    if battle is None:
        raise NotFound(f"battle {battle_id!r} does not exist")
    battle.query_transcript = transcript
    session.flush()


def flag_battle(session: Session, battle_id: str, flag: str) -> None:
    """Add ``flag`` to a battle and leave its vote out of the leaderboard (``counted`` false).

    A counted battle that already has its vote takes the vote out of the vote counts in the
    same transaction (:mod:`lamarena.store.vote_counts`).

    Raises:
        NotFound: the battle does not exist.
    """
    voted = counted_vote(session, battle_id)  # locks the battle: a vote waits for the flag
    battle = session.get(Battle, battle_id)
    if battle is None:
        raise NotFound(f"battle {battle_id!r} does not exist")
    flags = set(filter(None, (battle.flags or "").split(",")))
    battle.flags = ",".join(sorted(flags | {flag}))
    battle.counted = False
    session.flush()
    if voted is not None:
        remove_vote(session, voted)


def session_vote_count(session: Session, session_id: str) -> int:
    """How many battles of arena session ``session_id`` have a vote."""
    count = session.scalar(
        select(func.count(Vote.id))
        .join(Battle, Battle.id == Vote.battle_id)
        .where(Battle.session_id == session_id)
    )
    return int(count or 0)


def record_vote(
    session: Session,
    battle_id: str,
    winner: Winner | str,
    *,
    feedback_text: str | None = None,
    session_id: str | None = None,
    created_at: datetime | None = None,
    client_hash: str | None = None,
    seconds_after_replies: float | None = None,
) -> None:
    """Store the vote of a battle; a battle has at most one.

    A vote on a counted battle is added to the vote counts in the same transaction
    (:mod:`lamarena.store.vote_counts`).

    Args:
        session: the database session.
        battle_id: the battle voted on.
        winner: ``model_a``, ``model_b``, ``tie`` or ``both_bad``.
        feedback_text: the voter's optional reason.
        session_id: if given, the battle must belong to this arena session.
        created_at: when the vote was cast; now when None.
        client_hash: the salted hash of the voter's address.
        seconds_after_replies: seconds from the end of the slower reply to the vote.

    Raises:
        InvalidInputError: ``winner`` is not one of the four values.
        NotFound: the battle does not exist (or is not ``session_id``'s).
        AlreadyVoted: the battle already has its vote (also when a concurrent vote wins the race).
    """
    try:
        winner = Winner(winner)
    except ValueError as exc:
        allowed = ", ".join(member.value for member in Winner)
        raise InvalidInputError(f"winner {winner!r} is not one of {allowed}") from exc
    # locked until the transaction ends: a concurrent flag or turn waits for the counts below
    battle = lock_battle(session, battle_id)
    if battle is None or (session_id is not None and battle.session_id != session_id):
        raise NotFound(f"battle {battle_id!r} does not exist")
    if session.scalar(select(Vote.id).where(Vote.battle_id == battle_id)) is not None:
        raise AlreadyVoted(f"battle {battle_id!r} already has a vote")
    try:
        # A savepoint keeps the caller's transaction usable when the unique index says no.
        with session.begin_nested():
            session.add(
                Vote(
                    battle_id=battle_id,
                    winner=winner.value,
                    feedback_text=feedback_text,
                    created_at=_now(created_at),
                    client_hash=client_hash,
                    seconds_after_replies=seconds_after_replies,
                )
            )
    except IntegrityError as exc:
        raise AlreadyVoted(f"battle {battle_id!r} already has a vote") from exc
    if battle.counted:
        add_votes(session, [battle.vote(winner.value)])
    logger.info("vote on battle %s: %s", battle_id, winner.value)


def existing_battle_ids(session: Session, battle_ids: Iterable[str]) -> set[str]:
    """Return those of ``battle_ids`` that are already stored."""
    wanted = list(dict.fromkeys(battle_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        found.update(session.scalars(select(Battle.id).where(Battle.id.in_(chunk))))
    return found


def session_participants(session: Session, session_ids: Iterable[str]) -> dict[str, str | None]:
    """Map those of ``session_ids`` that are stored to their participant (None if unknown)."""
    wanted = list(dict.fromkeys(session_ids))
    owners: dict[str, str | None] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        rows = session.execute(
            select(SessionRow.id, SessionRow.participant_id).where(SessionRow.id.in_(chunk))
        )
        owners.update({row.id: row.participant_id for row in rows})
    return owners


def table_counts(session: Session) -> dict[str, int]:
    """Count the rows of every table (for messages, health checks and tests)."""
    return {
        table.__tablename__: session.scalar(select(func.count()).select_from(table)) or 0
        for table in (Participant, SessionRow, Battle, Reply, Vote)
    }
