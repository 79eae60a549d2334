"""Limits per client address and for the whole arena, kept in the database.

Every worker process reads and writes the same ``client_events`` rows, so a limit holds however
many workers serve the arena (process memory would give each worker its own budget). A client is
known by a salted hash of its address (:func:`client_hash`), never the address: an IPv4 address
as it is, an IPv6 address by its /64 network (one household or phone gets a /64; counting single
IPv6 addresses would give one client as many budgets as it has addresses).

The address is the connection's peer. Proxy headers (``X-Forwarded-For``) name the client only
when ``serve --forwarded-allow-ips`` trusts the proxy: uvicorn then rewrites the peer before the
app sees it; otherwise a script could invent a new address per request.

Kinds of events: ``battle`` (a battle opened), ``refused`` (an upload refused as too large, too
long, undecodable or silent), ``vote``, ``transcription`` (a spoken reason transcribed). Battles
and refused uploads share one budget, so a script sending bad files is stopped as soon as one
sending good ones. Each check runs in the caller's transaction; on PostgreSQL an advisory lock on
the client serialises concurrent checks of one client (SQLite writes are serial already).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import Literal

from sqlalchemy import ScalarSelect, func, select, text
from sqlalchemy.orm import Session

from lamarena.errors import RateLimited
from lamarena.store.hashing import salted_hash
from lamarena.store.tables import Battle, ClientEvent, Turn

__all__ = [
    "EventKind",
    "Limit",
    "arena_battle_count",
    "check_battle_budget",
    "check_client",
    "check_global_battles",
    "client_event_count",
    "client_hash",
    "lock_client",
    "record_event",
]

EventKind = Literal["battle", "refused", "vote", "transcription"]

_WINDOW = timedelta(minutes=1)
_UNKNOWN_CLIENT = "unknown"


@dataclass(frozen=True)
class Limit:
    """At most ``per_minute`` events of ``kinds`` from one client in any minute."""

    kinds: Sequence[EventKind]
    per_minute: int
    what: str
    """What the limit counts, for the message ("battles or refused uploads")."""


def client_hash(salt: str, address: str | None) -> str:
    """The salted hash a client address is stored and counted under (hex sha256)."""
    key = address or _UNKNOWN_CLIENT
    try:
        parsed = ipaddress.ip_address(key)
    except ValueError:
        pass
    else:
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
            key = str(ipaddress.ip_network(f"{parsed}/64", strict=False))
        elif isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            key = str(parsed.ipv4_mapped)
    return salted_hash(salt, key)


def lock_client(session: Session, hashed: str) -> None:
    """Serialise the checks of one client until the transaction ends (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(bytes.fromhex(hashed[:16]), "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _wait_s(oldest: datetime | None, since: datetime) -> int:
    # the window frees a place when its oldest event leaves it
    return 60 if oldest is None else max(1, ceil((oldest - since).total_seconds()))


def check_client(session: Session, hashed: str, limit: Limit) -> None:
    """Refuse when the client used up ``limit`` in the last minute (nothing is recorded).

    Raises:
        RateLimited: with the seconds until the oldest counted event leaves the window.
    """
    lock_client(session, hashed)
    since = datetime.now(UTC) - _WINDOW
    count, oldest = session.execute(
        select(func.count(ClientEvent.id), func.min(ClientEvent.created_at)).where(
            ClientEvent.client_hash == hashed,
            ClientEvent.kind.in_(list(limit.kinds)),
            ClientEvent.created_at >= since,
        )
    ).one()
    if (count or 0) >= limit.per_minute:
        wait_s = _wait_s(oldest, since)
        raise RateLimited(
            f"at most {limit.per_minute} {limit.what} a minute from one address; "
            f"wait {wait_s} s and try again",
            retry_after_s=wait_s,
        )


def check_global_battles(session: Session, per_minute: int) -> None:
    """Refuse a battle or a later turn when the arena started ``per_minute`` in the last minute.

    Raises:
        RateLimited: the arena is at its ceiling.
    """
    since = datetime.now(UTC) - _WINDOW
    battles, oldest_battle = session.execute(
        select(func.count(Battle.id), func.min(Battle.created_at)).where(
            Battle.created_at >= since, Battle.source == "arena"
        )
    ).one()
    turns, oldest_turn = session.execute(
        select(func.count(), func.min(Turn.created_at)).where(Turn.created_at >= since)
    ).one()
    count = (battles or 0) + (turns or 0)
    if count >= per_minute:
        oldest = min(t for t in (oldest_battle, oldest_turn) if t is not None)
        wait_s = _wait_s(oldest, since)
        raise RateLimited(
            f"the arena is at its limit of {per_minute} battles a minute; "
            f"wait {wait_s} s and try again",
            retry_after_s=wait_s,
        )


def client_event_count(
    hashed: str | None, kinds: Sequence[EventKind], since: datetime
) -> ScalarSelect[int]:
    """A scalar subquery: the client's events of ``kinds`` since ``since``."""
    return (
        select(func.count(ClientEvent.id))
        .where(
            ClientEvent.client_hash == hashed,
            ClientEvent.kind.in_(list(kinds)),
            ClientEvent.created_at >= since,
        )
        .scalar_subquery()
    )


def arena_battle_count(since: datetime) -> ScalarSelect[int]:
    """A scalar subquery: the battles and later turns the arena started since ``since``.

    A later turn of a conversation asks both models again, so it counts as a battle.
    """
    battles = (
        select(func.count(Battle.id))
        .where(Battle.created_at >= since, Battle.source == "arena")
        .scalar_subquery()
    )
    turns = select(func.count()).select_from(Turn).where(Turn.created_at >= since)
    return select(battles + turns.scalar_subquery()).scalar_subquery()


def check_battle_budget(
    session: Session,
    hashed: str,
    limit: Limit,
    global_per_minute: int,
    refusals: Limit | None = None,
) -> None:
    """The client's and the arena's battle limits, and the client's refusals, in one read.

    What :func:`check_client` (for ``limit`` and ``refusals``) and :func:`check_global_battles`
    ask, without the lock: for the check before an upload is read nothing is recorded, so
    nothing needs serialising (the battle's own transaction checks again, under the lock).
    Only a refusal reads more, to say how long to wait.

    Raises:
        RateLimited: the client or the arena is at its limit.
    """
    since = datetime.now(UTC) - _WINDOW
    refused_kinds: Sequence[EventKind] = refusals.kinds if refusals is not None else ()
    used, refused, started = session.execute(
        select(
            client_event_count(hashed, limit.kinds, since),
            client_event_count(hashed, refused_kinds, since),
            arena_battle_count(since),
        )
    ).one()
    if refusals is not None and (refused or 0) >= refusals.per_minute:
        check_client(session, hashed, refusals)
    if (used or 0) >= limit.per_minute:
        check_client(session, hashed, limit)
    if (started or 0) >= global_per_minute:
        check_global_battles(session, global_per_minute)


def record_event(session: Session, hashed: str, kind: EventKind) -> None:
    """Count one event of ``kind`` for the client, in the caller's transaction."""
    session.add(ClientEvent(client_hash=hashed, kind=kind, created_at=datetime.now(UTC)))
    session.flush()
