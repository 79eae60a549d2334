"""An append-only sequence that any number of readers follow from its start, as it grows.

What a battle's events (:class:`~lamarena.arena.live.LiveBattle`) and a spoken reply's audio
chunks (:class:`~lamarena.arena.reply_audio.LiveAudio`) are while they are being generated: a
reader that starts late still gets everything from the first item, and every reader stops after
the last once the feed is finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import Generic, TypeVar

__all__ = ["Feed"]

_T = TypeVar("_T")


class Feed(Generic[_T]):
    """Items in order, followed by any number of readers until :meth:`finish`."""

    def __init__(self) -> None:
        self._items: list[_T] = []
        self._finished = False
        self._changed = asyncio.Condition()

    async def append(self, item: _T, *, last: bool = False) -> None:
        """Add ``item`` (the last one, with ``last``) and wake every reader."""
        async with self._changed:
            self._items.append(item)
            self._finished = self._finished or last
            self._changed.notify_all()

    async def finish(self) -> None:
        """No more items come; readers stop after the last."""
        async with self._changed:
            self._finished = True
            self._changed.notify_all()

    def _has_news(self, seen: int) -> bool:
        return seen < len(self._items) or self._finished

    async def follow(self) -> AsyncIterator[_T]:
        """Every item from the first, waiting for new ones, until the feed is finished."""
        seen = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(self._has_news, seen))
                batch = self._items[seen:]
                finished = self._finished
            seen += len(batch)
            for item in batch:
                yield item
            if finished and seen >= len(self._items):
                return
