import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from lamarena.errors import ConfigError
from lamarena.store.db import make_engine, migrate_to_head
from lamarena.store.tables import Base

TABLES = {
    "participants",
    "sessions",
    "battles",
    "replies",
    "turns",
    "votes",
    "health_checks",
    "client_events",
    "store_secrets",
    "pair_counts",
    "cluster_pair_counts",
}


def test_upgrade_head_from_empty_matches_the_models(databases):
    engine = databases.engine(migrated=False)
    with engine.connect() as connection:
        assert not inspect(connection).get_table_names()

    migrate_to_head(engine)

    with engine.connect() as connection:
        assert TABLES | {"alembic_version"} == set(inspect(connection).get_table_names())
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0007"
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrate_to_head_twice_changes_nothing(engine):
    migrate_to_head(engine)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://user@localhost/db", r"use sqlite:///path or postgresql\+psycopg"),
        ("not a url", "is not a SQLAlchemy URL"),
    ],
)
def test_make_engine_rejects_unsupported_urls(url, expected):
    with pytest.raises(ConfigError, match=expected):
        make_engine(url)


def test_plain_postgresql_url_uses_psycopg():
    engine = make_engine("postgresql://user@127.0.0.1:1/db")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
    finally:
        engine.dispose()
