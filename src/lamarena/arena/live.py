"""In-process fan-out of the battles this process is generating.

A :class:`LiveBattle` keeps every event of one battle in order (``delta``, ``done``, ``error``,
then ``end``); any number of streams follow it, each from the first event, so a stream opened
late still sees the whole reply. This is only a fast path: the replies are committed to the
database as each side finishes, and a stream served by another process (or after a restart) reads
them from there. Nothing here is needed for correctness.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lamarena.arena.feed import Feed
from lamarena.arena.reply_audio import LiveAudio

__all__ = ["Event", "LiveBattle", "LiveBattles"]


@dataclass(frozen=True)
class Event:
    """One server-sent event: its name and its JSON data."""

    name: str
    data: dict[str, Any]


class LiveBattle:
    """The events of one battle being generated, followed by any number of streams.

    ``session_id``, ``created_at`` and ``equal_pace`` are the stored battle's, so a stream of this
    process may be allowed without reading the database.
    """

    def __init__(
        self,
        *,
        session_id: str | None = None,
        created_at: datetime | None = None,
        equal_pace: bool = False,
        turn: int = 1,
    ) -> None:
        self.session_id = session_id
        self.turn = turn
        self.created_at = created_at or datetime.now(UTC)
        self.equal_pace = equal_pace
        self._events: Feed[Event] = Feed()
        self._audio: dict[str, LiveAudio] = {}

    def audio(self, side: str) -> LiveAudio | None:
        """The side's spoken reply as it arrives, once its first chunk is here."""
        return self._audio.get(side)

    def start_audio(self, side: str, sample_rate_hz: int) -> LiveAudio:
        """Begin the side's spoken reply (its first chunk is about to be appended)."""
        audio = self._audio[side] = LiveAudio(sample_rate_hz)
        return audio

    async def publish(self, event: Event) -> None:
        """Append ``event`` and wake every follower."""
        await self._events.append(event)

    async def finish(self) -> None:
        """Publish ``end``; followers stop after it."""
        await self._events.append(Event("end", {"turn": self.turn}), last=True)

    def follow(self) -> AsyncIterator[Event]:
        """Yield every event from the first, waiting for new ones, until ``end``."""
        return self._events.follow()


class LiveBattles:
    """The battles this process is generating now, by id."""

    def __init__(self) -> None:
        self._battles: dict[str, LiveBattle] = {}

    def start(
        self,
        battle_id: str,
        *,
        session_id: str | None = None,
        created_at: datetime | None = None,
        equal_pace: bool = False,
        turn: int = 1,
    ) -> LiveBattle:
        """Register a new battle (or a later turn of one, under its own key) and return it."""
        live = LiveBattle(
            session_id=session_id, created_at=created_at, equal_pace=equal_pace, turn=turn
        )
        self._battles[battle_id] = live
        return live

    def get(self, battle_id: str) -> LiveBattle | None:
        """The battle if this process is generating it."""
        return self._battles.get(battle_id)

    def discard(self, battle_id: str) -> None:
        """Forget a finished battle (its followers keep their reference)."""
        self._battles.pop(battle_id, None)
