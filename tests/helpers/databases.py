"""Throwaway databases for store tests: migrated templates and per-test copies.

SQLite: migrate one file per test session, then copy it for each database asked for.
PostgreSQL: migrate one template database per session, then ``CREATE DATABASE ... TEMPLATE``.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from sqlalchemy import Engine, create_engine, pool

from helpers.postgres import PostgresCluster

__all__ = [
    "DatabaseFactory",
    "migrated_sqlite_template",
    "postgres_admin_engine",
    "postgres_create_database",
    "postgres_drop_database",
]

POSTGRES_TEMPLATE = "lamarena_template"


def migrated_sqlite_template(directory: Path) -> Path:
    """Create and migrate the SQLite file that every SQLite test database copies."""
    from lamarena.store.db import make_engine, migrate_to_head

    path = directory / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate_to_head(engine)
    finally:
        engine.dispose()  # closing the last connection checkpoints the WAL into the file
    return path


def postgres_admin_engine(cluster: PostgresCluster) -> Engine:
    """An autocommit engine on the cluster's ``postgres`` database (CREATE/DROP DATABASE)."""
    return create_engine(cluster.url(), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)


def postgres_create_database(admin: Engine, name: str, template: str = "template0") -> None:
    """Create database ``name`` as a copy of ``template``."""
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def postgres_drop_database(admin: Engine, name: str) -> None:
    """Drop database ``name``, closing any connection still open on it."""
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_postgres_template(cluster: PostgresCluster, admin: Engine) -> str:
    """Create and migrate the template database that every PostgreSQL test database copies."""
    from lamarena.store.db import make_engine, migrate_to_head

    postgres_create_database(admin, POSTGRES_TEMPLATE)
    engine = make_engine(cluster.url(POSTGRES_TEMPLATE))
    try:
        migrate_to_head(engine)
    finally:
        engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template to have no sessions
    return POSTGRES_TEMPLATE


class DatabaseFactory:
    """Hands out fresh databases of one kind and removes them all in :meth:`close`.

    Args:
        kind: ``sqlite`` or ``postgresql``.
        directory: where SQLite files go.
        sqlite_template: the migrated SQLite file to copy (``None`` for PostgreSQL).
        cluster: the PostgreSQL cluster (``None`` for SQLite).
        admin: an autocommit engine on the cluster (``None`` for SQLite).
        postgres_template: the migrated template database (``None`` for SQLite).
    """

    def __init__(
        self,
        kind: str,
        directory: Path,
        *,
        sqlite_template: Path | None = None,
        cluster: PostgresCluster | None = None,
        admin: Engine | None = None,
        postgres_template: str | None = None,
    ) -> None:
        self.kind = kind
        self._directory = directory
        self._sqlite_template = sqlite_template
        self._cluster = cluster
        self._admin = admin
        self._postgres_template = postgres_template
        self._engines: list[Engine] = []
        self._databases: list[str] = []
        self._files: list[Path] = []

    def url(self, *, migrated: bool = True) -> str:
        """A URL of a new database: migrated to head, or empty."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        if self.kind == "sqlite":
            path = self._directory / f"{name}.db"
            self._files.extend(
                path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm")
            )
            if migrated:
                if self._sqlite_template is None:
                    raise RuntimeError("no SQLite template")
                shutil.copyfile(self._sqlite_template, path)
            return f"sqlite:///{path}"
        if self._cluster is None or self._admin is None or self._postgres_template is None:
            raise RuntimeError("no PostgreSQL cluster")
        template = self._postgres_template if migrated else "template0"
        postgres_create_database(self._admin, name, template)
        self._databases.append(name)
        return self._cluster.url(name)

    def engine(self, *, migrated: bool = True) -> Engine:
        """An engine on a new database; disposed of by :meth:`close`."""
        from lamarena.store.db import make_engine

        engine = make_engine(self.url(migrated=migrated))
        self._engines.append(engine)
        return engine

    def close(self) -> None:
        """Dispose of every engine handed out and delete every database created."""
        for engine in self._engines:
            engine.dispose()
        for path in self._files:
            path.unlink(missing_ok=True)
        if self._admin is not None:
            for name in self._databases:
                postgres_drop_database(self._admin, name)
        self._engines.clear()
        self._databases.clear()
        self._files.clear()
