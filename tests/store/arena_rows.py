"""Rows as the arena stores them, written straight to the tables (imported as ``store.arena_rows``).

The arena fills the integrity columns of migration 0003 (battle participant, client hash,
counted/flags, vote timing); these builders write such rows without the arena's code, so store
and CLI tests depend only on the schema.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from lamarena.store.db import make_sessionmaker
from lamarena.store.tables import Battle, ClientEvent, Participant, Reply, Vote
from lamarena.store.tables import Session as SessionRow

__all__ = ["T0", "ArenaRows", "cookie"]

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def cookie() -> str:
    """A session id as the arena makes one (the cookie value)."""
    return secrets.token_urlsafe(32)


class ArenaRows:
    """Adds arena-like sessions, battles, replies, votes and client events to one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._battles = 0

    def session(
        self,
        session_id: str | None = None,
        *,
        participant_id: str | None = None,
        consent: bool = False,
        created_at: datetime = T0,
    ) -> str:
        session_id = session_id or cookie()
        with make_sessionmaker(self.engine).begin() as db:
            if participant_id is not None and db.get(Participant, participant_id) is None:
                db.add(Participant(id=participant_id, created_at=created_at))
                db.flush()
            db.add(
                SessionRow(
                    id=session_id,
                    participant_id=participant_id,
                    created_at=created_at,
                    consent_keep_audio=consent,
                )
            )
        return session_id

    def battle(
        self,
        session_id: str | None,
        *,
        winner: str | None = "model_a",
        created_at: datetime = T0,
        model_a: str = "alpha",
        model_b: str = "beta",
        client_hash: str | None = None,
        vote_client_hash: str | None = None,
        seconds_after_replies: float | None = None,
        flags: Iterable[str] = (),
        participant_id: str | None = None,
        kept_audio_path: str | None = None,
        equal_pace: bool = False,
        replies: bool = True,
        source: str = "arena",
        voted_at: datetime | None = None,
    ) -> str:
        """Add a battle (with replies and, unless ``winner`` is None, its vote)."""
        self._battles += 1
        battle_id = f"battle-{self._battles:05d}"
        flag_list = sorted(set(flags))
        with make_sessionmaker(self.engine).begin() as db:
            db.add(
                Battle(
                    id=battle_id,
                    session_id=session_id,
                    created_at=created_at,
                    model_a=model_a,
                    model_b=model_b,
                    query_audio_sha256="ab" * 32,
                    audio_kept=kept_audio_path is not None,
                    kept_audio_path=kept_audio_path,
                    source=source,
                    participant_id=participant_id,
                    client_hash=client_hash,
                    counted=not flag_list,
                    flags=",".join(flag_list) or None,
                    equal_pace=equal_pace,
                )
            )
            db.flush()
            if replies:
                for side in ("a", "b"):
                    db.add(Reply(battle_id=battle_id, side=side, text=f"reply {side}", chars=7))
            if winner is not None:
                db.add(
                    Vote(
                        battle_id=battle_id,
                        winner=winner,
                        created_at=voted_at or created_at + timedelta(seconds=30),
                        client_hash=vote_client_hash,
                        seconds_after_replies=seconds_after_replies,
                    )
                )
        return battle_id

    def event(self, client_hash: str, kind: str, created_at: datetime) -> None:
        with make_sessionmaker(self.engine).begin() as db:
            db.add(ClientEvent(client_hash=client_hash, kind=kind, created_at=created_at))
