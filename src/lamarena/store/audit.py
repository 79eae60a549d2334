"""Voter signals: who voted how fast and how one-sidedly (``lamarena votes audit``).

The audit reads what the arena stores with each battle and vote (``votes.seconds_after_replies``,
the salted client hashes, ``battles.flags``) and sums it up per arena session and per client
address. A session is shown as its salted hash (:func:`lamarena.store.hashing.session_hash`, the
``session_id`` an export gives its arena battles; sessions of other sources keep their ids, as
in exports); an address as the salted hash the arena stored (never an address).

Per session and per address it counts ``votes``, ``battles``, the median
``seconds_after_replies`` of the votes that have one, the share of the votes that went to the
side chosen more often (``side`` ``a`` or ``b``; ties and both-bad votes count in the total
but for neither side), the battles flagged ``duplicate_audio`` and the battles not counted.
A session's votes are those on its battles; an address's votes are those cast from it, its
battles those opened from it. It raises these flags (thresholds are the constants below):

- ``fast``: the median seconds from the end of the replies to the vote is under
  :data:`FAST_MEDIAN_S`, over at least :data:`FAST_MIN_VOTES` votes that have the timing;
- ``one_sided``: at least :data:`ONE_SIDED_MIN_VOTES` votes, and at least
  :data:`ONE_SIDED_SHARE` of them for one side;
- ``many_sessions`` (addresses only): more than :data:`MANY_SESSIONS_PER_DAY` sessions opened
  battles from the address within 24 hours (any 24 hours, not a calendar day).

``leaderboard --exclude-flagged`` leaves out every vote of a flagged session, every vote cast
from a flagged address and every vote on a battle opened from one
(:meth:`VoteAudit.flagged_battle_ids`).
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from lamarena.store.db import database_errors, make_sessionmaker, reader
from lamarena.store.hashing import HASHED_SOURCE, session_hash, store_salt
from lamarena.store.tables import Battle, Vote

__all__ = [
    "DUPLICATE_AUDIO_FLAG",
    "FAST_MEDIAN_S",
    "FAST_MIN_VOTES",
    "MANY_SESSIONS_PER_DAY",
    "MANY_SESSIONS_WINDOW",
    "ONE_SIDED_MIN_VOTES",
    "ONE_SIDED_SHARE",
    "VoteAudit",
    "VoterSignals",
    "audit_session",
    "audit_votes",
]

logger = logging.getLogger(__name__)

FAST_MEDIAN_S = 2.0
"""``fast``: median seconds from the end of the slower reply to the vote below this..."""
FAST_MIN_VOTES = 5
"""...over at least this many votes with that timing (fewer say little)."""
ONE_SIDED_SHARE = 0.9
"""``one_sided``: at least this share of the votes for side A, or for side B..."""
ONE_SIDED_MIN_VOTES = 10
"""...out of at least this many votes."""
MANY_SESSIONS_PER_DAY = 20
"""``many_sessions``: an address that opened battles in more sessions than this..."""
MANY_SESSIONS_WINDOW = timedelta(hours=24)
"""...within this long."""
DUPLICATE_AUDIO_FLAG = "duplicate_audio"
"""The battle flag counted in the ``duplicate_audio`` column."""

Kind = Literal["session", "address"]


@dataclass(frozen=True)
class VoterSignals:
    """What one session or one client address did, and the flags it raised.

    Attributes:
        kind: ``session`` or ``address``.
        key: the hashed session id, or the stored hash of the address.
        votes: votes counted for it (see the module docstring).
        battles: battles counted for it.
        median_seconds_after_replies: over its votes with that timing; None without any.
        side: ``a`` or ``b``, the side its votes chose more often; None when neither was chosen.
        side_share: the share of its votes for ``side`` (0 to 1); None without votes.
        duplicate_audio: its battles flagged ``duplicate_audio``.
        uncounted: its battles whose vote does not count.
        sessions_per_day: addresses only: the most sessions that opened battles from it
            within 24 hours; None for a session.
        flags: ``fast``, ``one_sided``, ``many_sessions``: sorted.
        voted_battle_ids: the voted battles whose votes it accounts for (not in the document).
    """

    kind: Kind
    key: str
    votes: int
    battles: int
    median_seconds_after_replies: float | None
    side: Literal["a", "b"] | None
    side_share: float | None
    duplicate_audio: int
    uncounted: int
    sessions_per_day: int | None
    flags: tuple[str, ...]
    voted_battle_ids: frozenset[str] = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"session"|"address", "votes", "battles", ..., "flags"}``."""
        document: dict[str, Any] = {
            self.kind: self.key,
            "votes": self.votes,
            "battles": self.battles,
            "median_seconds_after_replies": self.median_seconds_after_replies,
            "side": self.side,
            "side_share": self.side_share,
            "duplicate_audio": self.duplicate_audio,
            "uncounted": self.uncounted,
        }
        if self.kind == "address":
            document["sessions_per_day"] = self.sessions_per_day
        document["flags"] = list(self.flags)
        return document


def _thresholds() -> dict[str, Any]:
    return {
        "fast_median_s": FAST_MEDIAN_S,
        "fast_min_votes": FAST_MIN_VOTES,
        "one_sided_share": ONE_SIDED_SHARE,
        "one_sided_min_votes": ONE_SIDED_MIN_VOTES,
        "many_sessions_per_day": MANY_SESSIONS_PER_DAY,
    }


@dataclass(frozen=True)
class VoteAudit:
    """The audit of a store: one row per session with battles and per known client address.

    Rows are ordered flagged first, then by votes (most first), then by key.
    """

    sessions: tuple[VoterSignals, ...]
    addresses: tuple[VoterSignals, ...]

    def flagged_battle_ids(self) -> set[str]:
        """The voted battles ``leaderboard --exclude-flagged`` leaves out."""
        flagged: set[str] = set()
        for row in (*self.sessions, *self.addresses):
            if row.flags:
                flagged.update(row.voted_battle_ids)
        return flagged

    def to_dict(self) -> dict[str, Any]:
        """The ``votes audit --json`` document.

        Returns:
            ``{"thresholds": {...}, "sessions": [...], "addresses": [...], "flagged":
            {"sessions", "addresses", "votes"}}``; ``flagged.votes`` is how many votes
            ``leaderboard --exclude-flagged`` leaves out.
        """
        return {
            "thresholds": _thresholds(),
            "sessions": [row.to_dict() for row in self.sessions],
            "addresses": [row.to_dict() for row in self.addresses],
            "flagged": {
                "sessions": sum(1 for row in self.sessions if row.flags),
                "addresses": sum(1 for row in self.addresses if row.flags),
                "votes": len(self.flagged_battle_ids()),
            },
        }


@dataclass
class _Tally:
    battles: int = 0
    duplicate_audio: int = 0
    uncounted: int = 0
    votes: int = 0
    side_a: int = 0
    side_b: int = 0
    seconds: list[float] = field(default_factory=list)
    voted: set[str] = field(default_factory=set)
    session_starts: dict[str, datetime] = field(default_factory=dict)
    hashed: bool = False

    def add_battle(self, row: Any) -> None:
        self.battles += 1
        self.duplicate_audio += DUPLICATE_AUDIO_FLAG in (row.flags or "").split(",")
        self.uncounted += not row.counted

    def add_vote(self, row: Any) -> None:
        self.votes += 1
        self.side_a += row.winner == "model_a"
        self.side_b += row.winner == "model_b"
        if row.seconds_after_replies is not None:
            self.seconds.append(row.seconds_after_replies)
        self.voted.add(row.id)


def _most_within(times: Iterable[datetime], window: timedelta) -> int:
    """The most of ``times`` that fall within any span of ``window``."""
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _signals(kind: Kind, key: str, tally: _Tally) -> VoterSignals:
    median = statistics.median(tally.seconds) if tally.seconds else None
    larger = max(tally.side_a, tally.side_b)
    side: Literal["a", "b"] | None = None
    if larger:
        side = "a" if tally.side_a >= tally.side_b else "b"
    share = larger / tally.votes if tally.votes else None
    per_day = (
        _most_within(tally.session_starts.values(), MANY_SESSIONS_WINDOW)
        if kind == "address"
        else None
    )
    flags: list[str] = []
    if median is not None and len(tally.seconds) >= FAST_MIN_VOTES and median < FAST_MEDIAN_S:
        flags.append("fast")
    if per_day is not None and per_day > MANY_SESSIONS_PER_DAY:
        flags.append("many_sessions")
    if share is not None and tally.votes >= ONE_SIDED_MIN_VOTES and share >= ONE_SIDED_SHARE:
        flags.append("one_sided")
    return VoterSignals(
        kind=kind,
        key=key,
        votes=tally.votes,
        battles=tally.battles,
        median_seconds_after_replies=median,
        side=side,
        side_share=share,
        duplicate_audio=tally.duplicate_audio,
        uncounted=tally.uncounted,
        sessions_per_day=per_day,
        flags=tuple(flags),
        voted_battle_ids=frozenset(tally.voted),
    )


def _ordered(rows: Iterable[VoterSignals]) -> tuple[VoterSignals, ...]:
    return tuple(sorted(rows, key=lambda row: (not row.flags, -row.votes, row.key)))


def audit_session(session: Session) -> VoteAudit:
    """Audit every battle and vote of the store (see the module docstring).

    Args:
        session: an open database session; nothing is written.
    """
    salt = store_salt(session)
    stmt = (
        select(
            Battle.id,
            Battle.session_id,
            Battle.client_hash,
            Battle.created_at,
            Battle.flags,
            Battle.counted,
            Battle.source,
            Vote.id.label("vote_id"),
            Vote.winner,
            Vote.client_hash.label("vote_client_hash"),
            Vote.seconds_after_replies,
        )
        .select_from(Battle)
        .outerjoin(Vote, Vote.battle_id == Battle.id)
    )
    sessions: defaultdict[str, _Tally] = defaultdict(_Tally)
    addresses: defaultdict[str, _Tally] = defaultdict(_Tally)
    for row in session.execute(stmt):
        voted = row.vote_id is not None
        if row.session_id is not None:
            tally = sessions[row.session_id]
            tally.add_battle(row)
            tally.hashed = tally.hashed or row.source == HASHED_SOURCE
            if voted:
                tally.add_vote(row)
        if row.client_hash is not None:
            tally = addresses[row.client_hash]
            tally.add_battle(row)
            if row.session_id is not None:
                known = tally.session_starts.get(row.session_id, row.created_at)
                tally.session_starts[row.session_id] = min(known, row.created_at)
            if voted:
                tally.voted.add(row.id)  # a vote on a battle opened from it
        if voted and row.vote_client_hash is not None:
            addresses[row.vote_client_hash].add_vote(row)
    session_rows = (
        _signals("session", session_hash(salt, key) if tally.hashed else key, tally)
        for key, tally in sessions.items()
    )
    address_rows = (_signals("address", key, tally) for key, tally in addresses.items())
    audit = VoteAudit(sessions=_ordered(session_rows), addresses=_ordered(address_rows))
    logger.info("audited %d sessions and %d addresses", len(audit.sessions), len(audit.addresses))
    return audit


def audit_votes(engine: Engine) -> VoteAudit:
    """Audit the store's votes, in one read transaction.

    Raises:
        DatabaseError: the database cannot be reached or refused the read.
    """
    with (
        database_errors(engine, "auditing the votes", "check that --db names a lamarena database"),
        make_sessionmaker(reader(engine)).begin() as session,
    ):
        return audit_session(session)
