"""Pooled PostgreSQL connections: pinged only when idle, replaced when the server closed them.

A real cluster: the server side of every pooled connection is ended with
``pg_terminate_backend`` (as a restart or an idle timeout would), then the engine is used again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

import lamarena.store.db as db
from helpers.databases import DatabaseFactory
from helpers.postgres import PostgresCluster


@pytest.fixture
def factory(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_cluster: PostgresCluster,
    postgres_admin: Engine,
    postgres_template: str,
) -> Iterator[DatabaseFactory]:
    made = DatabaseFactory(
        "postgresql",
        tmp_path_factory.mktemp("databases"),
        cluster=postgres_cluster,
        admin=postgres_admin,
        postgres_template=postgres_template,
    )
    yield made
    made.close()


def _end_server_sides(admin: Engine, engine: Engine) -> int:
    with admin.connect() as connection:
        ended = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": engine.url.database},
        ).scalar_one()
    return int(ended)


def _use(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT 41 + 1")).scalar_one())


def test_an_idle_connection_closed_by_the_server_is_replaced_before_use(
    factory: DatabaseFactory, postgres_admin: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "POSTGRES_PING_AFTER_IDLE_S", 0.0)  # every pooled one is "idle"
    engine = db.make_engine(factory.url())
    try:
        assert _use(engine) == 42  # one connection, now back in the pool
        assert _end_server_sides(postgres_admin, engine) == 1

        assert _use(engine) == 42  # pinged, found closed, replaced: the caller sees nothing
    finally:
        engine.dispose()


def test_a_recently_used_connection_is_not_pinged(
    factory: DatabaseFactory, postgres_admin: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other side of the trade: a connection used a moment ago is trusted (no round trip),
    # so one the server closed within that moment fails its first use; the pool then
    # replaces its connections and the next use works.
    monkeypatch.setattr(db, "POSTGRES_PING_AFTER_IDLE_S", 3600.0)
    engine = db.make_engine(factory.url())
    try:
        assert _use(engine) == 42
        assert _end_server_sides(postgres_admin, engine) == 1

        with pytest.raises(OperationalError):
            _use(engine)
        assert _use(engine) == 42
    finally:
        engine.dispose()
