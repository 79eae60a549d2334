"""``/healthz`` answers 200 only when the store takes writes on the database the arena opened.

Issue 11: with the SQLite files deleted while serving, votes were acknowledged and lost while
``/healthz`` (``SELECT 1``) stayed 200; a read-only database also kept it 200.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, text

from lamarena.store.tables import HealthCheck

from .conftest import Harness


def _checked_at(harness: Harness):
    with harness.engine.connect() as connection:
        return connection.execute(select(HealthCheck.checked_at)).scalar_one()


def test_healthz_commits_a_write(harness: Harness) -> None:
    client = harness.client()
    assert client.get("/healthz").json() == {"status": "ok"}
    first = _checked_at(harness)
    assert client.get("/healthz").status_code == 200
    assert _checked_at(harness) > first  # the same row, written again


def test_healthz_fails_when_the_sqlite_file_is_removed_while_serving(
    harness_factory,
) -> None:
    harness: Harness = harness_factory()
    if harness.engine.dialect.name != "sqlite":
        # the PostgreSQL case of a store that takes no writes is the read-only test below
        assert harness.client().get("/healthz").status_code == 200
        return
    client = harness.client()
    assert client.get("/healthz").status_code == 200
    path = Path(harness.engine.url.database or "")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["error"] == "database_error"


def test_healthz_fails_when_the_database_takes_no_writes(harness_factory) -> None:
    harness: Harness = harness_factory()
    client = harness.client()
    assert client.get("/healthz").status_code == 200
    if harness.engine.dialect.name == "sqlite":
        with harness.engine.begin() as connection:  # a trigger stands in for a read-only file
            connection.execute(
                text(
                    "CREATE TRIGGER read_only BEFORE UPDATE ON health_checks "
                    "BEGIN SELECT RAISE(ABORT, 'attempt to write a readonly database'); END"
                )
            )
    else:
        database = harness.engine.url.database
        with harness.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
            )
        harness.engine.dispose()  # new connections start read-only
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "database_error",
        "message": "the database is not available right now; try again in a moment",
    }
