"""Equal pacing of the two replies: on virtual time (deterministic, instant) and on real time."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import pytest

from lamarena.arena.live import Event
from lamarena.arena.pacing import equal_pace

TICK_S = 0.05


class VirtualTime:
    """A clock that only moves when the pacer sleeps; upstream events wait for their time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now = round(self.now + delay, 9)
        for at, waiter in self._waiters:
            if at <= self.now and not waiter.done():
                waiter.set_result(None)
        self._waiters = [(at, waiter) for at, waiter in self._waiters if not waiter.done()]
        for _ in range(5):  # let the upstream task deliver everything due by now
            await asyncio.sleep(0)

    async def until(self, at: float) -> None:
        if at <= self.now:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((at, waiter))
        await waiter


@dataclass
class Upstream:
    """Releases scripted events at their virtual times; remembers whether it was closed."""

    time: VirtualTime
    script: list[tuple[float, Event]]
    closed: bool = False

    async def events(self) -> AsyncIterator[Event]:
        try:
            for at, event in sorted(self.script, key=lambda item: item[0]):
                await self.time.until(at)
                yield event
        finally:
            self.closed = True


@dataclass
class Shown:
    """The paced output, each event with the virtual time it came out at."""

    timed: list[tuple[float, Event]] = field(default_factory=list)

    @property
    def events(self) -> list[Event]:
        return [event for _, event in self.timed]

    def text(self, side: str) -> str:
        return "".join(
            e.data["text"] for e in self.events if e.name == "delta" and e.data["side"] == side
        )

    def time_of(self, name: str, side: str) -> float:
        (at,) = [t for t, e in self.timed if e.name == name and e.data.get("side") == side]
        return at

    def counts_per_tick(self) -> list[tuple[float, dict[str, int]]]:
        """Characters shown per side after each moment at which something came out."""
        counts = {"a": 0, "b": 0}
        moments: list[tuple[float, dict[str, int]]] = []
        for at, event in self.timed:
            if event.name == "delta":
                counts[event.data["side"]] += len(event.data["text"])
            if moments and moments[-1][0] == at:
                moments[-1] = (at, dict(counts))
            else:
                moments.append((at, dict(counts)))
        return moments


def delta(side: str, text: str) -> Event:
    return Event("delta", {"side": side, "text": text})


def done(side: str) -> Event:
    return Event("done", {"side": side})


def error(side: str, message: str = "this model failed") -> Event:
    return Event("error", {"side": side, "message": message})


END = Event("end", {})


def burst(side: str, text: str, at: float, chunk: int = 10) -> list[tuple[float, Event]]:
    """All of ``text`` at once (in ``chunk``-sized deltas), then ``done``: a fast model."""
    pieces = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    return [(at, delta(side, piece)) for piece in pieces] + [(at, done(side))]


def trickle(
    side: str, text: str, start: float, every: float, chunk: int = 10
) -> list[tuple[float, Event]]:
    """``chunk`` characters every ``every`` seconds from ``start``, then ``done``: a slow model."""
    pieces = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    script = [(start + i * every, delta(side, piece)) for i, piece in enumerate(pieces)]
    return [*script, (start + (len(pieces) - 1) * every, done(side))]


def finished_at(script: Iterable[tuple[float, Event]]) -> float:
    return max(at for at, _ in script)


async def pace(
    script: list[tuple[float, Event]], chars_per_s: float, *, end_at: float | None = None
) -> tuple[Shown, Upstream]:
    time = VirtualTime()
    ends = finished_at(script) if end_at is None else end_at
    upstream = Upstream(time, [*script, (ends, END)])
    shown = Shown()
    async for event in equal_pace(
        upstream.events(), chars_per_s, clock=time.clock, sleep=time.sleep, tick_s=TICK_S
    ):
        shown.timed.append((time.now, event))
    return shown, upstream


def assert_well_formed(shown: Shown) -> None:
    names = [e.name for e in shown.events]
    assert names.count("end") == 1
    assert names[-1] == "end"
    for side in ("a", "b"):
        terminals = [
            i
            for i, e in enumerate(shown.events)
            if e.name in ("done", "error") and e.data["side"] == side
        ]
        assert len(terminals) == 1
        last_delta = max(
            (i for i, e in enumerate(shown.events) if e.name == "delta" and e.data["side"] == side),
            default=-1,
        )
        assert last_delta < terminals[0]


FAST_TEXT = "".join(chr(ord("a") + i % 26) for i in range(200))
SLOW_TEXT = "".join(chr(ord("A") + i % 26) for i in range(200))


async def test_fast_side_never_runs_ahead_of_slow_side() -> None:
    # a: all 200 characters at t=0.1; b: 10 characters every 0.5 s from t=0.5 (20 chars/s).
    script = burst("a", FAST_TEXT, 0.1) + trickle("b", SLOW_TEXT, 0.5, 0.5)
    shown, _ = await pace(script, chars_per_s=50)
    assert_well_formed(shown)
    slow_done = finished_at(trickle("b", SLOW_TEXT, 0.5, 0.5))
    moments = shown.counts_per_tick()
    assert moments
    for at, counts in moments:
        if at < slow_done:
            # Equal after every tick (the only difference inside a tick is the order a, b).
            assert counts["a"] == counts["b"], (at, counts)
            # Never more than the slow side had released by then.
            assert counts["b"] <= 10 * (math.floor(round(at / 0.5, 9))), (at, counts)
    # Inside a tick the two can differ by at most what one tick released.
    counts = {"a": 0, "b": 0}
    for event in shown.events:
        if event.name == "delta":
            counts[event.data["side"]] += len(event.data["text"])
            assert abs(counts["a"] - counts["b"]) <= 10
    assert shown.time_of("done", "a") == shown.time_of("done", "b") == slow_done


async def test_pace_bounds_both_sides_when_models_are_faster() -> None:
    script = burst("a", FAST_TEXT, 0.1) + burst("b", SLOW_TEXT, 0.3)
    shown, _ = await pace(script, chars_per_s=40)
    assert_well_formed(shown)
    t0 = 0.3
    for at, counts in shown.counts_per_tick():
        expected = min(200, 40 * (at - t0))
        assert counts["a"] == counts["b"] == pytest.approx(expected, abs=1), (at, counts)
    # 200 characters at 40 per second take 5 s from the moment both had started.
    assert shown.time_of("done", "a") == shown.time_of("done", "b") == pytest.approx(5.3)
    # Chunks are cut by the clock, not by the model's 10-character deltas: ~2 per tick.
    sizes = {len(e.data["text"]) for e in shown.events if e.name == "delta"}
    assert sizes <= {1, 2, 3}


async def test_nothing_is_shown_before_both_have_started() -> None:
    script = burst("a", FAST_TEXT, 0.0) + trickle("b", SLOW_TEXT, 2.0, 0.5)
    shown, _ = await pace(script, chars_per_s=50)
    assert all(at >= 2.0 for at, _ in shown.timed)


@pytest.mark.parametrize("chars_per_s", [3, 17, 50, 1000])
async def test_text_is_kept_exactly(chars_per_s: float) -> None:
    rng = random.Random(chars_per_s)
    text_a = "héllo wörld 🎉🎉 日本語 cafe\u0301 ñ " * 3
    text_b = "Ünïcödé 👩‍👩‍👧 ∑∫ — ok 😀 " * 3
    script: list[tuple[float, Event]] = []
    for side, text, every in (("a", text_a, 0.01), ("b", text_b, 0.13)):
        i, at = 0, 0.05
        while i < len(text):
            size = rng.randint(1, 7)
            script.append((round(at, 2), delta(side, text[i : i + size])))
            i += size
            at += every
        script.append((round(at, 2), done(side)))
    shown, _ = await pace(script, chars_per_s=chars_per_s)
    assert_well_formed(shown)
    assert shown.text("a") == text_a
    assert shown.text("b") == text_b


@pytest.mark.parametrize("chars_per_s", [15, 50])
async def test_equal_lengths_finish_together_whatever_the_speed(chars_per_s: float) -> None:
    text = "x" * 100
    script = burst("a", text, 0.1) + trickle("b", text.upper(), 0.5, 0.5)
    shown, _ = await pace(script, chars_per_s=chars_per_s)
    assert_well_formed(shown)
    assert shown.time_of("done", "a") == shown.time_of("done", "b")


@pytest.mark.parametrize(("fast_chars", "slow_chars"), [(60, 120), (120, 60)])
async def test_done_order_follows_length_not_speed(fast_chars: int, slow_chars: int) -> None:
    # At 15 chars/s the pace is slower than both models (the slow one writes 20 chars/s).
    script = burst("a", "f" * fast_chars, 0.1) + trickle("b", "s" * slow_chars, 0.5, 0.5)
    shown, _ = await pace(script, chars_per_s=15)
    assert_well_formed(shown)
    done_a, done_b = shown.time_of("done", "a"), shown.time_of("done", "b")
    if fast_chars < slow_chars:
        assert done_a < done_b
    else:
        assert done_b < done_a
    t0 = 0.5
    assert done_a == pytest.approx(t0 + fast_chars / 15, abs=TICK_S)
    assert done_b == pytest.approx(t0 + slow_chars / 15, abs=TICK_S)


async def test_error_passes_through_and_the_other_side_goes_on_alone() -> None:
    # a writes 10 characters, then fails at t=1.0; b had 300 characters at t=0.1.
    long_text = "".join(chr(ord("a") + i % 26) for i in range(300))
    script = [(0.2, delta("a", "0123456789")), (1.0, error("a")), *burst("b", long_text, 0.1)]
    shown, _ = await pace(script, chars_per_s=50)
    assert_well_formed(shown)
    assert shown.text("a") == "0123456789"
    assert shown.text("b") == long_text
    (failure,) = [e for e in shown.events if e.name == "error"]
    assert failure == error("a")
    assert shown.time_of("error", "a") == 1.0
    t0 = 0.2
    for at, counts in shown.counts_per_tick():
        if at < 1.0:
            assert counts["b"] <= 10  # held to what a had
        else:
            assert counts["b"] == pytest.approx(min(300, 50 * (at - t0)), abs=1), (at, counts)
    assert shown.time_of("done", "b") == pytest.approx(t0 + 300 / 50)


async def test_an_error_without_text_goes_out_at_once() -> None:
    script = [(0.0, error("a")), *trickle("b", SLOW_TEXT, 1.0, 0.5)]
    shown, _ = await pace(script, chars_per_s=50)
    assert_well_formed(shown)
    at, first = shown.timed[0]
    assert first == error("a")
    assert at <= TICK_S  # the first tick after it arrived
    assert shown.text("b") == SLOW_TEXT


async def test_end_is_last_even_when_upstream_ends_early() -> None:
    # Upstream's end arrives with the last text, long before the pace has shown it.
    script = burst("a", FAST_TEXT, 0.1) + burst("b", SLOW_TEXT, 0.1)
    shown, _ = await pace(script, chars_per_s=100, end_at=0.1)
    assert_well_formed(shown)
    assert shown.timed[-1][0] == pytest.approx(2.1)


async def test_upstream_stopping_without_done_still_shows_the_text() -> None:
    time = VirtualTime()
    upstream = Upstream(time, [(0.0, delta("a", "abc")), (0.0, delta("b", "xyz"))])
    out = [
        e
        async for e in equal_pace(
            upstream.events(), 10, clock=time.clock, sleep=time.sleep, tick_s=TICK_S
        )
    ]
    assert "".join(e.data["text"] for e in out if e.data.get("side") == "a") == "abc"
    assert "".join(e.data["text"] for e in out if e.data.get("side") == "b") == "xyz"
    assert all(e.name == "delta" for e in out)


async def test_other_events_pass_through() -> None:
    note = Event("note", {"x": 1})
    script = [(0.0, note), *burst("a", "aa", 0.0), *burst("b", "bb", 0.0)]
    shown, _ = await pace(script, chars_per_s=100)
    assert shown.events[0] == note


def other_tasks() -> set[asyncio.Task[object]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def test_aclose_mid_stream_leaves_no_task_behind() -> None:
    time = VirtualTime()
    script = burst("a", FAST_TEXT, 0.1) + trickle("b", SLOW_TEXT, 0.5, 0.5)
    upstream = Upstream(time, [*script, (10.0, END)])
    paced = equal_pace(upstream.events(), 50, clock=time.clock, sleep=time.sleep, tick_s=TICK_S)
    assert isinstance(paced, AsyncIterator)
    seen = [await anext(paced) for _ in range(3)]
    assert [e.name for e in seen] == ["delta", "delta", "delta"]
    assert other_tasks()  # the upstream reader
    await paced.aclose()  # type: ignore[attr-defined]
    assert not other_tasks()
    assert upstream.closed


async def test_cancelling_the_consumer_leaves_no_task_behind() -> None:
    time = VirtualTime()
    upstream = Upstream(time, trickle("a", FAST_TEXT, 0.1, 0.5) + trickle("b", SLOW_TEXT, 0.1, 1))
    started = asyncio.Event()

    async def consume() -> None:
        paced = equal_pace(upstream.events(), 50, clock=time.clock, sleep=time.sleep)
        async for _ in paced:
            started.set()

    consumer = asyncio.create_task(consume())
    await started.wait()
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert not other_tasks()
    assert upstream.closed


async def test_upstream_failure_reaches_the_consumer() -> None:
    async def broken() -> AsyncIterator[Event]:
        yield delta("a", "hi")
        raise RuntimeError("upstream broke")

    with pytest.raises(RuntimeError, match="upstream broke"):
        async for _ in equal_pace(broken(), 50, sleep=lambda _: asyncio.sleep(0)):
            pass
    assert not other_tasks()


@pytest.mark.parametrize(("chars_per_s", "tick_s"), [(0, 0.05), (-1, 0.05), (10, 0), (math.nan, 1)])
async def test_bad_settings_are_refused(chars_per_s: float, tick_s: float) -> None:
    async def nothing() -> AsyncIterator[Event]:
        yield END

    with pytest.raises(ValueError, match="must be a positive number"):
        await anext(equal_pace(nothing(), chars_per_s, tick_s=tick_s))


async def test_real_clock_at_high_pace() -> None:
    fast = "fast model ✓ " * 25  # 325 characters
    slow = "slow model é " * 20  # 260 characters

    async def upstream() -> AsyncIterator[Event]:
        yield delta("a", fast[:5])
        await asyncio.sleep(0.02)
        for i in range(0, len(slow), 26):
            yield delta("b", slow[i : i + 26])
            if i == 0:
                yield delta("a", fast[5:])
                yield done("a")
            await asyncio.sleep(0.01)
        yield done("b")
        yield END

    loop = asyncio.get_running_loop()
    begun = loop.time()
    texts = {"a": "", "b": ""}
    names: list[str] = []
    at_ticks: list[tuple[int, int, bool]] = []

    async def sleep(delay: float) -> None:  # real sleep; notes what was shown at each tick
        at_ticks.append((len(texts["a"]), len(texts["b"]), names.count("done") > 0))
        await asyncio.sleep(delay)

    async for event in equal_pace(upstream(), 2000, sleep=sleep, tick_s=0.01):
        names.append(event.name)
        if event.name == "delta":
            texts[event.data["side"]] += event.data["text"]
    elapsed = loop.time() - begun
    # While b was still generating, a (all its text long available) was held to b's count.
    held = [(shown_a, shown_b) for shown_a, shown_b, any_done in at_ticks if not any_done]
    assert held
    assert all(shown_a == shown_b for shown_a, shown_b in held), held
    assert texts == {"a": fast, "b": slow}
    assert names[-1] == "end"
    assert names.count("done") == 2
    assert elapsed >= len(fast) / 2000
    assert not other_tasks()
