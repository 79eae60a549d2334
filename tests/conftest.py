"""Shared fixtures: throwaway SQLite and PostgreSQL databases for store and arena tests.

``engine`` (and ``databases``, a factory for more than one database) is parametrised over
``sqlite`` and ``postgresql``. PostgreSQL is a throwaway cluster started once per test session
(``initdb``/``pg_ctl`` as the ``postgres`` user, 127.0.0.1, a free port); every test gets its own
database copied from a migrated template. Missing server binaries fail the tests with the
install command: nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from helpers.databases import (
    DatabaseFactory,
    migrated_postgres_template,
    migrated_sqlite_template,
    postgres_admin_engine,
)
from helpers.postgres import PostgresCluster, PostgresUnavailable

DATABASE_KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A running throwaway PostgreSQL cluster, stopped and deleted after the session."""
    try:
        cluster = PostgresCluster.start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_admin(postgres_cluster: PostgresCluster) -> Iterator[Engine]:
    """An autocommit engine for CREATE/DROP DATABASE on the cluster."""
    admin = postgres_admin_engine(postgres_cluster)
    try:
        yield admin
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_cluster: PostgresCluster, postgres_admin: Engine) -> str:
    """The name of a database migrated to head, copied by every PostgreSQL test database."""
    return migrated_postgres_template(postgres_cluster, postgres_admin)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, copied by every SQLite test database."""
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=DATABASE_KINDS)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseFactory]:
    """A factory of fresh databases of one kind (``databases.kind``), removed after the test.

    SQLite files live in their own temporary directory, so a test's ``tmp_path`` stays empty.
    """
    directory = tmp_path_factory.mktemp("databases")
    if request.param == "sqlite":
        factory = DatabaseFactory(
            "sqlite", directory, sqlite_template=request.getfixturevalue("sqlite_template")
        )
    else:
        factory = DatabaseFactory(
            "postgresql",
            directory,
            cluster=request.getfixturevalue("postgres_cluster"),
            admin=request.getfixturevalue("postgres_admin"),
            postgres_template=request.getfixturevalue("postgres_template"),
        )
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def engine(databases: DatabaseFactory) -> Engine:
    """An engine on a fresh database migrated to head (SQLite or PostgreSQL)."""
    return databases.engine()
