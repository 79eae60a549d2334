"""Whole-store reads and bulk writes of battle records.

Like :mod:`lamarena.store.repo` (which re-exports these functions), every function takes an open
session and never commits. Used by imports (:func:`insert_battle_records`), exports
(:func:`load_battle_records`) and the leaderboard (:func:`battles_frame`).

Records leave the store as they are exported: the session of an arena battle as its salted hash
(:func:`lamarena.store.hashing.exported_session_id`), never the cookie value; the participant
is the battle's own (``battles.participant_id``, stored when it was opened), or its session's
for a battle stored before migration 0003 without one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from functools import cache, partial
from typing import Any

import pandas as pd
from sqlalchemy import and_, case, func, insert, select
from sqlalchemy.orm import Session, aliased

from lamarena.errors import InvalidInputError
from lamarena.store.hashing import exported_session_id, store_salt
from lamarena.store.records import (
    FRAME_COLUMNS,
    BattleRecord,
    Latency,
    TurnRecord,
    Winner,
    battles_frame_from_columns,
    describe_session_owner,
)
from lamarena.store.tables import Battle, Participant, Reply, Turn, Vote
from lamarena.store.tables import Session as SessionRow
from lamarena.store.vote_counts import VoteContribution, add_votes, vote_contribution

__all__ = ["battles_frame", "insert_battle_records", "load_battle_records"]

logger = logging.getLogger(__name__)

_IN_CHUNK = 500  # ids per IN (...) query, well under every driver's parameter limit


def _existing(session: Session, column: Any, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), _IN_CHUNK):
        found.update(
            session.scalars(select(column).where(column.in_(ids[start : start + _IN_CHUNK])))
        )
    return found


def _stored_owners(session: Session, session_ids: Sequence[str]) -> dict[str, str | None]:
    owners: dict[str, str | None] = {}
    for start in range(0, len(session_ids), _IN_CHUNK):
        chunk = session_ids[start : start + _IN_CHUNK]
        rows = session.execute(
            select(SessionRow.id, SessionRow.participant_id).where(SessionRow.id.in_(chunk))
        )
        owners.update({row.id: row.participant_id for row in rows})
    return owners


def _participant_conflict(
    record: BattleRecord, session_id: str, owner: str | None, where: str
) -> InvalidInputError:
    return InvalidInputError(
        f"battle {record.battle_id!r}: participant_id {record.participant_id!r} differs: "
        f"{describe_session_owner(session_id, owner)} {where}; nothing was written"
    )


def insert_battle_records(session: Session, records: Sequence[BattleRecord]) -> int:
    """Insert battles with their replies and votes (and any new sessions and participants).

    The records are expected to be validated and free of duplicate ids (the importers check
    both); a battle id already stored makes the flush fail with IntegrityError. A participant
    belongs to a session, so every record of a session must give the session's participant
    (``None`` included): the one of its first record for a new session, the stored one for a
    session that exists. Nothing is ever filled in or changed, as that would change the
    participant of other battles. Sessions that already exist are otherwise reused as they are;
    a new session gets the earliest ``created_at`` of its battles and consents to keeping audio
    if any of its battles has ``audio_kept``. Each battle keeps its ``participant_id``,
    ``counted``, ``flags`` (joined with commas; None when there is none), ``equal_pace`` and
    ``sampling_probability``. The counted votes are added to the vote counts
    (:mod:`lamarena.store.vote_counts`) in the same transaction.

    Returns:
        The number of battles inserted.

    Raises:
        InvalidInputError: records of one session give different participants, or differ from
            the participant of their stored session; checked before anything is written.
    """
    participants: dict[str, datetime] = {}
    sessions: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.participant_id is not None:
            seen = participants.get(record.participant_id, record.created_at)
            participants[record.participant_id] = min(seen, record.created_at)
        if record.session_id is not None:
            row = sessions.setdefault(
                record.session_id,
                {
                    "id": record.session_id,
                    "participant_id": record.participant_id,
                    "created_at": record.created_at,
                    "consent_keep_audio": False,
                },
            )
            if row["participant_id"] != record.participant_id:
                raise _participant_conflict(
                    record, record.session_id, row["participant_id"], "in these records"
                )
            row["created_at"] = min(row["created_at"], record.created_at)
            row["consent_keep_audio"] = row["consent_keep_audio"] or record.audio_kept
    stored = _stored_owners(session, list(sessions))
    for record in records:
        if record.session_id is None or record.session_id not in stored:
            continue
        if stored[record.session_id] != record.participant_id:
            raise _participant_conflict(
                record, record.session_id, stored[record.session_id], "in the database"
            )
    known_participants = _existing(session, Participant.id, list(participants))
    new_participants = [
        {"id": key, "created_at": created}
        for key, created in participants.items()
        if key not in known_participants
    ]
    new_sessions = [row for key, row in sessions.items() if key not in stored]
    battles: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    votes: list[dict[str, Any]] = []
    for record in records:
        battles.append(
            {
                "id": record.battle_id,
                "session_id": record.session_id,
                "created_at": record.created_at,
                "model_a": record.model_a,
                "model_b": record.model_b,
                "query_audio_sha256": record.query_audio_sha256,
                "query_transcript": record.query_transcript,
                "audio_kept": record.audio_kept,
                "kept_audio_path": None,
                "source": record.source,
                "participant_id": record.participant_id,
                "counted": record.counted,
                "flags": ",".join(record.flags) or None,
                "equal_pace": record.equal_pace,
                "sampling_probability": record.sampling_probability,
                "mode": record.mode,
            }
        )
        # the first turn is the record's top-level fields (its ``turns[0]`` agrees with them)
        replies.extend(_reply_rows(record.battle_id, 1, record))
        for number, turn in enumerate(record.turns[1:], start=2):
            turns.append(
                {
                    "battle_id": record.battle_id,
                    "turn": number,
                    "created_at": record.created_at,
                    "query_audio_sha256": turn.query_audio_sha256,
                    "query_transcript": turn.query_transcript,
                    "audio_kept": False,
                    "kept_audio_path": None,
                }
            )
            replies.extend(_reply_rows(record.battle_id, number, turn))
        votes.append(
            {
                "battle_id": record.battle_id,
                "winner": record.winner.value,
                "feedback_text": record.feedback_text,
                "created_at": record.created_at,
            }
        )
    for table, rows in (
        (Participant, new_participants),
        (SessionRow, new_sessions),
        (Battle, battles),
        (Turn, turns),
        (Reply, replies),
        (Vote, votes),
    ):
        if rows:
            session.execute(insert(table), rows)
    add_votes(session, (_counted_vote(record) for record in records if record.counted))
    logger.info("inserted %d battles (%d new sessions)", len(battles), len(new_sessions))
    return len(battles)


def _counted_vote(record: BattleRecord) -> VoteContribution:
    """What an imported counted vote adds to the vote counts."""
    return vote_contribution(
        battle_id=record.battle_id,
        mode=record.mode,
        n_turns=record.n_turns,
        model_a=record.model_a,
        model_b=record.model_b,
        winner=record.winner.value,
        session_id=record.session_id,
        participant_id=record.participant_id,
        sampling_probability=record.sampling_probability,
    )


def _reply_rows(
    battle_id: str, number: int, turn: TurnRecord | BattleRecord
) -> list[dict[str, Any]]:
    """The ``replies`` rows of one turn (a side with nothing known has none)."""
    rows: list[dict[str, Any]] = []
    for side, text, latency, error, audio, notice in (
        ("a", turn.reply_a, turn.latency_a, turn.error_a, turn.reply_audio_a_sha256, turn.notice_a),
        ("b", turn.reply_b, turn.latency_b, turn.error_b, turn.reply_audio_b_sha256, turn.notice_b),
    ):
        if all(value is None for value in (text, latency, error, audio, notice)):
            continue
        rows.append(
            {
                "battle_id": battle_id,
                "turn": number,
                "side": side,
                "text": text,
                "ttft_s": latency.ttft_s if latency else None,
                "total_s": latency.total_s if latency else None,
                "chars": latency.chars if latency else None,
                "error": error,
                "ttfab_s": latency.ttfab_s if latency else None,
                "audio_s": latency.audio_s if latency else None,
                "audio_sha256": audio,
                "notice": notice,
            }
        )
    return rows


def _later_turns(session: Session, battle_ids: Sequence[str]) -> dict[str, list[TurnRecord]]:
    """Turns 2, 3, ... of the battles that have them, in order, by battle id."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for start in range(0, len(battle_ids), _ID_CHUNK):
        chunk = list(battle_ids[start : start + _ID_CHUNK])
        for row in session.execute(
            select(Turn.battle_id, Turn.turn, Turn.query_audio_sha256, Turn.query_transcript).where(
                Turn.battle_id.in_(chunk)
            )
        ):
            found.setdefault(row.battle_id, {})[row.turn] = {
                "query_audio_sha256": row.query_audio_sha256,
                "query_transcript": row.query_transcript,
            }
    if not found:
        return {}
    later = list(found)
    for start in range(0, len(later), _ID_CHUNK):
        chunk = later[start : start + _ID_CHUNK]
        for reply in session.execute(
            select(Reply).where(Reply.battle_id.in_(chunk), Reply.turn > 1)
        ).scalars():
            fields = found[reply.battle_id].setdefault(reply.turn, {})
            fields[f"reply_{reply.side}"] = reply.text
            fields[f"latency_{reply.side}"] = _latency(
                reply.ttft_s, reply.total_s, reply.chars, reply.ttfab_s, reply.audio_s
            )
            fields[f"error_{reply.side}"] = reply.error
            fields[f"reply_audio_{reply.side}_sha256"] = reply.audio_sha256
            fields[f"notice_{reply.side}"] = reply.notice
    return {
        battle_id: [TurnRecord(**turns[number]) for number in sorted(turns)]
        for battle_id, turns in found.items()
    }


_ID_CHUNK = 500
"""Battle ids per ``IN`` list (well under SQLite's and PostgreSQL's parameter limits)."""

_REPLY_A = aliased(Reply, name="reply_a")
_REPLY_B = aliased(Reply, name="reply_b")


def _voted_battles() -> Any:
    return (
        select()
        .select_from(Battle)
        .join(Vote, Vote.battle_id == Battle.id)
        .outerjoin(SessionRow, SessionRow.id == Battle.session_id)
        .outerjoin(
            _REPLY_A,
            and_(_REPLY_A.battle_id == Battle.id, _REPLY_A.side == "a", _REPLY_A.turn == 1),
        )
        .outerjoin(
            _REPLY_B,
            and_(_REPLY_B.battle_id == Battle.id, _REPLY_B.side == "b", _REPLY_B.turn == 1),
        )
        .order_by(Battle.created_at, Battle.id)
    )


def _latency(
    ttft_s: float | None,
    total_s: float | None,
    chars: int | None,
    ttfab_s: float | None = None,
    audio_s: float | None = None,
) -> Latency | None:
    latency = Latency(ttft_s=ttft_s, total_s=total_s, chars=chars, ttfab_s=ttfab_s, audio_s=audio_s)
    return None if latency.is_empty() else latency


def _first_turn_latency(row: Any, side: str) -> Latency | None:
    return _latency(
        getattr(row, f"ttft_{side}_s"),
        getattr(row, f"total_{side}_s"),
        getattr(row, f"chars_{side}"),
        getattr(row, f"ttfab_{side}_s"),
        getattr(row, f"audio_{side}_s"),
    )


def _flags(stored: str | None) -> list[str]:
    return sorted({flag for flag in (stored or "").split(",") if flag})


def load_battle_records(session: Session) -> list[BattleRecord]:
    """Load every battle that has a vote, oldest first, as battle records, counted or not.

    Battles still waiting for their vote are left out (a record needs a winner). The session of
    an arena battle is its salted hash (see the module docstring).
    """
    # Plain columns rather than ORM entities: several times faster on large stores.
    stmt = _voted_battles().add_columns(
        Battle.id,
        Battle.created_at,
        Battle.session_id,
        func.coalesce(Battle.participant_id, SessionRow.participant_id).label("participant_id"),
        Battle.model_a,
        Battle.model_b,
        Vote.winner,
        Battle.query_audio_sha256,
        Battle.query_transcript,
        _REPLY_A.text.label("reply_a"),
        _REPLY_B.text.label("reply_b"),
        _REPLY_A.ttft_s.label("ttft_a_s"),
        _REPLY_A.total_s.label("total_a_s"),
        _REPLY_A.chars.label("chars_a"),
        _REPLY_B.ttft_s.label("ttft_b_s"),
        _REPLY_B.total_s.label("total_b_s"),
        _REPLY_B.chars.label("chars_b"),
        _REPLY_A.error.label("error_a"),
        _REPLY_B.error.label("error_b"),
        _REPLY_A.ttfab_s.label("ttfab_a_s"),
        _REPLY_B.ttfab_s.label("ttfab_b_s"),
        _REPLY_A.audio_s.label("audio_a_s"),
        _REPLY_B.audio_s.label("audio_b_s"),
        _REPLY_A.audio_sha256.label("reply_audio_a_sha256"),
        _REPLY_B.audio_sha256.label("reply_audio_b_sha256"),
        _REPLY_A.notice.label("notice_a"),
        _REPLY_B.notice.label("notice_b"),
        Battle.mode,
        Vote.feedback_text,
        Battle.audio_kept,
        Battle.source,
        Battle.counted,
        Battle.flags,
        Battle.equal_pace,
        Battle.sampling_probability,
    )
    rows = session.execute(stmt).all()
    salt = store_salt(session)
    later = _later_turns(session, [row.id for row in rows])
    return [
        BattleRecord(
            battle_id=row.id,
            created_at=row.created_at,
            session_id=exported_session_id(salt, row.session_id, row.source),
            participant_id=row.participant_id,
            model_a=row.model_a,
            model_b=row.model_b,
            winner=Winner(row.winner),
            query_audio_sha256=row.query_audio_sha256,
            query_transcript=row.query_transcript,
            reply_a=row.reply_a,
            reply_b=row.reply_b,
            latency_a=_first_turn_latency(row, "a"),
            latency_b=_first_turn_latency(row, "b"),
            error_a=row.error_a,
            error_b=row.error_b,
            reply_audio_a_sha256=row.reply_audio_a_sha256,
            reply_audio_b_sha256=row.reply_audio_b_sha256,
            notice_a=row.notice_a,
            notice_b=row.notice_b,
            feedback_text=row.feedback_text,
            audio_kept=row.audio_kept,
            source=row.source,
            counted=row.counted,
            flags=_flags(row.flags),
            equal_pace=row.equal_pace,
            sampling_probability=row.sampling_probability,
            mode=row.mode,
            **_with_later_turns(row, later.get(row.id)),
        )
        for row in rows
    ]


def _with_later_turns(row: Any, later: list[TurnRecord] | None) -> dict[str, Any]:
    """``{"turns": [first, *later]}`` for a conversation, nothing for a one-turn battle."""
    if not later:
        return {}
    first = TurnRecord(
        query_audio_sha256=row.query_audio_sha256,
        query_transcript=row.query_transcript,
        reply_a=row.reply_a,
        reply_b=row.reply_b,
        latency_a=_first_turn_latency(row, "a"),
        latency_b=_first_turn_latency(row, "b"),
        error_a=row.error_a,
        error_b=row.error_b,
        reply_audio_a_sha256=row.reply_audio_a_sha256,
        reply_audio_b_sha256=row.reply_audio_b_sha256,
        notice_a=row.notice_a,
        notice_b=row.notice_b,
    )
    return {"turns": [first, *later]}


def battles_frame(session: Session, *, include_uncounted: bool = False) -> pd.DataFrame:
    """Load the voted battles as the analysis DataFrame (see ``records.records_to_frame``).

    By default only counted battles (``battles.counted`` true): those are the votes a
    leaderboard ranks. Reads only the columns the frame needs, without building records.

    Args:
        session: the database session.
        include_uncounted: also load the battles whose vote does not count (flagged ones).
    """
    later = (
        select(Turn.battle_id, func.count().label("later"))
        .group_by(Turn.battle_id)
        .subquery("later_turns")
    )
    # what each side said after the first turn: a conversation's length is all of its replies
    later_chars = (
        select(
            Reply.battle_id,
            func.sum(case((Reply.side == "a", Reply.chars))).label("a"),
            func.sum(case((Reply.side == "b", Reply.chars))).label("b"),
        )
        .where(Reply.turn > 1)
        .group_by(Reply.battle_id)
        .subquery("later_chars")
    )
    stmt = (
        _voted_battles()
        .outerjoin(later, later.c.battle_id == Battle.id)
        .outerjoin(later_chars, later_chars.c.battle_id == Battle.id)
        .add_columns((1 + func.coalesce(later.c.later, 0)).label("n_turns"))
    )
    stmt = stmt.add_columns(
        Battle.id.label("battle_id"),
        Battle.model_a,
        Battle.model_b,
        Vote.winner,
        (_REPLY_A.chars + func.coalesce(later_chars.c.a, 0)).label("chars_a"),
        (_REPLY_B.chars + func.coalesce(later_chars.c.b, 0)).label("chars_b"),
        _REPLY_A.ttft_s.label("ttft_a_s"),
        _REPLY_B.ttft_s.label("ttft_b_s"),
        _REPLY_A.total_s.label("total_a_s"),
        _REPLY_B.total_s.label("total_b_s"),
        Battle.query_transcript,
        Battle.created_at,
        Battle.counted,
        Battle.session_id,
        Battle.participant_id,
        Battle.sampling_probability,
        Battle.source,
        Battle.mode,
        _REPLY_A.ttfab_s.label("ttfab_a_s"),
        _REPLY_B.ttfab_s.label("ttfab_b_s"),
        _REPLY_A.audio_s.label("audio_a_s"),
        _REPLY_B.audio_s.label("audio_b_s"),
    )
    if not include_uncounted:
        stmt = stmt.where(Battle.counted)
    rows = session.execute(stmt).all()
    columns = {name: [getattr(row, name) for row in rows] for name in FRAME_COLUMNS}
    # sessions as exported: an arena cookie never leaves the store. Each session is hashed once,
    # not once per battle (a participant casts many votes; the live leaderboard reloads often).
    export = cache(partial(exported_session_id, store_salt(session)))
    columns["session_id"] = [export(row.session_id, row.source) for row in rows]
    return battles_frame_from_columns(columns)
