"""The earlier turns of the conversations this process is holding open, in memory, bounded.

A model answering turn N of a battle needs the person's earlier spoken queries and its own
earlier replies (:class:`~lamarena.models.base.EarlierTurn`). The replies are in the database,
but the queries' audio is kept on disk only with consent, so each process remembers the clips
of the conversations it served until their vote. Memory is bounded by the seconds of audio held
(``conversation_memory_s``): past it the least recently used conversations are forgotten, and
such a battle (like one served by another process, or from before a restart) can still be voted
on but not continued.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from lamarena.audio import AudioClip
from lamarena.models.base import EarlierTurn

__all__ = ["Conversation", "Conversations"]


@dataclass
class Conversation:
    """The finished turns of one battle: each query and what each side answered."""

    clips: list[AudioClip] = field(default_factory=list)
    replies: dict[str, list[str]] = field(default_factory=lambda: {"a": [], "b": []})
    transcripts: dict[str, list[str | None]] = field(default_factory=lambda: {"a": [], "b": []})

    @property
    def turns(self) -> int:
        """Finished turns."""
        return len(self.clips)

    @property
    def seconds(self) -> float:
        """Seconds of query audio held."""
        return sum(clip.duration_s for clip in self.clips)

    def history(self, side: str) -> tuple[EarlierTurn, ...]:
        """The earlier turns as ``side`` saw them: each query with that side's own reply."""
        return tuple(
            EarlierTurn(clip=clip, reply=reply, transcript=transcript)
            for clip, reply, transcript in zip(
                self.clips, self.replies[side], self.transcripts[side], strict=True
            )
        )


class Conversations:
    """The open conversations of this process, least recently used first (thread-safe)."""

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self._held: OrderedDict[str, Conversation] = OrderedDict()
        self._seconds = 0.0
        self._lock = threading.Lock()

    def record(
        self,
        battle_id: str,
        clip: AudioClip,
        replies: Mapping[str, str],
        transcripts: Mapping[str, str | None],
    ) -> None:
        """Remember a finished turn of ``battle_id`` (the next turn it may have)."""
        with self._lock:
            conversation = self._held.pop(battle_id, None) or Conversation()
            conversation.clips.append(clip)
            for side in ("a", "b"):
                conversation.replies[side].append(replies[side])
                conversation.transcripts[side].append(transcripts.get(side))
            self._held[battle_id] = conversation
            self._seconds += clip.duration_s
            while self._seconds > self.max_seconds and len(self._held) > 1:
                _, oldest = self._held.popitem(last=False)
                self._seconds -= oldest.seconds

    def get(self, battle_id: str) -> Conversation | None:
        """The conversation, if this process still holds it (marks it recently used)."""
        with self._lock:
            conversation = self._held.get(battle_id)
            if conversation is not None:
                self._held.move_to_end(battle_id)
            return conversation

    def forget(self, battle_id: str) -> None:
        """Drop a conversation (its battle was voted on)."""
        with self._lock:
            conversation = self._held.pop(battle_id, None)
            if conversation is not None:
                self._seconds -= conversation.seconds

    @property
    def seconds(self) -> float:
        """Seconds of audio held now."""
        return self._seconds
