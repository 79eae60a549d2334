"""A content-addressed cache of model and judge calls, in one SQLite file.

The key is the sha256 of canonical JSON over what can change a reply: the model's resolved spec
(kind, model id, base URL, generation settings; never its key, timeouts, retries or concurrency),
the audio's sha256, the prompt, and the generation settings of the call. The value is the reply
(text, timings, transcript, token usage where reported). A corrupt entry is a miss, never a
crash; only complete replies are stored, so a failed call is tried again next time.

Safe to share between the threads and processes of one machine (a connection per thread, WAL
journal, busy timeout): Dask workers on one host write to the same file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lamarena.errors import ConfigError

__all__ = ["CacheStats", "CachedReply", "CallCache", "call_key", "canonical_json"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def call_key(
    *,
    model: Mapping[str, Any],
    prompt: str,
    audio_sha256: str | None = None,
    generation: Mapping[str, Any] | None = None,
) -> str:
    """The cache key of one call (hex sha256).

    Args:
        model: the resolved model spec, without secrets, timeouts, retries or concurrency.
        prompt: the text sent (the task prompt, or the judge's whole prompt).
        audio_sha256: the digest of the audio bytes; None for a text-only call (a judge).
        generation: settings of this call that the spec does not hold.
    """
    document = {
        "model": dict(model),
        "prompt": prompt,
        "audio_sha256": audio_sha256,
        "generation": dict(generation or {}),
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """A complete reply as stored.

    Attributes:
        text: the reply.
        total_s: seconds the original call took.
        ttft_s: seconds to its first delta, if known.
        transcript: what a pipeline's ASR heard, if any.
        usage: token counts where the API reported them
            (:meth:`lamarena.models.base.Usage.as_dict`).
        option_logprobs: under constrained decoding, each candidate's log-likelihood.
        notice: what the model was not given as asked (a clip cut to its ``max_audio_s``).
    """

    text: str
    total_s: float
    ttft_s: float | None = None
    transcript: str | None = None
    usage: dict[str, int | None] | None = None
    option_logprobs: dict[str, float] | None = None
    notice: str | None = None


@dataclass
class CacheStats:
    """Hits and misses of one :class:`CallCache` (this process only)."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0


class CallCache:
    """The SQLite cache file at ``path`` (created with its folder when missing)."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the cache.

        Raises:
            ConfigError: the file exists but is not a cache (not SQLite, or unreadable).
        """
        self.path = path
        self.stats = CacheStats()
        self._local = threading.local()
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the cache folder {path.parent}: {exc}") from exc
        self._connection()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        try:
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"the static cache {self.path} cannot be used ({exc}): delete it, or set "
                "LAMARENA_STATIC_CACHE to another file"
            ) from exc
        self._local.connection = connection
        return connection

    def get(self, key: str) -> CachedReply | None:
        """The stored reply for ``key``, or None (a corrupt entry counts as a miss)."""
        row = self._connection().execute("SELECT value FROM calls WHERE key = ?", (key,)).fetchone()
        if row is None:
            self._count("misses")
            return None
        try:
            value = json.loads(row[0])
            reply = CachedReply(
                text=str(value["text"]),
                total_s=float(value["total_s"]),
                ttft_s=None if value.get("ttft_s") is None else float(value["ttft_s"]),
                transcript=value.get("transcript"),
                usage=value.get("usage"),
                option_logprobs=value.get("option_logprobs"),
                notice=None if value.get("notice") is None else str(value["notice"]),
            )
        except (ValueError, KeyError, TypeError):
            logger.warning("static cache %s: entry %s is corrupt; calling again", self.path, key)
            self._count("corrupt")
            self._count("misses")
            return None
        self._count("hits")
        return reply

    def put(self, key: str, reply: CachedReply) -> None:
        """Store ``reply`` under ``key`` (replacing an older entry)."""
        self._connection().execute(
            "INSERT OR REPLACE INTO calls (key, value, created_at) VALUES (?, ?, ?)",
            (key, json.dumps(asdict(reply)), datetime.now(UTC).isoformat()),
        )

    def __len__(self) -> int:
        row = self._connection().execute("SELECT COUNT(*) FROM calls").fetchone()
        return int(row[0])

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
