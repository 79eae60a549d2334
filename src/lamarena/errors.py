"""The one exception hierarchy of lamarena.

Every error a user can cause or fix is a :class:`LamarenaError` with a stable ``code`` and a
message that says what to do. Front ends (the CLI, the HTTP API) catch the root class in one
place; nothing from a third-party library crosses a package boundary untranslated.

::

    LamarenaError
    ├── ConfigError          bad settings, models.yaml or a missing optional extra
    ├── DatabaseError        the database cannot be reached, or refused a read or write
    ├── InvalidInputError    a file or value given by the user that cannot be used (ValueError)
    │   ├── RecordError      one record of an imported file, naming the record and the field
    │   └── AudioError       audio that cannot be decoded or is out of bounds
    ├── ModelError           a model failed to answer (carries ``model``)
    │   ├── ModelTimeout
    │   └── ModelUnavailable
    ├── NotFound             a battle, model or dataset that does not exist
    ├── AlreadyVoted         a second vote on one battle
    ├── RepliesPending       a vote on a battle whose replies are still being generated
    │   └── ListenFirst      a vote sooner than hearing both spoken replies allows
    ├── RateLimited          too many requests from one session, address or the whole arena
    ├── StorageFull          the server's disk is full; nothing was stored
    ├── Unavailable          a feature this deployment has not configured (no speech recogniser)
    ├── UnknownTask          a static task or dataset name not in the registry
    └── InsufficientData     too few votes or scores for the statistic asked for
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlreadyVoted",
    "AudioError",
    "ConfigError",
    "ConversationClosed",
    "DatabaseError",
    "InsufficientData",
    "InvalidInputError",
    "LamarenaError",
    "ListenFirst",
    "ModelError",
    "ModelTimeout",
    "ModelUnavailable",
    "NotFound",
    "RateLimited",
    "RecordError",
    "RepliesPending",
    "StorageFull",
    "Unavailable",
    "UnknownTask",
]


class LamarenaError(Exception):
    """Root of every error lamarena raises on purpose.

    Attributes:
        code: a stable, machine-readable name for the kind of error.
        message: what went wrong and what to do about it.
    """

    code: ClassVar[str] = "lamarena_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(LamarenaError):
    """Settings, a models.yaml entry or an installed extra are wrong or missing."""

    code = "config_error"


class DatabaseError(LamarenaError):
    """The database cannot be reached, or refused a read or a write (nothing was changed)."""

    code = "database_error"


class InvalidInputError(LamarenaError, ValueError):
    """A file or value given by the user cannot be used as it is."""

    code = "invalid_input"


class RecordError(InvalidInputError):
    """One record of an input file is malformed.

    The message names the file, the record (its id or line) and the field, so the user can fix it.
    """

    code = "invalid_record"

    def __init__(self, source: str, record: str, field: str, problem: str) -> None:
        self.source = source
        self.record = record
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: record {record}: field '{field}': {problem}")


class AudioError(InvalidInputError):
    """Audio that cannot be decoded, is empty or silent, or is too long or too large."""

    code = "invalid_audio"


class ModelError(LamarenaError):
    """A model failed to produce a reply."""

    code = "model_error"

    def __init__(self, model: str, message: str) -> None:
        self.model = model
        super().__init__(f"model '{model}': {message}")


class ModelTimeout(ModelError):
    """A model took longer than its time limit."""

    code = "model_timeout"


class ModelUnavailable(ModelError):
    """A model's service could not be reached or refused the request."""

    code = "model_unavailable"


class NotFound(LamarenaError):
    """A battle, model or dataset that does not exist (or is not yours)."""

    code = "not_found"


class AlreadyVoted(LamarenaError):
    """A battle that already has its vote."""

    code = "already_voted"


class ConversationClosed(LamarenaError):
    """A battle's conversation cannot take another turn here (it can still be voted on)."""

    code = "conversation_closed"


class RepliesPending(LamarenaError):
    """A vote on a battle whose replies are not finished yet (HTTP 409)."""

    code = "replies_pending"


class ListenFirst(RepliesPending):
    """A vote sooner than hearing both spoken replies (``--min-listen``) allows (HTTP 409)."""

    code = "listen_first"


class RateLimited(LamarenaError):
    """Too many requests a minute from one session, one address or the whole arena (HTTP 429).

    Attributes:
        retry_after_s: whole seconds until a new request may succeed (the ``Retry-After``).
    """

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int = 60) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class Unavailable(LamarenaError):
    """A feature this deployment has not set up, such as transcribing spoken reasons (HTTP 503)."""

    code = "unavailable"


class StorageFull(LamarenaError):
    """The server's disk is full: nothing was stored (HTTP 503)."""

    code = "storage_full"


class UnknownTask(LamarenaError):
    """A static task or dataset name that the registry does not know."""

    code = "unknown_task"


class InsufficientData(LamarenaError):
    """Too little data for the statistic asked for."""

    code = "insufficient_data"
