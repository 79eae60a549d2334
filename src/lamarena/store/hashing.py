"""Salted hashes of the store: what an export or an audit shows instead of a session cookie.

Every database has its own salt, made once by migration 0003 (``store_secrets`` row
``hash_salt``, 64 hex digits); :func:`store_salt` reads it. :func:`salted_hash` is HMAC-SHA256
keyed with the salt's text, in hex: the arena stores client addresses under it, and exports and
``votes audit`` show sessions under :func:`session_hash`.

**Which session ids an export hashes.** An arena session id is the value of a live cookie, so a
battle whose ``source`` is ``"arena"`` is exported with ``session_id`` replaced by
``session_hash(salt, session_id)``: ``"sh-"`` followed by the first 32 hex digits (128 bits) of
``salted_hash(salt, session_id)``. The same session gives the same hash in every export of one
database; another database (another salt) gives another hash, so exports of two arenas cannot be
joined on sessions. Battles of other sources (``simulate``, ``talk-arena``, ``fastchat``,
``jsonl``) keep their session ids: those are not cookies of this arena.

The store cannot tell a battle the arena created from one imported with ``source`` ``"arena"``
(an import keeps a record's ``source`` as given). So the rule is by ``source`` alone, and a
session id that already has the hashed form (``sh-`` and 32 lowercase hex digits, what an export
writes) is kept as it is: it is an earlier export's hash, not a cookie. The arena never makes
such an id (its session ids are 43-character ``secrets.token_urlsafe(32)`` values). Hence
export, import into any database, export again gives the same file.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from sqlalchemy.orm import Session

from lamarena.errors import DatabaseError
from lamarena.store.tables import StoreSecret

__all__ = [
    "HASHED_SOURCE",
    "SALT_NAME",
    "SESSION_HASH_DIGITS",
    "SESSION_HASH_PREFIX",
    "exported_session_id",
    "is_session_hash",
    "salted_hash",
    "session_hash",
    "store_salt",
]

SALT_NAME = "hash_salt"
"""The ``store_secrets`` row holding the database's salt."""

SESSION_HASH_PREFIX = "sh-"
"""What starts a hashed session id (``sh-`` for "salted hash")."""

SESSION_HASH_DIGITS = 32
"""Hex digits of the HMAC kept in a hashed session id (128 bits)."""

HASHED_SOURCE = "arena"
"""The ``source`` of battles whose session ids are cookies, hashed on the way out."""

_SESSION_HASH = re.compile(rf"{re.escape(SESSION_HASH_PREFIX)}[0-9a-f]{{{SESSION_HASH_DIGITS}}}")


def store_salt(session: Session) -> str:
    """The database's salt of client and session hashes.

    Raises:
        DatabaseError: the database has no salt (its schema predates migration 0003; any
            lamarena command that opens the store migrates it).
    """
    row = session.get(StoreSecret, SALT_NAME)
    if row is None:
        raise DatabaseError(
            f"the store has no {SALT_NAME!r} secret: migrate the database (any lamarena command "
            "that opens it does) and try again"
        )
    return row.value


def salted_hash(salt: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` keyed with ``salt`` (both as UTF-8 text), 64 hex digits."""
    return hmac.new(salt.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).hexdigest()


def is_session_hash(value: str) -> bool:
    """Whether ``value`` has the form of a hashed session id (``sh-`` and 32 hex digits)."""
    return _SESSION_HASH.fullmatch(value) is not None


def session_hash(salt: str, session_id: str) -> str:
    """The public form of a session id: ``sh-`` and 32 hex digits of its salted hash.

    An id that already has that form is returned unchanged (it is a hash, not a cookie).
    """
    if is_session_hash(session_id):
        return session_id
    return SESSION_HASH_PREFIX + salted_hash(salt, session_id)[:SESSION_HASH_DIGITS]


def exported_session_id(salt: str, session_id: str | None, source: str) -> str | None:
    """The ``session_id`` an exported battle of ``source`` carries (see the module docstring)."""
    if session_id is None or source != HASHED_SOURCE:
        return session_id
    return session_hash(salt, session_id)
