"""The policy every remote adapter shares: what is transient, how long to wait, what to say.

Only rate limits (429) and server errors (5xx) are retried, and only before the first delta of a
reply has arrived; every other 4xx is the caller's mistake and retrying it only wastes time.

A reply is complete only when the service says so (OpenAI's ``finish_reason``, Gemini's
``finishReason``): a stream that ends without it, or whose connection fails after the request was
accepted, is :func:`broke_off`, never a complete reply and never "cannot reach" the server.
"""

from __future__ import annotations

import random

from lamarena.errors import ModelError, ModelUnavailable

__all__ = [
    "MAX_BACKOFF_S",
    "backoff_s",
    "broke_off",
    "is_transient_status",
    "redact",
    "status_error",
]

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


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (an API key) replaced by ``***``."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def broke_off(
    name: str, base_url: str, received_chars: int, cause: BaseException | None = None
) -> ModelError:
    """The error for a reply stream that ended before the service said it was finished.

    Args:
        name: the adapter's name.
        base_url: where the service was asked.
        received_chars: how many characters of the reply had arrived.
        cause: the connection error that ended the stream, if one did (only its type is shown).
    """
    unit = "character" if received_chars == 1 else "characters"
    how = f"; {type(cause).__name__}" if cause is not None else ""
    return ModelError(
        name,
        f"the reply broke off before the server said it was finished ({received_chars} {unit} "
        f"received{how}); see the log of the server at {base_url}",
    )


def status_error(
    *, name: str, model: str, base_url: str, status: int, detail: str, attempts: int, key_hint: str
) -> ModelError:
    """The error for an HTTP failure other than a refused key, worded the same for every service.

    Args:
        name: the adapter's name.
        model: the model id sent to the service.
        base_url: where the service was asked.
        status: the HTTP status.
        detail: the service's message, already stripped of secrets.
        attempts: how many requests were made.
        key_hint: which setting holds the key (never the key).
    """
    if status == 403:
        return ModelUnavailable(name, f"access denied by {base_url} (403: {detail}); {key_hint}")
    if status == 404:
        return ModelUnavailable(
            name,
            f"model '{model}' not found at {base_url} (404: {detail}); check model and base_url "
            "in models.yaml",
        )
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if status == 429:
        return ModelUnavailable(name, f"rate limited (429){tries}: {detail}")
    if status >= 500:
        return ModelUnavailable(name, f"server error {status}{tries}: {detail}")
    return ModelError(name, f"the request was rejected ({status}): {detail}")
