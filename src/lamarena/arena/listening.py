"""The listening rule of speech battles: a vote only after both spoken replies were heard.

The page unlocks the vote once each side was played for ``--min-listen`` seconds or to its end
(music arenas gate votes this way), and the server refuses a vote that arrives sooner than any
person could have done so. A side can be heard from the moment its first audio byte arrived
(its ``ttfab_s`` after the turn started), and the page plays one side at a time, so the earliest
possible vote is the quicker of the two orders: hear the first side, then the second from when
both it and the listener are ready. Written by hand: it is a two-line schedule, not a library's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LISTEN_SLACK_S", "HeardReply", "earliest_vote_s"]

LISTEN_SLACK_S = 0.5
"""Seconds a vote may come before the computed earliest time (clocks and networks jitter)."""


@dataclass(frozen=True)
class HeardReply:
    """When a spoken reply could first be played, and how long it is.

    Attributes:
        ttfab_s: seconds after the turn started at which its first audio byte arrived.
        audio_s: its duration in seconds.
    """

    ttfab_s: float | None
    audio_s: float | None


def earliest_vote_s(a: HeardReply, b: HeardReply, min_listen_s: float) -> float:
    """Seconds after the turn started before which no one could have heard enough of both.

    Each reply must be heard for ``min(min_listen_s, audio_s)`` seconds, one at a time, starting
    no sooner than its first audio byte. A reply with unknown timings counts as ready at once and
    of no length (the rule then errs towards accepting the vote).
    """
    ready_a, need_a = a.ttfab_s or 0.0, min(min_listen_s, a.audio_s or 0.0)
    ready_b, need_b = b.ttfab_s or 0.0, min(min_listen_s, b.audio_s or 0.0)
    a_first = max(ready_a + need_a, ready_b) + need_b
    b_first = max(ready_b + need_b, ready_a) + need_a
    return min(a_first, b_first)
