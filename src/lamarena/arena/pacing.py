"""Equal pacing of a battle's two replies (``serve --equal-pace``).

Without pacing, the faster model's text appears sooner, which tells the models apart before the
vote. :func:`equal_pace` re-emits a battle's events (see :mod:`lamarena.arena.live`) so that both
replies are shown at the same number of characters per second, in chunks cut by the clock rather
than by the model's tokeniser (the study, Talk Arena, streamed character by character):

- Nothing of either side is shown until both sides have started: a side starts with its first
  non-empty ``delta``, or with its ``done`` or ``error`` (so a side that fails or answers nothing
  counts as started). That moment is ``t0``.
- From ``t0`` on, a side shows ``min(available, chars_per_s * (t - t0))`` characters at time ``t``,
  except that while the other side is still generating (no ``done``/``error`` yet) it shows no more
  than the other has available: a fast model cannot run ahead of a slow one. Once a side has
  finished and all its text has been shown, the other goes on alone at the pace.
- Text goes out as ``delta`` events, at most one per side per tick (``tick_s``), each holding just
  the newly allowed characters (plain ``str`` slicing); the concatenated deltas of a side always
  equal the upstream's, nothing dropped or repeated. A tick's deltas precede its ``done``/``error``
  events, which come in side order, so two replies finished in one tick end in the same order
  whichever model was faster.
- A side's ``done`` (or ``error``) goes out at the first tick from ``t0`` on at which all the text
  it had has been shown; an ``error`` of a side with no text goes out at the next tick, even
  before ``t0``. ``end`` goes out last, after both
  sides' ``done``/``error``. If the upstream stops without a side's ``done``/``error``, that side
  counts as finished once its text is shown. Events of other names or sides pass through at once.
- The upstream is read by its own task, so its events keep arriving while the pacer waits;
  closing the paced stream (``aclose``) cancels that task and closes the upstream. An upstream
  exception is raised to the consumer at the next tick.

A stall of the slower side holds both replies back; when it resumes (or finishes), both catch up
to the pace target at once, since the target is measured from ``t0``.
"""

# Hand-written: no library paces two server-sent event streams jointly (per-stream rate limiters
# throttle each stream alone, which would still let the faster model run ahead).

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lamarena.arena.live import Event
from lamarena.store.tables import SIDES

__all__ = ["equal_pace"]


@dataclass
class _Side:
    """What the pacer knows about one side's reply."""

    text: str = ""
    shown: int = 0
    started: bool = False
    finished: bool = False
    terminal: Event | None = None
    terminal_sent: bool = False

    def settled(self) -> bool:
        """Whether all of this side has been emitted, its ``done``/``error`` included."""
        return (
            self.finished
            and self.shown == len(self.text)
            and (self.terminal is None or self.terminal_sent)
        )


@dataclass(frozen=True)
class _Failed:
    """The upstream raised ``error``."""

    error: Exception


class _Over:
    """The upstream is exhausted."""


_OVER = _Over()

_Item = Event | _Failed | _Over


async def _pump(events: AsyncIterator[Event], queue: asyncio.Queue[_Item]) -> None:
    """Move every upstream event into ``queue``, then ``_OVER`` (or the upstream's exception)."""
    try:
        async for event in events:
            queue.put_nowait(event)
    except Exception as exc:  # handed to the consumer, who raises it
        queue.put_nowait(_Failed(exc))
        return
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    queue.put_nowait(_OVER)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it, without swallowing a cancellation of the caller."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # mark retrieved; _pump hands its exceptions over the queue


def _validate(chars_per_s: float, tick_s: float) -> None:
    if not (math.isfinite(chars_per_s) and chars_per_s > 0):
        raise ValueError(f"chars_per_s must be a positive number, not {chars_per_s!r}")
    if not (math.isfinite(tick_s) and tick_s > 0):
        raise ValueError(f"tick_s must be a positive number, not {tick_s!r}")


async def equal_pace(
    events: AsyncIterator[Event],
    chars_per_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    tick_s: float = 0.05,
) -> AsyncIterator[Event]:
    """Re-emit a battle's ``events`` with both replies shown at ``chars_per_s`` together.

    See the module docstring for the exact rules. ``clock`` and ``sleep`` are injectable so tests
    can run on virtual time; ``tick_s`` is the time between two emissions.

    Raises:
        ValueError: ``chars_per_s`` or ``tick_s`` is not a positive number.
    """
    _validate(chars_per_s, tick_s)
    sides = {name: _Side() for name in SIDES}
    queue: asyncio.Queue[_Item] = asyncio.Queue()
    pump = asyncio.create_task(_pump(events, queue))
    t0: float | None = None
    upstream_over = False
    end: Event | None = None
    turn: dict[str, Any] = {}  # the events' turn, carried onto the paced deltas
    try:
        while True:
            passing: list[Event] = []
            while not queue.empty():
                item = queue.get_nowait()
                if isinstance(item, _Failed):
                    raise item.error
                if isinstance(item, _Over):
                    upstream_over = True
                    continue
                side = sides.get(str(item.data.get("side")))
                if item.name == "end":
                    upstream_over = True
                    end = item
                elif side is None or item.name not in ("delta", "done", "error"):
                    passing.append(item)
                elif item.name == "delta":
                    if "turn" in item.data:
                        turn = {"turn": item.data["turn"]}
                    text = str(item.data.get("text", ""))
                    side.text += text
                    side.started = side.started or bool(text)
                elif not side.finished:
                    side.finished = side.started = True
                    side.terminal = item
            for event in passing:
                yield event
            if upstream_over:
                for side in sides.values():
                    side.finished = side.started = True
            now = clock()
            if t0 is None and all(side.started for side in sides.values()):
                t0 = now
            target = 0 if t0 is None else math.floor(chars_per_s * (now - t0))
            limits = {
                name: min(
                    len(side.text),
                    target,
                    *(len(other.text) for other in sides.values() if not other.finished),
                )
                for name, side in sides.items()
            }
            for name, side in sides.items():
                if limits[name] > side.shown:
                    chunk = side.text[side.shown : limits[name]]
                    side.shown = limits[name]
                    yield Event("delta", {"side": name, **turn, "text": chunk})
            for side in sides.values():
                terminal = side.terminal
                if (
                    terminal is not None
                    and not side.terminal_sent
                    and side.shown == len(side.text)
                    and (t0 is not None or terminal.name == "error")
                ):
                    side.terminal_sent = True
                    yield terminal
            if upstream_over and all(side.settled() for side in sides.values()):
                if end is not None:
                    yield end
                return
            await sleep(tick_s)
    finally:
        await _stop(pump)
