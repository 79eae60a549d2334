"""The stored votes as :class:`~lamarena.store.columnar.VoteColumns`, read without records.

One ``SELECT`` of the eight columns a leaderboard needs, in the order ``repo.battles_frame``
reads them (oldest first, then by id), so that sessions and participants are numbered in the
same order of first appearance and a seeded bootstrap gives the same rounds as the frame path.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from lamarena.store.audit import audit_session
from lamarena.store.columnar import MODES, WINNERS, VoteColumns, battle_id_column, codes_of
from lamarena.store.db import database_errors, make_sessionmaker
from lamarena.store.tables import Battle, Turn, Vote

__all__ = ["read_store_columns", "session_columns"]

_READ_HINT = "check that --db names a lamarena database"


def read_store_columns(
    engine: Engine, *, include_uncounted: bool = False, exclude_flagged: bool = False
) -> VoteColumns:
    """The voted battles of the store as vote columns (counted ones unless told otherwise).

    Args:
        engine: the store's engine.
        include_uncounted: also the battles whose vote does not count (flagged by the arena).
        exclude_flagged: also leave out the votes of sessions and addresses ``votes audit``
            flags, read in the same transaction.

    Raises:
        DatabaseError: the database cannot be reached or refused the read.
    """
    with (
        database_errors(engine, "reading the battles", _READ_HINT),
        make_sessionmaker(engine).begin() as session,
    ):
        return session_columns(
            session, include_uncounted=include_uncounted, exclude_flagged=exclude_flagged
        )


def session_columns(
    session: Session, *, include_uncounted: bool = False, exclude_flagged: bool = False
) -> VoteColumns:
    """:func:`read_store_columns` in an open session (the caller handles database errors)."""
    later = (
        select(Turn.battle_id, func.count().label("later"))
        .group_by(Turn.battle_id)
        .subquery("later_turns")
    )
    stmt = (
        select(
            Battle.id,
            Battle.model_a,
            Battle.model_b,
            Vote.winner,
            Battle.counted,
            Battle.session_id,
            Battle.participant_id,
            Battle.sampling_probability,
            Battle.mode,
            (1 + func.coalesce(later.c.later, 0)).label("n_turns"),
        )
        .join(Vote, Vote.battle_id == Battle.id)
        .outerjoin(later, later.c.battle_id == Battle.id)
        .order_by(Battle.created_at, Battle.id)
    )
    if not include_uncounted:
        stmt = stmt.where(Battle.counted)
    rows = [tuple(row) for row in session.execute(stmt).all()]
    if exclude_flagged:
        flagged = audit_session(session).flagged_battle_ids()
        rows = [row for row in rows if row[0] not in flagged]
    return _columns(rows)


def _columns(rows: list[tuple[object, ...]]) -> VoteColumns:
    n = len(rows)
    if n == 0:
        empty = np.zeros(0, dtype=np.intp)
        return VoteColumns(
            models=(),
            model_a=empty,
            model_b=empty,
            outcome=np.zeros(0, np.int8),
            counted=np.zeros(0, bool),
            participant=empty,
            session=empty,
            probability=np.zeros(0),
            mode=np.zeros(0, np.int8),
            n_turns=np.zeros(0, np.int64),
            participants=(),
            sessions=(),
            battle_ids=battle_id_column([]),
        )
    (ids, model_a, model_b, winner, counted, session, participant, probability, mode, turns) = zip(
        *rows, strict=True
    )
    names: dict[object, int] = {}
    a = np.fromiter((names.setdefault(m, len(names)) for m in model_a), np.intp, count=n)
    b = np.fromiter((names.setdefault(m, len(names)) for m in model_b), np.intp, count=n)
    outcome_of = {value: code for code, value in enumerate(WINNERS)}
    mode_of = {value: code for code, value in enumerate(MODES)}
    participant_codes, participants = codes_of(participant)
    session_codes, sessions = codes_of(session)
    return VoteColumns(
        models=tuple(str(name) for name in names),
        model_a=a,
        model_b=b,
        outcome=np.fromiter((outcome_of[w] for w in winner), np.int8, count=n),
        counted=np.fromiter((bool(c) for c in counted), bool, count=n),
        participant=participant_codes,
        session=session_codes,
        probability=np.fromiter(
            (np.nan if p is None else float(p) for p in probability), np.float64, count=n
        ),
        mode=np.fromiter((mode_of.get(m or "text", 0) for m in mode), np.int8, count=n),
        n_turns=np.fromiter((int(t) for t in turns), np.int64, count=n),
        participants=participants,
        sessions=sessions,
        battle_ids=battle_id_column([str(battle_id) for battle_id in ids]),
        fast=True,
    )
