"""Engines, sessions and schema migrations.

``make_engine`` builds an engine for a SQLAlchemy URL (``sqlite:///path`` or
``postgresql+psycopg://...``); ``migrate_to_head`` brings its schema up to date with the
Alembic migrations shipped inside this package, and is meant to run on every start.

The store's services (``migrate_to_head`` and those of :mod:`lamarena.store.votes`) run their
database work inside :func:`database_errors`, so a database that cannot be reached or that
refuses a statement surfaces as one :class:`~lamarena.errors.DatabaseError`, never as a
SQLAlchemy or driver exception.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from time import monotonic
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from lamarena.errors import ConfigError, DatabaseError

__all__ = [
    "POSTGRES_PING_AFTER_IDLE_S",
    "POSTGRES_POOL_SIZE",
    "SQLITE_BUSY_TIMEOUT_MS",
    "DatabaseIdentity",
    "WriteSessions",
    "alembic_config",
    "check_database_identity",
    "database_error",
    "database_errors",
    "database_identity",
    "make_engine",
    "make_sessionmaker",
    "migrate_to_head",
    "reader",
]

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5_000
"""How long a SQLite connection waits for another writer before failing."""
_READ_ONLY = "lamarena_read_only"
POSTGRES_POOL_SIZE = 20
"""Connections each process keeps open to PostgreSQL (the arena's threads share them)."""
POSTGRES_PING_AFTER_IDLE_S = 5.0
"""A pooled PostgreSQL connection idle this long is pinged before use (see :func:`make_engine`)."""

# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x6C616D61  # "lama"


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """Create an engine for the store.

    SQLite connections get ``journal_mode=WAL``, ``foreign_keys=ON`` and a busy timeout, and
    SQLAlchemy (not the ``sqlite3`` driver) emits ``BEGIN IMMEDIATE`` (``BEGIN`` through
    :func:`reader`), so transactions, savepoints and transactional DDL behave as on PostgreSQL
    and concurrent writers wait for each other instead of failing. A ``postgresql://`` URL uses
    psycopg 3 (a pool of :data:`POSTGRES_POOL_SIZE`), and its connections use the time zone
    UTC, so every timestamp the store can hold (years 1 to 9999 in UTC) reads back whatever the
    server's ``TimeZone`` setting is. A pooled PostgreSQL connection idle for
    :data:`POSTGRES_PING_AFTER_IDLE_S` or more is pinged when checked out and replaced if the
    server closed it (a restart, an idle timeout): SQLAlchemy's ``pool_pre_ping`` would ping on
    every checkout, two round trips per transaction on a busy arena, where connections are
    seconds old. A connection that dies while in use fails that transaction, and SQLAlchemy then
    replaces every connection of the pool.

    The engine connects lazily: a database that cannot be reached is reported (as
    :class:`~lamarena.errors.DatabaseError`, see :func:`database_errors`) by the first service
    that uses it, usually :func:`migrate_to_head`.

    Args:
        url: a SQLAlchemy URL, ``sqlite:///path/to/file.db`` or ``postgresql+psycopg://...``.
        echo: log every SQL statement (debugging).

    Returns:
        The engine; the caller disposes of it.

    Raises:
        ConfigError: the URL cannot be parsed, names a database the store does not support, or
            its driver is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL {str(url)!r} is not a SQLAlchemy URL: {exc}") from exc
    backend = parsed.get_backend_name()
    shown = parsed.render_as_string(hide_password=True)
    if backend not in ("postgresql", "sqlite"):
        raise ConfigError(
            f"database URL {shown!r}: use sqlite:///path or postgresql+psycopg://user@host/dbname"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if backend == "postgresql":
            engine = create_engine(
                parsed,
                echo=echo,
                pool_size=POSTGRES_POOL_SIZE,
                max_overflow=POSTGRES_POOL_SIZE // 2,
            )
        else:
            engine = create_engine(parsed, echo=echo)
    except ImportError as exc:
        raise ConfigError(
            f"database URL {shown!r}: its driver ({exc.name or parsed.drivername}) is not "
            "installed; use sqlite:///path or postgresql+psycopg://user@host/dbname"
        ) from exc
    except ArgumentError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"database URL {shown!r} cannot be used: {detail}") from exc
    event.listen(engine, "handle_error", _note_connect_failure)
    if backend == "postgresql":
        event.listen(engine, "connect", _postgresql_on_connect)
        event.listen(engine, "checkin", _note_checkin)
        event.listen(engine, "checkout", _ping_if_idle)
    else:
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


_CONNECT_FAILED = "_lamarena_connect_failed"


def _note_connect_failure(context: ExceptionContext) -> None:
    # Only here can a failed connect be told from a failed COMMIT (both have no statement):
    # SQLAlchemy reports a connect failure with no connection. database_error reads the mark.
    if context.connection is None and context.sqlalchemy_exception is not None:
        setattr(context.sqlalchemy_exception, _CONNECT_FAILED, True)


def _postgresql_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Timestamps are stored as timestamptz; reading them in UTC keeps year 9999 (or year 1)
    # from overflowing into year 10000 (or 0) in a server time zone east (or west) of UTC.
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute("SET TIME ZONE 'UTC'")
    finally:
        dbapi_connection.autocommit = autocommit


_CHECKED_IN_AT = "lamarena_checked_in_at"


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info[_CHECKED_IN_AT] = monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # SQLAlchemy's documented pessimistic check, done on a checkout event ("Disconnect
    # Handling - Pessimistic"): raising DisconnectionError makes the pool retry with a new
    # connection. A new connection has no check-in time and needs no ping.
    checked_in_at = record.info.get(_CHECKED_IN_AT)
    if checked_in_at is None or monotonic() - checked_in_at < POSTGRES_PING_AFTER_IDLE_S:
        return
    autocommit = dbapi_connection.autocommit
    try:
        dbapi_connection.autocommit = True  # a ping outside any transaction: one round trip
        dbapi_connection.execute("SELECT 1")
        dbapi_connection.autocommit = autocommit
    except Exception as exc:  # any driver error: this connection is not usable
        raise DisconnectionError(f"a pooled PostgreSQL connection was closed: {exc}") from exc


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN (see _sqlite_on_begin); the driver's legacy mode skips it for
    # SELECT, DDL and SAVEPOINT, which breaks savepoints and transactional DDL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # A deferred BEGIN that reads and then writes cannot wait for a concurrent writer: SQLite
    # answers "database is locked" at once, whatever the busy timeout. Taking the write lock at
    # BEGIN makes writers queue (up to the busy timeout); readers ask for a deferred BEGIN.
    if connection.get_execution_options().get(_READ_ONLY, False):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def reader(engine: Engine) -> Engine:
    """``engine`` for transactions that only read: on SQLite they do not take the write lock.

    The same pool and connections; on PostgreSQL nothing changes. Writing through it on SQLite
    works but may fail with "database is locked" under concurrent writes.
    """
    return engine.execution_options(**{_READ_ONLY: True})


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory for ``engine``.

    Sessions do not expire objects on commit, so a record read inside a transaction can be used
    after it.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


class WriteSessions:
    """Write transactions of one process; on SQLite its writers queue on a lock of its own.

    SQLite lets one writer in at a time, and a writer that finds the lock taken polls for it
    (its busy handler sleeps 1, 2, 5 ... up to 100 ms between tries), so under a burst of writes
    each waits well past the moment the lock is free. Queueing a process's writers on a
    ``threading.Lock`` first wakes the next one as soon as the previous transaction ends; the
    database's own lock still orders them against other processes. Waiting for the lock is
    bounded by the busy timeout, after which the transaction goes ahead and SQLite decides.
    On PostgreSQL this is the plain session factory.
    """

    def __init__(self, engine: Engine) -> None:
        self._factory = make_sessionmaker(engine)
        self._lock = threading.Lock() if engine.dialect.name == "sqlite" else None

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A session in a transaction, committed at the end of the block (rolled back on error)."""
        if self._lock is None:
            with self._factory.begin() as session:
                yield session
            return
        acquired = self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            with self._factory.begin() as session:
                yield session
        finally:
            if acquired:
                self._lock.release()


def alembic_config(engine: Engine | None = None) -> Config:
    """Build the Alembic configuration of the store without an ``alembic.ini``.

    Args:
        engine: if given, its URL is set as ``sqlalchemy.url`` (for ``alembic`` commands such as
            ``revision --autogenerate`` run from Python).

    Returns:
        A configuration whose script location is ``lamarena/store/migrations``.
    """
    config = Config()
    config.set_main_option("script_location", str(files("lamarena.store") / "migrations"))
    if engine is not None:
        url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
        config.set_main_option("sqlalchemy.url", url)
    return config


def migrate_to_head(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied (``upgrade head``), in one transaction.

    On PostgreSQL an advisory lock serialises concurrent callers (several workers starting at
    once); the second caller finds the schema already at head.

    Args:
        engine: the engine of the database to migrate.

    Raises:
        DatabaseError: the database cannot be reached, refused the migration, or is at a
            schema revision this version of lamarena does not know; nothing was changed.
    """
    config = alembic_config()
    shown = engine.url.render_as_string(hide_password=True)
    with database_errors(engine, "migrating the schema", "nothing was changed"):
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except CommandError as exc:
            raise DatabaseError(
                f"database {shown}: cannot migrate the schema ({_one_line(str(exc))}); is it "
                "from a newer version of lamarena? Nothing was changed"
            ) from exc
    logger.info("database schema is at head (%s)", shown)


_MAX_DETAIL = 200
_CONNECT_NOISE = re.compile(
    r"^(?:connection failed:\s*)?(?:connection to server (?:at|on) .*? failed:\s*)?(?:FATAL:\s*)?"
)
_CONNECT_HINTS = {
    "sqlite": "check --db / LAMARENA_DATABASE_URL and that the file's directory exists and "
    "is writable",
    "postgresql": "check --db / LAMARENA_DATABASE_URL and that the server is running",
}


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()] or ["unknown error"]
    line = " ".join(lines[0].split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 3] + "..."


def _reason(exc: BaseException) -> str:
    """The driver's own words, first line only, without psycopg's connection preamble."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    reason = _one_line(_CONNECT_NOISE.sub("", str(original).strip()) or str(original))
    if len(reason) > 1 and reason[0].isupper() and reason[1].islower():
        reason = reason[0].lower() + reason[1:]  # "Connection refused" -> "connection refused"
    return reason


def database_error(engine: Engine, exc: BaseException, doing: str, then: str) -> DatabaseError:
    """Describe a failure of the database in one actionable line.

    Args:
        engine: the engine whose database failed; its URL is named with any password hidden.
        exc: what SQLAlchemy or the driver raised.
        doing: what the store was doing, for example ``"reading the battles"``.
        then: what it means or what to do when the database answered but refused, for example
            ``"nothing was imported"``.

    Returns:
        The error to raise (``raise ... from exc``), for example ``database
        postgresql+psycopg://nobody@127.0.0.1:1/x: cannot connect (connection refused); check
        --db / LAMARENA_DATABASE_URL and that the server is running``.
    """
    shown = engine.url.render_as_string(hide_password=True)
    reason = _reason(exc)
    hint = _CONNECT_HINTS.get(engine.dialect.name, _CONNECT_HINTS["postgresql"])
    if isinstance(exc, PoolTimeoutError) or getattr(exc, _CONNECT_FAILED, False):
        return DatabaseError(f"database {shown}: cannot connect ({reason}); {hint}")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return DatabaseError(
            f"database {shown}: lost the connection while {doing} ({reason}); {then}; {hint}"
        )
    if isinstance(exc, OverflowError):
        reason = f"a number too large for the database: {reason}"
    return DatabaseError(f"database {shown}: {doing} failed ({reason}); {then}")


@contextmanager
def database_errors(engine: Engine, doing: str, then: str) -> Iterator[None]:
    """Turn a failure of the database inside the block into :class:`DatabaseError`.

    Catches what a driver raises (``sqlalchemy.exc.DBAPIError``, including its
    ``OperationalError`` and ``IntegrityError``), a pool timeout and ``OverflowError`` (a
    Python number the driver cannot convert); lamarena's own errors pass through. Handle
    expected refusals (an ``IntegrityError`` meaning "already voted", say) inside the block.

    Args:
        engine: the engine used inside the block.
        doing: what the block does, for the message (see :func:`database_error`).
        then: what a refusal means, for the message.

    Raises:
        DatabaseError: the block failed because of the database.
    """
    try:
        yield
    except (DBAPIError, PoolTimeoutError, OverflowError) as exc:
        raise database_error(engine, exc, doing, then) from exc


DatabaseIdentity = tuple[str, int, int]
"""An SQLite database file as the store opened it: its path, device and inode."""


def database_identity(engine: Engine) -> DatabaseIdentity | None:
    """The file an SQLite engine works on (None for PostgreSQL, or an in-memory SQLite)."""
    import os

    if engine.dialect.name != "sqlite":
        return None
    path = engine.url.database
    if not path or path == ":memory:":
        return None
    try:
        found = os.stat(path)
    except OSError:  # not created yet: nothing to compare against
        return None
    return path, found.st_dev, found.st_ino


def check_database_identity(identity: DatabaseIdentity | None) -> None:
    """Refuse when the SQLite file opened at start was removed or replaced since.

    Its writers would go on writing into the removed file's open handles, acknowledging what
    no reader of the path will ever see.

    Raises:
        DatabaseError: the file is gone or is another file now.
    """
    import os

    if identity is None:
        return
    path, device, inode = identity
    try:
        found = os.stat(path)
    except OSError:
        raise DatabaseError(
            f"the database file {path} was removed while the arena ran: restart it"
        ) from None
    if (found.st_dev, found.st_ino) != (device, inode):
        raise DatabaseError(
            f"the database file {path} was replaced while the arena ran: restart it"
        )
