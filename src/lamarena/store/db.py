"""Engines, sessions and schema migrations.

``make_engine`` builds an engine for a SQLAlchemy URL (``sqlite:///path`` or
``postgresql+psycopg://...``); ``migrate_to_head`` brings its schema up to date with the
Alembic migrations shipped inside this package, and is meant to run on every start.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from lamarena.errors import ConfigError

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "alembic_config",
    "make_engine",
    "make_sessionmaker",
    "migrate_to_head",
]

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5_000
"""How long a SQLite connection waits for another writer before failing."""

# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x6C616D61  # "lama"


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """Create an engine for the store.

    SQLite connections get ``journal_mode=WAL``, ``foreign_keys=ON`` and a busy timeout, and
    SQLAlchemy (not the ``sqlite3`` driver) emits ``BEGIN``, so transactions, savepoints and
    transactional DDL behave as on PostgreSQL. A ``postgresql://`` URL uses psycopg 3.

    Args:
        url: a SQLAlchemy URL, ``sqlite:///path/to/file.db`` or ``postgresql+psycopg://...``.
        echo: log every SQL statement (debugging).

    Returns:
        The engine; the caller disposes of it.

    Raises:
        ConfigError: the URL cannot be parsed or names a database the store does not support.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL {str(url)!r} is not a SQLAlchemy URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, echo=echo, pool_pre_ping=True)
    if backend == "sqlite":
        engine = create_engine(parsed, echo=echo)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    raise ConfigError(
        f"database URL {parsed.render_as_string(hide_password=True)!r}: use sqlite:///path "
        "or postgresql+psycopg://user@host/dbname"
    )


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
    connection.exec_driver_sql("BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory for ``engine``.

    Sessions do not expire objects on commit, so a record read inside a transaction can be used
    after it.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


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
    """
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.info("database schema is at head (%s)", engine.url.render_as_string(hide_password=True))
