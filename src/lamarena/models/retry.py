"""The retry policy every remote adapter shares: which failures are transient, how long to wait.

Only rate limits (429) and server errors (5xx) are retried, and only before the first delta of a
reply has arrived; every other 4xx is the caller's mistake and retrying it only wastes time.
"""

from __future__ import annotations

import random

__all__ = ["MAX_BACKOFF_S", "backoff_s", "is_transient_status"]

MAX_BACKOFF_S = 8.0
"""No wait between two attempts is longer than this."""


def is_transient_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying (429 or 5xx)."""
    return status == 429 or status >= 500


def backoff_s(attempt: int, base_s: float, retry_after_s: float | None = None) -> float:
    """The wait before retry number ``attempt`` (1 for the first retry).

    Exponential (``base_s`` doubled per attempt) with 25 % jitter, so clients that failed together
    do not retry together; a server's ``Retry-After`` wins when longer; capped at
    :data:`MAX_BACKOFF_S`.
    """
    delay = base_s * 2.0 ** (attempt - 1) * (1.0 - 0.25 * random.random())
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(delay, MAX_BACKOFF_S)
